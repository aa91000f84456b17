"""render_pages = draw(layout) for every laid-out page."""

from __future__ import annotations

from collections.abc import Iterator

from .config import RenderConfig
from .layout import Turns, iter_layouts
from .page import Page, make_page


def iter_pages(turns: Turns, config: RenderConfig | None = None) -> Iterator[Page]:
    """Pages one at a time: a 1 MB turn never holds more than one raw page image in memory."""
    for layout in iter_layouts(turns, config):
        yield make_page(layout)


def render_pages(turns: Turns, config: RenderConfig | None = None) -> list[Page]:
    """Render ``turns`` (a string, (role, text) pairs or TurnInputs) onto square pages."""
    return list(iter_pages(turns, config))
