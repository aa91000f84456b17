"""Each adapter sits behind its extra: optmem never imports a framework by itself, and an adapter
whose framework is missing says which extra installs it. Runs with or without the frameworks."""

import importlib
import subprocess
import sys

import pytest

from optmem.cli import main

ADAPTERS = {  # module -> (the framework package it imports, the extra that installs it)
    "optmem.integrations.langchain": ("langchain_core", "langchain"),
    "optmem.integrations.llamaindex": ("llama_index", "llamaindex"),
    "optmem.integrations.agents": ("agents", "agents"),
    "optmem.integrations.mcp_server": ("mcp", "mcp"),
}


def test_importing_optmem_imports_no_framework():
    frameworks = [framework for framework, _ in ADAPTERS.values()]
    code = ("import sys, optmem, optmem.cli, optmem.integrations; "
            f"print([m for m in {frameworks!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", sorted(ADAPTERS))
def test_a_missing_framework_names_the_extra(module, monkeypatch):
    framework, extra = ADAPTERS[module]
    for name in [m for m in sys.modules if m == framework or m.startswith(framework + ".") or m == module]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, framework, None)  # import of it now fails, as when not installed
    with pytest.raises(ImportError, match=rf"pip install 'optmem\[{extra}\]'"):
        importlib.import_module(module)


def test_optmem_mcp_without_the_extra_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    monkeypatch.delitem(sys.modules, "optmem.integrations.mcp_server", raising=False)
    monkeypatch.setitem(sys.modules, "mcp", None)
    assert main(["mcp", "--db", str(tmp_path / "m.db")]) == 2
    assert "pip install 'optmem[mcp]'" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()
