"""Fuzzing the configuration, profile, renderer, store and CLI entry points (issue 12, "fuzz every
public entry point"): random input ends in success or one of optmem's typed errors, never in a
TypeError, KeyError, UnicodeError or OSError escaping from inside."""

from __future__ import annotations

import os
import sqlite3

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings, strategies as st
from pydantic import ValidationError

from optmem import MemoryConfig
from optmem.cli import build_parser, main
from optmem.config import ConfigError
from optmem.profiles import load_profile
from optmem.profiles.profile import Profile
from optmem.store import StoreError, open_store
from renderers import RenderConfig, layout_pages, render_pages

def fuzz(n: int) -> settings:
    """Seeded (derandomize) and bounded, so a run is the same run everywhere and stays short."""
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

# Text with everything Python strings can hold, lone surrogates and NULs included.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    ANY_TEXT, st.binary(max_size=8))
JSONISH = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(ANY_TEXT, inner, max_size=4)), max_leaves=12)

# Real field names with random values reach the validators behind the first level.
SECTIONS = {
    "schedule": st.fixed_dictionaries({}, optional={
        "age_unit": st.sampled_from(["pages", "turns", "seconds", "days", 3]),
        "after_last": st.sampled_from(["evict", "delete", "keep"]),
        "steps": st.lists(st.fixed_dictionaries({}, optional={"tier": st.sampled_from(
            ["gundam", "large", "base", "small", "tiny", "huge", 1]), "until": SCALARS}), max_size=5)}),
    "render": st.fixed_dictionaries({}, optional={k: SCALARS for k in ("page_px", "font_px", "margin_px", "line_spacing",
                                                                      "fill", "header_style", "tab_width")}),
    "reexpand": st.fixed_dictionaries({}, optional={"engine": st.sampled_from(["ppocr-strips", "tesseract", "x"]),
                                                    "max_pages": SCALARS, "model_dir": SCALARS}),
    "retrieval": st.fixed_dictionaries({}, optional={"enabled": SCALARS, "min_score": SCALARS, "chunk_chars": SCALARS}),
    "ledger": st.fixed_dictionaries({}, optional={"enabled": SCALARS, "max_strings_per_page": SCALARS}),
}
CONFIG_DICTS = st.fixed_dictionaries({}, optional={
    **SECTIONS, "model": st.one_of(st.sampled_from(["deepseek-ocr", "gpt-4o", "claude", "text", "nope", ".", "/", ""]),
                                   ANY_TEXT, SCALARS),
    "recent_turns": SCALARS, "budget": SCALARS, "archive": SCALARS, "max_turn_chars": SCALARS})


@fuzz(300)
@given(st.one_of(CONFIG_DICTS, JSONISH))
def test_memory_config_validation_is_total(data):
    try:
        cfg = MemoryConfig.model_validate(data)
    except ValidationError:
        return
    assert MemoryConfig.model_validate(cfg.model_dump()) == cfg


TOML_TEXT = st.one_of(
    ANY_TEXT,
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    CONFIG_DICTS.map(lambda d: _toml_or_text(d)),
)


def _toml_or_text(data: dict) -> str:
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError):
        return repr(data)


@fuzz(150)
@given(st.one_of(TOML_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=64)))
def test_from_toml_takes_any_file(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("toml") / "config.toml"
    path.write_bytes(raw)
    try:
        MemoryConfig.from_toml(path)
    except (ConfigError, ValidationError):
        pass


@pytest.mark.parametrize("where", ["missing.toml", ".", "dir.toml"])
def test_from_toml_on_a_path_that_is_not_a_file_is_a_config_error(tmp_path, where):
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="config file"):
        MemoryConfig.from_toml(tmp_path / where)


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'model = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        MemoryConfig.from_toml(path)


@fuzz(200)
@given(st.one_of(ANY_TEXT, SCALARS, st.sampled_from([".", "/", "..", "x.toml", "/dev/null", "/proc/self"]),
                 st.dictionaries(ANY_TEXT, JSONISH, max_size=4)))
def test_load_profile_is_total(spec):
    try:
        profile = load_profile(spec)
    except (ValidationError, ValueError) as e:  # UnknownProfile, ConfigError: ValueErrors of optmem's own
        assert type(e).__module__.startswith(("optmem", "pydantic")), repr(e)
        return
    assert isinstance(profile, Profile)


def test_a_profile_spec_that_names_a_directory_or_is_no_text_is_refused_as_such(tmp_path):
    from optmem.profiles import UnknownProfile

    for spec in (123, None, b"gpt-4o"):
        with pytest.raises(UnknownProfile, match="unknown profile"):
            load_profile(spec)
    with pytest.raises(ConfigError, match="profile file"):
        load_profile(str(tmp_path))
    with pytest.raises(ValidationError, match="model"):
        MemoryConfig(model=str(tmp_path))


TURNS = st.one_of(
    ANY_TEXT,
    st.lists(st.tuples(st.sampled_from(["user", "assistant", "system", "tool", "robot", ""]), ANY_TEXT), max_size=4),
    st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", 3]), "text": st.one_of(ANY_TEXT, SCALARS)},
                                   optional={"timestamp": SCALARS}), max_size=3),
    JSONISH,
)
SMALL_RENDER = RenderConfig(page_px=256, font_px=12)


@fuzz(120)
@given(TURNS)
def test_layout_and_render_accept_any_turns_or_refuse_them_typed(turns):
    try:
        layouts = layout_pages(turns, SMALL_RENDER)
    except (ValueError, TypeError) as e:  # the renderer's documented refusals name the bad turn
        assert "turn" in str(e).lower() or "text" in str(e).lower(), repr(e)
        assert not isinstance(e, UnicodeError), repr(e)
        return
    pages = render_pages(turns, SMALL_RENDER)
    assert len(pages) == len(layouts)
    assert all(p.image.size == (256, 256) for p in pages)


@fuzz(120)
@given(st.one_of(ANY_TEXT, st.sampled_from(["", ".", "/", "a/b/c.db", "file:x?mode=ro", "postgres", "\x00"]),
                 SCALARS), st.booleans(), st.booleans())
def test_open_store_on_any_target(tmp_path_factory, target, create, readonly):
    base = tmp_path_factory.mktemp("store")
    (base / "foreign.db").write_bytes(b"not sqlite at all " * 100)
    cwd = os.getcwd()
    os.chdir(base)  # relative targets land in a scratch directory
    try:
        store = open_store(target, create=create, readonly=readonly)
    except (StoreError, ValueError, TypeError) as e:
        # A target that is not a str, path or connection is the caller's type error; a string
        # optmem cannot open is one of its own StoreErrors.
        if isinstance(target, str):
            assert isinstance(e, StoreError), repr(e)
        return
    finally:
        os.chdir(cwd)
    try:
        conv = store.conversation_id("a", create=not store.readonly) if not store.readonly else None
        if conv is not None:
            with store.write():
                store.add_turn(conv, "user", "hi", 1.0)
            assert [t.text for t in store.turns(conv)] == ["hi"]
    finally:
        store.close()


def test_open_store_names_each_bad_target(tmp_path):
    from optmem.store import DatabaseNotFound, MissingDirectory, NotAnOptmemDatabase

    (tmp_path / "foreign.db").write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(NotAnOptmemDatabase):
        open_store(tmp_path / "foreign.db")
    with pytest.raises(MissingDirectory):
        open_store(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(DatabaseNotFound):
        open_store(tmp_path / "absent.db", create=False)
    conn = sqlite3.connect(":memory:")
    open_store(conn).close()
    conn.close()


# -- the command line -------------------------------------------------------------------------

WORDS = ["inspect", "render", "config", "demo", "chat", "bench", "--show", "--config", "--out", "--query",
         "--conversation", "--render-config", "--turns", "--seed", "-h", "--help", "x.db", "missing.db", "cfg.toml",
         "bad.toml", "text.txt", ".", "-", "--", "{}", '{"font_px": 24}', '{"font_px": "x"}', "[1]", "nan", "-1", "0"]
ARGV = st.lists(st.one_of(st.sampled_from(WORDS), ANY_TEXT.filter(lambda s: "\x00" not in s)), max_size=6)
# Commands that run long or talk to a terminal or network are fuzzed through the parser only.
RUN_SAFE = {"inspect", "render", "config"}


@pytest.fixture(scope="module")
def cli_scratch(tmp_path_factory):
    """A directory with a config, a bad config, a text file and a small database (made once)."""
    base = tmp_path_factory.mktemp("cli")
    (base / "cfg.toml").write_text('recent_turns = 2\n[retrieval]\nenabled = false\n')
    (base / "bad.toml").write_text('recent_turns = "many"\n')
    (base / "text.txt").write_text("hello " * 50)
    from optmem import OpticalMemory

    with OpticalMemory.open(base / "x.db", "c", {"recent_turns": 1, "retrieval": {"enabled": False},
                                                  "render": {"page_px": 256, "font_px": 12}}) as mem:
        for i in range(6):
            mem.add("user", f"turn {i} " + "words " * 60, timestamp=i)
    return base


@fuzz(80)
@given(argv=ARGV)
def test_the_command_line_exits_cleanly_on_any_argv(cli_scratch, capsys, argv):
    cwd = os.getcwd()
    os.chdir(cli_scratch)
    try:
        command = next((a for a in argv if not a.startswith("-")), None)
        if command in RUN_SAFE:
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse: usage error (2) or --help (0)
                rc = e.code
            assert rc in (0, 1, 2), (argv, rc)
        else:
            with pytest.raises(SystemExit):  # a usage error, --help, or parsed (then we stop here)
                build_parser().parse_args(argv)
                raise SystemExit(0)
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "Traceback" not in err, (argv, err)
    assert not (cli_scratch / "missing.db").exists(), "a read-only command created a database"


@pytest.mark.parametrize("argv, rc", [
    (["inspect", "missing.db"], 2),
    (["inspect", "x.db", "--config", "bad.toml", "--out", "r"], 2),
    (["inspect", "x.db", "--config", ".", "--out", "r"], 2),
    (["config", "--config", "text.txt", "--show"], 2),
    (["render", ".", "--out", "o"], 2),
    (["render", "text.txt", "--out", "o", "--render-config", "[1]"], 2),
    (["inspect", "x.db", "--conversation", "c", "--out", "r"], 0),
])
def test_the_command_line_fails_with_a_message_not_a_traceback(cli_scratch, capsys, monkeypatch, argv, rc):
    monkeypatch.chdir(cli_scratch)
    assert main(argv) == rc
    err = capsys.readouterr().err
    assert "Traceback" not in err and (rc == 0 or err.startswith("optmem:")), err
    assert not (cli_scratch / "missing.db").exists()
