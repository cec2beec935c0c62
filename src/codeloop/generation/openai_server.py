"""The `openai` backend: any server that speaks the OpenAI completions protocol
(``vllm serve``, llama.cpp's ``llama-server``, SGLang, TGI, ...).

One POST ``{base_url}/completions`` per prompt asks for all `n` samples; servers that return
fewer choices than asked (some ignore ``n``) get follow-up requests for the rest. Requests run
``concurrency`` at a time. Connection errors, timeouts, 429 and 5xx answers are retried with
exponential back-off; other 4xx answers are the user's to fix and end in a UserError.

Stop strings are sent to the server and applied again on the returned text, since servers
differ in how many they accept and whether they honour them. Summed log-probs come from the
legacy ``logprobs`` field when the server fills it (``token_logprobs``), else they are None.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Callable

from codeloop.console import progress_bar
from codeloop.errors import UserError
from codeloop.generation.hf import stop_checker
from codeloop.generation.params import GenerationParams, TextSample

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    pass


class OpenAIGenerator:
    backend = "openai"
    tokenizer = None  # instruction prompts use the plain template unless --chat is asked for

    def __init__(self, base_url: str, model_name: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, retries: int = 5, timeout: float = 300.0, backoff: float = 0.5,
                 send_stops: int = 16):
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UserError(f"'{base_url}' is not an http(s) URL", "--base-url")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.send_stops = send_stops
        self.model_name = model_name or self._first_served_model()
        self.name = self.model_name

    # -- HTTP ---------------------------------------------------------------------------------

    def _request(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode() if payload is not None else None
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.base_url + path, data=data, headers=headers,
                                         method="POST" if data is not None else "GET")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                body = exc.read().decode("utf-8", "replace")[:500]
                if exc.code not in RETRY_STATUS:
                    raise UserError(f"server answered {exc.code} to {path}: {body}", "--base-url") from None
                last = ServerError(f"HTTP {exc.code}: {body}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
                last = exc
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt) * (1 + 0.25 * random.random()))
        raise UserError(f"no answer from {self.base_url}{path} after {self.retries + 1} tries: {last}",
                        "--base-url")

    def _first_served_model(self) -> str:
        data = self._request("/models").get("data") or []
        if not data:
            raise UserError("the server lists no models; name one with --model", "--base-url")
        return str(data[0]["id"])

    # -- sampling -----------------------------------------------------------------------------

    def _payload(self, prompt: str, n: int, params: GenerationParams, stops: list[str], seed: int) -> dict:
        body: dict[str, Any] = {"model": self.model_name, "prompt": prompt, "n": n,
                                "max_tokens": params.max_new_tokens, "temperature": params.temperature,
                                "top_p": params.top_p, "seed": seed, "logprobs": 1}
        if params.top_k:
            body["top_k"] = params.top_k  # an extension vLLM, SGLang and llama.cpp accept
        if stops:
            body["stop"] = stops[: self.send_stops]
        return body

    def _to_sample(self, choice: dict[str, Any], stops: list[str], params: GenerationParams) -> TextSample:
        text = choice.get("text") or ""
        reason = choice.get("finish_reason") or "length"
        lp = choice.get("logprobs") or {}
        token_lps = lp.get("token_logprobs") if isinstance(lp, dict) else None
        tokens = lp.get("tokens") if isinstance(lp, dict) else None
        cut = stop_checker(stops, params)(text)
        if cut is not None and cut < len(text):
            text, reason = text[:cut], "stop"
            if token_lps is not None and tokens is not None:
                # Keep the tokens that fit inside the trimmed text.
                kept, length = 0, 0
                for tok in tokens:
                    if length + len(tok) > cut:
                        break
                    length += len(tok)
                    kept += 1
                token_lps = token_lps[:kept]
            else:
                token_lps = None
        elif reason == "stop" and "stop_reason" in choice and choice["stop_reason"] is None:
            reason = "eos"  # vLLM: finish 'stop' with no stop_reason means the model ended it
        vals = [v for v in (token_lps or []) if v is not None]
        return TextSample(text=text, logprob=float(sum(vals)) if token_lps is not None else None,
                          n_tokens=len(token_lps) if token_lps is not None else 0, finish_reason=reason)

    def _complete(self, i: int, prompt: str, params: GenerationParams, stops: list[str]) -> list[TextSample]:
        out: list[TextSample] = []
        for attempt in range(params.n + 2):
            if len(out) >= params.n:
                break
            seed = params.seed + 1_000_003 * i + 7919 * attempt
            resp = self._request("/completions", self._payload(prompt, params.n - len(out), params, stops, seed))
            choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
            if not choices:
                raise UserError(f"the server returned no completion for prompt {i}", "--base-url")
            out.extend(self._to_sample(c, stops, params) for c in choices)
        if len(out) < params.n:
            raise UserError(f"the server returned {len(out)} of {params.n} completions for prompt {i}",
                            "--base-url")
        return out[:params.n]

    def generate_texts(self, prompts: list[str], params: GenerationParams,
                       stops: list[list[str]] | None = None,
                       on_result: Callable[[int, int, TextSample], None] | None = None,
                       description: str = "sampling") -> list[list[TextSample]]:
        if stops is None:
            stops = [list(params.stop)] * len(prompts)
        results: list[list[TextSample]] = [[] for _ in prompts]
        workers = min(self.concurrency, max(1, len(prompts)))
        with ThreadPoolExecutor(max_workers=workers) as pool, \
                progress_bar(description, len(prompts) * params.n) as advance:
            futures = {pool.submit(self._complete, i, p, params, stops[i]): i for i, p in enumerate(prompts)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    results[i] = fut.result()
                    for j, ts in enumerate(results[i]):
                        if on_result is not None:
                            on_result(i, j, ts)
                    advance(params.n)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return results
