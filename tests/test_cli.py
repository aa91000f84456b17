"""The optmem command line: demo, inspect, render, config, chat."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optmem.chat import run_chat
from optmem.cli import main
from optmem.config import MemoryConfig


def _report(index):
    """Page images in a viewer whose file is there, and the viewer's text."""
    from test_viewer import ViewerDOM

    dom = ViewerDOM(index.read_text(encoding="utf-8"))
    images = sum(1 for c in dom.cards for img in c.images if (index.parent / img["src"]).is_file())
    return images, dom.all_text


@pytest.mark.slow
def test_demo_runs_offline_and_writes_a_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--turns", "160"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "pages per tier:" in out and "compression" in out and "planted facts recalled exactly" in out
    # every slow step is announced before it starts; stderr is no terminal here, so no bar
    assert "ingesting 160 turns" in out and "recalling the planted facts" in out and "writing the viewer" in out
    assert "ingest" not in captured.err
    images, text = _report(tmp_path / "viewer" / "index.html")
    assert images >= 8 and "Context without a query" in text and "large, 1280×1280 px" in text
    # the same database can be inspected afterwards, and both say the same page count
    assert main(["inspect", str(tmp_path / "demo.db"), "--out", str(tmp_path / "inspect"), "--query", "door code"]) == 0
    printed = capsys.readouterr().out
    images2, text2 = _report(tmp_path / "inspect" / "demo" / "index.html")
    assert images2 == images and "Context for 'door code'" in text2
    count = re.search(r"\d+ pages: \d+ sealed pages \+ the open page \d+", text).group()
    assert count in text2 and count.split(": ")[1] in printed


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bars_only_on_a_terminal():
    from optmem.progress import plural, progress

    log, terminal = io.StringIO(), _Terminal()
    assert list(progress(range(3), desc="ingest", unit="turn", stream=log)) == [0, 1, 2]
    assert list(progress(range(3), desc="ingest", unit="turn", stream=terminal)) == [0, 1, 2]
    assert log.getvalue() == "" and "ingest:" in terminal.getvalue() and "0/3" in terminal.getvalue()
    assert (plural(1, "page"), plural(0, "page"), plural(2, "page")) == ("1 page", "0 pages", "2 pages")


@pytest.mark.slow
def test_shown_embedder_draws_a_bar_and_keeps_the_vectors(monkeypatch):
    from optmem.progress import ShownEmbedder
    from optmem.retrieval.embedder import Embedder

    texts = ["a door code", "the flight to Lisbon leaves at seven", "sourdough", "an order id", "x" * 300]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = ShownEmbedder(batch_size=2).encode(texts)
    assert "embed:" in terminal.getvalue() and "0/3" in terminal.getvalue()
    assert shown.tobytes() == Embedder(batch_size=2).encode(texts).tobytes()


def test_inspect_unknown_conversation_is_a_clear_error(tmp_path, capsys):
    from optmem import OpticalMemory

    OpticalMemory.open(tmp_path / "m.db", "alice").close()
    assert main(["inspect", str(tmp_path / "m.db"), "--conversation", "nobody", "--out", str(tmp_path)]) == 2
    assert "no conversation named 'nobody'" in capsys.readouterr().err


def test_inspect_never_creates_a_database(tmp_path, capsys):
    missing = tmp_path / "missing.db"
    assert main(["inspect", str(missing), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: no such database" in err
    assert not missing.exists() and not (tmp_path / "r").exists()


def test_inspect_reads_an_old_database_without_changing_it(tmp_path, capsys):
    db = tmp_path / "old.db"
    shutil.copyfile(Path(__file__).parent / "fixtures" / "optmem-0.1.0.db", db)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    assert main(["inspect", str(db), "--out", str(tmp_path / "r")]) == 0
    assert "alice: 2 pages (1 sealed page + the open page 2)" in capsys.readouterr().out
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # not upgraded, nothing cached
    images, text = _report(tmp_path / "r" / "bob" / "index.html")
    assert images == 2 and "Context without a query" in text


def test_inspect_refuses_a_foreign_file(tmp_path, capsys):
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite" * 200)
    assert main(["inspect", str(junk), "--out", str(tmp_path / "r")]) == 2
    assert "not an optmem database" in capsys.readouterr().err


def test_inspect_writes_one_viewer_per_conversation(tmp_path, capsys):
    from optmem import OpticalMemory

    db = tmp_path / "m.db"
    for name in ("a b", "a_b"):  # one folder each, though both make the same file name
        with OpticalMemory.open(db, name, {"retrieval": {"enabled": False}}) as mem:
            mem.add("user", f"hello from {name}")
    assert main(["inspect", str(db), "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert f"a b: 0 pages (0 sealed pages) -> {tmp_path / 'v' / 'a_b' / 'index.html'}" in out
    assert f"a_b: 0 pages (0 sealed pages) -> {tmp_path / 'v' / 'a_b-2' / 'index.html'}" in out
    assert "hello from a_b" in (tmp_path / "v" / "a_b-2" / "index.html").read_text(encoding="utf-8")


def test_inspect_ocr_reads_the_pages_back(tmp_path, capsys):
    db = tmp_path / "old.db"
    shutil.copyfile(Path(__file__).parent / "fixtures" / "optmem-0.1.0.db", db)
    config = tmp_path / "c.toml"
    config.write_text('[reexpand]\nocr_backend = "onnxruntime"\n', encoding="utf-8")
    assert main(["inspect", str(db), "--conversation", "alice", "--out", str(tmp_path / "v"), "--ocr",
                 "--config", str(config)]) == 0
    html = (tmp_path / "v" / "alice" / "index.html").read_text(encoding="utf-8")
    assert "OCR read from the" in html and "--ocr to read it back" not in html


def test_render_writes_tiers_and_layout(tmp_path, capsys):
    src = tmp_path / "notes.txt"
    src.write_text("Meeting notes.\n\n" + "The quick brown fox jumps over the lazy dog. " * 300, encoding="utf-8")
    assert main(["render", str(src), "--out", str(tmp_path / "out")]) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"page-0001-large.png", "page-0001-base.png", "page-0001-small.png", "page-0001-tiny.png", "page-0001.json"} <= set(files)
    layout = json.loads((tmp_path / "out" / "page-0001.json").read_text())
    n_pages = sum(name.endswith(".json") for name in files)
    assert layout["lines"] and n_pages >= 2 and f"{n_pages} pages" in capsys.readouterr().out


def test_config_show_prints_valid_toml_and_names_bad_fields(tmp_path, capsys):
    assert main(["config", "--show"]) == 0
    shown = capsys.readouterr().out
    path = tmp_path / "c.toml"
    path.write_text(shown)
    assert MemoryConfig.from_toml(path) == MemoryConfig()
    path.write_text("recent_turns = -3\n")
    assert main(["config", "--show", "--config", str(path)]) == 2
    assert "recent_turns" in capsys.readouterr().err


def test_chat_repl_commands(tmp_path):
    script = "hello there\nmy locker code is 4821-XK\n/pages\n/context\n/bogus\n/help\n/quit\nnever read\n"
    out = io.StringIO()
    cfg = MemoryConfig.model_validate({"recent_turns": 1, "retrieval": {"enabled": False}})
    assert run_chat(tmp_path / "c.db", "me", cfg, stdin=io.StringIO(script), stdout=out) == 0
    text = out.getvalue()
    assert "positions" in text and "unknown command /bogus" in text and "/recall QUERY" in text
    from optmem import OpticalMemory

    with OpticalMemory.open(tmp_path / "c.db", "me") as mem:
        assert [t.text for t in mem.history()] == ["hello there", "my locker code is 4821-XK"]


def test_importing_the_cli_starts_no_process(tmp_path):
    """Every command imports optmem.cli (and the bench parsers): none may fork, e.g. git."""
    code = (
        "import os, subprocess\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError(f'a process was started at import: {args!r}')\n"
        "subprocess.Popen._execute_child = refuse\n"
        "for name in ('fork', 'forkpty', 'posix_spawn', 'posix_spawnp', 'system', 'execv', 'execve'):\n"
        "    setattr(os, name, refuse)\n"
        "import optmem.cli\n"
        "optmem.cli.build_parser()\n"
    )
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))  # this checkout, not an installed copy
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
