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

    def __init__(self, fail_first: int = 0, max_choices: int | None = None, delay: float = 0.0,
                 model: str = "fake-coder", texts: list[str] | None = None):
        self.fail_first, self.max_choices, self.delay = fail_first, max_choices, delay
        self.model, self.texts = model, texts  # texts: choice k answers texts[k % len] (no logprobs)
        self.requests: list[dict] = []
        self.keys: list[str | None] = []  # the Authorization header of every request
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
                with outer.lock:
                    outer.keys.append(self.headers.get("Authorization"))
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    outer.keys.append(self.headers.get("Authorization"))
                    count = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay)
                    if self.path != "/v1/completions":
                        return self._send(404, {"error": "not found"})
                    if body.get("model") != outer.model:
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
                    if outer.texts:
                        choices = [{"index": k, "text": outer.texts[k % len(outer.texts)], "finish_reason": "stop"}
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


# -- steps that generate, on a server -----------------------------------------------------------------

ADD = Problem(task_id="add/0", prompt="def add(a, b):\n", entry_point="add",
              test="def check(candidate):\n    assert candidate(1, 2) == 3\n", meta={"split": "train"})


def _problems_file(tmp_path):
    from codeloop.records import write_jsonl

    path = tmp_path / "problems.jsonl"
    write_jsonl(path, [ADD])
    return f"jsonl:{path}"


def _no_openai_env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CODELOOP_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_the_openai_variables_are_read_when_no_setting_is_given(monkeypatch):
    _no_openai_env(monkeypatch)
    with FakeServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
        generate([ADD], GenerationParams(n=1), backend="openai")
        generate([ADD], GenerationParams(n=1), backend="openai", api_key="sk-given")
    assert srv.keys == ["Bearer sk-env"] * 2 + ["Bearer sk-given"] * 2  # /models then /completions, each


def test_eval_step_samples_on_the_server_with_the_key_from_the_environment(tmp_path, monkeypatch):
    from codeloop.pipeline.stages import EvalStageConfig
    from codeloop.steps import build_config

    _no_openai_env(monkeypatch)
    with FakeServer(texts=["    return a + b\n"]) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
        cfg = build_config(EvalStageConfig, {"benchmark": _problems_file(tmp_path), "split": None,
                                             "model": "fake-coder", "backend": "openai",
                                             "base_url": srv.url, "timeout_s": 5}, "eval")
        from types import SimpleNamespace

        from codeloop.pipeline.stages import run_eval
        from codeloop.steps import StepContext

        ctx = StepContext(run=None, stage=SimpleNamespace(path=tmp_path / "eval"), name="eval")
        metrics = run_eval(ctx, cfg)
    assert metrics["pass@k"] == {"pass@1": 1.0}
    assert srv.requests and all(r["model"] == "fake-coder" for r in srv.requests)
    assert set(srv.keys) == {"Bearer sk-test-123"}
    assert "sk-test-123" not in (tmp_path / "eval" / "metrics.json").read_text()


def test_pairs_step_samples_on_the_server_and_scores_with_the_local_model(tiny_model_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from codeloop.pipeline.stages import PairsStageConfig, run_pairs
    from codeloop.records import read_jsonl
    from codeloop.steps import StepContext, build_config

    _no_openai_env(monkeypatch)
    served = str(tiny_model_dir)  # the server serves the model under the name that also loads here
    with FakeServer(model=served, texts=["    return a + b\n", "    return a - b\n"]) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-pairs")
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        cfg = build_config(PairsStageConfig, {"problems": _problems_file(tmp_path), "split": None, "n": 4,
                                              "temperature": 1.0, "max_new_tokens": 16, "backend": "openai",
                                              "timeout_s": 5}, "pairs")
        ctx = StepContext(run=None, stage=SimpleNamespace(path=tmp_path / "pairs"), name="pairs", model=served)
        stats = run_pairs(ctx, cfg)
    assert set(srv.keys) == {"Bearer sk-pairs"}
    assert [r["n"] for r in srv.requests] == [4] and srv.requests[0]["model"] == served
    assert stats["samples"] == 4 and stats["passed_samples"] == 2 and stats["pairs"] >= 1
    pairs = read_jsonl(tmp_path / "pairs" / "pairs.jsonl")
    assert pairs and all(p["distance"] is not None for p in pairs)  # scored here, by the tiny model
    samples = read_jsonl(tmp_path / "pairs" / "samples" / "shard-00000.jsonl") \
        if (tmp_path / "pairs" / "samples" / "shard-00000.jsonl").exists() else None
    if samples:
        assert all(s["extra"]["backend"] == "openai" for s in samples)


def test_a_step_that_scores_says_which_model_must_load_here(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from codeloop.pipeline.stages import PairsStageConfig, run_pairs
    from codeloop.steps import StepContext, build_config

    _no_openai_env(monkeypatch)
    cfg = build_config(PairsStageConfig, {"problems": _problems_file(tmp_path), "split": None, "backend": "openai",
                                          "base_url": "http://127.0.0.1:9"}, "pairs")
    ctx = StepContext(run=None, stage=SimpleNamespace(path=tmp_path / "pairs"), name="pairs")
    with pytest.raises(UserError) as err:
        run_pairs(ctx, cfg)
    assert "local model" in err.value.message and "server serves" in err.value.message


def test_every_generating_step_declares_the_same_backend_settings():
    import dataclasses

    from codeloop.pipeline.registry import get_step

    seen = {}
    for name in ("eval", "pairs", "gift", "self_training"):
        fields = {f.name: f for f in dataclasses.fields(get_step(name).config)}
        for key in ("backend", "base_url", "api_key"):
            assert key in fields, (name, key)
        assert fields["backend"].metadata["choices"] == ("hf", "vllm", "openai")
        assert "OPENAI_API_KEY" in fields["api_key"].metadata["help"]
        seen[name] = fields["backend"].metadata["help"]
    assert "loaded here" in seen["pairs"] and "loaded here" in seen["gift"]
