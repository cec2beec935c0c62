"""openai backend against a small OpenAI-compatible completions server of our own (127.0.0.1 only)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codeloop.errors import UserError
from codeloop.generation import GenerationParams, generate, get_generator
from codeloop.generation.openai_server import OpenAIGenerator
from codeloop.records import Problem

BODY = "    return a + b\n"
TAIL = "\ndef extra():\n    pass\n"


class FakeServer:
    """Speaks /v1/models and /v1/completions. Ignores stop strings (like some servers do), can
    fail its first requests with 503, and can cap the choices it returns per request."""

    def __init__(self, fail_first: int = 0, max_choices: int | None = None, delay: float = 0.0):
        self.fail_first, self.max_choices, self.delay = fail_first, max_choices, delay
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "fake-coder", "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    count = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay)
                    if self.path != "/v1/completions":
                        return self._send(404, {"error": "not found"})
                    if body.get("model") != "fake-coder":
                        return self._send(404, {"error": {"message": f"model {body.get('model')} not found"}})
                    if count <= outer.fail_first:
                        return self._send(503, {"error": "warming up"})
                    n = body.get("n", 1)
                    if outer.max_choices:
                        n = min(n, outer.max_choices)
                    text = BODY + TAIL
                    tokens = [BODY[:10], BODY[10:], TAIL[:5], TAIL[5:]]
                    choices = [{"index": k, "text": text, "finish_reason": "length",
                                "logprobs": {"tokens": tokens, "token_logprobs": [-0.5, -0.25, -1.0, -2.0]}}
                               for k in range(n)]
                    self._send(200, {"id": "cmpl", "object": "text_completion", "choices": choices})
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


PROBLEMS = [Problem(task_id=f"p/{i}", prompt=f"def add{i}(a, b):\n", entry_point=f"add{i}") for i in range(6)]


def test_samples_through_the_server_with_stops_trimmed_client_side():
    with FakeServer() as srv:
        params = GenerationParams(n=2, temperature=0.5, top_k=20, max_new_tokens=32)
        samples = generate(PROBLEMS, params, backend="openai", base_url=srv.url, concurrency=3)
    assert len(samples) == 12
    for s in samples:
        assert s.completion == BODY
        assert s.code == s.prompt + BODY  # BODY ends with a newline already
        assert s.model == "fake-coder"
        assert s.logprob == pytest.approx(-0.75) and s.n_tokens == 2  # only the tokens inside the kept text
        assert s.extra["finish_reason"] == "stop"
    req = srv.requests[0]
    assert req["model"] == "fake-coder" and req["n"] == 2 and req["max_tokens"] == 32
    assert req["top_k"] == 20 and "\ndef " in req["stop"]


def test_retries_after_server_errors_and_runs_requests_concurrently():
    with FakeServer(fail_first=2, delay=0.05) as srv:
        gen = OpenAIGenerator(srv.url, model_name="fake-coder", concurrency=4, backoff=0.01)
        out = gen.generate_texts([f"p{i}" for i in range(8)], GenerationParams(n=1))
    assert len(out) == 8 and all(row[0].text == BODY + TAIL for row in out)
    assert len(srv.requests) == 8 + 2
    assert srv.max_in_flight > 1


def test_servers_that_ignore_n_get_follow_up_requests():
    with FakeServer(max_choices=1) as srv:
        gen = OpenAIGenerator(srv.url, concurrency=1)
        out = gen.generate_texts(["p"], GenerationParams(n=3))
    assert len(out[0]) == 3
    assert [r["n"] for r in srv.requests] == [3, 2, 1]
    assert len({r["seed"] for r in srv.requests}) == 3


def test_user_errors_name_the_option():
    with FakeServer() as srv:
        gen = OpenAIGenerator(srv.url, model_name="no-such-model", retries=0)
        with pytest.raises(UserError) as err:
            gen.generate_texts(["p"], GenerationParams())
        assert err.value.where == "--base-url" and "404" in err.value.message
    with pytest.raises(UserError) as err:
        OpenAIGenerator("http://127.0.0.1:9", model_name="m", retries=1, backoff=0.01).generate_texts(
            ["p"], GenerationParams())
    assert "after 2 tries" in err.value.message
    with pytest.raises(UserError):
        get_generator("openai", "default")
    with pytest.raises(UserError):
        OpenAIGenerator("localhost:8000", model_name="m")
