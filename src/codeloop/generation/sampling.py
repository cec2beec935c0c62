"""Next-token choice from logits without sorting the whole vocabulary.

Gemma's vocabulary has 262,144 entries; a full sort per row per step (what a naive top-p does)
costs more than the rest of the step on a CPU. Here:

- top-k: ``torch.topk`` (a partial selection) and sampling among those k, with top-p applied
  inside them when both are set;
- top-p alone: the same partial selection with a k that grows (x4) until the kept candidates hold
  at least `top_p` of the probability mass in every row, so the result equals a full-sort top-p;
- neither: sampling from the full softmax (linear in the vocabulary, no sort).

All randomness comes from the given ``torch.Generator``: same seed, same inputs, same tokens.
"""

from __future__ import annotations

import torch

_FIRST_K = 64


def _top_p_keep(probs_sorted: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask over descending-sorted candidate probs: the smallest prefix holding >= top_p (at least one)."""
    before = probs_sorted.cumsum(-1) - probs_sorted  # mass strictly before each candidate
    keep = before < top_p
    keep[..., 0] = True
    return keep


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(weights, 1, generator=generator).squeeze(-1)


def choose_tokens(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token per row of `logits` (B, V): greedy when temperature is 0."""
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits.float() / temperature
    vocab = scaled.shape[-1]
    if top_k and top_k < vocab:
        vals, idx = torch.topk(scaled, top_k, dim=-1)
        probs = torch.softmax(vals, -1)
        if top_p < 1.0:
            probs = probs * _top_p_keep(probs, top_p)
        return idx.gather(-1, _draw(probs, generator).unsqueeze(-1)).squeeze(-1)
    if top_p < 1.0:
        log_z = torch.logsumexp(scaled, -1, keepdim=True)
        k = min(_FIRST_K, vocab)
        while True:
            vals, idx = torch.topk(scaled, k, dim=-1)
            probs = torch.exp(vals - log_z)
            if k >= vocab or bool((probs.sum(-1) >= top_p).all()):
                break
            k = min(k * 4, vocab)
        probs = probs * _top_p_keep(probs, top_p)
        return idx.gather(-1, _draw(probs, generator).unsqueeze(-1)).squeeze(-1)
    return _draw(torch.softmax(scaled, -1), generator)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under the model's own (temperature 1) distribution, per row."""
    logits = logits.float()
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
