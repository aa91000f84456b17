"""Haystacks as conversations: Paul Graham essays cut into alternating turns, or LoCoMo dialogue."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from optmem.tokens import count_tokens

from .common import missing_data

HaystackKind = Literal["pg", "locomo"]
HAYSTACKS: tuple[str, ...] = get_args(HaystackKind)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class DialogTurn:
    role: str
    text: str
    timestamp: datetime | None = None
    dia_id: str | None = None  # LoCoMo's id, for evidence lookup


def load_essays(directory: Path) -> list[str]:
    directory = Path(directory)
    files = sorted(directory.glob("*.txt"))
    if not files:
        raise FileNotFoundError(missing_data("essays", directory, "no *.txt essays"))
    return [f.read_text(encoding="utf-8") for f in files]


def essay_turns(essays: list[str], target_tokens: int, rng: random.Random, *,
                min_tokens: int = 60, max_tokens: int = 260) -> list[DialogTurn]:
    """Alternating user/assistant turns of whole sentences from the essays (in file order,
    wrapping around) until the turns hold ``target_tokens`` text tokens."""
    sentences = [s.strip() for essay in essays for para in essay.split("\n\n")
                 for s in _SENTENCE_END.split(" ".join(para.split())) if s.strip()]
    if not sentences:
        raise ValueError("the essays contain no sentences")
    turns: list[DialogTurn] = []
    total, i = 0, 0
    while total < target_tokens:
        want = rng.randint(min_tokens, max_tokens)
        parts, have = [], 0
        while have < want:
            s = sentences[i % len(sentences)]
            i += 1
            parts.append(s)
            have += count_tokens(s) + 1
        text = " ".join(parts)
        turns.append(DialogTurn("user" if len(turns) % 2 == 0 else "assistant", text))
        total += count_tokens(text)
    return turns


def insert_sentence(text: str, sentence: str, rng: random.Random) -> str:
    """Put ``sentence`` at a sentence boundary of ``text`` (gkamradt moves the needle back to the
    previous '.' so it starts a sentence)."""
    parts = _SENTENCE_END.split(text)
    at = rng.randint(0, len(parts))
    return " ".join(parts[:at] + [sentence] + parts[at:])


_LOCOMO_TIME = "%I:%M %p on %d %B, %Y"


def parse_locomo_time(value: str) -> datetime:
    try:
        return datetime.strptime(value.strip(), _LOCOMO_TIME)
    except ValueError as exc:
        raise ValueError(f"unrecognised LoCoMo session date_time {value!r}") from exc


def load_locomo(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing_data("locomo", path, "no LoCoMo file"))
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(c, dict) and "conversation" in c and "qa" in c for c in data):
        raise ValueError(missing_data("locomo", path, "not LoCoMo data"))
    return data


def locomo_turns(sample: dict, *, turn_spacing_s: float = 30.0, session_dates: bool = True) -> list[DialogTurn]:
    """The conversation's turns in session order; speaker A is 'user', B 'assistant'; the speaker's
    name stays in the text (questions name people); shared photos become their BLIP caption; the
    first turn of a session starts with the session's date/time.
    Turns of a session are ``turn_spacing_s`` apart from the session's date_time."""
    conv = sample["conversation"]
    speaker_a = conv.get("speaker_a")
    sessions = sorted((int(k.split("_")[1]), k) for k in conv if re.fullmatch(r"session_\d+", k))
    turns: list[DialogTurn] = []
    for n, key in sessions:
        start = parse_locomo_time(conv[f"{key}_date_time"])
        for j, t in enumerate(conv[key]):
            text = f"{t['speaker']}: {t['text']}"
            if j == 0 and session_dates:
                # LoCoMo's prompts open each session with "DATE: …"; temporal answers need it.
                text = f"[{conv[key + '_date_time']}] {text}"
            if t.get("blip_caption"):
                text += f" [shares a photo: {t['blip_caption']}]"
            role = "user" if t["speaker"] == speaker_a else "assistant"
            turns.append(DialogTurn(role, text, start + timedelta(seconds=turn_spacing_s * j), t["dia_id"]))
    return turns


def locomo_haystack(samples: list[dict], target_tokens: int) -> list[DialogTurn]:
    """LoCoMo dialogue as a NIAH haystack: conversations one after another (cycled) until
    ``target_tokens``. Timestamps are dropped: the NIAH axis is turn age, not time."""
    pool = [DialogTurn(t.role, t.text) for s in samples for t in locomo_turns(s, session_dates=False)]
    turns, total, i = [], 0, 0
    while total < target_tokens:
        t = pool[i % len(pool)]
        turns.append(DialogTurn("user" if len(turns) % 2 == 0 else "assistant", t.text))
        total += count_tokens(t.text)
        i += 1
    return turns


# Chinese chat sentences: the Chinese side of the renderer density and cost benchmarks.
ZH_SENTENCES = (
    "我们计划把订单数据库从旧集群迁移到新版本，先在测试环境完整演练一遍。",
    "昨晚的导出任务在第二批数据写完以后就停了，日志里只有一条超时错误。",
    "副本所在的磁盘几乎满了，所以数据库大约有十分钟拒绝新的写入请求。",
    "能不能确认一下每周日的清理任务是否还在运行，还是三月份被人关掉了？",
    "旧发票已经转到冷存储，主库因此腾出了大约四十吉字节的空间。",
    "我猜重试逻辑把真正的错误藏起来了，因为每次失败看起来都像是超时。",
    "建议给队列长度加一个监控指标，如果一小时内一直超过一千就报警。",
    "客户希望看到一份变更摘要，最好写给不看代码的业务同事。",
    "听起来可以，不过在手机应用更新之前，旧接口最好继续保留。",
    "说实话，最简单的办法是把报表拆成几个小部分，然后逐个发送。",
    "谢谢，这个办法有效：仪表盘现在两秒就能打开，以前要将近半分钟。",
    "上线之前请写清楚回滚步骤，万一周五的迁移出了问题可以马上恢复。",
    "我不确定这些数字是否准确，因为测试数据只覆盖了本月第一周。",
    "会议改到周四下午了，安娜会带上设计评审的记录（包括表 audit_log_2019 的分区方案）。",
    "部署之后缓存是冷的，前几个请求会比较慢，这正是用户注意到的现象！",
)
