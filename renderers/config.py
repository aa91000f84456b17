"""RenderConfig: every knob of the page renderer, validated once (pydantic, frozen).

The geometry checks live here so the layout never has to cope with a line too narrow for one
placeholder or a page too short for a header plus one line (that would make pagination loop).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The widest unit the layout must fit on one line: a placeholder such as "[U+10FFFF]" (~6.5 em in
# DejaVu Sans) or a full tab stop in the monospace font (tab_width × 0.6 em, at most 9.6 em).
MIN_LINE_EMS = 12
# A page must hold a header, one text line and room to spare, or a long turn could never advance.
MIN_PAGE_LINES = 3


def line_pitch(font_px: int, line_spacing: float) -> int:
    return max(1, round(font_px * line_spacing))


def max_font_px(page_px: int, margin_px: int, line_spacing: float) -> int:
    """Largest font size the page geometry admits (both the width and the height rule)."""
    content = page_px - 2 * margin_px
    by_width = content // MIN_LINE_EMS
    by_height = int(content / (MIN_PAGE_LINES * line_spacing * 1.05))  # 5 % slack for rounding
    return max(0, min(by_width, by_height))


class RenderConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    page_px: int = Field(1280, ge=128, le=4096, description="side of the square page in pixels")
    font_px: int = Field(20, ge=6, le=400, description="font size (em) in pixels at page_px")
    margin_px: int = Field(20, ge=0, le=1000, description="blank border on every side")
    line_spacing: float = Field(1.2, ge=1.0, le=4.0, description="line pitch as a multiple of font_px")
    turn_gap_px: int = Field(6, ge=0, le=400, description="extra space above a turn header (not at a page top)")
    headers: bool = Field(True, description="draw a header line (role, number, timestamp) per turn segment")
    header_style: Literal["band", "bold"] = Field(
        "band", description="band: bold text on a grey band across the page; bold: bold text only"
    )
    header_placement: Literal["inline", "line"] = Field(
        "inline", description="inline: a turn's header label starts its first text line (a header line costs "
        "a whole row per turn); line: the header has a row of its own. A '(continued)' header always has its own row"
    )
    header_band_grey: int = Field(215, ge=0, le=255, description="grey level of the header band")
    show_timestamp: bool = Field(True, description="put the turn's timestamp into its header")
    tab_width: int = Field(4, ge=1, le=16, description="tab stop every tab_width monospace spaces")
    fill: bool = Field(False, description="pick the largest font size that fits the text on one page")
    fill_min_font_px: int = Field(20, ge=6, le=400, description="smallest size fill may pick")
    fill_max_font_px: int = Field(96, ge=6, le=400, description="largest size fill may pick")

    @model_validator(mode="after")
    def _geometry(self) -> RenderConfig:
        content = self.page_px - 2 * self.margin_px
        if content <= 0:
            raise ValueError(f"margin_px={self.margin_px} leaves no room on page_px={self.page_px}")
        limit = max_font_px(self.page_px, self.margin_px, self.line_spacing)
        if self.font_px > limit:
            raise ValueError(
                f"font_px={self.font_px} is too large for page_px={self.page_px}, margin_px={self.margin_px}, "
                f"line_spacing={self.line_spacing}: at most {limit} (a line must hold {MIN_LINE_EMS} em and "
                f"a page {MIN_PAGE_LINES} lines)"
            )
        if self.fill:
            if self.fill_min_font_px > self.fill_max_font_px:
                raise ValueError(
                    f"fill_min_font_px={self.fill_min_font_px} is above fill_max_font_px={self.fill_max_font_px}"
                )
            if self.fill_min_font_px > limit:
                raise ValueError(
                    f"fill_min_font_px={self.fill_min_font_px} is too large for this page: at most {limit}"
                )
        return self

    @property
    def content_px(self) -> int:
        return self.page_px - 2 * self.margin_px

    def fill_range(self) -> tuple[int, int]:
        """Font sizes fill may search, clipped to what the page geometry admits."""
        hi = min(self.fill_max_font_px, max_font_px(self.page_px, self.margin_px, self.line_spacing))
        return self.fill_min_font_px, hi
