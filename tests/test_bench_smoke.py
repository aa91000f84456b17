"""Each `optmem bench <name> --quick` once, into a temporary directory: the files exist and are
well formed (figures are not asserted; they are what the benchmarks are for)."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"  # ../shared/data from the repository root
ESSAYS, LOCOMO = DATA / "pg_essays", DATA / "locomo" / "locomo5_dev.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ESSAYS.exists() and LOCOMO.exists()), reason=f"benchmark data not found under {DATA}"),
]


def _run(name: str, tmp_path: Path, *extra: str) -> dict:
    from optmem.bench.cli import main

    out = tmp_path / "results"
    assert main([name, "--quick", "--out", str(out), *extra]) == 0
    md, js = out / f"{name}_quick.md", out / f"{name}_quick.json"
    assert md.is_file() and js.is_file()
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["meta"]["benchmark"] == name and data["meta"]["quick"] is True
    assert isinstance(data["meta"]["commit"], str) and data["meta"]["machine"]["cpus"] >= 1
    assert isinstance(data["config"], dict) and data["config"]
    text = md.read_text(encoding="utf-8")
    assert text.startswith(f"# optmem bench {name} (--quick)") and "## Config" in text and "\n|---|" in text
    for fig in data["figures"]:
        png = out / fig
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({fig})" in text
    return data


def test_niah_quick(tmp_path):
    data = _run("niah", tmp_path, "--essays", str(ESSAYS))
    samples = data["results"]["samples"]
    assert samples and {"window", "retrieval", "optmem-optical", "optmem-verbatim", "full"} == set(samples[0]["systems"])
    for s in samples:
        for name, r in s["systems"].items():
            assert 0.0 <= r["score"] <= 1.0
            if name != "full":
                assert r["positions"] <= data["config"]["budget"]
    assert data["figures"]


def test_locomo_quick(tmp_path):
    data = _run("locomo", tmp_path, "--data", str(LOCOMO))
    qs = data["results"]["questions"]
    assert qs and all(0.0 <= q["systems"]["optmem"]["evidence_text"] <= 1.0 for q in qs)
    assert "1-4" in data["results"]["summary"]["by_category"]
    # plain retrieval given only the positions optmem spent on text, question by question
    for q in qs:
        opt, same = q["systems"]["optmem"], q["systems"]["retrieval@optmem text"]
        pages = opt["positions"] - opt["text_positions"]
        assert pages >= 0 and same["positions"] <= opt["text_positions"]
    assert "optmem" in data["results"]["summary"]["paired_vs_retrieval_same_text"]
    assert "retrieval@optmem text" not in data["results"]["summary"]["paired_vs_retrieval"]


def test_fidelity_quick(tmp_path):
    data = _run("fidelity", tmp_path, "--essays", str(ESSAYS))
    rows = data["results"]["rows"]
    assert rows and {r["lang"] for r in rows} == {"en", "zh"}
    assert all(0.0 <= r["precision"] <= 1.0 and r["cer"] >= 0.0 for r in rows)
    assert data["figures"]


def test_scale_quick(tmp_path):
    data = _run("scale", tmp_path, "--essays", str(ESSAYS))
    rows = data["results"]["rows"]
    assert [r["turns"] for r in rows] == sorted(r["turns"] for r in rows) and rows[0]["db_bytes"] > 0
    assert data["figures"]


def test_schedule_quick(tmp_path):
    data = _run("schedule", tmp_path, str(REPO / "benchmarks" / "schedules.example.toml"),
                "--essays", str(ESSAYS), "--locomo", str(LOCOMO))
    rows = data["results"]["rows"]
    assert len(rows) == 1 + len(data["config"]["entries"])
    assert all(r.get("niah_recall") is not None and r.get("locomo_evidence_text") is not None for r in rows)
