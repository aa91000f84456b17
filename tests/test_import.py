"""Histories brought in: ChatGPT's export and JSONL of OpenAI messages, parsed and imported."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from optmem import OpticalMemory
from optmem.cli import main
from optmem.importers import (
    HistoryImportError,
    ImportedTurn,
    fill_timestamps,
    parse_history,
)

FIXTURES = Path(__file__).parent / "fixtures"
CHATGPT = FIXTURES / "chatgpt-conversations.json"
JSONL = FIXTURES / "openai-messages.jsonl"


def test_chatgpt_export_follows_the_current_branch():
    lisbon, door = parse_history(CHATGPT, "chatgpt")
    assert lisbon.name == "Lisbon weekend (6a1f0c2e)" and door.name == "Door code (b7e3d9f0)"
    # the hidden system message, the edited-away branch and the call to the browser are left out
    assert [(t.role, t.text) for t in lisbon.turns] == [
        ("user", "Plan a weekend in Lisbon for two. My flight is TP1234."),
        ("assistant", "Day one: Alfama and the tram 28. Day two: Sintra."),
        ("user", "What is the weather like in May?"),
        ("tool", "Lisbon in May: 22 C highs, little rain."),
        ("assistant", "Warm and mostly dry: around 22 C."),  # the image part carries no text
    ]
    assert lisbon.turns[0].timestamp == 1700000000.5
    assert [t.text for t in door.turns] == ["Remember: the door code is 4821-XK.", "Got it: 4821-XK."]  # the regenerated reply
    assert door.turns[1].timestamp is None


def test_openai_jsonl():
    (conv,) = parse_history(JSONL, "openai-jsonl")
    assert conv.name == "openai-messages"
    assert [(t.role, t.text) for t in conv.turns] == [
        ("user", "Our staging server is https://staging.example.com:8443/v2"),
        ("assistant", "Saved.\nAnything else?"),
        ("user", "And the API key id is sk-live-0a1b2c3d4e5f."),  # the image-only message had no text
    ]
    assert conv.turns[0].timestamp == datetime(2024, 3, 1, 9, tzinfo=timezone.utc).timestamp()
    assert conv.turns[1].timestamp == 1709283605.0 and conv.turns[2].timestamp is None
    assert parse_history(JSONL, "openai-jsonl", "mine")[0].name == "mine"


def test_missing_timestamps_take_the_one_before():
    turns = [ImportedTurn("user", "a", None), ImportedTurn("user", "b", 10.0), ImportedTurn("user", "c", None),
             ImportedTurn("user", "d", 5.0), ImportedTurn("user", "e", 20.0)]
    assert fill_timestamps(turns, default=99.0) == [10.0, 10.0, 10.0, 10.0, 20.0]
    assert fill_timestamps([ImportedTurn("user", "a", None)], default=99.0) == [99.0]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "line 2: not JSON"),
    ('["user", "hi"]', "line 2: expected a message object, got list"),
    ('{"role": "wizard", "content": "hi"}', "line 2: role must be one of"),
    ('{"role": "user", "content": 3}', "line 2: content must be a string or a list of parts, got int"),
    ('{"role": "user", "content": "hi", "timestamp": "yesterday"}', "line 2: timestamp 'yesterday' is neither"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"role": "user", "content": "fine"}\n' + line + "\n")
    with pytest.raises(HistoryImportError, match=f"{path}: {message}"):
        parse_history(path, "openai-jsonl")


def _export(tmp_path, change):
    export = json.loads(CHATGPT.read_text())
    change(export)
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(export))
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: e[1].update(current_node="nowhere"), r"conversation 2 \('Door code'\): current_node 'nowhere' is not in"),
    (lambda e: e[1]["mapping"]["u1"].update(parent="a1"), r"conversation 2 \('Door code'\): the parent links loop"),
    (lambda e: e[0].pop("mapping"), r"conversation 1 \('Lisbon weekend'\): no 'mapping'"),
    (lambda e: e[1]["mapping"]["u1"]["message"]["author"].update(role="robot"), r"node 'u1': author role must be"),
])
def test_bad_chatgpt_export_names_the_conversation(tmp_path, change, message):
    path = _export(tmp_path, change)
    with pytest.raises(HistoryImportError, match=message):
        parse_history(path, "chatgpt")


def test_a_file_that_is_not_an_export(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"title": "one"}')
    with pytest.raises(HistoryImportError, match="expected a list of conversations"):
        parse_history(path, "chatgpt")
    with pytest.raises(HistoryImportError, match="--conversation names one conversation, but the export holds 2"):
        parse_history(CHATGPT, "chatgpt", "mine")


def _history(db, name):
    with OpticalMemory.open(db, name, create=False, readonly=True) as mem:
        return [(t.role, t.text, t.timestamp) for t in mem.history()]


def test_import_command_brings_both_formats_in(tmp_path, capsys):
    db = tmp_path / "m.db"
    assert main(["import", str(CHATGPT), "--format", "chatgpt", "--db", str(db)]) == 0
    assert main(["import", str(JSONL), "--format", "openai-jsonl", "--db", str(db), "--conversation", "ops"]) == 0
    out = capsys.readouterr().out
    assert "Lisbon weekend (6a1f0c2e): 5 turns imported" in out and "2 conversations imported" in out
    assert "ops: 3 turns imported" in out and "1 conversation imported" in out
    lisbon = _history(db, "Lisbon weekend (6a1f0c2e)")
    assert lisbon[0] == ("user", "Plan a weekend in Lisbon for two. My flight is TP1234.", 1700000000.5)
    door = _history(db, "Door code (b7e3d9f0)")
    assert [t[2] for t in door] == [1700100000.0, 1700100000.0]  # the missing time takes the one before
    assert [t[1] for t in _history(db, "ops")][-1] == "And the API key id is sk-live-0a1b2c3d4e5f."
    # importing again adds nothing
    assert main(["import", str(CHATGPT), "--format", "chatgpt", "--db", str(db)]) == 0
    assert "already holds 5 turns; skipped" in capsys.readouterr().out
    assert len(_history(db, "Lisbon weekend (6a1f0c2e)")) == 5


def test_bad_input_imports_nothing(tmp_path, capsys):
    db = tmp_path / "m.db"
    path = _export(tmp_path, lambda e: e[1].update(current_node="nowhere"))
    assert main(["import", str(path), "--format", "chatgpt", "--db", str(db)]) == 2
    assert "HistoryImportError" in capsys.readouterr().err
    assert not db.exists()


def test_a_failed_conversation_leaves_the_ones_before_it(tmp_path, capsys, monkeypatch):
    db = tmp_path / "m.db"
    real_add = OpticalMemory.add

    def add(self, role, text, timestamp=None):
        if "door code" in text:
            raise OSError("disk on fire")
        return real_add(self, role, text, timestamp)

    monkeypatch.setattr(OpticalMemory, "add", add)
    assert main(["import", str(CHATGPT), "--format", "chatgpt", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "conversation 'Door code (b7e3d9f0)' failed (OSError: disk on fire)" in err
    assert "1 conversation before it imported, it and the 0 after it not" in err
    monkeypatch.undo()
    assert len(_history(db, "Lisbon weekend (6a1f0c2e)")) == 5
    from optmem.store import open_store

    store = open_store(db, create=False, readonly=True)
    assert store.conversation_names() == ["Lisbon weekend (6a1f0c2e)"]  # no trace of the failed one
    store.close()


def test_a_turn_over_the_limit_is_refused_before_writing(tmp_path, capsys):
    db, config = tmp_path / "m.db", tmp_path / "c.toml"
    config.write_text("max_turn_chars = 20\n")
    assert main(["import", str(JSONL), "--format", "openai-jsonl", "--db", str(db), "--config", str(config)]) == 2
    assert "conversation 'openai-messages', imported turn 1: turn has 57 characters, over max_turn_chars=20" in capsys.readouterr().err
    assert not db.exists()
