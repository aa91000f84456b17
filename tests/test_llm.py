"""The OpenAI-compatible client (urllib) shared by `optmem chat` and the benchmarks' --llm,
against a loopback server."""

import io
import json

import pytest

from optmem.bench.llm import ANSWER_MAX_TOKENS, answer_client, text_messages
from optmem.chat import run_chat
from optmem.config import MemoryConfig
from optmem.llm import LLMClient, LLMError
from tests.fakes import JSONHandler, loopback_server


def _last_text(body: dict) -> str:
    content = body["messages"][-1]["content"]  # a string, or content parts (optmem's exports)
    return content if isinstance(content, str) else [p["text"] for p in content if p["type"] == "text"][-1]


class _Handler(JSONHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body))
        last = _last_text(body)
        if last == "garbage":
            self.send_json(b'{"nope": 1}')
        elif last == "overloaded":
            self.send_error(503, "busy")
        else:
            self.send_json({"choices": [{"message": {"content": "echo: " + last}}]})


@pytest.fixture
def server():
    with loopback_server(_Handler) as srv:
        yield srv


def test_chat_posts_openai_request_and_reads_the_reply(server):
    client = LLMClient(f"http://127.0.0.1:{server.server_port}/v1", model="m", max_tokens=7)
    assert client.chat(text_messages("ctx text")) == "echo: ctx text"
    path, body = server.seen[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "m" and body["max_tokens"] == 7 and body["temperature"] == 0
    assert body["messages"][0]["role"] == "system" and body["messages"][1] == {"role": "user", "content": "ctx text"}


def test_bad_reply_and_unreachable_server_are_llm_errors(server):
    client = LLMClient(f"http://127.0.0.1:{server.server_port}/v1/chat/completions")
    with pytest.raises(LLMError, match="unexpected reply"):
        client.chat([{"role": "user", "content": "garbage"}])
    port = server.server_port
    server.shutdown()
    server.server_close()
    with pytest.raises(LLMError, match="failed"):
        LLMClient(f"http://127.0.0.1:{port}", timeout_s=2).chat([{"role": "user", "content": "x"}])


def test_max_tokens_is_sent_only_when_set(server):
    base = f"http://127.0.0.1:{server.server_port}/v1/"
    LLMClient(base).chat([{"role": "user", "content": "a"}])
    answer_client(base, "m").chat([{"role": "user", "content": "b"}])
    (_, plain), (_, bench) = server.seen
    assert "max_tokens" not in plain and plain["model"] == "default"
    assert bench["max_tokens"] == ANSWER_MAX_TOKENS and bench["model"] == "m"


def test_http_error_names_the_endpoint_and_status(server):
    client = LLMClient(f"http://127.0.0.1:{server.server_port}/v1")
    with pytest.raises(LLMError, match=rf"127\.0\.0\.1:{server.server_port}/v1/chat/completions failed: HTTP 503"):
        client.chat([{"role": "user", "content": "overloaded"}])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "localhost:8000/v1", "http://", ""])
def test_only_http_urls_with_a_host_are_accepted(url):
    with pytest.raises(ValueError, match="http"):
        LLMClient(url)


def test_chat_repl_answers_through_the_client(server, tmp_path):
    out = io.StringIO()
    cfg = MemoryConfig.model_validate({"retrieval": {"enabled": False}})
    url = f"http://127.0.0.1:{server.server_port}/v1"
    assert run_chat(tmp_path / "c.db", "me", cfg, llm_url=url, model="m", stdin=io.StringIO("hi there\ngarbage\n"),
                    stdout=out) == 0
    assert "echo: hi there" in out.getvalue()
    assert f"[llm error: unexpected reply from {url}/chat/completions" in out.getvalue()
    path, body = server.seen[0]
    assert path == "/v1/chat/completions" and body["model"] == "m" and "max_tokens" not in body
