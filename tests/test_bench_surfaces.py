"""Benchmark surfaces: where results go, what a missing-data error says, and `optmem bench cost`."""

import json

import pytest

from optmem.bench import common
from optmem.bench.cli import main
from optmem.bench.haystack import load_essays, load_locomo


def test_results_default_to_the_checkout_only_from_inside_it(tmp_path):
    assert common.default_out(common._SOURCE_ROOT) == common._SOURCE_ROOT / "benchmarks" / "results"
    assert common.default_out(common._SOURCE_ROOT / "docs") == common._SOURCE_ROOT / "benchmarks" / "results"
    assert common.default_out(tmp_path) == tmp_path.resolve() / "optmem-bench-results"


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(common.DATA_ENV, str(tmp_path))
    assert common.default_data("pg_essays") == tmp_path / "pg_essays"
    monkeypatch.delenv(common.DATA_ENV)
    assert common.default_data("pg_essays") == common._SOURCE_ROOT.parent / "shared" / "data" / "pg_essays"


@pytest.mark.parametrize("load, flag, layout", [
    (load_essays, "--essays", "*.txt files, one Paul Graham essay per file"),
    (load_locomo, "--data FILE (bench locomo) or --locomo FILE", "'conversation'"),
])
def test_missing_data_names_the_flag_and_the_layout(tmp_path, load, flag, layout):
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path / "absent")
    message = str(err.value)
    assert str(tmp_path / "absent") in message and flag in message and layout in message
    assert common.DATA_ENV in message


def test_malformed_locomo_says_what_is_expected(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="not LoCoMo data.*--locomo FILE"):
        load_locomo(path)


def test_bench_cost_writes_a_table_that_explains_its_columns(tmp_path):
    essays = tmp_path / "essays"
    essays.mkdir()
    words = ("memory pages fade into smaller images while the newest turns stay text and every budget "
             "holds in the reader's own tokens").split()
    (essays / "a.txt").write_text("\n\n".join(" ".join(words[(i + j) % len(words)] for j in range(60)) + "."
                                              for i in range(120)), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["cost", "--profiles", "gpt-4.1-mini", "text", "--pages-per-lang", "1", "--essays", str(essays),
                 "--out", str(out)]) == 0
    md = (out / "cost.md").read_text(encoding="utf-8")
    rows = json.loads((out / "cost.json").read_text(encoding="utf-8"))["results"]["rows"]
    assert [(r["profile"], r["tier"]) for r in rows][:2] == [("gpt-4.1-mini", "gundam"), ("gpt-4.1-mini", "large")]
    mini = {r["tier"]: r for r in rows if r["profile"] == "gpt-4.1-mini"}
    assert mini["tiny"]["side"] == 512 and mini["tiny"]["image_tokens"] == 415  # 16x16 patches x 1.62
    assert mini["large"]["en_ratio"] == round(mini["large"]["en_text_tokens"] / mini["large"]["image_tokens"], 2)
    assert mini["large"]["en_bytes"] > 0
    assert all(r["image_tokens"] is None and r["en_bytes"] is None for r in rows if r["profile"] == "text")
    for header in ("image tokens", "EN text tokens", "EN ratio", "EN sent", "ZH bytes"):
        assert f"- **{header}**:" in md
