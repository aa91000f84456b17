"""`optmem chat`: a REPL on a memory database, optionally talking to an OpenAI-compatible server.

At a terminal it reads lines with prompt_toolkit (line editing, history, completion of
/commands), so arrow keys edit and recall instead of landing in the memory as escape sequences;
from a pipe it reads plain lines. With --llm, the request is the memory's context and the new
turn, the two together within the budget; the exchange is stored only once the LLM has answered it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, InMemoryHistory

from optmem.assembler import BudgetError
from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.llm import LLMClient, LLMError
from optmem.memory import OpticalMemory
from optmem.progress import ShownEmbedder, plural
from optmem.reader import escape_image_placeholder
from optmem.store import open_store
from optmem.turns import check_turn_text

PROMPT = "user: "
REPLY_LABEL = "assistant: "

# name -> (argument, what it does); the order is the order /help lists them in.
COMMANDS = {
    "/context": ("[query]", "show the context that would be sent now"),
    "/recall": ("QUERY", "the pages most related to QUERY, read back to text"),
    "/pages": ("", "the pages and their tiers"),
    "/save-failed": ("", "store the last turn the LLM did not answer (otherwise it is dropped)"),
    "/help": ("", "this text"),
    "/quit": ("", "leave (also Ctrl-D or Ctrl-C)"),
}
HELP = "commands:\n" + "\n".join(f"  {f'{name} {arg}'.rstrip():<18} {what}" for name, (arg, what) in COMMANDS.items()) + \
    "\nanything else is a user turn (answered by --llm when given)"


def history_file(db: str | Path) -> Path:
    """Where the prompt keeps its line history: beside a database file, else in the user's data
    directory (an in-memory or server database has no directory of its own)."""
    text = str(db)
    if text != ":memory:" and "://" not in text:
        return Path(text + ".chat-history")
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "optmem" / "chat-history"


def other_conversations(db: str | Path, conversation: str) -> list[tuple[str, int]]:
    """(name, turn count) of every conversation in ``db`` but ``conversation``; none for a new
    file or an in-memory database."""
    if str(db) == ":memory:" or ("://" not in str(db) and not Path(db).exists()):
        return []
    store = open_store(db, create=False, readonly=True)
    try:
        return [(name, store.last_turn(store.conversation_id(name, create=False)))
                for name in store.conversation_names() if name != conversation]
    finally:
        store.close()


def request_messages(mem: OpticalMemory, line: str) -> list[dict]:
    """The Chat Completions request for a new user turn ``line``: the memory's context for it,
    assembled within the budget less what the turn costs as the request's last message, then the
    turn. The whole request fits the budget; nothing is stored."""
    budget = mem.config.budget
    cost = mem.reader.own_message_cost("user", line)
    recent = mem.config.recent_turns
    if cost >= budget:
        raise BudgetError(f"this turn alone needs {cost} of the budget's {budget} positions; "
                          "send a shorter one or raise the budget")
    try:
        context = mem.context(query=line, budget=budget - cost)
    except BudgetError:
        raise BudgetError(f"this turn ({cost} positions) and the newest {recent} turns do not fit the budget of "
                          f"{budget} positions; send a shorter turn, raise the budget or lower recent_turns") from None
    return context.to_messages() + [{"role": "user", "content": escape_image_placeholder(line)}]


class Repl:
    """What each line does. ``handle`` returns False when the user asked to leave."""

    def __init__(self, mem: OpticalMemory, say: Callable[[str], None], llm: LLMClient | None = None):
        self.mem, self.say, self.llm = mem, say, llm
        self.unanswered: tuple[str, float] | None = None  # the last user turn the LLM failed on

    def handle(self, line: str) -> bool:
        if not line.strip():
            return True
        command, _, arg = line.partition(" ")
        arg = arg.strip()
        if command in ("/quit", "/exit"):
            return False
        try:
            if command.startswith("/"):
                self._command(command, arg)
            else:
                self._turn(line)
        except (InvalidArgument, BudgetError, RuntimeError) as e:
            self.say(f"error: {e}")
        return True

    def _command(self, command: str, arg: str) -> None:
        mem, say = self.mem, self.say
        if command == "/help":
            say(HELP)
        elif command == "/pages":
            pages = mem.pages()
            if not pages:
                say("  no pages yet")
            for p in pages:
                say(f"  page {p.number}{'' if p.sealed else ' (open)'}: turns {p.first_turn}-{p.last_turn}, "
                    f"{p.tier or 'out of context'}, age {p.age:g}, {plural(p.positions, 'position')}")
        elif command == "/recall":
            if not arg:
                say("usage: /recall QUERY")
                return
            hits = mem.recall(arg, k=3)
            if not hits:
                say("  no sealed pages to search yet")
            for r in hits:
                say(f"  page {r.page} ({r.tier or 'out of context'}, score {r.score:.2f}, {r.source}): {r.text[:300]}")
        elif command == "/context":
            ctx = mem.context(query=arg or None)
            say(f"  {ctx.positions} of {ctx.budget} positions:")
            for s in ctx.segments:
                label = (f"{s.tier} page {s.page}" if s.kind == "page"
                         else f"excerpt of page {s.page}" if s.kind == "expanded" and s.excerpt else s.kind)
                say(f"    {label:<18} {s.positions:>5}")
        elif command == "/save-failed":
            if self.unanswered is None:
                say("nothing to save: no unanswered turn")
                return
            text, at = self.unanswered
            self.unanswered = None
            say(f"stored turn {mem.add('user', text, timestamp=at)} without a reply")
        else:
            say(f"unknown command {command}; /help lists them")

    def _turn(self, line: str) -> None:
        at = time.time()
        if self.llm is None:
            self.mem.add("user", line, timestamp=at)
            return
        check_turn_text(line, self.mem.config.max_turn_chars)  # before the LLM is asked, not after
        # The turn goes to the LLM after the memory's context and is stored only with its answer,
        # so a failed exchange leaves nothing behind unless /save-failed keeps it.
        try:
            messages = request_messages(self.mem, line)
        except BudgetError as e:
            self.unanswered = (line, at)
            self.say(f"[not sent: {e}]\n  the turn was not stored; /save-failed stores it without a reply")
            return
        try:
            reply = self.llm.chat(messages)
        except LLMError as e:
            self.unanswered = (line, at)
            self.say(f"[llm error: {e}]\n  the turn was not stored; /save-failed stores it without a reply")
            return
        except KeyboardInterrupt:
            self.unanswered = (line, at)
            self.say(f"[interrupted: no reply from {self.llm.endpoint}]\n"
                     "  the turn was not stored; /save-failed stores it without a reply")
            return
        self.unanswered = None
        self.mem.add("user", line, timestamp=at)
        self.mem.add("assistant", reply)
        self.say(REPLY_LABEL + reply)


def prompt_lines(session) -> Iterator[str]:
    """Lines typed at ``session`` (anything with prompt_toolkit's ``prompt(message)``) until
    Ctrl-D or Ctrl-C."""
    while True:
        try:
            yield session.prompt(PROMPT)
        except (EOFError, KeyboardInterrupt):
            return


def plain_lines(stream) -> Iterator[str]:
    for raw in stream:
        yield raw.rstrip("\n")


class CommandCompleter(Completer):
    """Completes the /command a line starts with; a turn's own text is never completed."""

    def get_completions(self, document, complete_event):
        typed = document.text_before_cursor
        if typed.startswith("/") and " " not in typed:
            for name, (_, what) in COMMANDS.items():
                if name.startswith(typed):
                    yield Completion(name, start_position=-len(typed), display_meta=what)


def prompt_session(*, input=None, output=None, history_path: Path | None = None) -> PromptSession:
    """A prompt_toolkit session with a file history (when given) and /command completion."""
    if history_path is not None:
        history_path.parent.mkdir(parents=True, exist_ok=True)
    history = FileHistory(str(history_path)) if history_path is not None else InMemoryHistory()
    return PromptSession(input=input, output=output, history=history, completer=CommandCompleter())


def run_chat(db: str | Path, conversation: str, config: MemoryConfig, llm_url: str | None = None, model: str = "default",
             stdin=None, stdout=None, *, session=None, history_path: Path | None = None) -> int:
    """The REPL. Lines come from ``session`` (a prompt_toolkit PromptSession, e.g. one from
    :func:`prompt_session` on a pipe input), else from a new session when stdin is a terminal,
    else plainly from ``stdin``; messages go to ``stdout``."""
    stdout = stdout or sys.stdout
    llm = LLMClient(llm_url, model=model) if llm_url else None

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    others = other_conversations(db, conversation)
    # ShownEmbedder: the first /recall embeds every sealed page, so it shows a bar while it does
    with OpticalMemory.open(db, conversation=conversation, config=config, embedder=ShownEmbedder()) as mem:
        turns = len(mem.history())
        say(f"optmem chat on {db} [{conversation}], {plural(turns, 'turn')} so far. /help for commands, Ctrl-D to leave.")
        if turns == 0 and others:
            say(f"conversation {conversation!r} is empty; this database also holds: "
                + ", ".join(f"{name} ({plural(n, 'turn')})" for name, n in others)
                + ". Pass --conversation NAME to continue one.")
        if llm is None:
            say("no --llm given: each line is stored as a user turn and nothing answers it.")
        else:
            say(f"replies from {llm.endpoint} (model {llm.model!r}).")
        if session is None and stdin is None and sys.stdin.isatty():
            session = prompt_session(history_path=history_path)
        lines: Iterable[str] = prompt_lines(session) if session is not None else plain_lines(stdin or sys.stdin)
        repl = Repl(mem, say, llm)
        try:
            for line in lines:
                if not repl.handle(line):
                    break
        except KeyboardInterrupt:  # Ctrl-C inside a command: leave as at the prompt, without a traceback
            say("")
    return 0
