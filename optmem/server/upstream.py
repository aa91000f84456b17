"""Forwarding to the OpenAI-compatible upstream, and reading its reply (whole or as SSE) on the way back."""

from __future__ import annotations

import json

import httpx

# Not forwarded from the upstream's response: they describe that connection, not the reply
# (httpx has already decoded the body, so its encoding and length no longer hold).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
                        "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"})


MAX_EVENT_BYTES = 1 << 20


class UpstreamError(Exception):
    """The upstream gave no response: timed out (504) or could not be reached (502)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Upstream:
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 120.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/", headers=headers, transport=transport,
                                         timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)))

    async def chat(self, body: dict) -> httpx.Response:
        """POST ``body`` to ``chat/completions``; the response is open (read or stream it, then close)."""
        request = self._client.build_request("POST", "chat/completions", json=body)
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise UpstreamError(504, f"the upstream did not answer within {self.timeout_s:g} s") from None
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"the upstream could not be reached ({type(e).__name__})") from None

    async def read(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.TimeoutException:
            raise UpstreamError(504, f"the upstream stopped sending for {self.timeout_s:g} s") from None
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"the upstream's response broke off ({type(e).__name__})") from None
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


def passthrough_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP and not k.lower().startswith("x-optmem-")}


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


def reply_text(body: bytes) -> str | None:
    """The first choice's message content of a Chat Completions response, or None."""
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return None
    return content if isinstance(content, str) else None


class StreamedReply:
    """Accumulates the first choice's content deltas of an SSE Chat Completions stream."""

    def __init__(self):
        self._buffer = b""
        self._parts: list[str] = []
        self.done = False  # the stream said [DONE]

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line.rstrip(b"\r"))
        if len(self._buffer) > MAX_EVENT_BYTES:
            self._buffer = b""  # no chunk is this long: not an event we could read, and memory stays bounded

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return
        try:
            choices = json.loads(data).get("choices") or []
            for choice in choices:
                if choice.get("index", 0) == 0:
                    content = (choice.get("delta") or {}).get("content")
                    if isinstance(content, str):
                        self._parts.append(content)
        except (ValueError, AttributeError, RecursionError):
            pass  # not a chunk we can read; it is still passed to the client as it came

    @property
    def text(self) -> str:
        return "".join(self._parts)
