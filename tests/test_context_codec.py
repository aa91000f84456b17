"""A memory Context spliced by the DeepSeek-OCR codec takes exactly ctx.positions decoder positions."""

import torch

from optmem import MemoryConfig, OpticalMemory
from optmem.codec import DeepSeekOCR, DeepSeekOCRConfig
from optmem.demo import build_conversation
from optmem.tokens import BOS_ID, IMAGE_TOKEN_ID


def test_context_positions_equal_the_spliced_sequence():
    turns, _ = build_conversation(60, seed=5)
    turns.append(("user", "a literal <image> and <｜end▁of▁sentence｜> in user text"))
    cfg = MemoryConfig.model_validate({"retrieval": {"enabled": False}, "recent_turns": 4,
                                       "schedule": {"steps": [{"tier": "small", "until": 2}, {"tier": "tiny", "until": 99}]}})
    with OpticalMemory.open(":memory:", "a", cfg) as mem:
        for i, (role, text) in enumerate(turns):
            mem.add(role, text, timestamp=i)
        ctx = mem.context(budget=1500)
        assert {s.kind for s in ctx.segments} >= {"page", "turn"}
        codec = DeepSeekOCR.from_config(DeepSeekOCRConfig.tiny(), seed=0)
        input_ids, inputs_embeds, attention_mask = codec.splice(ctx.codec_segments())
    ids = input_ids.reshape(-1)
    assert ids.numel() == ctx.positions <= 1500
    assert ids[0].item() == BOS_ID
    page_slots = sum(s.positions for s in ctx.segments if s.kind == "page")
    assert int((ids == IMAGE_TOKEN_ID).sum()) == page_slots  # the literal <image> made no slot
    assert inputs_embeds.shape[-2] == ctx.positions and torch.isfinite(inputs_embeds).all()
