"""lacy.llm against a local HTTP server speaking OpenAI's chat-completions JSON."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest

from lacy.llm import MissingCredentialsError, make_llm

#: A reply is (HTTP status, assistant text) computed from the request's messages.
Reply = Callable[[list[dict]], tuple[int, str]]


class FakeChatServer:
    """OpenAI-compatible ``POST /v1/chat/completions`` on localhost; records every request it receives."""

    def __init__(self, reply: Reply):
        self.reply = reply
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({"Authorization": self.headers.get("Authorization")})
                status, text = server.reply(body["messages"])
                if status == 200:
                    payload = {"id": "cmpl-test", "object": "chat.completion", "created": 0,
                               "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": text}}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                else:
                    payload = {"error": {"message": text, "type": "test", "code": status}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeChatServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def scripted(*replies: tuple[int, str]) -> Reply:
    """Replies in order; the last one repeats."""
    queue = list(replies)
    return lambda messages: queue.pop(0) if len(queue) > 1 else queue[0]


def local_llm(server: FakeChatServer, tmp_path, **kwargs):
    return make_llm("openai", "test-model", cache_dir=tmp_path / "cache", base_url=server.base_url,
                    backoff_s=0.01, **kwargs)


def test_answer_and_cache_hit_avoid_a_second_request(tmp_path):
    with FakeChatServer(scripted((200, "Paris"))) as server:
        llm = local_llm(server, tmp_path)
        assert llm.name == "openai:test-model"
        assert llm.complete("Capital of France?", system="Be brief.") == "Paris"
        assert llm.complete("Capital of France?", system="Be brief.") == "Paris"
        assert len(server.requests) == 1
        request = server.requests[0]
        assert request["messages"] == [{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "Capital of France?"}]
        assert request["temperature"] == 0.0 and request["max_tokens"] == 512
        # a new process (new LLM object) reads the same cache
        assert local_llm(server, tmp_path).complete("Capital of France?", system="Be brief.") == "Paris"
        assert len(server.requests) == 1
        # every field of the request is part of the key
        llm.complete("Capital of France?")
        llm.complete("Capital of France?", system="Be brief.", max_tokens=8)
        assert len(server.requests) == 3


def test_rate_limit_and_server_error_are_retried(tmp_path):
    with FakeChatServer(scripted((429, "slow down"), (503, "busy"), (200, "ok"))) as server:
        assert local_llm(server, tmp_path).complete("hi") == "ok"
        assert len(server.requests) == 3


def test_client_error_is_not_retried_nor_cached(tmp_path):
    import openai

    with FakeChatServer(scripted((400, "bad request"), (200, "ok"))) as server:
        llm = local_llm(server, tmp_path)
        with pytest.raises(openai.BadRequestError):
            llm.complete("hi")
        assert len(server.requests) == 1
        assert llm.complete("hi") == "ok"


def test_retries_give_up_after_max_attempts(tmp_path):
    import openai

    with FakeChatServer(scripted((500, "down"))) as server:
        with pytest.raises(Exception) as info:
            local_llm(server, tmp_path, max_attempts=3).complete("hi")
        assert isinstance(info.value.__cause__, openai.InternalServerError)
        assert len(server.requests) == 3


def test_missing_key_names_the_variable_before_any_request(tmp_path, monkeypatch):
    monkeypatch.delenv("LACY_TEST_KEY", raising=False)
    with FakeChatServer(scripted((200, "ok"))) as server:
        with pytest.raises(MissingCredentialsError, match="LACY_TEST_KEY"):
            local_llm(server, tmp_path, api_key_env="LACY_TEST_KEY")
        assert server.requests == []
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        make_llm("openai", "gpt-3.5-turbo", cache_dir=tmp_path)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make_llm("gemini", "gemini-2.0-flash", cache_dir=tmp_path)


def test_key_is_sent_but_never_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LACY_TEST_KEY", "sk-secret-123")
    with FakeChatServer(scripted((200, "ok"))) as server:
        local_llm(server, tmp_path, api_key_env="LACY_TEST_KEY").complete("hi")
        assert server.headers[0]["Authorization"] == "Bearer sk-secret-123"
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert "sk-secret-123" not in path.read_text()


def test_unknown_backend(tmp_path):
    with pytest.raises(ValueError, match="unknown LLM backend"):
        make_llm("claude-via-fax", "m", cache_dir=tmp_path)
