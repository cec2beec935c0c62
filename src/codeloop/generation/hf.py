"""The `hf` backend: transformers models on CPU or GPU, sampled in batches of up to ``batch_size``
rows (prompt, sample index). Prompts are sorted by length so a batch pads little, and padded on the
left; a long outlier runs in a smaller batch (`plan_batches`).

How a batch is decoded (``loop="own"``, the default): codeloop's KV-cache decode loop. Each distinct
prompt of a batch is prefilled once and its cache copied to its n rows, and a row that ends leaves the
batch at once, so the rest decode faster. Sampled outputs vary in length (a short function, then one
that runs to the token limit): measured greedy fp32 on 64 MBPP test problems through the coder
model's chat template (mean 127 tokens, max 384), batch 32, own decoded 38.0 tok/s and
``model.generate`` 25.4 (1.5x); an earlier measurement on fixed-length outputs found the two at
parity. ``benchmarks/sampling.py`` compares them on the same prompts.

``loop="generate"`` (or ``CODELOOP_HF_LOOP=generate``) runs ``model.generate`` with two hooks of
codeloop's:

- a logits processor that chooses every next token with ``sampling.choose_tokens`` (temperature,
  top-k, top-p without a full-vocabulary sort, all randomness from one seeded ``torch.Generator``:
  same seed, same samples) and records that token's log-prob under the model's own temperature-1
  distribution; it then leaves only that token possible, so generate's greedy step takes it.
  (``output_scores``/``compute_transition_scores`` would keep a full-vocabulary row per step and
  row: 262k floats each for Gemma; one float per step and row is all a Sample needs.)
- a stopping criterion that decodes each row's new tokens and applies the stop strings (and the
  instruction format's closing code fence) on text, so stops match across token boundaries.

In both loops the model's own generation config (its sampling defaults, repetition penalty, ...) is
set aside: codeloop's settings alone decide, and the recorded log-prob is the raw model's. Greedy
outputs of the two loops are identical (tests/generation/test_generation_loops.py; also checked on
16 MBPP prompts with each embedded model).

Both loops return, per sample, the text up to the stop string (cut at the character, as every
harness does) and the fewest tokens covering it, with their summed log-prob: a token that straddles
the stop counts.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Callable

from codeloop.console import progress_bar
from codeloop.errors import UserError
from codeloop.generation.params import GenerationParams, TextSample
from codeloop.generation.stops import CODE_FENCE, StopChecker
from codeloop.models import encode_prompt, eos_token_ids, load_model, model_label

OnResult = Callable[[int, int, TextSample], None]
LOOPS = ("generate", "own")
LOOP_ENV = "CODELOOP_HF_LOOP"


def stop_checker(stops: list[str], params: GenerationParams) -> StopChecker:
    code_end = params.prompt_format == "instruction" and params.stop_at_code_end
    prefix_open = params.response_prefix.count(CODE_FENCE) % 2 == 1
    return StopChecker(stops, code_end=code_end, prefix_open=prefix_open)


def _base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (whose generate forwards to it)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def _cache_name(model: Any) -> str:
    """The forward keyword for the KV cache: ``cache`` in recent transformers (which warns on the
    old ``past_key_values`` name), ``past_key_values`` before."""
    try:
        sig = inspect.signature(_base_model(model).forward)
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in sig.parameters else "past_key_values"


def plan_batches(row_lengths: list[int], batch_size: int, max_new_tokens: int) -> list[tuple[int, int]]:
    """Split rows (prompt lengths, longest first) into ``[start, end)`` batches of at most
    ``batch_size`` rows and at most as many padded tokens as ``batch_size`` rows of the median prompt.

    A batch is padded to its longest prompt and its KV cache grows with every row, so one outlier
    (MBPP test has a 1,754-token prompt among prompts of ~50) would make 31 short rows pay for it:
    measured, that batch sampled at 7 tok/s where short batches run at 60. The outlier runs with
    fewer rows instead; typical prompts still fill ``batch_size``.
    """
    if not row_lengths:
        return []
    typical = sorted(row_lengths)[len(row_lengths) // 2] + max_new_tokens
    budget = batch_size * typical
    spans, start = [], 0
    while start < len(row_lengths):
        width = row_lengths[start] + max_new_tokens  # rows come longest first: the first sets the width
        size = max(1, min(batch_size, budget // width))
        spans.append((start, min(start + size, len(row_lengths))))
        start += size
    return spans


class HFGenerator:
    """Sampling with an already loaded transformers model (no reload per call)."""

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None, loop: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or model_label(model)
        self.eos_ids = eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.loop = loop or os.environ.get(LOOP_ENV) or "own"
        if self.loop not in LOOPS:
            raise UserError(f"unknown hf decode loop '{self.loop}' (choose one of {', '.join(LOOPS)})",
                            LOOP_ENV if not loop else "loop")
        self._cache_kw = _cache_name(model)

    @classmethod
    def load(cls, model: str = "default", adapter: str | None = None, dtype: str = "auto",
             device: str = "auto", loop: str | None = None) -> "HFGenerator":
        m, tok = load_model(model, dtype=dtype, device=device, adapter=adapter)
        return cls(m, tok, name=model, loop=loop)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def generate_texts(self, prompts: list[str], params: GenerationParams,
                       stops: list[list[str]] | None = None, on_result: OnResult | None = None,
                       description: str = "sampling") -> list[list[TextSample]]:
        """`params.n` continuations of each prompt; ``stops[i]`` are prompt i's stop strings
        (default: ``params.stop`` for every prompt)."""
        import torch

        if stops is None:
            stops = [list(params.stop)] * len(prompts)
        encoded = [encode_prompt(self.tokenizer, p) for p in prompts]
        for i, ids in enumerate(encoded):
            if not ids:  # no BOS and an empty prompt: start from EOS so there is a context
                encoded[i] = [min(self.eos_ids) if self.eos_ids else self.pad_id]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        rows = [(i, j) for i in order for j in range(params.n)]
        results: list[list[TextSample | None]] = [[None] * params.n for _ in prompts]
        gen = torch.Generator(device=self.device).manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), progress_bar(description, len(rows)) as advance:
                row_lengths = [len(encoded[i]) for i, _ in rows]
                for start, end in plan_batches(row_lengths, params.batch_size, params.max_new_tokens):
                    chunk = rows[start:end]
                    run = self._run_batch if self.loop == "own" else self._generate_batch
                    for (i, j), sample in run(chunk, encoded, stops, params, gen):
                        results[i][j] = sample
                        if on_result is not None:
                            on_result(i, j, sample)
                        advance()
        finally:
            if was_training:
                self.model.train()
        return results  # type: ignore[return-value]

    # -----------------------------------------------------------------------------------------

    def _forward(self, ids, mask, pos, cache=None):
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                         **{self._cache_kw: cache})
        return out.logits[:, -1, :], (out.cache if self._cache_kw == "cache" else out.past_key_values)

    def _generate_batch(self, chunk, encoded, stops, params, gen):
        """One batch through ``model.generate`` (see the module docstring)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        dev = self.device
        width = max(len(encoded[i]) for i, _ in chunk)
        ids = torch.tensor([[self.pad_id] * (width - len(encoded[i])) + encoded[i] for i, _ in chunk], device=dev)
        mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i, _ in chunk], device=dev)
        chooser = _Chooser(params, gen)
        ender = _Ender(width, [stop_checker(stops[i], params) for i, _ in chunk], self.eos_ids, self.tokenizer)
        eos = sorted(self.eos_ids) or [self.pad_id]
        # Neutral values for the sampling fields: generate only takes the argmax of what _Chooser leaves.
        config = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                  temperature=1.0, top_p=1.0, top_k=50, repetition_penalty=1.0,
                                  pad_token_id=self.pad_id, eos_token_id=eos,
                                  bos_token_id=getattr(self.tokenizer, "bos_token_id", None))
        base = _base_model(self.model)
        own_config = base.generation_config
        base.generation_config = config  # the model's sampling defaults must not reach the call
        try:
            seqs = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                       logits_processor=LogitsProcessorList([chooser]),
                                       stopping_criteria=StoppingCriteriaList([ender]))
        finally:
            base.generation_config = own_config
        new = seqs[:, width:].tolist()
        lps = torch.stack(chooser.logprobs, 1).tolist() if chooser.logprobs else [[] for _ in chunk]
        for b, (i, j) in enumerate(chunk):
            end = ender.finished[b]
            if end is None:
                yield (i, j), self._finish(new[b], lps[b], None, "length")
            else:
                reason, n, text = end
                yield (i, j), self._finish(new[b][:n], lps[b][:n], text, reason)

    def _run_batch(self, chunk, encoded, stops, params, gen):
        import torch

        from codeloop.generation.sampling import choose_tokens, token_logprobs

        dev = self.device
        uniq = list(dict.fromkeys(i for i, _ in chunk))
        width = max(len(encoded[i]) for i in uniq)
        ids = torch.tensor([[self.pad_id] * (width - len(encoded[i])) + encoded[i] for i in uniq], device=dev)
        mask = torch.tensor([[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in uniq], device=dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(ids, mask, pos)
        # Prefill once per distinct prompt, then copy its cache to each of its rows.
        sel = torch.tensor([uniq.index(i) for i, _ in chunk], device=dev)
        cache.batch_select_indices(sel)
        logits, mask = logits[sel], mask[sel]
        next_pos = mask.sum(-1)

        n_rows = len(chunk)
        active = list(range(n_rows))
        gen_ids: list[list[int]] = [[] for _ in range(n_rows)]
        lps: list[list[float]] = [[] for _ in range(n_rows)]
        checkers = [stop_checker(stops[i], params) for i, _ in chunk]
        done: dict[int, TextSample] = {}

        for step in range(params.max_new_tokens):
            tokens = choose_tokens(logits, params.temperature, params.top_k, params.top_p, gen)
            lp = token_logprobs(logits, tokens).tolist()
            tok_list = tokens.tolist()
            ended: set[int] = set()
            growing = []
            for b, r in enumerate(active):
                t = tok_list[b]
                if t in self.eos_ids:
                    done[r] = self._finish(gen_ids[r], lps[r], None, "eos")
                    ended.add(b)
                    continue
                gen_ids[r].append(t)
                lps[r].append(lp[b])
                growing.append((b, r))
            if growing:
                texts = self.tokenizer.batch_decode([gen_ids[r] for _, r in growing], skip_special_tokens=True,
                                                    clean_up_tokenization_spaces=False)
                for (b, r), text in zip(growing, texts):
                    cut = checkers[r](text)
                    if cut is not None:
                        done[r] = self._finish(gen_ids[r], lps[r], text[:cut], "stop")
                        ended.add(b)
            if step == params.max_new_tokens - 1:
                for b, r in enumerate(active):
                    if b not in ended:
                        done[r] = self._finish(gen_ids[r], lps[r], None, "length")
                break
            keep = [b for b in range(len(active)) if b not in ended]
            if not keep:
                break
            if len(keep) < len(active):
                idx = torch.tensor(keep, device=dev)
                cache.batch_select_indices(idx)
                mask, next_pos, tokens = mask[idx], next_pos[idx], tokens[idx]
                active = [active[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=-1)
            logits, cache = self._forward(tokens.unsqueeze(-1), mask, next_pos.unsqueeze(-1), cache)
            next_pos = next_pos + 1
        del cache
        for r, (i, j) in enumerate(chunk):
            yield (i, j), done[r]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _finish(self, ids: list[int], lps: list[float], text: str | None, reason: str) -> TextSample:
        if text is None:
            return TextSample(text=self._decode(ids), logprob=float(sum(lps)), n_tokens=len(ids),
                              finish_reason=reason, token_ids=list(ids))
        # The text is exactly what precedes the stop string, as every harness cuts it: a token that
        # runs into the stop (Qwen's "))\n\n\n" before "def ") keeps its code characters; dropping
        # the whole token lost the closing brackets of one HumanEval program in two. The tokens
        # (and their log-prob) are the fewest whose text covers it: the straddling token included.
        lo, hi = 0, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(self._decode(ids[:mid])) >= len(text):
                hi = mid
            else:
                lo = mid + 1
        return TextSample(text=text, logprob=float(sum(lps[:lo])), n_tokens=lo, finish_reason=reason,
                          token_ids=list(ids[:lo]))


class _Chooser:
    """generate's logits processor: codeloop's choice of the next token, and its log-prob."""

    def __init__(self, params: GenerationParams, generator: Any):
        self.params, self.generator = params, generator
        self.logprobs: list[Any] = []  # one (rows,) tensor per step

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        from codeloop.generation.sampling import choose_tokens, token_logprobs

        p = self.params
        tokens = choose_tokens(scores, p.temperature, p.top_k, p.top_p, self.generator)
        self.logprobs.append(token_logprobs(scores, tokens))
        only = torch.full_like(scores, float("-inf"))
        return only.scatter_(1, tokens.unsqueeze(-1), 0.0)


class _Ender:
    """generate's stopping criterion: EOS or a stop string on the decoded text, per row.

    ``finished[b]`` is None while row b goes on, then (reason, tokens kept, text or None)."""

    def __init__(self, start: int, checkers: list[StopChecker], eos_ids: set[int], tokenizer: Any):
        self.start, self.checkers, self.eos_ids, self.tokenizer = start, checkers, eos_ids, tokenizer
        self.finished: list[tuple[str, int, str | None] | None] = [None] * len(checkers)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        new = input_ids[:, self.start:]
        n = new.shape[1]
        last = new[:, -1].tolist()
        growing = []
        for b, end in enumerate(self.finished):
            if end is not None:
                continue
            if last[b] in self.eos_ids:
                self.finished[b] = ("eos", n - 1, None)
            else:
                growing.append(b)
        if growing:
            texts = self.tokenizer.batch_decode(new[growing].tolist(), skip_special_tokens=True,
                                                clean_up_tokenization_spaces=False)
            for b, text in zip(growing, texts):
                cut = self.checkers[b](text)
                if cut is not None:
                    self.finished[b] = ("stop", n, text[:cut])
        return torch.tensor([end is not None for end in self.finished], dtype=torch.bool, device=input_ids.device)
