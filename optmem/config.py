"""Every knob of optmem as pydantic models, loadable from and printable as TOML.

Models are frozen and forbid unknown keys, so a typo in a TOML file is a validation error that
names the field instead of a setting silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from renderers import RenderConfig, Tier

HOUR = 3600.0
DAY = 24 * HOUR


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TierStep(_Model):
    """A page whose age is below ``until`` (and at or above the previous step's) is held at ``tier``."""

    tier: Tier
    until: float = Field(gt=0)


class ScheduleConfig(_Model):
    """The forgetting schedule: page age → tier, sharpest first.

    ``age_unit`` says how age is measured: ``pages`` sealed after this one, ``turns`` added after
    the page's last turn, or ``seconds`` of wall-clock time since its last turn. Past the last
    step a page either leaves the context but stays recallable (``evict``) or is deleted with its
    archived text (``delete``).
    """

    age_unit: Literal["pages", "turns", "seconds"] = "pages"
    steps: tuple[TierStep, ...] = (
        TierStep(tier="large", until=2),
        TierStep(tier="base", until=6),
        TierStep(tier="small", until=16),
        TierStep(tier="tiny", until=48),
    )
    after_last: Literal["evict", "delete"] = "evict"

    @model_validator(mode="after")
    def _ordered(self) -> "ScheduleConfig":
        if not self.steps:
            raise ValueError("steps: at least one tier step is needed")
        order = list(Tier)
        ranks = [order.index(s.tier) for s in self.steps]
        if any(b <= a for a, b in zip(ranks, ranks[1:])):
            raise ValueError("steps: tiers must go from sharper to blurrier, each at most once "
                             f"(order {[t.value for t in order]}), got {[s.tier.value for s in self.steps]}")
        untils = [s.until for s in self.steps]
        if any(b <= a for a, b in zip(untils, untils[1:])):
            raise ValueError(f"steps: 'until' must increase step by step, got {untils}")
        return self

    @classmethod
    def paper(cls) -> "ScheduleConfig":
        """DeepSeek-OCR's Fig. 13: 1 hour Gundam, 1 day Large, 1 week Base, 1 month Small, 1 year Tiny."""
        return cls(age_unit="seconds", steps=(
            TierStep(tier="gundam", until=HOUR),
            TierStep(tier="large", until=DAY),
            TierStep(tier="base", until=7 * DAY),
            TierStep(tier="small", until=30 * DAY),
            TierStep(tier="tiny", until=365 * DAY),
        ))


class ReexpandConfig(_Model):
    """How pages are read back into text when a query needs them."""

    engine: Literal["ppocr-strips", "tesseract", "model"] = "ppocr-strips"
    ocr_backend: Literal["auto", "onnxruntime", "openvino"] = Field(
        default="auto", description="runtime for ppocr-strips; auto: OpenVINO when installed (faster), else onnxruntime")
    unit: Literal["page", "excerpt", "turns"] = Field(
        default="turns", description="page: a relevant page is replaced by its whole text; excerpt: the relevant "
        "chunks of pages are added as text and the pages stay in context as images; turns: the turns retrieval "
        "ranks for the query (dense and keyword, turn by turn) go in as text beside the page images, the two "
        "sharing the budget by expected value per token (docs/design.md, Assembly)")
    text_share: float | None = Field(default=None, gt=0, le=1, description="unit = 'turns': None: text and "
                                     "images share the budget by value per token; a number: retrieved turns take "
                                     "up to this share of the budget left after the recent turns, pages the rest")
    max_pages: int = Field(default=4, ge=0, description="most pages re-expanded into text per context(), budget permitting")
    max_excerpts: int = Field(default=16, ge=0, description="most excerpts per context() when unit = 'excerpt' "
                              "(optical archive: from at most max_pages pages, each an OCR read)")
    model_dir: Path | None = Field(default=None, description="local DeepSeek-OCR weights for engine='model'")
    text_when_it_fits: bool = Field(default=True, description="when all of memory fits in the budget as text, "
                                    "it goes in as text, for any reader (verbatim archive); false: pages stay images")


class RetrievalConfig(_Model):
    enabled: bool = True
    min_score: float = Field(default=0.3, ge=-1, le=1)
    chunk_chars: int = Field(default=600, ge=100, description="pages are embedded in chunks of about this many characters")
    embed_on_seal: bool = Field(default=True, description="embed each page when it is sealed, so no query waits "
                                "for a backlog; false: on the first query after pages were sealed")
    embed_on_query: bool = Field(default=True, description="a query first embeds what is not embedded yet; false: "
                                 "it searches what is, and OpticalMemory.index() embeds the rest off the request "
                                 "path (optmem serve does, while the upstream answers)")


class LedgerConfig(_Model):
    """The verbatim guard: exact strings of in-context pages kept as text beside the page."""

    enabled: bool = True
    max_strings_per_page: int = Field(default=24, ge=1)


class MemoryConfig(_Model):
    model: str = Field(default="deepseek-ocr", description="the reader's profile: a built-in name (deepseek-ocr, "
                       "deepseek-ocr-vllm, gpt-4o, gpt-4.1, gpt-4.1-mini, claude, gemini-2, qwen2.5-vl, qwen3-vl, "
                       "text) or a profile TOML file (docs/profiles.md)")
    recent_turns: int = Field(default=8, ge=0, description="the newest k turns stay text")
    budget: int = Field(default=8192, ge=16, description="the reader's input tokens a context may use")
    archive: Literal["verbatim", "optical"] = "verbatim"
    max_turn_chars: int = Field(default=2_000_000, ge=1)
    sent_images: Literal["compact", "fast"] = Field(
        default="compact", description="compact: the write that seals or moves a page makes the bytes the reader "
        "is sent for it in the profile's compact encoding; fast: it makes them fast-encoded (the same pixels, more "
        "bytes) and OpticalMemory.compact_images() re-encodes them compactly later (optmem serve does, after the "
        "response)")
    tier_moves: Literal["on_write", "later"] = Field(
        default="on_write", description="on_write: the write that makes a page old enough moves it down its "
        "schedule (resampling its image); later: writes leave the moves to OpticalMemory.settle() (optmem serve "
        "calls it after the response), so pages fade one call late")
    schedule: ScheduleConfig = ScheduleConfig()
    render: RenderConfig = RenderConfig()
    reexpand: ReexpandConfig = ReexpandConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    ledger: LedgerConfig = LedgerConfig()

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from optmem.profiles import load_profile

        load_profile(value)  # an unknown name or a bad profile file is an error naming this field
        return value

    @classmethod
    def from_toml(cls, path: str | Path) -> "MemoryConfig":
        return cls.model_validate(read_toml(path))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))


class ConfigError(ValueError):
    """A config file that cannot be read at all (missing, not TOML). Bad values raise ValidationError."""


def read_toml(path: str | Path, what: str = "config file") -> dict:
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except OSError as e:  # a directory, no permission: still "cannot be read", named as such
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load_config(config: "MemoryConfig | str | Path | dict | None") -> MemoryConfig:
    if config is None:
        return MemoryConfig()
    if isinstance(config, MemoryConfig):
        return config
    if isinstance(config, dict):
        return MemoryConfig.model_validate(config)
    return MemoryConfig.from_toml(config)


__all__ = [
    "ConfigError", "LedgerConfig", "MemoryConfig", "ReexpandConfig", "RetrievalConfig",
    "ScheduleConfig", "TierStep", "ValidationError", "load_config",
]
