"""Golden page hashes: the same input gives byte-identical PNGs, in this process and in another.

Regenerate after an intended rendering change with:
    OPTMEM_UPDATE_GOLDEN=1 python -m pytest tests/test_render_golden.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from renderers import RENDERER_VERSION, TurnInput, render_pages

GOLDEN = Path(__file__).parent / "golden" / "render_hashes.json"

CASES = {
    "english_chat": [
        TurnInput("user", "Why does the nightly export to s3://backups/prod fail since Tuesday?",
                  timestamp="2024-05-07 09:12"),
        TurnInput("assistant", "The job hits its 3600 s timeout. The table audit_log_2019 grew to 41 GB, so "
                               "pg_dump needs longer than the window.\n\nOptions:\n1. Split the table per month.\n"
                               "2. Move the export to 02:00, when the replica is idle.", timestamp="2024-05-07 09:13"),
        TurnInput("user", "Go with option 1 and keep me posted."),
    ],
    "chinese_chat": [
        ("用户", "我们计划把数据库从旧集群迁移到新版本，先在测试环境演练一遍，确认复制延迟和回滚方案都没有问题。"),
        ("助手", "好的。高峰期写入量超过每秒三千次时，需要先暂停批处理任务，再切换流量。"
                 "（注意：审计日志表 audit_log_2019 很大。）「迁移窗口」定在周六凌晨两点到四点！"),
    ],
    "mixed_code": [
        ("user", "这个函数为什么很慢？ Why is this slow?\n```python\ndef total(rows):\n\tresult = 0\n"
                 "    for r in rows:  # 遍历\n        result += r.amount\n\treturn result\n```"),
        ("assistant", "It is linear; the cost is the ORM query behind `rows`. 用 SELECT SUM(amount) 代替。"),
    ],
    "exotic": [
        ("user", "NUL\x00 bell\x07 lone\ud800 nonchar\uffff zwsp\u200b bidi\u202eevil\u202c e\u0301 "
                 "emoji 😀\U0001FAE0 tab\tend " + "https://example.com/" + "9f86d081884c7d65" * 12),
        ("", "no role, no header"),
    ],
}


def compute_hashes() -> dict:
    out = {}
    for name, turns in CASES.items():
        page = render_pages(turns)[0]
        out[name] = {"large": page.content_hash, "tiny": page.at("tiny").content_hash}
    return {"renderer_version": RENDERER_VERSION, "cases": out}


@pytest.fixture(scope="module")
def hashes() -> dict:
    return compute_hashes()


def test_golden_hashes(hashes):
    if os.environ.get("OPTMEM_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert hashes == expected


def test_same_input_same_bytes_in_process(hashes):
    assert compute_hashes() == hashes


def test_same_bytes_in_a_separate_process(hashes):
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_render_golden as g; "
            "print(json.dumps(g.compute_hashes()))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                          env=env, cwd=root, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == hashes
