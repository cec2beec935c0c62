"""Sampling programs from a model, behind one interface for every backend.

``generate(problems, params, model=..., backend=...) -> list[Sample]`` builds prompts from
problems (completion or instruction format), samples with a backend and turns each continuation
into a Sample whose ``code`` is the program to execute. ``generate_texts(prompts, params, ...)``
is the lower level used by methods that sample free text (GiFT's code summaries).

Backends: ``hf`` (transformers, CPU/GPU; :class:`HFGenerator` wraps an already loaded model),
``vllm`` (GPU, optional package), ``openai`` (any OpenAI-compatible completions server).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from codeloop.errors import UserError
from codeloop.generation.params import GenerationParams, TextSample
from codeloop.generation.prompts import assemble_program, build_prompt, default_stops, extract_code, sanitize
from codeloop.records import Problem, Sample

from codeloop.steps import BACKENDS  # declared once with the steps' backend option

__all__ = ["BACKENDS", "GenerationParams", "TextSample", "HFGenerator", "generate", "generate_texts",
           "get_generator", "make_generator", "require_local_model", "local_model", "release", "build_prompt", "extract_code", "sanitize", "default_stops", "assemble_program"]


def __getattr__(name: str) -> Any:
    # Backends import torch / vllm / urllib lazily, so importing this package stays cheap.
    if name == "HFGenerator":
        from codeloop.generation.hf import HFGenerator

        return HFGenerator
    if name == "OpenAIGenerator":
        from codeloop.generation.openai_server import OpenAIGenerator

        return OpenAIGenerator
    if name == "VLLMGenerator":
        from codeloop.generation.vllm_backend import VLLMGenerator

        return VLLMGenerator
    raise AttributeError(name)


def get_generator(backend: str = "hf", model: str = "default", adapter: str | None = None,
                  **options: Any):
    """A generator object with ``.generate_texts(...)``, ``.name`` and (hf/vllm) ``.tokenizer``.

    Options: hf -> dtype, device; vllm -> dtype and any ``vllm.LLM`` keyword;
    openai -> base_url (required), api_key, concurrency, retries, timeout.
    """
    if backend == "hf":
        from codeloop.generation.hf import HFGenerator

        return HFGenerator.load(model, adapter=adapter, dtype=options.pop("dtype", "auto"),
                                device=options.pop("device", "auto"), loop=options.pop("loop", None))
    if backend == "vllm":
        from codeloop.generation.vllm_backend import VLLMGenerator

        return VLLMGenerator(model, adapter=adapter, **options)
    if backend == "openai":
        from codeloop.generation.openai_server import OpenAIGenerator

        if adapter:
            raise UserError("the openai backend samples what the server serves; load the adapter "
                            "there (e.g. vllm serve --lora-modules) and name it with --model", "--adapter")
        # The OpenAI clients' standard variables, when the step or command gives none.
        options["base_url"] = options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None
        options["api_key"] = (options.get("api_key") or os.environ.get("OPENAI_API_KEY")
                              or os.environ.get("CODELOOP_API_KEY") or None)  # the latter: `sample`'s old variable
        if not options["base_url"]:
            raise UserError("the openai backend needs the server's address (or $OPENAI_BASE_URL)", "--base-url")
        return OpenAIGenerator(model_name=None if model == "default" else model, **options)
    raise UserError(f"unknown backend '{backend}' (choose one of {', '.join(BACKENDS)})", "--backend")


def make_generator(model: str = "default", backend: str = "hf", base_url: str | None = None,
                   api_key: str | None = None, adapter: str | None = None, **options: Any):
    """The one factory steps build their sampler with: a step's `backend`, `base_url` and `api_key`
    settings as they are (None: unset), plus backend options (hf: dtype, device, loop; vllm: any
    ``vllm.LLM`` keyword; openai: concurrency, retries, timeout). hf and vllm load `model` here;
    openai asks the server at `base_url` (or $OPENAI_BASE_URL, with $OPENAI_API_KEY) for it."""
    if backend == "openai":
        options.update(base_url=base_url, api_key=api_key)
    return get_generator(backend, model, adapter=adapter, **options)


def require_local_model(model: str, backend: str, what: str, where: str = "model") -> None:
    """A step that also scores (`what`) needs the sampled model's weights here: a server samples but
    cannot score. With the openai backend, `model` names the served model and must load here too."""
    from codeloop.models import is_default

    if backend == "openai" and is_default(model):
        raise UserError(f"with backend openai, {what} runs on the local model: set model to the id or path the "
                        "server serves (it is asked for that name, and the same name is loaded here)", where)


def local_model(generator: Any, model: str) -> tuple[Any, Any]:
    """(model, tokenizer) for a scoring pass: the hf generator's own (loaded once), else `model`
    loaded here (a vllm or openai generator samples; scoring stays local)."""
    if getattr(generator, "backend", None) == "hf":
        return generator.model, generator.tokenizer
    from codeloop.models import load_model

    return load_model(model)


def release(generator: Any) -> None:
    """Let a vllm generator's GPU memory go before a local model loads (best effort)."""
    if getattr(generator, "backend", None) != "vllm":
        return
    import gc

    generator.llm = None
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def generate_texts(prompts: list[str], params: GenerationParams | None = None, model: str = "default",
                   backend: str = "hf", adapter: str | None = None, generator: Any = None,
                   stops: list[list[str]] | None = None,
                   on_result: Callable[[int, int, TextSample], None] | None = None,
                   **options: Any) -> list[list[TextSample]]:
    """``params.n`` continuations of each prompt (stops: ``params.stop`` unless `stops` is given)."""
    params = params or GenerationParams()
    gen = generator or get_generator(backend, model, adapter=adapter, **options)
    return gen.generate_texts(prompts, params, stops=stops, on_result=on_result)


def generate(problems: list[Problem], params: GenerationParams | None = None, model: str = "default",
             backend: str = "hf", adapter: str | None = None,
             on_sample: Callable[[Sample], None] | None = None, generator: Any = None,
             **options: Any) -> list[Sample]:
    """Sample ``params.n`` programs per problem. Samples come back grouped by problem, in order.

    `generator`: an object from :func:`get_generator` or ``HFGenerator(model, tokenizer)`` to
    reuse a loaded model; then `model`, `backend`, `adapter` and `options` are ignored.
    `on_sample` is called with each Sample as soon as it is finished (for streaming to disk).
    """
    params = params or GenerationParams()
    gen = generator or get_generator(backend, model, adapter=adapter, **options)
    tokenizer = getattr(gen, "tokenizer", None)
    prompts = [build_prompt(p, params, tokenizer) for p in problems]
    stops = [default_stops(p, params) for p in problems]
    record = params.record()

    def to_sample(i: int, j: int, ts: TextSample) -> Sample:
        p = problems[i]
        return Sample(task_id=p.task_id, sample_id=j, prompt=prompts[i], completion=ts.text,
                      code=assemble_program(p, prompts[i], ts.text, params), model=gen.name,
                      params=dict(record), logprob=ts.logprob, n_tokens=ts.n_tokens,
                      extra={"finish_reason": ts.finish_reason, "backend": getattr(gen, "backend", backend)})

    def on_result(i: int, j: int, ts: TextSample) -> None:
        if on_sample is not None:
            on_sample(to_sample(i, j, ts))

    texts = gen.generate_texts(prompts, params, stops=stops, on_result=on_result if on_sample else None)
    return [to_sample(i, j, ts) for i, row in enumerate(texts) for j, ts in enumerate(row)]
