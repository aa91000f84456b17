"""`optmem chat` on prompt_toolkit: keys through a pipe input, and for real in a tmux terminal."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from optmem import OpticalMemory
from optmem.chat import (
    COMMANDS,
    CommandCompleter,
    history_file,
    prompt_session,
    run_chat,
)
from optmem.config import MemoryConfig
from optmem.demo import build_conversation
from optmem.progress import plural
from tests.fakes import JSONHandler, loopback_server

CFG = MemoryConfig.model_validate({"recent_turns": 2, "retrieval": {"enabled": False}})
UP, ENTER, CTRL_D, CTRL_C = "\x1b[A", "\r", "\x04", "\x03"


class _Typist:
    """Types one line's keys each time the REPL prompts, as a person would: keys sent ahead
    would be read before prompt_toolkit has loaded its history, so Up would find nothing."""

    def __init__(self, session, inp, lines: list[str]):
        self.session, self.inp, self.lines = session, inp, list(lines)

    def prompt(self, message):
        self.inp.send_text(self.lines.pop(0))
        return self.session.prompt(message)


def _chat(db, lines: list[str], conversation="me", history_path=None, config=CFG, **kwargs) -> str:
    out = io.StringIO()
    with create_pipe_input() as inp:
        session = _Typist(prompt_session(input=inp, output=DummyOutput(), history_path=history_path), inp, lines)
        assert run_chat(db, conversation, config, session=session, stdout=out, **kwargs) == 0
    return out.getvalue()


def _texts(db, conversation="me"):
    with OpticalMemory.open(db, conversation, CFG) as mem:
        return [(t.role, t.text) for t in mem.history()]


def test_up_then_enter_recalls_the_line_instead_of_storing_an_escape(tmp_path):
    db = tmp_path / "c.db"
    _chat(db, ["my locker code is 4821-XK" + ENTER, UP + ENTER, CTRL_D])
    assert _texts(db) == [("user", "my locker code is 4821-XK")] * 2


def test_history_persists_in_a_file_beside_the_database(tmp_path):
    db = tmp_path / "c.db"
    _chat(db, ["first line" + ENTER, "/pages" + ENTER, CTRL_D], history_path=history_file(db))
    assert history_file(db) == tmp_path / "c.db.chat-history"
    # newest first, as a new session's Up finds them
    assert list(FileHistory(str(history_file(db))).load_history_strings()) == ["/pages", "first line"]


def test_commands_complete_and_turn_text_does_not():
    def completions(text):
        return [c.text for c in CommandCompleter().get_completions(Document(text), CompleteEvent())]

    assert completions("/pa") == ["/pages"] and completions("/") == list(COMMANDS)
    assert completions("/s") == ["/save-failed"] and completions("hello /pa") == [] and completions("/recall x") == []


def test_commands_answer(tmp_path):
    out = _chat(tmp_path / "c.db", ["/pages" + ENTER, "hello" + ENTER, "again" + ENTER, "and again" + ENTER,
                                    "/pages" + ENTER, "/help" + ENTER, "/context" + ENTER, "/bogus" + ENTER, "/quit" + ENTER])
    assert "no pages yet" in out and "page 1 (open): turns 1-1" in out and "/save-failed" in out and "unknown command /bogus" in out
    assert "positions:" in out
    assert _texts(tmp_path / "c.db") == [("user", "hello"), ("user", "again"), ("user", "and again")]


def test_ctrl_c_and_ctrl_d_leave_cleanly(tmp_path):
    assert "0 turns so far" in _chat(tmp_path / "c.db", [CTRL_C])
    _chat(tmp_path / "c.db", ["one" + ENTER, CTRL_D])
    assert "1 turn so far" in _chat(tmp_path / "c.db", ["two" + ENTER, CTRL_C])
    assert _texts(tmp_path / "c.db") == [("user", "one"), ("user", "two")]


def test_an_empty_conversation_lists_the_others(tmp_path):
    db = tmp_path / "c.db"
    with OpticalMemory.open(db, "alice", CFG) as mem:
        mem.add("user", "hi")
    out = _chat(db, [CTRL_D], conversation="default")
    assert "conversation 'default' is empty; this database also holds: alice (1 turn)" in out
    assert "--conversation NAME" in out
    assert "also holds" not in _chat(db, [CTRL_D], conversation="alice")


def test_plural():
    assert [plural(n, "turn") for n in (0, 1, 2)] == ["0 turns", "1 turn", "2 turns"]


class _Handler(JSONHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        if body["messages"][-1]["content"] == "fail please":
            self.send_error(500, "boom")
            return
        self.send_json({"choices": [{"message": {"content": "echo: " + body["messages"][-1]["content"]}}]})


@pytest.fixture
def server():
    with loopback_server(_Handler) as srv:
        yield srv


def test_an_exchange_is_stored_only_once_answered(server, tmp_path):
    db = tmp_path / "c.db"
    url = f"http://127.0.0.1:{server.server_port}/v1"
    out = _chat(db, ["hello" + ENTER, "fail please" + ENTER, CTRL_D], llm_url=url)
    assert "assistant: echo: hello" in out
    assert f"[llm error: chat completion at {url}/chat/completions failed: HTTP 500" in out
    assert "not stored; /save-failed" in out
    assert _texts(db) == [("user", "hello"), ("assistant", "echo: hello")]
    # the context went first, the new turn last, as the request's final user message
    assert server.seen[1]["messages"][-1] == {"role": "user", "content": "fail please"}
    assert any("echo: hello" in json.dumps(m) for m in server.seen[1]["messages"][:-1])

    out = _chat(db, ["fail please" + ENTER, "/save-failed" + ENTER, "/save-failed" + ENTER, CTRL_D], llm_url=url)
    assert "stored turn 3 without a reply" in out and "nothing to save" in out
    assert _texts(db)[-1] == ("user", "fail please")


def _request_tokens(reader, messages) -> int:
    """A Chat Completions request's input tokens as the reader's profile counts them, from the
    request itself: per request, per message, per text part."""
    profile = reader.profile
    parts = [[m["content"]] if isinstance(m["content"], str) else [b["text"] for b in m["content"]] for m in messages]
    return profile.request_overhead + sum(profile.message_overhead + sum(reader.cost(t) for t in p) for p in parts)


def test_the_request_with_the_new_turn_fits_the_budget(server, tmp_path):
    db, url = tmp_path / "b.db", f"http://127.0.0.1:{server.server_port}/v1"
    config = MemoryConfig.model_validate({"recent_turns": 2, "retrieval": {"enabled": False}, "model": "text",
                                          "budget": 900})
    line = "Please remind me what we said about the replica and the night shift schedule, in detail. " * 5
    with OpticalMemory.open(db, "me", config) as mem:
        for i, (role, text) in enumerate(build_conversation(40, seed=11)[0]):
            mem.add(role, text, timestamp=float(i))
        # Memory fills the budget: the context alone plus the new turn would be over it.
        assert mem.context(query=line).positions + mem.reader.own_message_cost("user", line) > config.budget
        reader, stored = mem.reader, len(mem.history())
    out = _chat(db, [line + ENTER, CTRL_D], llm_url=url, config=config)
    assert "assistant: echo: " in out
    sent = server.seen[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": line}
    assert len(sent) > 1 and _request_tokens(reader, sent) <= config.budget
    with OpticalMemory.open(db, "me", config) as mem:
        assert [t.text for t in mem.history()[stored:]] == [line, "echo: " + line]


def test_a_turn_that_cannot_fit_is_not_sent_nor_stored(server, tmp_path):
    db, url = tmp_path / "n.db", f"http://127.0.0.1:{server.server_port}/v1"
    config = MemoryConfig.model_validate({"recent_turns": 2, "retrieval": {"enabled": False}, "model": "text",
                                          "budget": 200})
    out = _chat(db, ["word " * 400 + ENTER, "/save-failed" + ENTER, CTRL_D], llm_url=url, config=config)
    assert "[not sent: this turn alone needs" in out and "of the budget's 200 positions" in out
    assert server.seen == [] and "stored turn 1 without a reply" in out


def test_an_unreachable_llm_is_named(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_port
    srv.server_close()  # nothing listens there now
    out = _chat(tmp_path / "c.db", ["hello" + ENTER, CTRL_D], llm_url=f"http://127.0.0.1:{port}/v1")
    assert f"http://127.0.0.1:{port}/v1/chat/completions failed" in out
    assert _texts(tmp_path / "c.db") == []


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_chat_in_a_real_terminal(tmp_path):
    """`optmem chat` in tmux: Up recalls, Enter stores it, Ctrl-D leaves without a traceback."""
    db, config = tmp_path / "t.db", tmp_path / "c.toml"
    config.write_text("[retrieval]\nenabled = false\n")
    socket = f"optmem-test-{os.getpid()}"
    repo = Path(__file__).resolve().parents[1]
    rc = tmp_path / "rc"  # the exit status, written by the pane's shell: tmux 3.3a may never reap the program
    command = f"cd {repo} && {sys.executable} -m optmem.cli chat {db} --conversation me --config {config}; echo $? > {rc}"
    tmux = ["tmux", "-L", socket]

    def pane() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "chat"], capture_output=True, text=True).stdout

    def exit_status() -> str:
        """The program's exit status once it has left, else ""."""
        return rc.read_text().strip() if rc.exists() else ""

    def wait_for(predicate, what: str) -> str:
        deadline = time.monotonic() + 180  # a generous bound for a busy machine, not a speed check
        while time.monotonic() < deadline:
            text = pane()
            if predicate(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"no {what} in the terminal:\n{pane()}")

    subprocess.run([*tmux, "new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", command], check=True)
    try:
        subprocess.run([*tmux, "set-option", "-t", "chat", "remain-on-exit", "on"], check=True)
        wait_for(lambda t: t.rstrip().endswith("user:"), "prompt")
        subprocess.run([*tmux, "send-keys", "-t", "chat", "hello from tmux", "Enter"], check=True)
        wait_for(lambda t: t.count("user:") >= 2, "second prompt")
        subprocess.run([*tmux, "send-keys", "-t", "chat", "Up", "Enter"], check=True)
        wait_for(lambda t: t.count("user:") >= 3, "third prompt")
        subprocess.run([*tmux, "send-keys", "-t", "chat", "/pa"], check=True)
        wait_for(lambda t: "/pages  the pages and their tiers" in t, "completion menu")  # offered while typing
        subprocess.run([*tmux, "send-keys", "-t", "chat", "Tab"], check=True)
        wait_for(lambda t: "user: /pages" in t, "completed /pages")
        subprocess.run([*tmux, "send-keys", "-t", "chat", "Enter"], check=True)
        wait_for(lambda t: "no pages yet" in t and t.rstrip().endswith("user:"), "answer to /pages")
        # Ctrl-D leaves. A key sent while prompt_toolkit redraws can be dropped by the terminal, so
        # press it again (as a person would) until the program has gone, within the same bound.
        # Whether it has gone is told by the status file, not by tmux: tmux 3.3a neither always
        # captures its "Pane is dead" banner nor always reaps the exited program.
        deadline = time.monotonic() + 180
        while not exit_status() and time.monotonic() < deadline:
            subprocess.run([*tmux, "send-keys", "-t", "chat", "C-d"], capture_output=True)
            time.sleep(2)
        final, status = pane(), exit_status()
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert status == "0", (status, final)
    assert "Traceback" not in final and "user: hello from tmux" in final
    assert _texts(db) == [("user", "hello from tmux")] * 2
