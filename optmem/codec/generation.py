"""Greedy decoding with an n-gram repeat guard, as a plain loop over a KV-cached decoder.

DeepSeek-OCR loops on repeated content; the official scripts guard against it by banning any
token that would repeat an n-gram already generated (HF ``no_repeat_ngram_size=20``; vLLM
``ngram_size=30`` within a ``window_size=90`` with a whitelist). Both forms are supported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch


class Decoder(Protocol):
    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor: ...

    def decode(self, inputs_embeds, attention_mask=None, past_key_values=None, use_cache=False,
               last_only=False): ...


@dataclass(frozen=True)
class RepeatGuard:
    ngram_size: int = 20
    window: int | None = None  # only n-grams starting in the last `window` tokens count
    whitelist: frozenset[int] = frozenset()

    def banned(self, generated: list[int]) -> set[int]:
        n = self.ngram_size
        if n <= 0 or len(generated) < n:
            return set()
        start = 0 if self.window is None else max(0, len(generated) - self.window)
        prefix = generated[len(generated) - n + 1 :]
        out = set()
        for i in range(start, len(generated) - n + 1):
            if generated[i : i + n - 1] == prefix:
                out.add(generated[i + n - 1])
        return out - self.whitelist


@dataclass
class Generation:
    tokens: list[int]
    stopped_at_eos: bool
    step_logits: list[torch.Tensor] = field(default_factory=list)  # [vocab] per step, if kept


@torch.no_grad()
def greedy_generate(
    decoder: Decoder,
    prefill: Callable[[], tuple[torch.Tensor, object]],
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_id: int,
    guard: RepeatGuard | None = RepeatGuard(),
    keep_logits: bool = False,
) -> Generation:
    """``prefill()`` runs the prompt and returns (logits [1, L, V], kv cache); each next token is
    the arg-max of the last logits after the guard bans repeats. Stops at EOS (not included)."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    tokens: list[int] = []
    kept: list[torch.Tensor] = []
    if max_new_tokens == 0:
        return Generation(tokens, False, kept)
    logits, past = prefill()
    mask = attention_mask
    for step in range(max_new_tokens):
        last = logits[0, -1].float()
        if keep_logits:
            kept.append(last.clone())
        if guard is not None:
            banned = guard.banned(tokens)
            if banned:
                last = last.clone()
                last[list(banned)] = float("-inf")
        nxt = int(torch.argmax(last))
        if nxt == eos_token_id:
            return Generation(tokens, True, kept)
        tokens.append(nxt)
        if step == max_new_tokens - 1:
            break
        ids = torch.tensor([[nxt]], device=mask.device)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits, past = decoder.decode(decoder.embed_tokens(ids), mask, past, True, last_only=True)
    return Generation(tokens, False, kept)
