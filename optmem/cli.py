"""`optmem` command line: demo, chat, import, inspect, render, config, serve, mcp, bench."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with MemoryConfig settings (default: built-in defaults)")


def _load(args):
    from optmem.config import load_config

    return load_config(args.config)


def cmd_demo(args) -> int:
    from optmem.demo import run_demo

    run_demo(out_dir=args.out, turns=args.turns, config=_load(args), seed=args.seed)
    return 0


def cmd_chat(args) -> int:
    from optmem.chat import history_file, run_chat

    return run_chat(db=args.db, conversation=args.conversation, config=_load(args), llm_url=args.llm, model=args.model,
                    history_path=args.history or history_file(args.db))


def cmd_import(args) -> int:
    import time

    from optmem.importers import HistoryImportError, fill_timestamps, parse_history
    from optmem.memory import OpticalMemory
    from optmem.progress import plural, progress
    from optmem.store import open_store
    from optmem.turns import InvalidTurn, check_turn_text

    config = _load(args)
    # Everything is parsed and checked before the first write: bad input imports nothing.
    conversations = parse_history(args.file, args.format, args.conversation)
    for conv in conversations:
        for number, turn in enumerate(conv.turns, start=1):
            try:
                check_turn_text(turn.text, config.max_turn_chars)
            except InvalidTurn as e:
                raise HistoryImportError(f"{args.file}: conversation {conv.name!r}, imported turn {number}: {e}") from None
    store = open_store(args.db, create=True)
    try:
        existing = {name: store.last_turn(store.conversation_id(name, create=False)) for name in store.conversation_names()}
        imported = 0
        for index, conv in enumerate(conversations):
            if existing.get(conv.name):
                print(f"{conv.name}: already holds {plural(existing[conv.name], 'turn')}; skipped")
                continue
            stamps = fill_timestamps(conv.turns, default=time.time())
            try:
                # One write per conversation: one that fails leaves no trace, the ones before it stay.
                with store.write():
                    mem = OpticalMemory(store, config, conversation=conv.name)
                    for turn, stamp in progress(zip(conv.turns, stamps), desc=conv.name[:30], unit="turn", total=len(conv.turns)):
                        mem.add(turn.role, turn.text, timestamp=stamp)
                    mem.close()
            except Exception as e:
                left = len(conversations) - index
                raise HistoryImportError(f"{args.file}: conversation {conv.name!r} failed ({type(e).__name__}: {e}); "
                                         f"{plural(imported, 'conversation')} before it imported, "
                                         f"it and the {left - 1} after it not") from e
            imported += 1
            print(f"{conv.name}: {plural(len(conv.turns), 'turn')} imported")
    finally:
        store.close()
    print(f"{args.db}: {plural(imported, 'conversation')} imported from {args.file}")
    return 0


def cmd_inspect(args) -> int:
    from optmem.memory import OpticalMemory
    from optmem.store import open_store
    from optmem.viewer import page_count, write_viewer

    # Inspecting never creates or changes a database: a wrong path is an error, not a new file.
    store = open_store(args.db, create=False, readonly=True)
    names = store.conversation_names()
    store.close()
    if args.conversation:
        names = [args.conversation]
    if not names:
        print(f"{args.db}: no conversations", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, folder in zip(names, _folders(names)):
        with OpticalMemory.open(args.db, conversation=name, config=_load(args), create=False, readonly=True) as mem:
            progress = _ocr_progress(name) if args.ocr and sys.stderr.isatty() else None
            path = write_viewer(mem, args.out / folder, query=args.query, ocr=args.ocr, progress=progress)
            pages = mem.pages()
            print(f"{name}: {len(pages)} pages ({page_count(pages)}) -> {path}")
    return 0


def cmd_mcp(args) -> int:
    try:
        from optmem.integrations.mcp_server import serve
    except ImportError as e:
        print(f"optmem: {e}", file=sys.stderr)
        return 2
    return serve(args.db, args.conversation, args.config)


def _folders(names: list[str]) -> list[str]:
    """A folder name per conversation, distinct even where two names differ only in characters
    a file name cannot hold."""
    folders: list[str] = []
    for name in names:
        base = folder = _safe(name)
        n = 1
        while folder in folders:
            n += 1
            folder = f"{base}-{n}"
        folders.append(folder)
    return folders


def _ocr_progress(name: str):
    def show(done: int, total: int) -> None:
        print(f"\r{name}: OCR page {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    return show


def cmd_render(args) -> int:
    from renderers import RenderConfig, render_pages
    from renderers.export import export_pages

    text = args.file.read_text(encoding="utf-8", errors="replace")
    config = RenderConfig.model_validate(json.loads(args.render_config)) if args.render_config else RenderConfig()
    pages = render_pages(text, config)
    written = export_pages(pages, args.out)
    print(f"{args.file}: {len(pages)} pages, {len(written)} files in {args.out}")
    return 0


def cmd_config(args) -> int:
    cfg = _load(args)
    if args.show:
        sys.stdout.write(cfg.to_toml())
    return 0


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from optmem.server import ServeSettings, create_app
    except ImportError as e:
        print(f"optmem serve needs the serve extra ({e.name} is missing): pip install 'optmem[serve]'", file=sys.stderr)
        return 2
    memory = _load(args).model_dump()
    memory.update(model=args.model, **({"budget": args.budget} if args.budget is not None else {}))
    settings = ServeSettings(upstream=args.upstream, db=args.db, keys=args.keys, memory=memory, host=args.host,
                             port=args.port, upstream_key_env=args.upstream_key_env, max_body_bytes=args.max_body_bytes,
                             upstream_timeout_s=args.upstream_timeout, workers=args.workers)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "conversation"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optmem", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="ingest a long built-in conversation and show what optical memory does with it")
    p.add_argument("--out", type=Path, default=Path("optmem-demo"), help="directory for the database and the HTML report")
    p.add_argument("--turns", type=int, default=600, help="length of the built-in conversation")
    p.add_argument("--seed", type=int, default=7)
    _config_arg(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("chat", help="a REPL on a memory database (/context, /recall, /pages; --llm answers)")
    p.add_argument("db", type=Path)
    p.add_argument("--conversation", default="default")
    p.add_argument("--llm", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", default="default", help="model name sent to --llm")
    p.add_argument("--history", type=Path, help="file for the prompt's line history (default: DB.chat-history)")
    _config_arg(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("import", help="bring a history in: ChatGPT's conversations.json or JSONL of OpenAI messages")
    p.add_argument("file", type=Path)
    p.add_argument("--format", required=True, choices=["chatgpt", "openai-jsonl"],
                   help="chatgpt: the conversations.json of ChatGPT's data export; openai-jsonl: one "
                        '{"role", "content", optional "timestamp"} message per line')
    p.add_argument("--db", type=Path, required=True, help="database to import into (created if missing)")
    p.add_argument("--conversation", help="name for the conversation (default: title and id prefix, or the JSONL "
                                          "file's name); only for a file that holds one")
    _config_arg(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("inspect", help="write a viewer of a database: HTML pages to open in a browser")
    p.add_argument("db", type=Path)
    p.add_argument("--conversation", help="only this conversation (default: all)")
    p.add_argument("--query", help="also show the context assembled for this query")
    p.add_argument("--out", type=Path, default=Path("optmem-viewer"),
                   help="directory for the viewer: OUT/CONVERSATION/index.html and its page images")
    p.add_argument("--ocr", action="store_true",
                   help="also read every sealed page back from its image with OCR (about 1.5 s a page)")
    _config_arg(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("mcp", help="serve one conversation as an MCP server over stdio (needs optmem[mcp])")
    p.add_argument("--db", required=True, help="memory database path (created when missing) or postgresql:// DSN")
    p.add_argument("--conversation", default="default", help="the one conversation this server serves")
    _config_arg(p)
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("render", help="render a text file to pages: PNG per tier + layout JSON")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--render-config", help='RenderConfig as JSON, e.g. \'{"font_px": 24}\'')
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("config", help="print the effective configuration")
    p.add_argument("--show", action="store_true", help="print it as TOML")
    _config_arg(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("serve", help="an OpenAI-compatible proxy that gives any app optical memory (docs/deploy.md)")
    p.add_argument("--upstream", required=True, help="the upstream's OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1")
    p.add_argument("--db", required=True, help="SQLite file, or a postgresql:// DSN that several instances share")
    p.add_argument("--keys", type=Path, required=True, help="TOML key file: [keys] mapping each key to a tenant")
    p.add_argument("--model", required=True, help="the upstream reader's profile (deepseek-ocr-vllm, qwen2.5-vl, gpt-4o, claude, ...)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--budget", type=int, help="the reader's input tokens a context may use (default: the config's)")
    p.add_argument("--upstream-key-env", help="environment variable holding the upstream's API key")
    p.add_argument("--max-body-bytes", type=int, default=8 << 20, help="larger request bodies get 413")
    p.add_argument("--upstream-timeout", type=float, default=120.0, help="seconds to wait for the upstream (then 504)")
    p.add_argument("--workers", type=int, help="memory worker threads, each with its own store connection "
                   "(default: one per usable core)")
    _config_arg(p)
    p.set_defaults(func=cmd_serve)

    from optmem.bench.cli import register

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from optmem.store import StoreError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ValidationError as e:
        print(f"optmem: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, StoreError) as e:
        print(f"optmem: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
