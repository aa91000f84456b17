"""`optmem bench` wiring, result files and the schedule grid file."""

import argparse
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from optmem.bench import BENCHMARKS
from optmem.bench.cli import register
from optmem.bench.common import Report, RunStart, git_commit, md_table
from optmem.bench.schedule import EXAMPLE, ScheduleGridError, load_grid

REPO = Path(__file__).resolve().parents[1]


def test_register_adds_every_benchmark_under_bench():
    parser = argparse.ArgumentParser(prog="optmem")
    register(parser.add_subparsers(dest="command"))
    for name in BENCHMARKS:
        args = parser.parse_args(["bench", name, "--quick", "--out", "x"])
        assert args.bench_name == name and callable(args.func) and args.quick and args.out == Path("x")
    args = parser.parse_args(["bench", "locomo", "--data", "d.json", "--budget", "4096"])
    assert args.data == Path("d.json") and args.budget == 4096
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "nope"])


def test_optmem_cli_exposes_bench():
    from optmem.cli import build_parser

    args = build_parser().parse_args(["bench", "scale", "--counts", "10", "20"])
    assert args.counts == [10, 20]


def test_report_writes_markdown_and_json_with_run_metadata(tmp_path):
    r = Report("demo", {"budget": 8192, "path": Path("a/b")}, results={"x": [1, 2]})
    r.add("Table", md_table(["a", "b|c"], [[1, 0.123456], ["p|q", 12345.6]]))
    paths = r.write(tmp_path, quick=True)
    data = json.loads(paths["json"].read_text())
    assert paths["json"].name == "demo_quick.json" and paths["md"].name == "demo_quick.md"
    assert data["config"] == {"budget": 8192, "path": "a/b"} and data["results"] == {"x": [1, 2]}
    assert data["meta"]["commit"] == git_commit() and data["meta"]["machine"]["cpus"] >= 1
    md = paths["md"].read_text()
    assert "| a | b\\|c |" in md and "| p\\|q | 12,346 |" in md and "0.123" in md and '"budget": 8192' in md


def test_report_records_the_run_as_it_started(tmp_path):
    started = RunStart(commit="c0ffee", load=(9.0, 8.0, 7.0))
    data = json.loads(Report("demo", {}, started=started).write(tmp_path, quick=False)["json"].read_text())
    assert data["meta"]["commit"] == "c0ffee" and data["meta"]["load_average"]["start"] == [9.0, 8.0, 7.0]


def test_git_commit_is_a_sha_or_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
    assert git_commit(tmp_path / "missing") == "unknown"
    assert git_commit(REPO / "optmem") == "unknown"  # inside a checkout, but not its root
    sha = git_commit(REPO)
    assert sha == "unknown" or len(sha.removesuffix("+dirty")) == 40
    assert git_commit() == sha  # by default: the checkout optmem is imported from


def test_example_schedule_grid_loads():
    bench, entries = load_grid(REPO / EXAMPLE)
    assert bench.budget == 8192 and len(entries) >= 3
    assert len({e.name for e in entries}) == len(entries)
    assert {e.config.schedule.age_unit for e in entries} >= {"pages", "turns"}


@pytest.mark.parametrize("text, match", [
    ("[[schedules]]\nname = 'a'\n[schedules.config]\nrecent_turns = -1\n", "recent_turns"),
    ("[[schedules]]\nname = 'a'\n[schedules.config.schedule]\nsteps = [{tier='tiny', until=1}, {tier='large', until=2}]\n", "steps"),
    ("[[schedules]]\nname = 'a'\n[schedules.config]\nbudgett = 1\n", "budgett"),
])
def test_bad_schedule_config_is_a_validation_error_naming_the_field(tmp_path, text, match):
    f = tmp_path / "g.toml"
    f.write_text(text)
    with pytest.raises(ValidationError, match=match):
        load_grid(f)


@pytest.mark.parametrize("text, match", [
    ("", "no \\[\\[schedules\\]\\]"),
    ("[bench]\nbudgets = 3\n[[schedules]]\nname='a'\n", "unknown \\[bench\\] keys"),
    ("[[schedules]]\nconfig = {}\n", "name"),
    ("[[schedules]]\nname='a'\n[[schedules]]\nname='a'\n", "unique"),
    ("[oops]\n", "unknown top-level"),
    ("not toml [", "not valid TOML"),
])
def test_bad_schedule_file_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "g.toml"
    f.write_text(text)
    with pytest.raises(ScheduleGridError, match=match):
        load_grid(f)
    with pytest.raises(ScheduleGridError, match="not found"):
        load_grid(tmp_path / "missing.toml")


def test_every_bench_toml_validates():
    from optmem.config import MemoryConfig

    tomls = sorted((REPO / "benchmarks").glob("*.toml"))
    assert REPO / EXAMPLE in tomls and len(tomls) >= 3
    for path in tomls:
        if path == REPO / EXAMPLE:
            load_grid(path)
        else:
            MemoryConfig.from_toml(path)


def test_bench_configs_name_a_bad_field_and_are_frozen(tmp_path):
    from optmem.bench.fidelity import FidelityConfig
    from optmem.bench.locomo import LocomoConfig
    from optmem.bench.niah import NiahConfig
    from optmem.bench.scale import ScaleConfig

    with pytest.raises(ValidationError, match="lenghts"):
        NiahConfig(lenghts=(8000,))
    with pytest.raises(ValidationError, match="systems.1"):
        NiahConfig(systems=("window", "windw"))
    with pytest.raises(ValidationError, match="systems.0"):
        LocomoConfig(systems=("optmem-optical",))  # locomo picks optmem's archive with `archive`
    with pytest.raises(ValidationError, match="engines"):
        FidelityConfig(engines=("model",))
    with pytest.raises(ValidationError, match="counts.0"):
        ScaleConfig(counts=(5,))
    toml = tmp_path / "m.toml"
    toml.write_text("[retrieval]\nenabeld = false\n")
    with pytest.raises(ValidationError, match=r"memory_config\.retrieval\.enabeld"):
        NiahConfig(memory_config=toml)
    toml.write_text("recent_turns = 3\n")
    cfg = NiahConfig(memory_config=toml, lengths=[9000])
    assert cfg.memory_config.recent_turns == 3 and cfg.lengths == (9000,)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.budget = 1


def test_bad_bench_table_value_names_the_key(tmp_path):
    f = tmp_path / "g.toml"
    f.write_text("[bench]\nniah_lengths = ['long']\n[[schedules]]\nname = 'a'\n")
    with pytest.raises(ScheduleGridError, match=r"\[bench\] niah_lengths\.0"):
        load_grid(f)
