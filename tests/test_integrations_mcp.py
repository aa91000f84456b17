"""The MCP server over stdio, driven by the mcp package's own client: a real subprocess, bounded
by a timeout. Skips without the `mcp` extra."""

import base64
import json
import sys

import pytest

pytest.importorskip("mcp", reason="the optmem[mcp] extra is not installed")

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from optmem.demo import build_conversation

TIMEOUT_S = 300  # the server loads MiniLM for recall; generous for a busy CI machine


async def with_server(body, db, *args):
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "optmem.integrations.mcp_server", "--db", str(db), *args])
    with anyio.fail_after(TIMEOUT_S):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await body(session)


def structured(result):
    assert not result.is_error, result.content
    value = result.structured_content
    return value["result"] if isinstance(value, dict) and "result" in value else value


@pytest.mark.slow
def test_tools_over_stdio(tmp_path):
    turns, facts = build_conversation(40, seed=7)
    config = tmp_path / "c.toml"
    config.write_text('model = "gpt-4o"\n[reexpand]\ntext_when_it_fits = false\n')  # pages stay images

    async def body(session):
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {"add_turn", "get_context", "recall", "list_pages"} <= tools
        for role, text in turns:
            added = await session.call_tool("add_turn", {"role": role, "text": text})
            assert not added.is_error
        bad = await session.call_tool("add_turn", {"role": "narrator", "text": "x"})
        assert bad.is_error and "role must be one of" in bad.content[0].text
        context = await session.call_tool("get_context", {"budget": 6000})
        pages = structured(await session.call_tool("list_pages", {}))
        recalled = structured(await session.call_tool("recall", {"query": facts[0][1].question, "k": 2}))
        return context, pages, recalled

    context, pages, recalled = anyio.run(with_server, body, tmp_path / "m.db", "--conversation", "alice",
                                         "--config", str(config))
    assert not context.is_error
    images = [c for c in context.content if c.type == "image"]
    # gpt-4o's profile sends the pages a write stored as lossless WebP, the open page fast-encoded
    # as grey PNG; every image names what it holds
    kinds = [(c.mime_type, base64.b64decode(c.data)[:12]) for c in images]
    assert images and all((t == "image/webp" and d[8:12] == b"WEBP") or (t == "image/png" and d[:4] == b"\x89PNG")
                          for t, d in kinds)
    assert any(t == "image/webp" for t, _ in kinds)
    assert turns[-1][1] in context.content[-1].text
    sealed = [p for p in pages if p["sealed"]]
    assert len(sealed) >= 2 and [p["page"] for p in pages] == list(range(1, len(pages) + 1))
    assert len(recalled) == 2 and {r["page"] for r in recalled} <= {p["page"] for p in sealed}
    json.dumps(recalled)


def test_text_profile_context_is_text_and_conversations_stay_apart(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('model = "text"\n')

    async def add_then_get(session):
        await session.call_tool("add_turn", {"role": "user", "text": "my locker is 4417"})
        return await session.call_tool("get_context", {})

    async def get(session):
        return await session.call_tool("get_context", {})

    alice = anyio.run(with_server, add_then_get, tmp_path / "m.db", "--conversation", "alice", "--config", str(config))
    bob = anyio.run(with_server, get, tmp_path / "m.db", "--conversation", "bob", "--config", str(config))
    assert [c.type for c in alice.content] == ["text"] and "my locker is 4417" in alice.content[0].text
    assert "4417" not in "".join(getattr(c, "text", "") for c in bob.content)


def test_recall_with_retrieval_disabled_says_so(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('model = "text"\n[retrieval]\nenabled = false\n')

    async def body(session):
        return await session.call_tool("recall", {"query": "anything"})

    result = anyio.run(with_server, body, tmp_path / "m.db", "--config", str(config))
    assert result.is_error and "retrieval.enabled = false" in result.content[0].text
