"""The OpenAI Agents SDK session with the SDK's own Runner, Agent, Model interface and item
types, no network (a local Model). Skips without the `agents` extra."""

import asyncio
import base64

import pytest

pytest.importorskip("agents", reason="the optmem[agents] extra is not installed")

from agents import (
    Agent,
    Model,
    ModelResponse,
    RunConfig,
    Runner,
    TResponseInputItem,
    Usage,
)
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from pydantic import TypeAdapter

from optmem.demo import build_conversation
from optmem.errors import InvalidArgument
from optmem.integrations.agents import OpticalSession
from optmem.store import TurnOnSealedPage

INPUT_ITEM = TypeAdapter(TResponseInputItem)


class ScriptedModel(Model):
    """Answers from a script and keeps the input of every call."""

    def __init__(self, replies):
        self.replies = iter(replies)
        self.inputs = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, **kwargs):
        self.inputs.append(input)
        text = ResponseOutputText(type="output_text", text=next(self.replies), annotations=[])
        message = ResponseOutputMessage(id=f"msg_{len(self.inputs)}", type="message", role="assistant",
                                        status="completed", content=[text])
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args, **kwargs):
        raise NotImplementedError("not streamed in these tests")


def test_runner_stores_the_exchange_and_reads_it_back(tmp_path):
    model = ScriptedModel(["Noted: the gate code is 5521.", "It is 5521."])
    agent = Agent(name="helper", instructions="Be brief.", model=model)
    session = OpticalSession(tmp_path / "a.db", "alice", {"model": "text"})
    run_config = RunConfig(tracing_disabled=True)

    async def talk():
        first = await Runner.run(agent, "The gate code is 5521.", session=session, run_config=run_config)
        second = await Runner.run(agent, "What is the gate code?", session=session, run_config=run_config)
        return first.final_output, second.final_output

    assert asyncio.run(talk()) == ("Noted: the gate code is 5521.", "It is 5521.")
    assert [(t.role, t.text) for t in session.memory.history()] == [
        ("user", "The gate code is 5521."), ("assistant", "Noted: the gate code is 5521."),
        ("user", "What is the gate code?"), ("assistant", "It is 5521.")]
    # The second call saw the first exchange, from optmem, ahead of the new question.
    texts = [(i["role"], i["content"] if isinstance(i["content"], str) else i["content"][0]["text"])
             for i in model.inputs[1]]
    assert texts == [("user", "The gate code is 5521."), ("assistant", "Noted: the gate code is 5521."),
                     ("user", "What is the gate code?")]
    session.close()


def test_items_are_valid_input_items_with_page_images(tmp_path):
    turns = build_conversation(40, seed=7)[0]
    images = {"reexpand": {"text_when_it_fits": False}}  # pages stay images though this history fits as text
    session = OpticalSession(tmp_path / "b.db", "bob", {"model": "gpt-4o", **images}, system="Remember.")
    asyncio.run(session.add_items([{"role": role, "content": text} for role, text in turns]))
    items = asyncio.run(session.get_items())
    for item in items:
        INPUT_ITEM.validate_python(item)
    assert items[0] == {"role": "system", "content": "Remember."}
    images = [p for i in items if isinstance(i["content"], list) for p in i["content"] if p["type"] == "input_image"]
    assert len(images) == len(session.memory.context().page_tiers()) >= 2
    # gpt-4o's profile sends the pages a write stored as lossless WebP, the open page fast-encoded
    # as grey PNG; every data URL names what it holds
    kinds = [(p["image_url"].partition(";")[0], base64.b64decode(p["image_url"].partition(",")[2])[:12]) for p in images]
    assert all((t == "data:image/webp" and b[8:12] == b"WEBP") or (t == "data:image/png" and b[:4] == b"\x89PNG")
               for t, b in kinds)
    assert any(t == "data:image/webp" for t, _ in kinds)
    assert {p["detail"] for p in images} <= {"low", "high", "auto"}
    assert asyncio.run(session.get_items(limit=2)) == items[-2:]
    assert items[-1] == {"role": "assistant", "content": turns[-1][1]}
    session.close()


def test_tool_calls_and_outputs_are_stored_model_internals_are_not(tmp_path):
    session = OpticalSession(tmp_path / "c.db", "carol", {"model": "text"})
    asyncio.run(session.add_items([
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "4 degrees, rain"},
        {"type": "reasoning", "id": "r1", "summary": []},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Rain in Oslo."}]},
    ]))
    assert [(t.role, t.text) for t in session.memory.history()] == [
        ("tool", 'call weather({"city": "Oslo"})'), ("tool", "4 degrees, rain"), ("assistant", "Rain in Oslo.")]
    session.close()


def test_bad_items_store_nothing(tmp_path):
    session = OpticalSession(tmp_path / "d.db", "dan", {"model": "text"})
    with pytest.raises(InvalidArgument, match="narrator"):
        asyncio.run(session.add_items([{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]))
    assert session.memory.history() == []
    session.close()


def test_pop_item_undoes_the_newest_items_as_get_items_shows_them(tmp_path):
    session = OpticalSession(tmp_path / "p.db", "pam", {"model": "text"})
    assert asyncio.run(session.pop_item()) is None  # an empty session
    asyncio.run(session.add_items([
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Rain."}]},
    ]))
    tail = asyncio.run(session.get_items(limit=1))
    popped = asyncio.run(session.pop_item())
    assert popped == tail[0] == {"role": "assistant", "content": "Rain."}
    INPUT_ITEM.validate_python(popped)
    assert asyncio.run(session.pop_item()) == {"role": "user", "content": 'tool: call weather({"city": "Oslo"})'}
    assert [(t.id, t.text) for t in session.memory.history()] == [(1, "Weather in Oslo?")]
    asyncio.run(session.add_items([{"role": "assistant", "content": "Let me look."}]))
    assert [(t.id, t.role) for t in session.memory.history()] == [(1, "user"), (2, "assistant")]
    session.close()


def test_pop_item_on_a_sealed_turn_says_so_and_keeps_it(tmp_path):
    session = OpticalSession(tmp_path / "s.db", "sam", {"model": "gpt-4o", "recent_turns": 0})
    turns = build_conversation(12, seed=5)[0]
    asyncio.run(session.add_items([{"role": role, "content": text} for role, text in turns]))
    asyncio.run(session.add_items([{"role": "user", "content": "a long question " * 400}]))
    before = session.memory.history()
    with pytest.raises(TurnOnSealedPage, match=f"turn {len(before)} is on sealed page"):
        asyncio.run(session.pop_item())
    assert session.memory.history() == before
    session.close()


def test_clear_session_under_the_runner_forgets_this_session_only(tmp_path):
    model = ScriptedModel(["Noted.", "I have no code on record."])
    agent = Agent(name="helper", instructions="Be brief.", model=model)
    sessions = {name: OpticalSession(tmp_path / "r.db", name, {"model": "gpt-4o"}) for name in ("ann", "ben")}
    turns = build_conversation(40, seed=7)[0]
    for session in sessions.values():
        asyncio.run(session.add_items([{"role": role, "content": text} for role, text in turns]))
    run_config = RunConfig(tracing_disabled=True)
    asyncio.run(Runner.run(agent, "The code is 5521.", session=sessions["ann"], run_config=run_config))
    ben_before = sessions["ben"].memory.history()

    asyncio.run(sessions["ann"].clear_session())
    assert asyncio.run(sessions["ann"].get_items()) == [] and sessions["ann"].memory.pages() == []
    assert sessions["ben"].memory.history() == ben_before
    asyncio.run(Runner.run(agent, "What is the code?", session=sessions["ann"], run_config=run_config))
    assert [(i["role"], i["content"] if isinstance(i["content"], str) else i["content"][0]["text"])
            for i in model.inputs[-1]] == [("user", "What is the code?")]
    assert [(t.id, t.text) for t in sessions["ann"].memory.history()] == [
        (1, "What is the code?"), (2, "I have no code on record.")]
    for session in sessions.values():
        session.close()
