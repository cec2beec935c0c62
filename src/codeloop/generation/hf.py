"""The `hf` backend: transformers models on CPU or GPU with codeloop's own KV-cache decode loop.

Why not ``model.generate``: we need, per sample, the summed log-prob of exactly the kept tokens
(after stop-string trimming) under the model's own distribution, stop strings checked on decoded
text, top-p without a full-vocabulary sort, and finished rows leaving the batch. ``generate``
gives processed scores for every step (262k floats per row per step for Gemma) and keeps
finished rows in the batch until the last one ends.

Batching: a batch is up to ``batch_size`` rows (prompt, sample index). Prompts are sorted by
length so a batch pads little; each distinct prompt in a batch is prefilled once and its KV cache
is copied to its n rows. Padding is on the left, with position ids counted from each row's first
real token. A row that ends (EOS, stop string, length) is dropped from the cache and the batch.
"""

from __future__ import annotations

from typing import Any, Callable

from codeloop.console import progress_bar
from codeloop.generation.params import GenerationParams, TextSample
from codeloop.generation.stops import CODE_FENCE, StopChecker
from codeloop.models import encode_prompt, eos_token_ids, load_model, model_label

OnResult = Callable[[int, int, TextSample], None]


def stop_checker(stops: list[str], params: GenerationParams) -> StopChecker:
    code_end = params.prompt_format == "instruction" and params.stop_at_code_end
    prefix_open = params.response_prefix.count(CODE_FENCE) % 2 == 1
    return StopChecker(stops, code_end=code_end, prefix_open=prefix_open)


class HFGenerator:
    """Sampling with an already loaded transformers model (no reload per call)."""

    backend = "hf"

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or model_label(model)
        self.eos_ids = eos_token_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)

    @classmethod
    def load(cls, model: str = "default", adapter: str | None = None, dtype: str = "auto",
             device: str = "auto") -> "HFGenerator":
        m, tok = load_model(model, dtype=dtype, device=device, adapter=adapter)
        return cls(m, tok, name=model)

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
                for start in range(0, len(rows), params.batch_size):
                    chunk = rows[start:start + params.batch_size]
                    for (i, j), sample in self._run_batch(chunk, encoded, stops, params, gen):
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
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :], out.past_key_values

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
        # Keep the tokens whose text lies inside the trimmed text (the largest k with
        # len(decode(ids[:k])) <= len(text)) and return exactly their text, so that text,
        # n_tokens and logprob describe the same tokens. A token that runs into the stop string
        # (e.g. "\n\n\n" before "def ") is dropped whole.
        lo, hi = 0, len(ids)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(self._decode(ids[:mid])) <= len(text):
                lo = mid
            else:
                hi = mid - 1
        return TextSample(text=self._decode(ids[:lo]), logprob=float(sum(lps[:lo])), n_tokens=lo,
                          finish_reason=reason,
                          token_ids=list(ids[:lo]))
