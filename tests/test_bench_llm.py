"""--llm: the OpenAI-compatible client (urllib) against a loopback server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from optmem.bench.llm import LLMClient, LLMError, text_messages


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, body))
        if body["messages"][-1]["content"] == "garbage":
            payload = b'{"nope": 1}'
        else:
            payload = json.dumps({"choices": [{"message": {"content": "echo: " + body["messages"][-1]["content"]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.seen = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


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
