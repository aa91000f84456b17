"""`optmem chat`: a REPL on a memory database, optionally talking to an OpenAI-compatible server."""

from __future__ import annotations

import sys
from pathlib import Path

from optmem.config import MemoryConfig
from optmem.llm import LLMClient, LLMError
from optmem.memory import OpticalMemory

HELP = """commands:
  /context [query]   show the context that would be sent now
  /recall QUERY      the pages most related to QUERY, read back to text
  /pages             the pages and their tiers
  /help              this text
  /quit              leave (also Ctrl-D)
anything else is a user turn (answered by --llm when given)"""


def run_chat(db: Path, conversation: str, config: MemoryConfig, llm_url: str | None = None, model: str = "default",
             stdin=None, stdout=None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    llm = LLMClient(llm_url, model=model) if llm_url else None
    say = lambda *a: print(*a, file=stdout, flush=True)  # noqa: E731
    with OpticalMemory.open(db, conversation=conversation, config=config) as mem:
        say(f"optmem chat on {db} [{conversation}], {len(mem.history())} turns so far. /help for commands.")
        for raw in stdin:
            line = raw.rstrip("\n")
            if not line.strip():
                continue
            command, _, arg = line.partition(" ")
            if command in ("/quit", "/exit"):
                break
            if command == "/help":
                say(HELP)
            elif command == "/pages":
                for p in mem.pages():
                    say(f"  page {p.number}{'' if p.sealed else ' (open)'}: turns {p.first_turn}-{p.last_turn}, "
                        f"{p.tier or 'out of context'}, age {p.age:g}, {p.positions} positions")
            elif command == "/recall":
                if not arg:
                    say("usage: /recall QUERY")
                    continue
                for r in mem.recall(arg, k=3):
                    say(f"  page {r.page} ({r.tier or 'out of context'}, score {r.score:.2f}, {r.source}): {r.text[:300]}")
            elif command == "/context":
                ctx = mem.context(query=arg or None)
                say(f"  {ctx.positions} of {ctx.budget} positions:")
                for s in ctx.segments:
                    label = (f"{s.tier} page {s.page}" if s.kind == "page"
                             else f"excerpt of page {s.page}" if s.kind == "expanded" and s.excerpt else s.kind)
                    say(f"    {label:<18} {s.positions:>5}")
            elif command.startswith("/"):
                say(f"unknown command {command}; /help lists them")
            else:
                mem.add("user", line)
                if llm:
                    try:
                        reply = llm.chat(mem.context(query=line).to_messages())
                    except LLMError as e:
                        say(f"[llm error: {e}]")
                        continue
                    mem.add("assistant", reply)
                    say(reply)
    return 0
