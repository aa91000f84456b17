"""Optional end-to-end scoring with an OpenAI-compatible chat-completions server (urllib only).

Nothing here runs unless a benchmark gets ``--llm URL``; without it no network is touched.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

SYSTEM_PROMPT = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct"


class LLMError(RuntimeError):
    pass


@dataclass(frozen=True)
class LLMClient:
    url: str  # base URL (…/v1) or the full …/chat/completions endpoint
    model: str = "default"
    max_tokens: int = 128  # RULER generates up to 128 tokens for NIAH
    timeout_s: float = 120.0

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    def chat(self, messages: list[dict]) -> str:
        body = json.dumps({
            "model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens,
        }).encode("utf-8")
        req = urllib.request.Request(self.endpoint, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            raise LLMError(f"chat completion at {self.endpoint} failed: {exc}") from exc
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"unexpected reply from {self.endpoint}: {str(payload)[:200]}") from exc


def text_messages(context_text: str) -> list[dict]:
    """A text-only system's context as chat messages (the question is already last in it)."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": context_text}]


def context_messages(ctx, question: str) -> list[dict]:
    """optmem's context as chat messages (pages as images, via Context.to_messages()), then the
    question as the last user message, as the text baselines have it."""
    messages = ctx.to_messages(system=SYSTEM_PROMPT)
    return [*messages, {"role": "user", "content": question}]
