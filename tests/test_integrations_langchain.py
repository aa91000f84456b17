"""The LangChain adapter with langchain_core's own classes: messages, a fake chat model, and
RunnableWithMessageHistory. Skips when the `langchain` extra is not installed."""

import base64

import pytest

pytest.importorskip("langchain_core", reason="the optmem[langchain] extra is not installed")

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from optmem.demo import build_conversation
from optmem.errors import InvalidArgument
from optmem.integrations.langchain import OpticalChatMessageHistory


@pytest.fixture(scope="module")
def turns():
    return build_conversation(40, seed=7)[0]


def as_langchain(turns):
    return [HumanMessage(text) if role == "user" else AIMessage(text) for role, text in turns]


@pytest.fixture(scope="module")
def gpt4o(tmp_path_factory, turns):
    history = OpticalChatMessageHistory(tmp_path_factory.mktemp("lc") / "m.db", "alice",
                                        {"model": "gpt-4o", "reexpand": {"text_when_it_fits": False}},
                                        system="You remember.")
    history.add_messages(as_langchain(turns))
    yield history
    history.close()


def test_messages_are_the_context_with_pages_as_image_blocks(gpt4o, turns):
    assert isinstance(gpt4o, BaseChatMessageHistory)
    messages = gpt4o.messages
    ctx = gpt4o.memory.context(system="You remember.")
    assert isinstance(messages[0], SystemMessage) and messages[0].content == "You remember."
    images = [b for m in messages if isinstance(m.content, list) for b in m.content if b["type"] == "image"]
    assert len(images) == len(ctx.page_tiers()) >= 2
    # gpt-4o's profile sends the pages a write stored as lossless WebP, the open page fast-encoded
    # as grey PNG; every block names what it holds
    kinds = [(b["mime_type"], base64.b64decode(b["base64"])[:12]) for b in images]
    assert all((t == "image/webp" and d[8:12] == b"WEBP") or (t == "image/png" and d[:4] == b"\x89PNG") for t, d in kinds)
    assert any(t == "image/webp" for t, _ in kinds)
    # The newest turns come last, verbatim, in their roles.
    assert isinstance(messages[-1], AIMessage) and turns[-1][1] in messages[-1].content
    assert isinstance(messages[-2], HumanMessage) and turns[-2][1] in messages[-2].text


def test_text_profile_gets_memory_as_text_and_no_images(tmp_path, turns):
    history = OpticalChatMessageHistory(tmp_path / "t.db", "bob", {"model": "text"})
    history.add_messages(as_langchain(turns))
    messages = history.messages
    # A reader without eyes is sent no page images: older turns as text, then the recent turns.
    assert all(isinstance(m.content, str) for m in messages)
    recent = history.memory.config.recent_turns
    flat = "\n".join(m.content for m in messages)
    assert all(text in flat for _, text in turns[-recent:]) and turns[-1][1] in messages[-1].content
    assert any(text in messages[0].content for _, text in turns[:-recent])  # memory, as text, comes first
    history.close()
    reopened = OpticalChatMessageHistory(tmp_path / "t.db", "bob", {"model": "text"})
    assert [m.content for m in reopened.messages] == [m.content for m in messages]
    reopened.close()


def test_a_bad_message_stores_nothing(tmp_path):
    history = OpticalChatMessageHistory(tmp_path / "b.db", "c", {"model": "text"})
    with pytest.raises(InvalidArgument, match="ChatMessage"):
        history.add_messages([HumanMessage("kept?"), ChatMessage(content="x", role="narrator")])
    assert history.memory.history() == []
    history.close()


def test_clear_forgets_one_history_under_runnable_with_message_history(tmp_path, turns):
    seen = []
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
    model = GenericFakeChatModel(messages=iter([AIMessage("Noted."), AIMessage("I know nothing of a code.")]))
    images = {"model": "gpt-4o", "reexpand": {"text_when_it_fits": False}}  # pages stay images though they fit as text
    histories = {name: OpticalChatMessageHistory(tmp_path / "c.db", name, images) for name in ("fay", "gus")}
    chain = RunnableWithMessageHistory(prompt | RunnableLambda(lambda p: seen.append(p.to_messages()) or p) | model,
                                       lambda session_id: histories[session_id], input_messages_key="question",
                                       history_messages_key="history")
    config = {"configurable": {"session_id": "fay"}}
    histories["fay"].add_messages(as_langchain(turns))  # enough for sealed pages, sent as images
    histories["gus"].add_messages(as_langchain(turns))
    chain.invoke({"question": "The code is 7781."}, config=config)
    gus_before = [(t.role, t.text) for t in histories["gus"].memory.history()]
    assert any(isinstance(m.content, list) for m in histories["fay"].messages)

    histories["fay"].clear()
    assert histories["fay"].messages == [] and histories["fay"].memory.pages() == []
    assert [(t.role, t.text) for t in histories["gus"].memory.history()] == gus_before
    chain.invoke({"question": "What was the code?"}, config=config)
    assert [m.content for m in seen[-1]] == ["What was the code?"]  # nothing of before the clear
    assert [(t.id, t.role, t.text) for t in histories["fay"].memory.history()] == [
        (1, "user", "What was the code?"), (2, "assistant", "I know nothing of a code.")]
    for h in histories.values():
        h.close()
    reopened = OpticalChatMessageHistory(tmp_path / "c.db", "fay", images)
    assert [m.content for m in reopened.messages] == ["What was the code?", "I know nothing of a code."]
    reopened.close()


def test_runnable_with_message_history_stores_both_sides_and_feeds_them_back(tmp_path):
    seen = []
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
    model = GenericFakeChatModel(messages=iter([AIMessage("The code is 7781."), AIMessage("You told me 7781.")]))
    histories = {}

    def history_for(session_id):
        if session_id not in histories:
            histories[session_id] = OpticalChatMessageHistory(tmp_path / "r.db", session_id, {"model": "text"})
        return histories[session_id]

    chain = RunnableWithMessageHistory(prompt | RunnableLambda(lambda p: seen.append(p.to_messages()) or p) | model,
                                       history_for, input_messages_key="question", history_messages_key="history")
    config = {"configurable": {"session_id": "dana"}}
    assert chain.invoke({"question": "Remember the code 7781."}, config=config).content == "The code is 7781."
    assert chain.invoke({"question": "What was the code?"}, config=config).content == "You told me 7781."
    stored = [(t.role, t.text) for t in histories["dana"].memory.history()]
    assert stored == [("user", "Remember the code 7781."), ("assistant", "The code is 7781."),
                      ("user", "What was the code?"), ("assistant", "You told me 7781.")]
    # The second call's prompt carried the first exchange from optmem.
    assert [m.type for m in seen[1]] == ["human", "ai", "human"]
    assert "7781" in seen[1][0].content and seen[1][1].content == "The code is 7781."
    # Another session id is another conversation: it sees nothing of dana's.
    assert history_for("erin").messages == []
    for h in histories.values():
        h.close()
