import base64
import io
import json
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import jsonschema
import pytest
from anthropic.types import ContentBlockParam, MessageParam
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ConfigDict, TypeAdapter

from optmem.assembler import (
    Context,
    ExpandedSegment,
    LedgerSegment,
    MemoryPage,
    PageSegment,
    RecentTurn,
    TurnSegment,
    assemble,
)
from optmem.exports import OPENER, RequestLimitError, json_size_bound, to_anthropic, to_openai_messages
from optmem.profiles import BUILTIN
from optmem.reader import ESCAPED_IMAGE_PLACEHOLDER, Reader

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "openai_chat_message_schema.json").read_text())
OPENAI = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
ANTHROPIC_MESSAGE = TypeAdapter(MessageParam, config=ConfigDict(extra="forbid"))
ANTHROPIC_BLOCK = TypeAdapter(ContentBlockParam, config=ConfigDict(extra="forbid"))


def _tiny_image(tier: str) -> Image.Image:
    return Image.new("L", (8, 8), 200)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class _Stored:
    """A page's stored bytes: exports must send them as they are, never decode them."""

    data: bytes

    def png(self, side: int, crop: int = 0) -> bytes:
        return self.data

    def image(self, side: int, crop: int = 0) -> Image.Image:
        raise AssertionError("stored bytes exist: the image must not be decoded or re-encoded")


def _page(n, tier, png, *, detail=None, first=None):
    first = n if first is None else first
    return PageSegment(n, tier, first, first + 1, 73, _Stored(png), side=8, detail=detail,
                       label=f"Memory page {n} (turns {first}-{first + 1}):")


# -- validators -------------------------------------------------------------------------------------

def assert_valid_openai(messages: list[dict], profile) -> None:
    for m in messages:
        OPENAI.validate(m)
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[:1] == ["system"] else roles
    assert "system" not in body and "developer" not in roles
    assert body[:1] in ([], ["user"])
    assert all(a != b for a, b in pairwise(body)), roles
    for m in messages:
        parts = m["content"] if isinstance(m["content"], list) else []
        if m["role"] != "user":
            assert not any(p.get("type") == "image_url" for p in parts)
        for p in parts:
            if p["type"] == "image_url":
                detail = p["image_url"].get("detail")
                if profile.cost.detail_is_api_param:
                    assert detail in {r.detail for r in profile.ladder}
                else:
                    assert detail is None
                assert p["image_url"]["url"].startswith("data:image/png;base64,")
            else:
                assert p["text"].strip()
    assert "<image>" not in json.dumps(messages, ensure_ascii=False)


def assert_valid_anthropic(request: dict) -> None:
    assert set(request) == {"system", "messages"} and isinstance(request["system"], str)
    roles = [m["role"] for m in request["messages"]]
    assert roles[:1] in ([], ["user"]) and set(roles) <= {"user", "assistant"}
    assert all(a != b for a, b in pairwise(roles)), roles
    for m in request["messages"]:
        ANTHROPIC_MESSAGE.validate_python(m)
        if isinstance(m["content"], str):
            assert m["content"].strip()
            continue
        for block in m["content"]:
            ANTHROPIC_BLOCK.validate_python(block)
            if block["type"] == "image":
                assert m["role"] == "user" and block["source"]["type"] == "base64"
            else:
                assert block["text"].strip()
    assert "<image>" not in json.dumps(request, ensure_ascii=False)


# -- generated contexts -----------------------------------------------------------------------------

TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["<image>", "see <image> here", "  ", "", "你好 <image>"]))
TIERS = st.sampled_from(["large", "base", "small", "tiny", "gundam", "high", "low"])


@st.composite
def segments(draw):
    kind = draw(st.sampled_from(["turn", "turn", "page", "stored", "ledger", "expanded"]))
    n = draw(st.integers(1, 99))
    if kind == "turn":
        role, body = draw(st.sampled_from(["user", "assistant", "system", "tool"])), draw(TEXT)
        return TurnSegment(n, role, body, f"{role}: {body}\n", 1)
    if kind in ("page", "stored"):
        return _page(n, draw(TIERS), _png(_tiny_image("tiny")), detail=draw(st.sampled_from(["high", "low"])))
    if kind == "ledger":
        strings = tuple(draw(st.lists(TEXT, max_size=3)))
        return LedgerSegment(n, strings, f"[memory page {n}, exact: {', '.join(strings)}]\n", 5)
    body = draw(TEXT)
    return ExpandedSegment(n, "tiny", n, n + 2, body, "verbatim", f"[memory page {n}, turns {n}-{n + 2}]\n{body}\n", 9)


@settings(max_examples=120, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segments(), max_size=12), st.sampled_from(sorted(BUILTIN)), st.one_of(st.none(), TEXT))
def test_every_export_of_any_context_is_valid(segs, name, system):
    ctx, profile = Context(segs, 10**6, Reader(name)), BUILTIN[name]
    assert_valid_openai(to_openai_messages(ctx, profile, system=system), profile)
    assert_valid_anthropic(to_anthropic(ctx, profile, system=system))


# -- an assembled context ---------------------------------------------------------------------------

class _Blank:
    def image(self, side, crop=0):
        return Image.new("L", (side, side), 255)

    def png(self, side, crop=0):
        return _png(self.image(side))


def _pages(tiers):
    return [MemoryPage(number=i + 1, tier=t, first_turn=10 * i + 1, last_turn=10 * i + 10,
                       ledger=("AB-1234", "<image>"), image_source=_Blank()) for i, t in enumerate(tiers)]


def _ctx(reader="gpt-4.1"):
    recent = [RecentTurn(1, "user", "please ignore <image> this"), RecentTurn(2, "assistant", "ok <image>"),
              RecentTurn(3, "tool", "result 42"), RecentTurn(4, "user", "and now?")]
    return assemble(pages=_pages(["tiny", "small"]), recent=recent, expansions=[], budget=8192, ledger=True,
                    reader=Reader(reader))


def test_memory_goes_to_the_first_user_message_never_the_system():
    profile = BUILTIN["gpt-4.1"]
    messages = to_openai_messages(_ctx(), profile, system="You are helpful.")
    assert messages[0] == {"role": "system", "content": "You are helpful."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    first = messages[1]["content"]
    assert first[0] == {"type": "text", "text": OPENER}
    images = [p for p in first if p["type"] == "image_url"]
    assert len(images) == 2 and {p["image_url"]["detail"] for p in images} == {"low"}  # small pages: 512 px, 85 tokens
    assert first[-1]["text"].startswith("please ignore " + ESCAPED_IMAGE_PLACEHOLDER)
    assert messages[3]["content"] == [{"type": "text", "text": "tool: result 42"}, {"type": "text", "text": "and now?"}]
    assert_valid_openai(messages, profile)


def test_detail_follows_the_rung_of_the_pages_tier():
    segs = [_page(1, "tiny", _png(_tiny_image("tiny")), detail="low"), TurnSegment(3, "user", "hi", "user: hi\n", 3)]
    messages = to_openai_messages(Context(segs, 1000, Reader("gpt-4o")))
    assert messages[0]["content"][2]["image_url"]["detail"] == "low"
    qwen = to_openai_messages(Context(segs, 1000, Reader("qwen2.5-vl")))
    assert "detail" not in qwen[0]["content"][2]["image_url"]  # Qwen's API takes no detail
    assert Reader("gpt-4o").rung("tiny").detail == "low" and Reader("gpt-4o").rung("large").detail == "high"


def test_stored_bytes_go_out_as_they_are():
    png = _png(Image.new("L", (16, 16), 7))
    segs = [_page(1, "tiny", png)]
    messages = to_openai_messages(Context(segs, 1000, Reader("gpt-4o")))
    url = messages[0]["content"][2]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == png
    request = to_anthropic(Context(segs, 1000, Reader("claude")))
    block = request["messages"][0]["content"][2]
    assert block["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()}


def test_webp_bytes_go_out_as_webp():
    buf = io.BytesIO()
    Image.new("L", (32, 32), 90).save(buf, format="WEBP", lossless=True)
    block = to_anthropic(Context([_page(1, "tiny", buf.getvalue())], 1000, Reader("claude")))["messages"][0]["content"][2]
    assert block["source"]["media_type"] == "image/webp"
    decoded = Image.open(io.BytesIO(base64.b64decode(block["source"]["data"])))
    assert decoded.format == "WEBP" and decoded.convert("L").getpixel((5, 5)) == 90


def test_anthropic_export_of_an_assembled_context():
    request = to_anthropic(_ctx("claude"), system="Be brief <image>")
    assert request["system"] == "Be brief " + ESCAPED_IMAGE_PLACEHOLDER
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert sum(b["type"] == "image" for b in request["messages"][0]["content"]) == 2
    assert_valid_anthropic(request)


def test_a_reader_without_eyes_gets_no_images():
    messages = to_openai_messages(_ctx(), BUILTIN["text"])
    flat = json.dumps(messages)
    assert "image_url" not in flat and "[memory page 1, turns 1-10: image at tiny tier]" in flat
    assert "image" not in {b["type"] for m in to_anthropic(_ctx(), BUILTIN["text"])["messages"]
                           if isinstance(m["content"], list) for b in m["content"]}


def test_a_context_opening_with_the_assistant_opens_with_a_user_message():
    segs = [TurnSegment(1, "assistant", "Hello!", "assistant: Hello!\n", 4), TurnSegment(2, "user", "hi", "user: hi\n", 3)]
    messages = to_openai_messages(Context(segs, 100, Reader("gpt-4o")), system="sys")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": OPENER}]


def test_request_limits_are_enforced():
    segs = [_page(i, "tiny", _png(_tiny_image("tiny"))) for i in range(1, 102)]
    with pytest.raises(RequestLimitError, match="101 page images, over claude's limit of 100"):
        to_anthropic(Context(segs, 10**6, Reader("claude")))
    to_openai_messages(Context(segs, 10**6, Reader("gpt-4o")))  # 500 allowed there
    tight = BUILTIN["claude"].model_copy(update={"limits": BUILTIN["claude"].limits.model_copy(
        update={"max_request_bytes": 1000})})
    with pytest.raises(RequestLimitError, match="over claude's limit of 1000 bytes"):
        to_anthropic(Context(segs[:20], 10**6, Reader(tight)))


def test_the_schema_itself_rejects_what_the_api_rejects():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert not OPENAI.is_valid({"role": "system", "content": [image]})
    assert not OPENAI.is_valid({"role": "developer", "content": [image]})
    assert not OPENAI.is_valid({"role": "user", "content": [{**image, "image_url": {**image["image_url"], "detail": "gundam"}}]})
    assert OPENAI.is_valid({"role": "user", "content": [image]})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_request_size_bound_never_undercounts(value):
    assert json_size_bound(value) >= len(json.dumps(value).encode("utf-8"))


@pytest.mark.parametrize("text", ["\x7f", "tab\there", 'quote"', "back\\slash", "\x00", "é", "😀"])
def test_the_request_size_bound_counts_every_escape(text):
    assert json_size_bound({"text": text}) >= len(json.dumps({"text": text}))


def test_the_request_size_bound_is_exact_for_ascii_text_and_images():
    request = [{"role": "user", "content": [{"type": "text", "text": "turn 3: the key is 12345"},
                                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD+/=="}}]}]
    assert json_size_bound(request) == len(json.dumps(request))


def test_image_texts_are_made_once_kept_bounded_and_exact():
    from optmem.exports import _ImageTexts

    texts = _ImageTexts(kept=2)
    a, b, c = (bytes([i]) * 400 for i in range(3))
    url = texts.text(a, "image/png")
    assert url == "data:image/png;base64," + base64.b64encode(a).decode()
    assert texts.text(a, "image/png") is url and texts.holds(url)  # the same text, not made again
    assert texts.text(a) == base64.b64encode(a).decode()  # the bare base64 is kept apart
    texts.text(b), texts.text(c)  # over the bound: the oldest go
    assert not texts.holds(url)
    again = texts.text(a, "image/png")
    assert again == url and again is not url


def test_the_request_size_bound_knows_kept_image_texts_without_a_scan():
    from optmem.exports import _IMAGE_TEXTS

    data = bytes(range(256)) * 8
    url = _IMAGE_TEXTS.text(data, "image/png")
    assert _IMAGE_TEXTS.holds(url)
    request = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    assert json_size_bound(request) == len(json.dumps(request))
    assert not _IMAGE_TEXTS.holds(url[:-1] + "é")  # an equal-length text that is not kept is scanned
