"""Optional end-to-end scoring with an OpenAI-compatible chat server (the client is optmem.llm's).

Nothing here runs unless a benchmark gets ``--llm URL``; without it no network is touched.
"""

from __future__ import annotations

from optmem.llm import LLMClient

SYSTEM_PROMPT = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct"
ANSWER_MAX_TOKENS = 128  # RULER generates up to 128 tokens for NIAH


def answer_client(url: str, model: str = "default") -> LLMClient:
    """The client a benchmark asks its questions with: greedy, short answers."""
    return LLMClient(url, model=model, max_tokens=ANSWER_MAX_TOKENS)


def text_messages(context_text: str) -> list[dict]:
    """A text-only system's context as chat messages (the question is already last in it)."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": context_text}]


def context_messages(ctx, question: str) -> list[dict]:
    """optmem's context as chat messages (pages as images, via Context.to_messages()), then the
    question as the last user message, as the text baselines have it."""
    messages = ctx.to_messages(system=SYSTEM_PROMPT)
    return [*messages, {"role": "user", "content": question}]
