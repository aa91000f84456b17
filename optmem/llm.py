"""One client for OpenAI-compatible chat-completions servers (urllib only), used by `optmem chat`
and the benchmarks' ``--llm`` scoring. Nothing here touches the network until ``chat`` is called."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


class LLMError(RuntimeError):
    """The server could not be reached or did not answer like an OpenAI-compatible one; the
    message names the endpoint."""


@dataclass(frozen=True)
class LLMClient:
    url: str  # base URL (…/v1) or the full …/chat/completions endpoint
    model: str = "default"
    max_tokens: int | None = None  # None: the server's own limit
    temperature: float = 0.0
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        # urllib would also open file:// and ftp:// URLs; a chat server is only ever HTTP.
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"LLM url must be an http(s) URL with a host, got {self.url!r}")

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    def chat(self, messages: list[dict]) -> str:
        """The reply text of one chat completion for ``messages``."""
        request: dict = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        req = urllib.request.Request(self.endpoint, data=json.dumps(request).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")[:200]
            raise LLMError(f"chat completion at {self.endpoint} failed: HTTP {exc.code} {exc.reason}: {body}") from exc
        # URLError, timeouts and dropped connections are OSErrors; a body that is not JSON a ValueError.
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise LLMError(f"chat completion at {self.endpoint} failed: {exc}") from exc
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"unexpected reply from {self.endpoint}: {str(payload)[:200]}") from exc
