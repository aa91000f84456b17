"""The viewer in a real browser: headless Chromium loads it, runs its script, and the DOM it dumps
says which page images loaded and at what size. Skipped where no Chromium is installed
(Debian: ``apt-get install chromium``)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
from PIL import Image
from test_viewer import ViewerDOM, fill, small_config

from optmem import OpticalMemory
from optmem.demo import build_conversation
from optmem.viewer import write_viewer
from renderers import Tier

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's load event and script, as Chromium serialises it."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--virtual-time-budget=10000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


def test_chromium_loads_every_page_image_at_its_stored_size(tmp_path):
    turns, _ = build_conversation(240, seed=3)
    with OpticalMemory.open(tmp_path / "m.db", "alice", small_config()) as mem:
        fill(mem, turns)
        index = write_viewer(mem, tmp_path / "out", query="door code")
        pages = mem.pages()
    url = index.resolve().as_uri()
    dom = ViewerDOM(dump_dom(url, tmp_path / "profile"))
    cards = {c.number: c for c in dom.cards}
    sealed = [p for p in pages if p.sealed]
    assert len(sealed) >= 10 and sorted(cards) == [p.number for p in pages]
    for info in sealed:
        card = cards[info.number]
        [img] = card.images
        side = Tier(info.image_tier).side
        assert img["data-loaded"] == "yes" and int(img["data-natural-width"]) == side, (info.number, img)
        [link] = card.links
        target = Path(unquote(urlparse(urljoin(url, link)).path))  # where the browser goes on a click
        assert target.is_file() and Image.open(io.BytesIO(target.read_bytes())).size == (side, side)
    open_card = cards[pages[-1].number]
    assert not open_card.sealed and open_card.images[0]["data-loaded"] == "yes"


def test_chromium_flags_a_missing_image(tmp_path):
    turns, _ = build_conversation(120, seed=5)
    with OpticalMemory.open(tmp_path / "m.db", "a", small_config()) as mem:
        fill(mem, turns)
        index = write_viewer(mem, tmp_path / "out")
    gone = min((tmp_path / "out" / "pages").glob("page-0001-*.png"))
    gone.unlink()
    html = dump_dom(index.resolve().as_uri(), tmp_path / "profile")
    dom = ViewerDOM(html)
    first = next(c for c in dom.cards if c.number == 1)
    assert first.images[0]["data-loaded"] == "no"
    assert all(c.images[0]["data-loaded"] == "yes" for c in dom.cards if c.number != 1)
    assert '<figure class="missing">' in html
