"""The suite's hang guard (pyproject.toml): a stuck test ends the run with every thread's stack
instead of stalling CI, also when it is stuck in C code that holds the GIL."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

STUCK_IN_PYTHON = """
import time

def test_stuck_in_python():
    time.sleep(3600)
"""
# PyDLL calls keep the GIL, as the OpenVINO first-inference deadlock did: pytest-timeout's watchdog
# thread cannot run, and only faulthandler's C watchdog can end the run.
STUCK_HOLDING_THE_GIL = """
import ctypes

def test_stuck_holding_the_gil():
    ctypes.PyDLL(None).sleep(3600)
"""


def test_every_test_runs_under_both_watchdogs(pytestconfig):
    timeout = float(pytestconfig.getini("timeout"))
    assert 0 < timeout <= 600
    assert pytestconfig.getini("timeout_method") == "thread"
    assert float(pytestconfig.getini("faulthandler_timeout")) > timeout  # the backstop fires second
    assert pytestconfig.getini("faulthandler_exit_on_timeout") is True


@pytest.mark.parametrize(("source", "test_name", "banner"), [
    (STUCK_IN_PYTHON, "test_stuck_in_python", "+ Timeout +"),  # pytest-timeout's dump
    (STUCK_HOLDING_THE_GIL, "test_stuck_holding_the_gil", "Timeout (0:00:06)!"),  # faulthandler's
])
def test_a_hung_test_ends_the_run_with_its_stack(tmp_path, source, test_name, banner):
    path = tmp_path / "test_hung.py"
    path.write_text(source)
    # The repository's configuration, with the watchdogs brought forward from minutes to seconds.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pyproject.toml"),
           "--rootdir", str(tmp_path), "-o", "timeout=3", "-o", "faulthandler_timeout=6", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{test_name} was not stopped by the configured watchdogs within 120 s")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert banner in out, out
    assert f"in {test_name}" in out, out  # the stuck test's frame is in the dump
