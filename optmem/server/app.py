"""The routes of ``optmem serve`` (Starlette): chat completions through memory, conversation reads, health.

Every route but ``/healthz`` needs ``Authorization: Bearer KEY``. A conversation belongs to the
tenant of the key that made it: it is stored as ``tenant/name``, so another tenant's request
names another conversation and finds nothing (404, the same answer as for one that never existed).
Memory work runs on the conversations' workers (optmem.server.conversations: one thread and store
connection per core); a per-conversation lock keeps one request per conversation in flight in
this process, from storing its messages to storing the reply, while other conversations go on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from optmem.assembler import BudgetError, Context
from optmem.config import MemoryConfig
from optmem.errors import InvalidArgument
from optmem.retrieval import Embedder
from optmem.server.conversations import Conversations
from optmem.server.sync import BadMessages, HistoryConflict, parse_history
from optmem.server.tenants import Tenants, load_keys, valid_name
from optmem.server.upstream import (
    StreamedReply,
    Upstream,
    UpstreamError,
    is_event_stream,
    passthrough_headers,
    reply_text,
)
from optmem.store import UnknownConversation

log = logging.getLogger("optmem.server")
CONVERSATION_HEADER = "x-optmem-conversation"


class ServeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    upstream: str = Field(description="the upstream's OpenAI-compatible base URL, e.g. http://127.0.0.1:8001/v1")
    db: str = Field(description="SQLite file path, or a postgresql:// DSN shared by several instances")
    keys: Path = Field(description="TOML key file: [keys] mapping each key to a tenant")
    memory: MemoryConfig = MemoryConfig()
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    upstream_key_env: str | None = Field(default=None, description="environment variable holding the upstream's API key")
    max_body_bytes: int = Field(default=8 << 20, ge=1024, description="larger request bodies get 413")
    upstream_timeout_s: float = Field(default=120.0, gt=0, description="longest wait for the upstream (then 504)")
    workers: int | None = Field(default=None, ge=1, description="memory worker threads, each with its own store "
                                "connection (default: one per usable core)")

    @field_validator("upstream")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value

    def upstream_key(self) -> str | None:
        if self.upstream_key_env is None:
            return None
        key = os.environ.get(self.upstream_key_env)
        if not key:
            raise ValueError(f"--upstream-key-env names {self.upstream_key_env}, which is not set")
        return key


def _error(status: int, kind: str, message: str, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"message": message, "type": kind, **extra}}, status, headers=headers)


class _TooLarge(Exception):
    pass


class _Locks:
    """One asyncio lock per conversation, dropped when nobody holds or waits for it."""

    def __init__(self):
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, name: str) -> None:
        lock, users = self._locks.get(name, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[name] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._drop(name)
            raise

    def release(self, name: str) -> None:
        self._locks[name][0].release()
        self._drop(name)

    def _drop(self, name: str) -> None:
        lock, users = self._locks[name]
        if users == 1:
            del self._locks[name]
        else:
            self._locks[name] = (lock, users - 1)


class _Relay(StreamingResponse):
    """The upstream's event stream passed through as it comes, its content deltas gathered on the
    way. ``after(text)`` runs once the response is over however it ends (done, upstream broken
    off, client gone before or during the stream), with the reply when the upstream's stream
    ended whole, else None."""

    def __init__(self, upstream_response: httpx.Response, headers: dict[str, str], after):
        self.upstream_response = upstream_response
        self._after = after
        self._reply: str | None = None
        super().__init__(self._chunks(), 200, headers=headers)

    async def _chunks(self) -> AsyncIterator[bytes]:
        reply = StreamedReply()
        try:
            async for chunk in self.upstream_response.aiter_bytes():
                reply.feed(chunk)
                yield chunk
        except httpx.HTTPError as e:
            log.warning("the upstream's stream broke off (%s); the reply is not stored", type(e).__name__)
        else:
            self._reply = reply.text

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # a client gone mid-stream must not leave the lock held
                await self.upstream_response.aclose()
                await self._after(self._reply)


class _Answered(Response):
    """The upstream's whole response; ``after()`` runs once it is sent, or the client is gone."""

    def __init__(self, content: bytes, status: int, headers: dict[str, str], after):
        super().__init__(content, status, headers=headers)
        self._after = after

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._after()


def context_headers(ctx: Context) -> dict[str, str]:
    pages = [(s.page, s.tier if s.kind == "page" else "text") for s in ctx.segments if s.kind in ("page", "expanded")]
    return {"x-optmem-positions": str(ctx.positions),
            "x-optmem-pages": ",".join(str(p) for p, _ in pages),
            "x-optmem-tiers": ",".join(f"{p}:{t}" for p, t in pages)}


def response_headers(response: httpx.Response, context: dict[str, str], timings: dict[str, float]) -> dict[str, str]:
    """The upstream's headers, the context's ``x-optmem-*`` ones, and Server-Timing (W3C) saying
    where the request's time went, in ms, after the upstream's own entries: "optmem-intake":
    reading and checking the request; "optmem-wait": queued behind other conversations' work on
    the memory worker; "optmem-store", "optmem-context", "optmem-export": storing the new
    messages, assembling, drawing the request; "optmem-upstream": until the upstream's response
    (its headers, for a stream) came; "optmem-handler": all of it, from the request's headers to
    the response's. The reply is stored after the response is sent."""
    headers = {k: v for k, v in passthrough_headers(response.headers).items() if k.lower() != "server-timing"}
    headers.update(context)
    ours = ", ".join(f"optmem-{name.replace('_', '-')};dur={ms:.1f}" for name, ms in timings.items())
    headers["server-timing"] = ", ".join(filter(None, [response.headers.get("server-timing"), ours]))
    return headers


def context_json(ctx: Context, messages: list[dict]) -> dict:
    segments = []
    for s in ctx.segments:
        item = {"kind": s.kind, "positions": s.positions}
        if s.kind == "turn":
            item.update(turn=s.turn_id, role=s.role)
        else:
            item["page"] = s.page
            if s.kind in ("page", "expanded"):
                item.update(tier=s.tier, first_turn=s.first_turn, last_turn=s.last_turn)
        segments.append(item)
    return {"positions": ctx.positions, "budget": ctx.budget, "exact": ctx.exact, "segments": segments,
            "messages": messages}


class Proxy:
    """What the routes share: tenants, conversations, the upstream client and the locks."""

    def __init__(self, settings: ServeSettings, *, embedder: Embedder | None = None,
                 upstream_transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.tenants = Tenants(load_keys(settings.keys))
        self._upstream_key = settings.upstream_key()
        self._transport = upstream_transport
        self._upstream: Upstream | None = None
        self.conversations = Conversations(settings.db, settings.memory, embedder=embedder, workers=settings.workers)
        self.locks = _Locks()

    @property
    def upstream(self) -> Upstream:
        # Made on first use, inside the event loop that serves requests.
        if self._upstream is None:
            self._upstream = Upstream(self.settings.upstream, api_key=self._upstream_key,
                                      timeout_s=self.settings.upstream_timeout_s, transport=self._transport)
        return self._upstream

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
        self.conversations.close()

    # -- request parts ---------------------------------------------------------------------------

    def tenant(self, request: Request) -> str | None:
        return self.tenants.authenticate(request.headers.get("authorization"))

    async def body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    # -- routes ----------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        began = time.perf_counter()
        tenant = self.tenant(request)
        if tenant is None:
            return _error(401, "unauthorized", "missing or unknown API key")
        name = request.headers.get(CONVERSATION_HEADER)
        if name is None or not valid_name(name):
            return _error(400, "invalid_conversation", "X-Optmem-Conversation must name the conversation: 1-128 "
                          "letters, digits, '.', '_' or '-', starting with a letter or digit")
        try:
            body = json.loads(await self.body(request))
        except _TooLarge:
            return _error(413, "request_too_large", f"the request body is over {self.settings.max_body_bytes} bytes")
        except (ValueError, RecursionError):
            return _error(400, "invalid_request", "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_request", "the request body must be a JSON object")
        try:
            history = parse_history(body.get("messages"))
        except BadMessages as e:
            return _error(400, "invalid_messages", str(e))
        key = f"{tenant}/{name}"
        await self.locks.acquire(key)
        release = True
        try:
            intake = (time.perf_counter() - began) * 1000
            try:
                prepared = await anyio.to_thread.run_sync(self.conversations.prepare, key, history)
            except HistoryConflict as e:
                return _error(409, "history_conflict", str(e), index=e.index)
            except (InvalidArgument, BudgetError) as e:
                return _error(400, "invalid_messages", str(e))
            forward = {k: v for k, v in body.items() if k != "messages"}
            forward["messages"] = prepared.messages
            headers = context_headers(prepared.context)
            reply_index = history.offset + prepared.turns
            asked = time.perf_counter()
            try:
                response = await self.upstream.chat(forward)
                timings = {"intake": intake, **prepared.timings, "upstream": (time.perf_counter() - asked) * 1000}
                if response.status_code == 200 and is_event_stream(response):
                    timings["handler"] = (time.perf_counter() - began) * 1000
                    relay = _Relay(response, response_headers(response, headers, timings),
                                   lambda text: self._store_reply_then_free(key, prepared.turns, text, reply_index))
                    release = False  # the stream holds the lock until the reply is stored
                    return relay
                content = await self.upstream.read(response)
            except UpstreamError as e:
                return _error(e.status, "upstream_error", str(e))
            text = reply_text(content) if response.status_code == 200 else None
            timings["handler"] = (time.perf_counter() - began) * 1000
            answered = _Answered(content, response.status_code, response_headers(response, headers, timings),
                                 lambda: self._store_reply_then_free(key, prepared.turns, text, reply_index))
            release = False  # the response holds the lock until the reply is stored
            return answered
        finally:
            if release:
                self.locks.release(key)

    async def _store_reply_then_free(self, key: str, after: int, text: str | None, index: int) -> None:
        """Store the reply once the client has it, then free the conversation. The store is
        bookkeeping the client need not wait for: its next request waits for it here (the
        conversation's lock), and one sent to another instance meanwhile carries the reply in its
        history, which that instance stores (this store then finds it there and adds nothing)."""
        try:
            if text is not None:
                await anyio.to_thread.run_sync(self.conversations.store_reply, key, after, text, index)
        except HistoryConflict as e:
            log.warning("conversation %s: %s", key, e)
        except Exception as e:  # nobody waits for it: logged; the client's next history still carries the reply
            log.warning("conversation %s: the reply was not stored: %r", key, e)
        finally:
            self.locks.release(key)

    async def history(self, request: Request) -> Response:
        return await self._read(request, lambda key: {"turns": [
            {"id": t.id, "role": t.role, "text": t.text, "timestamp": t.timestamp}
            for t in self.conversations.history(key)]})

    async def context(self, request: Request) -> Response:
        query = request.query_params.get("query")
        budget = request.query_params.get("budget")
        if budget is not None and not budget.isdigit():
            return _error(400, "invalid_request", f"budget must be a positive integer, got {budget!r}")
        return await self._read(request, lambda key: context_json(
            *self.conversations.context(key, query, None if budget is None else int(budget))))

    async def delete(self, request: Request) -> Response:
        return await self._read(request, lambda key: self.conversations.delete(key) or {"deleted": request.path_params["name"]})

    async def _read(self, request: Request, work) -> Response:
        tenant = self.tenant(request)
        if tenant is None:
            return _error(401, "unauthorized", "missing or unknown API key")
        name = request.path_params["name"]
        if not valid_name(name):
            return _error(404, "not_found", f"no conversation named {name!r}")
        key = f"{tenant}/{name}"
        await self.locks.acquire(key)
        try:
            return JSONResponse(await anyio.to_thread.run_sync(work, key))
        except UnknownConversation:
            return _error(404, "not_found", f"no conversation named {name!r}")
        except (InvalidArgument, BudgetError) as e:
            return _error(400, "invalid_request", str(e))
        finally:
            self.locks.release(key)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(settings: ServeSettings, *, embedder: Embedder | None = None,
               upstream_transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The ASGI app; ``app.state.proxy.aclose()`` closes its stores (the lifespan does it under uvicorn)."""
    proxy = Proxy(settings, embedder=embedder, upstream_transport=upstream_transport)

    @asynccontextmanager
    async def lifespan(app):
        try:
            await anyio.to_thread.run_sync(proxy.conversations.warm_up)  # before the first request is taken
            yield
        finally:
            await proxy.aclose()

    app = Starlette(routes=[
        Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
        Route("/v1/conversations/{name}/history", proxy.history, methods=["GET"]),
        Route("/v1/conversations/{name}/context", proxy.context, methods=["GET"]),
        Route("/v1/conversations/{name}", proxy.delete, methods=["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.proxy = proxy
    return app
