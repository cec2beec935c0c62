"""The `vllm` backend: the same interface on vLLM (GPU), imported only when used.

Prompts are passed as token ids encoded by codeloop (BOS rule of ``models.encode_prompt``), so a
sample's log-prob conditions on the same tokens the hf backend and the scorer use. Extra
keywords go to ``vllm.LLM`` (e.g. ``tensor_parallel_size=2``, ``gpu_memory_utilization=0.8``).
"""

from __future__ import annotations

from typing import Any, Callable

from codeloop.console import progress_bar
from codeloop.errors import MissingDependency
from codeloop.generation.hf import stop_checker
from codeloop.generation.params import GenerationParams, TextSample
from codeloop.generation.stops import CODE_FENCE
from codeloop.models import encode_prompt, resolve_model_path


def _import_vllm():
    try:
        import vllm
    except ImportError:
        raise MissingDependency("the vllm backend", "vllm", "vllm") from None
    return vllm


class VLLMGenerator:
    backend = "vllm"

    def __init__(self, model: str = "default", adapter: str | None = None, dtype: str = "auto",
                 seed: int = 0, **llm_kwargs: Any):
        vllm = _import_vllm()
        self.name = model
        path = resolve_model_path(model)
        vllm_dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype)
        self.llm = vllm.LLM(model=path, dtype=vllm_dtype, seed=seed, enable_lora=bool(adapter), **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.lora = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("adapter", 1, adapter)

    def _sampling_params(self, params: GenerationParams, stops: list[str], seed: int):
        vllm = _import_vllm()
        server_stops = list(stops)
        code_end = params.prompt_format == "instruction" and params.stop_at_code_end
        if code_end and params.response_prefix.count(CODE_FENCE) % 2 == 1:
            server_stops.append(CODE_FENCE)  # the answer started inside a block: a fence closes it
        return vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                   top_k=params.top_k if params.top_k else -1, max_tokens=params.max_new_tokens,
                                   stop=server_stops or None, seed=seed, logprobs=0)

    def generate_texts(self, prompts: list[str], params: GenerationParams,
                       stops: list[list[str]] | None = None,
                       on_result: Callable[[int, int, TextSample], None] | None = None,
                       description: str = "sampling") -> list[list[TextSample]]:
        if stops is None:
            stops = [list(params.stop)] * len(prompts)
        inputs = [{"prompt_token_ids": encode_prompt(self.tokenizer, p)} for p in prompts]
        sps = [self._sampling_params(params, stops[i], params.seed + i) for i in range(len(prompts))]
        with progress_bar(description, None):
            outs = self.llm.generate(inputs, sps, lora_request=self.lora, use_tqdm=False)
        results: list[list[TextSample]] = []
        for i, out in enumerate(outs):
            row = []
            for j, c in enumerate(sorted(out.outputs, key=lambda c: c.index)):
                text, reason = c.text, c.finish_reason or "length"
                if reason == "stop" and c.stop_reason is None:
                    reason = "eos"
                cut = stop_checker(stops[i], params)(text)
                logprob = c.cumulative_logprob
                n_tokens = len(c.token_ids)
                if cut is not None and cut < len(text):
                    text, reason, logprob = text[:cut], "stop", None
                ts = TextSample(text=text, logprob=logprob, n_tokens=n_tokens, finish_reason=reason,
                                token_ids=list(c.token_ids))
                row.append(ts)
                if on_result is not None:
                    on_result(i, j, ts)
            results.append(row)
        return results
