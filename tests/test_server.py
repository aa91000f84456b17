"""`optmem serve` against a fake upstream, in process (httpx's ASGI transport: no network), on
SQLite and, when OPTMEM_TEST_POSTGRES_DSN is set, PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys

import httpx
import pytest
from conftest import PostgresFactory, postgres_dsn

pytest.importorskip("starlette")
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from optmem import MemoryConfig, OpticalMemory
from optmem.cli import build_parser
from optmem.server import ServeSettings, create_app
from optmem.server.sync import (
    BadMessages,
    History,
    HistoryConflict,
    Message,
    digest,
    new_turns_from,
    parse_history,
)
from optmem.store import open_store
from renderers import decode_page_image, encode_page_image, encoding_for_side
from optmem.server.tenants import KeyFileError, Tenants, load_keys
from optmem.server.upstream import StreamedReply
from tests.fakes import HashEmbedder, RecordingEmbedder

KEY_A = "key-a-0123456789abcdef"
KEY_A2 = "key-a2-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
SYSTEM = {"role": "system", "content": "You are terse."}
SMALL = {"retrieval": {"enabled": False}, "recent_turns": 4, "budget": 4000,
         "reexpand": {"ocr_backend": "onnxruntime"}}


class FakeUpstream:
    """An OpenAI-compatible upstream that answers at once, numbering its replies."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_with: int | None = None
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def reply(self, n: int) -> str:
        return f"reply number {n}"

    async def _chat(self, request: Request):
        body = await request.json()
        self.requests.append(body)
        if self.fail_with is not None:
            return JSONResponse({"error": {"message": "upstream is sad"}}, self.fail_with)
        text = self.reply(len(self.requests))
        if body.get("stream"):
            async def events():
                for part in (text[:5], text[5:]):
                    chunk = {"choices": [{"index": 0, "delta": {"content": part}}]}
                    yield f"data: {json.dumps(chunk)}\n\n".encode()
                yield b"data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream", headers={"x-upstream": "yes"})
        return JSONResponse({"id": "c1", "object": "chat.completion", "model": body.get("model"),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]},
                            headers={"x-upstream": "yes", "Server-Timing": "model;dur=3"})


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "postgres":
        factory = PostgresFactory(postgres_dsn())
        yield factory.target
        factory.close_all()
    else:
        yield str(tmp_path / "serve.db")


@pytest.fixture
def keyfile(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text(f'[keys]\n"{KEY_A}" = "alice"\n"{KEY_A2}" = "alice"\n"{KEY_B}" = "bob"\n')
    return path


def _settings(db, keyfile, memory=SMALL, **extra) -> ServeSettings:
    return ServeSettings(upstream="http://upstream/v1", db=db, keys=keyfile, memory=memory, **extra)


@pytest.fixture
def serve(db, keyfile):
    """(client, fake upstream) for a server built with ``serve(**settings)``."""
    opened = []

    def make(*, transport=None, embedder=None, **extra):
        fake = FakeUpstream()
        app = create_app(_settings(db, keyfile, **extra), embedder=embedder,
                         upstream_transport=transport or httpx.ASGITransport(app=fake.app))
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return client, fake

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _auth(key, conversation="chat1"):
    headers = {"Authorization": f"Bearer {key}"}
    if conversation is not None:
        headers["X-Optmem-Conversation"] = conversation
    return headers


def _chat(client, messages, key=KEY_A, conversation="chat1", **fields):
    return client.post("/v1/chat/completions", headers=_auth(key, conversation),
                       json={"model": "m1", "messages": messages, **fields})


def _turns(client, key=KEY_A, conversation="chat1"):
    response = client.get(f"/v1/conversations/{conversation}/history", headers=_auth(key, None))
    assert response.status_code == 200, response.text
    return [(t["role"], t["text"]) for t in response.json()["turns"]]


# -- chat completions -----------------------------------------------------------------------------

def test_chat_stores_new_messages_and_the_reply_and_forwards_the_context(serve):
    client, fake = serve()
    first = [SYSTEM, {"role": "user", "content": "hello there"}]
    response = _chat(client, first, temperature=0.25)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "reply number 1"
    assert response.headers["x-upstream"] == "yes" and int(response.headers["x-optmem-positions"]) > 0
    sent = fake.requests[0]
    assert sent["model"] == "m1" and sent["temperature"] == 0.25
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert "hello there" in json.dumps(sent["messages"])
    assert _turns(client) == [("user", "hello there"), ("assistant", "reply number 1")]

    second = first + [{"role": "assistant", "content": "reply number 1"}, {"role": "user", "content": "and now?"}]
    assert _chat(client, second).status_code == 200
    assert _turns(client) == [("user", "hello there"), ("assistant", "reply number 1"),
                              ("user", "and now?"), ("assistant", "reply number 2")]


def test_an_upstream_error_passes_through_and_a_retry_stores_nothing_twice(serve):
    client, fake = serve()
    messages = [{"role": "user", "content": "hi"}]
    fake.fail_with = 503
    response = _chat(client, messages)
    assert response.status_code == 503 and response.json() == {"error": {"message": "upstream is sad"}}
    assert _turns(client) == [("user", "hi")]
    fake.fail_with = None
    assert _chat(client, messages).status_code == 200
    assert _turns(client) == [("user", "hi"), ("assistant", "reply number 2")]


def test_an_edited_or_truncated_history_is_a_409_naming_the_message(serve):
    client, _ = serve()
    messages = [SYSTEM, {"role": "user", "content": "one"}]
    _chat(client, messages)
    _chat(client, messages + [{"role": "assistant", "content": "reply number 1"}, {"role": "user", "content": "two"}])
    stored = _turns(client)
    edited = [SYSTEM, {"role": "user", "content": "one"}, {"role": "assistant", "content": "I never said that"},
              {"role": "user", "content": "three"}]
    response = _chat(client, edited)
    assert response.status_code == 409 and response.json()["error"]["index"] == 2
    truncated = _chat(client, messages)
    assert truncated.status_code == 409 and truncated.json()["error"]["index"] == 2
    assert _turns(client) == stored


def test_a_streamed_reply_passes_through_and_is_stored(serve):
    client, _ = serve()
    with client.stream("POST", "/v1/chat/completions", headers=_auth(KEY_A),
                       json={"model": "m1", "stream": True, "messages": [{"role": "user", "content": "stream it"}]}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-upstream"] == "yes" and "x-optmem-positions" in r.headers
        body = b"".join(r.iter_bytes())
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"data:") == 3
    assert _turns(client) == [("user", "stream it"), ("assistant", "reply number 1")]


def _timing(header: str) -> dict[str, float]:
    entries = [part.strip().split(";dur=") for part in header.split(",")]
    assert all(len(e) == 2 for e in entries), header
    return {name: float(ms) for name, ms in entries}


def test_server_timing_says_where_the_time_went_after_the_upstream_s_own_entries(serve):
    client, _ = serve()
    response = _chat(client, [{"role": "user", "content": "time me"}])
    assert response.status_code == 200, response.text
    timing = _timing(response.headers["server-timing"])
    ours = ["optmem-intake", "optmem-wait", "optmem-store", "optmem-context", "optmem-export", "optmem-upstream"]
    assert list(timing) == ["model", *ours, "optmem-handler"]
    assert timing["model"] == 3 and all(ms >= 0 for ms in timing.values())
    assert timing["optmem-handler"] >= sum(ms for name, ms in timing.items() if name not in ("model", "optmem-handler")) - 1
    with client.stream("POST", "/v1/chat/completions", headers=_auth(KEY_A), json={
            "model": "m1", "stream": True, "messages": [{"role": "user", "content": "time me"},
                                                        {"role": "assistant", "content": "reply number 1"},
                                                        {"role": "user", "content": "and stream"}]}) as r:
        b"".join(r.iter_bytes())
    assert list(_timing(r.headers["server-timing"])) == [*ours, "optmem-handler"]


def test_a_reply_the_next_request_stored_first_is_not_stored_twice_and_another_turn_is_a_conflict(db, keyfile):
    # The reply is stored after the response is sent; a client's next request that reached another
    # instance first stores it from its history.
    from optmem.server.conversations import Conversations

    conversations = Conversations(db, MemoryConfig.model_validate(SMALL))
    try:
        first = parse_history([{"role": "user", "content": "hello"}])
        after = conversations.prepare("alice/c", first).turns
        conversations.prepare("alice/c", parse_history([{"role": "user", "content": "hello"},
                                                        {"role": "assistant", "content": "hi there"},
                                                        {"role": "user", "content": "and then?"}]))
        conversations.store_reply("alice/c", after, "hi there", 1)  # already there: nothing added
        assert [(t.role, t.text) for t in conversations.history("alice/c")] == [
            ("user", "hello"), ("assistant", "hi there"), ("user", "and then?")]
        with pytest.raises(HistoryConflict) as e:
            conversations.store_reply("alice/c", after, "another reply", 1)
        assert e.value.index == 1
        assert len(conversations.history("alice/c")) == 3
    finally:
        conversations.close()


def test_a_stream_that_breaks_off_stores_no_reply_and_frees_the_conversation(serve):
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'data: {"choices": [{"index": 0, "delta": {"content": "half"}}]}\n\n'
            raise httpx.ReadError("connection reset")

    client, _ = serve(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Broken())))
    body = {"model": "m1", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    with client.stream("POST", "/v1/chat/completions", headers=_auth(KEY_A), json=body) as r:
        assert b"half" in b"".join(r.iter_bytes())
    assert _turns(client) == [("user", "go")]
    with client.stream("POST", "/v1/chat/completions", headers=_auth(KEY_A), json=body) as r:  # not locked out
        assert r.status_code == 200
    assert _turns(client) == [("user", "go")]


async def _talk(http, n: int, turns: int, messages: list[dict]) -> tuple[list, list]:
    """Conversation c<n> (tenant A for odd n, B for even) carried on to ``turns`` exchanges from
    ``messages``: what was sent, and the history the server then gives back."""
    key = KEY_A if n % 2 else KEY_B
    for turn in range(len(messages) // 2, turns):
        messages.append({"role": "user", "content": f"conversation {n} turn {turn} " + "words here " * 150})
        r = await http.post("/v1/chat/completions", headers=_auth(key, f"c{n}"), json={"model": "m", "messages": messages})
        assert r.status_code == 200, r.text
        messages.append({"role": "assistant", "content": r.json()["choices"][0]["message"]["content"]})
    h = await http.get(f"/v1/conversations/c{n}/history", headers=_auth(key, None))
    return [(m["role"], m["content"]) for m in messages], [(t["role"], t["text"]) for t in h.json()["turns"]]


def test_concurrent_conversations_each_keep_their_own_turns(db, keyfile):
    fake = FakeUpstream()
    app = create_app(_settings(db, keyfile, memory={**SMALL, "recent_turns": 1}),
                     upstream_transport=httpx.ASGITransport(app=fake.app))

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as http:
            try:
                return await asyncio.gather(*(_talk(http, n, 3, []) for n in range(6)))
            finally:
                await app.state.proxy.aclose()

    for sent, stored in asyncio.run(main()):
        assert stored == sent


def test_conversations_on_several_workers_keep_their_turns_even_when_they_move(db, keyfile, monkeypatch):
    from collections import Counter

    from optmem.server import conversations

    fake = FakeUpstream()
    app = create_app(_settings(db, keyfile, memory={**SMALL, "recent_turns": 1}, workers=3),
                     upstream_transport=httpx.ASGITransport(app=fake.app))
    proxy = app.state.proxy

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as http:
            try:
                first = await asyncio.gather(*(_talk(http, n, 2, []) for n in range(6)))
                # A new conversation goes to the worker with the fewest.
                assert sorted(Counter(proxy.conversations._homes.values()).values()) == [2, 2, 2]
                # Forgetting homes at once moves conversations between workers, each of which
                # still holds a memory of them from before: the store must keep them right.
                monkeypatch.setattr(conversations, "MEMORIES_KEPT", 1)
                later = await asyncio.gather(*(_talk(http, n, 5, [{"role": r, "content": t} for r, t in sent])
                                               for n, (sent, _) in enumerate(first)))
                return first, later
            finally:
                await proxy.aclose()

    first, later = asyncio.run(main())
    for sent, stored in first:
        assert stored == sent
    for sent, stored in later:
        assert stored == sent and len(stored) == 10


def test_the_server_loads_its_embedder_before_the_first_request(serve):
    embedder = RecordingEmbedder()
    serve(memory={**SMALL, "retrieval": {"enabled": True}}, embedder=embedder)
    assert embedder.calls == [["warm up"]]


def _talk_about_oswin(client) -> list[dict]:
    """14 long turns, the second about the lighthouse keeper Oswin, each answered; the history."""
    messages = []
    for i in range(14):
        topic = "the harbour lighthouse keeper named Oswin" if i == 1 else f"filler topic {i}"
        messages.append({"role": "user", "content": f"Turn {i} talks about {topic}. " + "lorem ipsum dolor " * 60})
        response = _chat(client, messages)
        assert response.status_code == 200, response.text
        messages.append({"role": "assistant", "content": f"reply number {i + 1}"})
    return messages


def test_pages_and_retrieval_show_in_the_headers_and_the_context_endpoint(serve):
    memory = {**SMALL, "retrieval": {"enabled": True, "min_score": 0.0}, "recent_turns": 2, "budget": 8192}
    client, _ = serve(memory=memory, embedder=HashEmbedder())
    messages = _talk_about_oswin(client)
    messages.append({"role": "user", "content": "who was the lighthouse keeper Oswin?"})
    response = _chat(client, messages)
    pages = response.headers["x-optmem-pages"].split(",")
    assert pages != [""] and len(pages) == len(response.headers["x-optmem-tiers"].split(","))
    assert any(t.endswith(":text") for t in response.headers["x-optmem-tiers"].split(","))
    ctx = client.get("/v1/conversations/chat1/context", params={"query": "lighthouse keeper Oswin"},
                     headers=_auth(KEY_A, None))
    assert ctx.status_code == 200
    data = ctx.json()
    assert data["positions"] <= data["budget"] == 8192 and data["messages"]
    assert any(s["kind"] == "expanded" for s in data["segments"]) and any(s["kind"] == "turn" for s in data["segments"])


def test_sealed_pages_are_embedded_off_the_request_path_and_found_by_later_queries(serve, db):
    # The server's memories embed neither at seal nor at query: only the job queued after each request does.
    memory = {**SMALL, "retrieval": {"enabled": True, "min_score": 0.0}, "recent_turns": 2, "budget": 8192}
    client, _ = serve(memory=memory, embedder=HashEmbedder())
    _talk_about_oswin(client)
    client.app.state.proxy.conversations.idle()  # the upkeep queued after each request has run
    store = open_store(db)
    try:
        conv = store.conversation_id("alice/chat1", create=False)
        # The default unit ranks turns: their units are embedded, the pages go to the keyword index.
        assert store.unindexed_pages(conv) == [] and store.turn_units_through(conv) > 0
    finally:
        store.close()
    ctx = client.get("/v1/conversations/chat1/context", params={"query": "lighthouse keeper Oswin"},
                     headers=_auth(KEY_A, None)).json()
    assert any(s["kind"] == "expanded" for s in ctx["segments"]) and "Oswin" in json.dumps(ctx["messages"])


def _images(messages: list[dict]) -> list[bytes]:
    return [base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) for m in messages
            if isinstance(m["content"], list) for part in m["content"] if part["type"] == "image_url"]


def _compact(data: bytes) -> bytes:
    """The compact encoding (lossless WebP) of the pixels in ``data``, as gpt-4o is sent them."""
    image = decode_page_image(data)
    return encode_page_image(image, encoding_for_side(image.width, "webp"))


def test_images_encoded_fast_in_the_write_are_compact_from_the_next_request_on(serve, db):
    # The write step encodes the images of the pages it seals fast; the job after the request
    # re-encodes them, so only the request that sealed a page sends its fast bytes.
    memory = {**SMALL, "model": "gpt-4o", "recent_turns": 2, "budget": 8192,
              "reexpand": {"ocr_backend": "onnxruntime", "text_when_it_fits": False}}
    client, fake = serve(memory=memory)
    _talk_about_oswin(client)
    forwarded = [data for body in fake.requests for data in _images(body["messages"])]
    assert any(data != _compact(data) for data in forwarded)  # some request was sent fast bytes
    client.app.state.proxy.conversations.idle()  # the upkeep queued after each request has run
    store = open_store(db)
    try:
        sealed = {row.number for row in store.pages(store.conversation_id("alice/chat1", create=False))}
    finally:
        store.close()
    ctx = client.get("/v1/conversations/chat1/context", headers=_auth(KEY_A, None)).json()
    pages = [s["page"] for s in ctx["segments"] if s["kind"] == "page"]
    images = _images(ctx["messages"])
    assert len(pages) == len(images) and len(sealed & set(pages)) >= 2
    for page, data in zip(pages, images):
        if page in sealed:  # not the open page, redrawn as turns join it
            assert data == _compact(data)


def test_delete_forgets_the_conversation_and_a_new_one_starts_afresh(serve):
    client, _ = serve()
    _chat(client, [{"role": "user", "content": "remember me"}])
    response = client.delete("/v1/conversations/chat1", headers=_auth(KEY_A, None))
    assert response.status_code == 200
    assert client.get("/v1/conversations/chat1/history", headers=_auth(KEY_A, None)).status_code == 404
    assert _chat(client, [{"role": "user", "content": "new start"}]).status_code == 200
    assert _turns(client) == [("user", "new start"), ("assistant", "reply number 2")]


# -- limits and errors ----------------------------------------------------------------------------

def test_a_body_over_the_limit_is_413_and_stores_nothing(serve):
    client, fake = serve(max_body_bytes=2048)
    response = _chat(client, [{"role": "user", "content": "x" * 4000}])
    assert response.status_code == 413 and fake.requests == []
    streamed = client.post("/v1/chat/completions", headers=_auth(KEY_A),
                           content=iter([b'{"messages": [', b" " * 3000, b"]}"]))  # no content-length
    assert streamed.status_code == 413
    assert client.get("/v1/conversations/chat1/history", headers=_auth(KEY_A, None)).status_code == 404


def test_an_upstream_timeout_is_504_and_an_unreachable_one_502(serve):
    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request):
        raise httpx.ConnectError("refused", request=request)

    client, _ = serve(transport=httpx.MockTransport(timeout), upstream_timeout_s=3)
    response = _chat(client, [{"role": "user", "content": "hi"}])
    assert response.status_code == 504 and "3 s" in response.json()["error"]["message"]
    client, _ = serve(transport=httpx.MockTransport(refused))
    assert _chat(client, [{"role": "user", "content": "hi"}], conversation="other").status_code == 502


@pytest.mark.parametrize("payload, what", [
    ({"messages": []}, "non-empty"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "text parts"),
    ({"messages": [SYSTEM]}, "only system"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_are_400_naming_what_is_wrong(serve, payload, what):
    client, fake = serve()
    response = client.post("/v1/chat/completions", headers=_auth(KEY_A), json=payload)
    assert response.status_code == 400 and what in response.json()["error"]["message"]
    for bad_name in (None, "a/b", "", "x" * 129, "..hidden"):
        headers = _auth(KEY_A, bad_name)
        assert client.post("/v1/chat/completions", headers=headers,
                           json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 400
    assert fake.requests == []


# -- security -------------------------------------------------------------------------------------

ENDPOINTS = [("GET", "/v1/conversations/chat1/history"), ("GET", "/v1/conversations/chat1/context?query=hi"),
             ("DELETE", "/v1/conversations/chat1")]


def test_every_endpoint_refuses_a_missing_or_unknown_key(serve):
    client, fake = serve()
    _chat(client, [{"role": "user", "content": "secret of alice"}])
    for headers in ({}, {"Authorization": "Bearer not-a-key-at-all-xxxx"}, {"Authorization": KEY_A},
                    {"Authorization": f"Basic {KEY_A}"}, {"Authorization": f"Bearer {KEY_A}x"}):
        for method, path in ENDPOINTS + [("POST", "/v1/chat/completions")]:
            response = client.request(method, path, headers={**headers, "X-Optmem-Conversation": "chat1"},
                                      json={"messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    assert len(fake.requests) == 1 and _turns(client) == [("user", "secret of alice"), ("assistant", "reply number 1")]
    assert client.get("/healthz").json() == {"status": "ok"}


def test_another_tenants_conversation_is_not_found_and_never_seen(serve):
    client, fake = serve()
    _chat(client, [{"role": "user", "content": "secret of alice"}])
    for method, path in ENDPOINTS:
        response = client.request(method, path, headers=_auth(KEY_B, None))
        assert response.status_code == 404, (method, path)
        never = client.request(method, path.replace("chat1", "never-made"), headers=_auth(KEY_B, None))
        assert never.status_code == 404 and never.json()["error"]["type"] == response.json()["error"]["type"]
    # The same name under bob's key is bob's own conversation: alice's turns are not in it.
    assert _chat(client, [{"role": "user", "content": "bob here"}], key=KEY_B).status_code == 200
    assert "secret of alice" not in json.dumps(fake.requests[-1])
    assert _turns(client, key=KEY_B) == [("user", "bob here"), ("assistant", "reply number 2")]
    assert _turns(client, key=KEY_A2)[0] == ("user", "secret of alice")  # a tenant's keys share its conversations


def test_keys_never_reach_the_logs(serve, caplog):
    client, _ = serve()
    with caplog.at_level(logging.DEBUG):
        _chat(client, [{"role": "user", "content": "hi"}])
        _chat(client, [{"role": "user", "content": "hi"}], key="Bearer-wrong-key-123456789")
        _chat(client, [{"role": "user", "content": "edited"}])
    assert KEY_A not in caplog.text and "wrong-key" not in caplog.text


def test_the_server_listens_on_loopback_by_default(tmp_path, keyfile):
    assert ServeSettings(upstream="http://u/v1", db="x.db", keys=keyfile).host == "127.0.0.1"
    args = build_parser().parse_args(["serve", "--upstream", "http://u/v1", "--db", "x.db", "--keys", str(keyfile),
                                      "--model", "gpt-4o"])
    assert args.host == "127.0.0.1" and args.port == 8000


def test_the_serve_command_builds_the_app_it_was_asked_for(tmp_path, keyfile, monkeypatch, capsys):
    import uvicorn

    from optmem.cli import main

    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    argv = ["serve", "--upstream", "http://127.0.0.1:9/v1", "--db", str(tmp_path / "m.db"), "--keys", str(keyfile),
            "--model", "qwen2.5-vl", "--budget", "3000"]
    assert main(argv) == 0
    settings = ran["app"].state.proxy.settings
    assert (ran["host"], ran["port"]) == ("127.0.0.1", 8000)
    assert (settings.memory.model, settings.memory.budget) == ("qwen2.5-vl", 3000)
    ran["app"].state.proxy.conversations.close()
    assert main(argv[:-4] + ["--model", "no-such-reader"]) == 2
    assert "model" in capsys.readouterr().err
    monkeypatch.delenv("OPTMEM_TEST_UPSTREAM_KEY", raising=False)
    assert main(argv + ["--upstream-key-env", "OPTMEM_TEST_UPSTREAM_KEY"]) == 2
    assert "OPTMEM_TEST_UPSTREAM_KEY" in capsys.readouterr().err


def test_settings_refuse_a_non_http_upstream(keyfile):
    with pytest.raises(ValueError, match="upstream"):
        ServeSettings(upstream="file:///etc/passwd", db="x.db", keys=keyfile)


# -- the parts ------------------------------------------------------------------------------------

def test_a_key_file_is_checked_without_showing_keys(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[keys]\n"short" = "alice"\n')
    with pytest.raises(KeyFileError, match="key #1") as e:
        load_keys(path)
    assert "short" not in str(e.value)
    path.write_text(f'[keys]\n"{KEY_A}" = "a/b"\n')
    with pytest.raises(KeyFileError, match="tenant"):
        load_keys(path)
    path.write_text("[other]\n")
    with pytest.raises(KeyFileError, match=r"\[keys\]"):
        load_keys(path)
    tenants = Tenants({KEY_A.encode(): "alice", KEY_B.encode(): "bob"})
    assert tenants.authenticate(f"Bearer {KEY_B}") == "bob" and tenants.authenticate(f"bearer {KEY_A}") == "alice"
    assert tenants.authenticate(None) is None and tenants.authenticate("Bearer ") is None
    assert tenants.authenticate("Bearer ключ") is None


def test_history_matching_by_position_and_hash():
    history = parse_history([SYSTEM, {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                             {"role": "assistant", "content": None}, {"role": "user", "content": "c"}])
    assert history == History("You are terse.", (Message("user", "a\nb"), Message("assistant", ""), Message("user", "c")), 1)
    assert history.query == "c"
    stored = [("user", digest("user", "a\nb")), ("assistant", None)]  # None: an optical archive dropped the text
    assert new_turns_from(stored, history) == 2
    with pytest.raises(HistoryConflict) as e:
        new_turns_from([("user", digest("user", "A\nb"))], history)
    assert e.value.index == 1
    with pytest.raises(HistoryConflict) as e:
        new_turns_from([("user", None), ("assistant", None), ("user", None), ("assistant", None)], history)
    assert e.value.index == 4
    with pytest.raises(BadMessages, match=r"messages\[0\]"):
        parse_history([{"role": "user", "content": 5}])


def test_a_streamed_reply_is_gathered_across_chunk_boundaries():
    reply = StreamedReply()
    data = b'data: {"choices": [{"index": 0, "delta": {"content": "he"}}]}\r\n\r\ndata: {"choices": [{"index": 0, ' \
           b'"delta": {"content": "llo"}}, {"index": 1, "delta": {"content": "other"}}]}\n\n: ping\n\ndata: [DONE]\n\n'
    for i in range(0, len(data), 7):
        reply.feed(data[i:i + 7])
    assert reply.text == "hello" and reply.done


def test_pages_fade_in_the_job_after_the_request_as_they_would_in_the_write(serve, db):
    # optmem serve leaves a seal's tier moves to the job after the request (tier_moves = "later"):
    # once it ran, the pages sit at the tiers a memory that moves them in the write gives them.
    memory = {**SMALL, "recent_turns": 2, "schedule": {"steps": [{"tier": "large", "until": 1},
                                                                 {"tier": "small", "until": 3}]}}
    client, _ = serve(memory=memory)
    messages = _talk_about_oswin(client)
    client.app.state.proxy.conversations.idle()  # the upkeep queued after each request has run
    store = open_store(db)
    try:
        served = [(r.number, str(r.tier), str(r.image_tier))
                  for r in store.pages(store.conversation_id("alice/chat1", create=False))]
    finally:
        store.close()
    with OpticalMemory.open(":memory:", "same", MemoryConfig.model_validate(memory)) as mem:
        for m in messages:
            mem.add(m["role"], m["content"])
        in_write = [(p.number, str(p.tier), str(p.image_tier)) for p in mem.pages() if p.sealed]
    assert any(tier != "large" for _, tier, _ in served)
    assert served == in_write


class _FakeOpen:
    """What a _Worker hands its jobs: here only a record of what ran."""

    def __init__(self):
        from collections import OrderedDict

        self._memories = OrderedDict()
        self.ran: list[str] = []
        self.store = self

    def close(self):
        self.ran.append("closed")


def test_a_worker_runs_calls_before_upkeep_and_each_conversation_s_upkeep_once():
    import threading

    from optmem.server.conversations import UPKEEP_AFTER_CALLS, _Worker

    fake, gate = _FakeOpen(), threading.Event()
    worker = _Worker(fake, 0)
    try:
        blocker = threading.Thread(target=worker.call, args=(lambda o: gate.wait(10),))
        blocker.start()  # holds the worker while the rest queues up
        while not worker._busy:
            pass
        for key in ("a", "b", "a"):  # a's second upkeep replaces its first
            worker.submit(key, lambda o, key=key: o.ran.append(f"upkeep {key}"))
        callers = [threading.Thread(target=worker.call, args=(lambda o, n=n: o.ran.append(f"call {n}"),))
                   for n in range(UPKEEP_AFTER_CALLS + 2)]
        for t in callers:
            t.start()
        while len(worker._calls) < len(callers):
            pass
        gate.set()
        for t in (blocker, *callers):
            t.join(10)
        worker.idle()
        # UPKEEP_AFTER_CALLS - 1 calls after the blocker, then one upkeep, then the other calls, then the other upkeep
        upkeep = [i for i, r in enumerate(fake.ran) if r.startswith("upkeep")]
        assert [fake.ran[i] for i in upkeep] == ["upkeep b", "upkeep a"]
        assert upkeep[0] == UPKEEP_AFTER_CALLS - 1 and upkeep[1] == len(fake.ran) - 1
        assert sum(r.startswith("call") for r in fake.ran) == len(callers)
    finally:
        gate.set()
        worker.close()
    assert fake.ran[-1] == "closed"


def test_a_failing_upkeep_is_logged_and_the_worker_goes_on(caplog):
    from optmem.server.conversations import _Worker

    fake = _FakeOpen()
    worker = _Worker(fake, 0)
    try:
        worker.submit("a", lambda o: 1 / 0)
        worker.idle()
        assert worker.call(lambda o: "still here") == "still here"
    finally:
        worker.close()
    assert "ZeroDivisionError" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
def test_the_offload_thread_runs_at_the_lowest_cpu_priority(tmp_path):
    import os
    import threading

    from optmem.server.conversations import OFFLOAD_NICENESS, Conversations

    conversations = Conversations(str(tmp_path / "nice.db"), MemoryConfig.model_validate(SMALL))
    try:
        nice = conversations._offload.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
        assert nice == max(OFFLOAD_NICENESS, os.getpriority(os.PRIO_PROCESS, 0))
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < OFFLOAD_NICENESS  # the rest untouched
    finally:
        conversations.close()
