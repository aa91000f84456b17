"""The LlamaIndex memory block inside llama_index.core.memory.Memory, offline (a whitespace
tokenizer instead of tiktoken's downloaded encodings). Skips without the `llamaindex` extra."""

import base64

import pytest

pytest.importorskip("llama_index.core", reason="the optmem[llamaindex] extra is not installed")

from llama_index.core.base.llms.types import ChatMessage, ImageBlock
from llama_index.core.memory import Memory
from llama_index.core.storage.chat_store.base_db import MessageStatus

from optmem.demo import build_conversation
from optmem.integrations.llamaindex import OpticalMemoryBlock

NO_RETRIEVAL = {"retrieval": {"enabled": False}}  # keeps MiniLM out of these tests
IMAGES = {"reexpand": {"text_when_it_fits": False}}  # pages stay images though these histories fit as text


def words(text):
    return text.split()


def memory_with(block, **kw):
    return Memory.from_defaults(session_id="s1", memory_blocks=[block], tokenizer_fn=words, **kw)


def test_flushed_messages_become_optmem_turns_and_come_back_as_page_images(tmp_path):
    turns = build_conversation(40, seed=7)[0]
    block = OpticalMemoryBlock.open(tmp_path / "m.db", "alice", {"model": "gpt-4o", **NO_RETRIEVAL, **IMAGES})
    memory = memory_with(block, token_limit=3000, token_flush_size=500)
    memory.put_messages([ChatMessage(role=role, content=text) for role, text in turns])

    stored = [t.text for t in block.memory.history()]
    short_term = [m.content for m in memory.get_all(status=MessageStatus.ACTIVE)]
    # Every turn is in exactly one place: flushed to optmem (the oldest) or still short-term.
    assert stored and short_term and stored + short_term == [text for _, text in turns]

    messages = memory.get()
    system = messages[0]
    assert system.role.value == "system" and "<optical_memory>" in system.blocks[0].text
    images = [b for b in system.blocks if isinstance(b, ImageBlock)]
    pages = block.memory.context().page_tiers()
    assert len(images) == len(pages) >= 1
    # gpt-4o: the pages a write stored as lossless WebP, the open page as fast grey PNG
    kinds = [(str(b.url).partition(";")[0], base64.b64decode(str(b.url).partition(",")[2])[:12]) for b in images]
    assert all((t == "data:image/webp" and d[8:12] == b"WEBP") or (t == "data:image/png" and d[:4] == b"\x89PNG")
               for t, d in kinds)
    block.close()


def test_text_profile_block_is_plain_text(tmp_path):
    block = OpticalMemoryBlock.open(tmp_path / "t.db", "bob", {"model": "text", **NO_RETRIEVAL})
    memory = memory_with(block, token_limit=40, token_flush_size=10)
    memory.put_messages([ChatMessage(role="user", content="the locker code is 4417 " * 6),
                         ChatMessage(role="assistant", content="noted, 4417 " * 3),
                         ChatMessage(role="user", content="something else entirely now")])
    assert block.memory.history()[0].text.startswith("the locker code is 4417")
    content = memory.get()[0].content
    assert "user: the locker code is 4417" in content and not any(isinstance(b, ImageBlock) for b in memory.get()[0].blocks)
    block.close()


def test_every_llamaindex_role_is_stored_under_an_optmem_role(tmp_path):
    import asyncio

    from llama_index.core.base.llms.types import MessageRole

    block = OpticalMemoryBlock.open(tmp_path / "r.db", "c", {"model": "text", **NO_RETRIEVAL})
    asyncio.run(block.aput([ChatMessage(role=role, content=role.value) for role in MessageRole]))
    assert [t.text for t in block.memory.history()] == [role.value for role in MessageRole]
    assert {t.role for t in block.memory.history()} <= {"user", "assistant", "system", "tool"}
    block.close()
