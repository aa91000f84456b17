"""`optmem` command line: demo, chat, inspect, render, config, bench."""

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
    from optmem.chat import run_chat

    return run_chat(db=args.db, conversation=args.conversation, config=_load(args), llm_url=args.llm, model=args.model)


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

    p = sub.add_parser("chat", help="a REPL on a memory database (/context, /recall, /pages)")
    p.add_argument("db", type=Path)
    p.add_argument("--conversation", default="default")
    p.add_argument("--llm", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--model", default="default", help="model name sent to --llm")
    _config_arg(p)
    p.set_defaults(func=cmd_chat)

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

    p = sub.add_parser("render", help="render a text file to pages: PNG per tier + layout JSON")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--render-config", help='RenderConfig as JSON, e.g. \'{"font_px": 24}\'')
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("config", help="print the effective configuration")
    p.add_argument("--show", action="store_true", help="print it as TOML")
    _config_arg(p)
    p.set_defaults(func=cmd_config)

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
