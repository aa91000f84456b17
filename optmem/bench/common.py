"""What every benchmark shares: run metadata, result files, progress bars, markdown tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from optmem.config import MemoryConfig, load_config, read_toml

DEFAULT_SEED = 1234
# The source tree this module was loaded from: its commit is the code a run uses, wherever the
# user's working directory is.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
DATA_ENV = "OPTMEM_BENCH_DATA"
# What each data set is, where it comes from and the flags that name it: every missing-data error
# says this, so nobody has to read the code to find out what a benchmark wants.
DATA_SETS = {
    "essays": ("pg_essays", "--essays DIR",
               "a directory of *.txt files, one Paul Graham essay per file, UTF-8 (the classic "
               "needle-in-a-haystack corpus: github.com/gkamradt/LLMTest_NeedleInAHaystack, MIT)"),
    "locomo": ("locomo/locomo5_dev.json", "--data FILE (bench locomo) or --locomo FILE (bench niah, schedule)",
               "LoCoMo's JSON (github.com/snap-research/LoCoMo, data/locomo10.json or a subset of it): a list "
               "of objects with 'conversation' (sessions of turns with speaker, dia_id, text) and 'qa'"),
}


def data_root() -> Path:
    """Where the benchmark data is looked for: ``$OPTMEM_BENCH_DATA``, else ``shared/data`` beside
    the source checkout (never inside it: the data is not the project's to ship)."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else _SOURCE_ROOT.parent / "shared" / "data"


def default_data(*parts: str) -> Path:
    return data_root().joinpath(*parts)


def data_help(name: str) -> str:
    """An argparse help line for a data flag: what the data is and its default."""
    rel, _, layout = DATA_SETS[name]
    return f"{layout}; default {default_data(*rel.split('/'))} (${DATA_ENV}/{rel})"


def missing_data(name: str, path: Path, problem: str) -> str:
    """The message of a missing-data error: what was wrong, the flag to pass, the layout expected."""
    rel, flag, layout = DATA_SETS[name]
    return (f"{problem} at {path}: pass {flag}, {layout}; or set ${DATA_ENV} to a directory holding {rel} "
            "(docs/benchmarks.md, 'Data')")


def default_out(cwd: Path | None = None) -> Path:
    """Where results go unless ``--out`` says: ``benchmarks/results`` of the checkout when run from
    inside it (the committed results), else ``./optmem-bench-results``: an installed optmem never
    writes into site-packages nor scatters a ``benchmarks/`` folder into the user's directory."""
    cwd = (cwd or Path.cwd()).resolve()
    checkout = (_SOURCE_ROOT / "benchmarks").is_dir() and (_SOURCE_ROOT / "pyproject.toml").is_file()
    if checkout and cwd.is_relative_to(_SOURCE_ROOT):
        return _SOURCE_ROOT / "benchmarks" / "results"
    return cwd / "optmem-bench-results"


def add_out_argument(p) -> None:
    p.add_argument("--out", type=Path, default=default_out(),
                   help="results directory (default: benchmarks/results when run inside the optmem checkout, "
                        "else ./optmem-bench-results)")


class BenchConfig(BaseModel):
    """A benchmark's settings, like optmem's own config: frozen, and an unknown key is a
    validation error naming it instead of a setting silently ignored."""

    # Every optmem command imports the bench parsers: validators are built when a benchmark runs.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def _memory_config_source(value: Any) -> Any:
    # A TOML path is read here so that pydantic validates its content in place and names the
    # field inside memory_config that is wrong.
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        return read_toml(value)
    return value


# A MemoryConfig field of a benchmark config: given as a MemoryConfig, a dict, a TOML path or None.
MemoryConfigField = Annotated[MemoryConfig, BeforeValidator(_memory_config_source)]


def memory_config(base: Any = None, **overrides: Any) -> MemoryConfig:
    """A MemoryConfig from ``base`` (None, a TOML path, a dict or a MemoryConfig) with top-level
    fields replaced by ``overrides``."""
    cfg = load_config(base)
    if overrides:
        cfg = MemoryConfig.model_validate({**cfg.model_dump(), **overrides})
    return cfg


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(repo: Path | None = None) -> str:
    """HEAD of the checkout whose root is ``repo`` (default: the source tree optmem runs from),
    with ``+dirty`` when tracked files differ from it; ``unknown`` when that is not a checkout's
    root (an installed optmem, no git)."""
    root = Path(repo) if repo is not None else _SOURCE_ROOT
    top = (_git("rev-parse", "--show-toplevel", cwd=root) or "").strip()
    # An installed copy inside some other repository (a venv in a checkout) is not that checkout's code.
    if not top or Path(top).resolve() != root.resolve():
        return "unknown"
    sha = (_git("rev-parse", "HEAD", cwd=root) or "").strip()
    if len(sha) != 40:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return sha + ("+dirty" if dirty else "")


@dataclass(frozen=True)
class RunStart:
    """The code and the machine's load when a benchmark began. Taken when it starts, not when it
    writes its results: a long run must not be credited to commits made while it ran; the
    machine may be shared, and timings are read against its load."""

    commit: str
    load: tuple[float, float, float]

    @classmethod
    def now(cls) -> RunStart:
        return cls(git_commit(), os.getloadavg())


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # torch is a dependency; keep metadata collection from failing anyway
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            total_kb = int(fh.readline().split()[1])
        info["memory_gib"] = round(total_kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = ""):
    """tqdm to stderr, so stdout stays the tables; silenced by OPTMEM_BENCH_NO_PROGRESS=1."""
    from tqdm import tqdm

    return tqdm(
        iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True,
        disable=os.environ.get("OPTMEM_BENCH_NO_PROGRESS") == "1",
    )


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@dataclass
class Report:
    """One benchmark run: config + results + the markdown a person reads."""

    name: str
    config: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    started: RunStart | None = None  # None: taken when the report is written

    def add(self, title: str, body: str) -> None:
        self.sections.append(f"## {title}\n\n{body}\n")

    def write(self, out_dir: Path, *, quick: bool, figures: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write ``<name>[_quick].md`` and ``.json`` (+ PNGs) under ``out_dir``; return the paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.name}_quick" if quick else self.name
        started = self.started or RunStart.now()
        meta = {
            "benchmark": self.name,
            "quick": quick,
            "finished_utc": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "commit": started.commit,
            "machine": machine(),
            "argv": sys.argv,
            "load_average": {"start": [round(x, 2) for x in started.load],
                             "finish": [round(x, 2) for x in os.getloadavg()]},
        }
        paths: dict[str, Path] = {}
        for key, fig in (figures or {}).items():
            png = out_dir / f"{stem}_{key}.png"
            fig.savefig(png, dpi=110, bbox_inches="tight")
            paths[f"png:{key}"] = png
            self.figures.append(png.name)
        payload = {"meta": meta, "config": self.config, "results": self.results, "figures": self.figures}
        json_path = out_dir / f"{stem}.json"
        json_path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_jsonable) + "\n", encoding="utf-8")
        md = [f"# optmem bench {self.name}{' (--quick)' if quick else ''}\n"]
        md.append(
            f"- commit: `{meta['commit']}`\n- finished: {meta['finished_utc']}\n"
            f"- machine: {meta['machine'].get('platform')}, {meta['machine'].get('cpus')} CPUs, "
            f"Python {meta['machine'].get('python')}\n"
            f"- load average (1/5/15 min) at start {meta['load_average']['start']}, at finish "
            f"{meta['load_average']['finish']}: above {meta['machine'].get('cpus')} the machine was shared "
            "and wall-clock figures are upper bounds\n"
        )
        md.extend(self.sections)
        md.extend(f"![{name}]({name})\n" for name in self.figures)
        md.append("## Config\n\n```json\n" + json.dumps(self.config, indent=2, sort_keys=True, default=_jsonable) + "\n```\n")
        md_path = out_dir / f"{stem}.md"
        md_path.write_text("\n".join(md), encoding="utf-8")
        paths["md"], paths["json"] = md_path, json_path
        return paths

    def publish(self, out_dir: Path, *, quick: bool, figures: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write the files, print the tables to stdout and where they went to stderr."""
        paths = self.write(out_dir, quick=quick, figures=figures)
        print("\n".join(self.sections))
        print(f"wrote {paths['md']} and {paths['json']} in {self.results.get('wall_s')} s", file=sys.stderr)
        return paths


def new_figure(ncols: int = 1, *, width: float = 6.0, height: float = 4.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")
