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
    session = OpticalSession(tmp_path / "b.db", "bob", {"model": "gpt-4o"}, system="Remember.")
    asyncio.run(session.add_items([{"role": role, "content": text} for role, text in turns]))
    items = asyncio.run(session.get_items())
    for item in items:
        INPUT_ITEM.validate_python(item)
    assert items[0] == {"role": "system", "content": "Remember."}
    images = [p for i in items if isinstance(i["content"], list) for p in i["content"] if p["type"] == "input_image"]
    assert len(images) == len(session.memory.context().page_tiers()) >= 2
    # gpt-4o's profile sends lossless WebP data URLs
    assert all(p["image_url"].startswith("data:image/webp;base64,")
               and base64.b64decode(p["image_url"].partition(",")[2])[8:12] == b"WEBP" for p in images)
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


def test_bad_items_store_nothing_and_deletion_says_why(tmp_path):
    session = OpticalSession(tmp_path / "d.db", "dan", {"model": "text"})
    with pytest.raises(InvalidArgument, match="narrator"):
        asyncio.run(session.add_items([{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]))
    assert session.memory.history() == []
    with pytest.raises(NotImplementedError, match="append-only"):
        asyncio.run(session.pop_item())
    with pytest.raises(NotImplementedError, match="append-only"):
        asyncio.run(session.clear_session())
    session.close()
