"""The API reference is generated from the docstrings (docs/build_api.py, pdoc) and covers the public API."""

import runpy
from pathlib import Path

import pytest

pytest.importorskip("pdoc", reason="pdoc is in the test and dev extras")
BUILD = runpy.run_path(str(Path(__file__).resolve().parents[1] / "docs" / "build_api.py"))


def test_the_api_reference_builds_from_the_docstrings(tmp_path):
    assert BUILD["build"](tmp_path).is_file()
    memory = (tmp_path / "optmem" / "memory.html").read_text(encoding="utf-8")
    for name in ("add", "context", "recall", "page_text", "flush", "pin"):
        assert f'id="OpticalMemory.{name}"' in memory
    assert 'id="Store.write"' in (tmp_path / "optmem" / "store.html").read_text(encoding="utf-8")
    assert 'id="Tier.TINY"' in (tmp_path / "renderers.html").read_text(encoding="utf-8")
