"""The renderer can be used from several threads at once (the proxy serves requests in threads)."""

import subprocess
import sys

CHILD = """
import threading
from renderers import RenderConfig, layout_pages
errors = []
def work(i):
    try:
        layout_pages([("user", f"thread {i}: hello 你好 world " * 40)], RenderConfig())
    except Exception as e:  # noqa: BLE001 - the test reports whatever escaped
        errors.append(repr(e))
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
print("errors", errors)
"""


def test_first_layouts_in_many_threads_at_once():
    for _ in range(3):  # a fresh process each time: the fonts' tables load on first use
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "errors []" in out.stdout, out.stdout
