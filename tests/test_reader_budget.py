"""The budget invariant, for every built-in reader profile, against an independent recount.

For random conversations, budgets and system prompts, ``ctx.positions <= budget``, and
``ctx.positions`` is what the exported request costs that reader, recounted here from the export
alone: every text part with the profile's own counter, every image from its decoded size and the
detail the part carries, plus the profile's request and per-message overheads. For the DeepSeek-OCR
decoder the recount is the length of the codec's spliced sequence. Beside it: a reader with no eyes
never gets an image, and no sealed page goes out at a tier whose image costs more than its text.
"""

from __future__ import annotations

import base64
import io
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from optmem import MemoryConfig, OpticalMemory
from optmem.assembler import BudgetError
from optmem.profiles import BUILTIN, Profile

WORDS = ("the", "budget", "memory", "page", "reader", "token", "image", "<image>", "tile", "Zürich", "café",
         "3.14159", "2026-12-01", "x@example.com", "naïve", "量子", "记忆", "压缩", "视觉", "。", "—", "ok",
         "supercalifragilistic", "ID-4471-QX", "\t", "12345678901234567890")
CHINESE = "我们把很久以前的对话渲染成图片，让模型用更少的视觉标记读回它们。"

words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=70).map(" ".join)
turn_text = st.one_of(words, st.integers(1, 4).map(lambda n: CHINESE * n), st.just("   "))
conversations = st.lists(st.tuples(st.sampled_from(("user", "assistant", "user", "assistant", "tool", "system")),
                                   turn_text), min_size=4, max_size=22)
budgets = st.lists(st.integers(min_value=64, max_value=9000), min_size=1, max_size=5)
systems = st.one_of(st.none(), st.just(""), words)
queries = st.one_of(st.none(), words)

CHAT_PROFILES = [name for name in BUILTIN if BUILTIN[name].request == "chat"]
DECODER_PROFILES = [name for name in BUILTIN if BUILTIN[name].request == "decoder"]


def _config(model: str, *, font_px: int, recent: int, retrieval: bool = False, images: bool = False) -> MemoryConfig:
    # A large font seals a page every few turns, so short conversations age pages through every tier.
    return MemoryConfig.model_validate({
        "model": model, "recent_turns": recent, "render": {"font_px": font_px},
        # images: pages stay images even when all of memory would fit as text
        "retrieval": {"enabled": retrieval}, "reexpand": {"ocr_backend": "onnxruntime", "text_when_it_fits": not images},
        "schedule": {"steps": [{"tier": "gundam", "until": 1}, {"tier": "large", "until": 2}, {"tier": "base", "until": 3},
                               {"tier": "small", "until": 5}, {"tier": "tiny", "until": 99}]},
    })


def _memory(model: str, turns, *, font_px: int, recent: int, retrieval: bool = False, images: bool = False) -> OpticalMemory:
    mem = OpticalMemory.open(":memory:", "c", _config(model, font_px=font_px, recent=recent, retrieval=retrieval,
                                                      images=images))
    for i, (role, text) in enumerate(turns):
        mem.add(role, text, timestamp=1_700_000_000 + 60 * i)
    return mem


# -- the independent recounts -------------------------------------------------------------------------

def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _data_url_bytes(url: str) -> bytes:
    head, payload = url.split(",", 1)
    assert head.startswith("data:image/") and head.endswith(";base64"), head
    return base64.b64decode(payload)


def recount_openai(messages: list[dict], profile: Profile) -> tuple[int, int]:
    """(reader tokens, images) of an OpenAI Chat Completions request."""
    total, images = profile.request_overhead + profile.message_overhead * len(messages), 0
    for m in messages:
        parts = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        for p in parts:
            if p["type"] == "text":
                total += profile.count_text(p["text"])
            else:
                assert p["type"] == "image_url", p["type"]
                w, h = _image_size(_data_url_bytes(p["image_url"]["url"]))
                total += profile.image_tokens(w, h, p["image_url"].get("detail"))
                images += 1
    return total, images


def recount_anthropic(request: dict, profile: Profile) -> tuple[int, int]:
    """(reader tokens, images) of an Anthropic Messages request; the system prompt, when there is
    one, costs what a message of its text does."""
    total, images = profile.request_overhead + profile.message_overhead * len(request["messages"]), 0
    if request["system"]:
        total += profile.message_overhead + profile.count_text(request["system"])
    for m in request["messages"]:
        for block in m["content"]:
            if block["type"] == "text":
                total += profile.count_text(block["text"])
            else:
                assert block["type"] == "image" and block["source"]["type"] == "base64", block
                w, h = _image_size(base64.b64decode(block["source"]["data"]))
                total += profile.image_tokens(w, h)
                images += 1
    return total, images


@cache
def _codec():
    from optmem.codec import DeepSeekOCR, DeepSeekOCRConfig

    return DeepSeekOCR.from_config(DeepSeekOCRConfig.tiny(), seed=0)


def recount_decoder(ctx) -> int:
    """The decoder positions of the codec's own splice of the context: BOS, text ids, image slots."""
    input_ids, _, _ = _codec().splice(ctx.codec_segments())
    return int(input_ids.numel())


# -- the checks ---------------------------------------------------------------------------------------

def check_context(mem: OpticalMemory, ctx, budget: int, system: str | None) -> None:
    profile = BUILTIN[mem.config.model]
    assert ctx.positions <= budget
    assert ctx.exact == profile.exact
    for s in ctx.segments:
        if s.kind != "page":
            continue
        image = profile.image_tokens(s.side, s.side, s.detail)
        text = mem.page_text(s.page) if s.page <= _sealed(mem) else None
        if text is not None:
            # the page's image is no dearer than its text would be, in this reader's tokens
            assert image <= profile.count_text(text), (profile.name, s.page, s.tier, image, profile.count_text(text))
    if profile.request == "decoder":
        assert recount_decoder(ctx) == ctx.positions
        return
    messages = ctx.to_messages()
    counted, images = recount_openai(messages, profile)
    assert images == sum(1 for s in ctx.segments if s.kind == "page" and profile.takes_images)
    if not profile.takes_images:
        assert images == 0 and all(isinstance(m["content"], str) or all(p["type"] == "text" for p in m["content"])
                                   for m in messages)
    if profile.exact:
        assert counted == ctx.positions, (profile.name, counted, ctx.positions)
    else:
        assert counted <= ctx.positions, (profile.name, counted, ctx.positions)
    if profile.name == "claude":
        counted_a, images_a = recount_anthropic(ctx.to_anthropic(), profile)
        assert images_a == images and counted_a <= ctx.positions, (counted_a, ctx.positions)


def _sealed(mem: OpticalMemory) -> int:
    return max((p.number for p in mem.pages() if p.sealed), default=0)


@pytest.mark.parametrize("model", list(BUILTIN))
@settings(max_examples=3, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(turns=conversations, budgets=budgets, system=systems, query=queries,
       font_px=st.sampled_from((48, 72)), recent=st.integers(0, 3))
def test_budget_holds_and_equals_the_exported_request(model, turns, budgets, system, query, font_px, recent):
    with _memory(model, turns, font_px=font_px, recent=recent) as mem:
        for budget in budgets:
            try:
                ctx = mem.context(query, budget, system=system)
            except BudgetError:
                continue  # the newest turns alone are over this budget: refused, never exceeded
            check_context(mem, ctx, budget, system)


@pytest.mark.parametrize("model", ["deepseek-ocr", "gpt-4o", "claude", "qwen2.5-vl", "text"])
def test_budget_holds_with_retrieval_and_reexpansion(model):
    from optmem.demo import build_conversation

    turns, facts = build_conversation(40, seed=3)
    with _memory(model, turns, font_px=40, recent=2, retrieval=True) as mem:
        query = facts[0][1].question
        kinds = set()
        for budget in (300, 1200, 4000, 9000):
            try:
                ctx = mem.context(query, budget, system="Answer from memory.")
            except BudgetError:
                continue
            kinds |= {s.kind for s in ctx.segments}
            check_context(mem, ctx, budget, "Answer from memory.")
        assert "expanded" in kinds  # the query's page came back as text somewhere along the budgets


def test_text_reader_gets_page_markers_not_images():
    turns = [("user" if i % 2 == 0 else "assistant", " ".join(WORDS) * 3) for i in range(14)]
    with _memory("text", turns, font_px=48, recent=2) as mem:
        assert _sealed(mem) > 0
        ctx = mem.context(None, 9000)
        assert not [s for s in ctx.segments if s.kind == "page"]
        messages = ctx.to_messages()
        assert recount_openai(messages, BUILTIN["text"])[1] == 0
        assert all(b["type"] == "text" for m in ctx.to_anthropic()["messages"] for b in m["content"])


def test_expensive_images_are_never_sent_for_thin_pages():
    """gpt-4.1-mini's 1280 px page costs 2465 tokens and its 1024 px one 1659, more than many
    pages' text: each page goes at a rung no dearer than its text, whatever the budget."""
    profile = BUILTIN["gpt-4.1-mini"]
    costs = {r.side: profile.rung_tokens(r) for r in profile.ladder}
    assert costs[1280] > 2000 and costs[1024] > 1500
    turns = [("user" if i % 2 == 0 else "assistant", " ".join(WORDS * 3)) for i in range(40)]
    with _memory("gpt-4.1-mini", turns, font_px=20, recent=1, images=True) as mem:
        sealed = _sealed(mem)
        assert sealed > 1
        assert {p.tier for p in mem.pages() if p.sealed} & {"gundam", "large", "base"}  # young pages exist
        ctx = mem.context(None, 60_000)
        check_context(mem, ctx, 60_000, None)
        pages = [s for s in ctx.segments if s.kind == "page"]
        assert pages, "dense pages are worth sending at the small rungs"
        for s in pages:
            # the open page has no stored text yet: at most its turns' text is on it
            text = mem.page_text(s.page) if s.page <= sealed else "\n".join(t for _, t in turns[s.first_turn - 1:s.last_turn])
            assert profile.image_tokens(s.side, s.side, s.detail) <= profile.count_text(text), (s.page, s.tier)


def test_a_nearly_empty_open_page_is_not_sent_dearer_than_its_text():
    turns = [("user" if i % 2 == 0 else "assistant", " ".join(WORDS)) for i in range(16)]
    with _memory("gpt-4.1-mini", turns, font_px=72, recent=1) as mem:
        open_page = mem.pages()[-1]
        assert not open_page.sealed
        ctx = mem.context(None, 60_000)
        assert open_page.number not in ctx.page_tiers()  # 2465 tokens for ~150 of text: not sent


def test_a_blank_tool_turn_is_neither_priced_nor_sent():
    """Found by the property test: a blank tool turn went out as the text part "tool:    " that
    the budget had not counted."""
    turns = [("user", CHINESE), ("assistant", "   "), ("assistant", CHINESE), ("tool", "   ")]
    with _memory("deepseek-ocr-vllm", turns, font_px=72, recent=1) as mem:
        ctx = mem.context(None, 305, system="")
        assert ctx.segments[-1].kind == "turn" and ctx.segments[-1].positions == 0
        check_context(mem, ctx, 305, "")
        assert all(p.get("text", "").strip() != "tool:" for m in ctx.to_messages() for p in m["content"])
