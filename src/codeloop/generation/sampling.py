"""Next-token choice from logits without sorting the whole vocabulary.

Gemma's vocabulary has 262,144 entries; a full sort per row per step (what a naive top-p does)
costs more than the rest of the step on a CPU. Here:

- top-k: ``torch.topk`` (a partial selection) and sampling among those k, with top-p applied
  inside them when both are set;
- top-p alone: one linear pass finds a k that surely holds every row's nucleus (a histogram of
  probability mass over logit distance from the maximum), then the same partial selection with
  that k; the result equals a full-sort top-p;
- neither: sampling from the full softmax (linear in the vocabulary, no sort).

All randomness comes from the given ``torch.Generator``: same seed, same inputs, same tokens.
"""

from __future__ import annotations

import torch

_BUCKET = 0.25  # nats
_N_BUCKETS = 160  # 40 nats below the maximum; anything further down shares the last bucket


def _top_p_keep(probs_sorted: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask over descending-sorted candidate probs: the smallest prefix holding >= top_p (at least one)."""
    before = probs_sorted.cumsum(-1) - probs_sorted  # mass strictly before each candidate
    keep = before < top_p
    keep[..., 0] = True
    return keep


def _nucleus_bound(scaled: torch.Tensor, top_p: float) -> int:
    """A k such that every row's top-p nucleus lies within its k largest logits, in O(V).

    Tokens are bucketed by how far (in steps of _BUCKET nats) their logit lies below the row's
    maximum; the mass per bucket (one scatter-add) tells the first bucket depth at which the
    tokens above it hold `top_p`. That set is a top prefix holding >= top_p, so it contains the
    nucleus; k is its largest size over the rows.
    """
    gap = scaled.max(-1, keepdim=True).values - scaled
    bucket = (gap / _BUCKET).long().clamp_(max=_N_BUCKETS - 1)
    probs = torch.softmax(scaled, -1)
    mass = torch.zeros(scaled.shape[0], _N_BUCKETS, dtype=probs.dtype, device=probs.device)
    mass.scatter_add_(1, bucket, probs)
    enough = mass.cumsum(-1) >= top_p - 1e-6
    enough[:, -1] = True
    depth = enough.int().argmax(-1, keepdim=True)  # first bucket where the mass suffices
    return max(1, int((bucket <= depth).sum(-1).max()))


def _draw(weights: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row with probability proportional to `weights` (B, V), by inverse CDF.

    ``torch.multinomial`` costs ~40 ms for 8 rows of 262k on a 2-core CPU (as much as the model's
    forward step); a cumulative sum and a binary search cost ~1 ms. With ``right=True`` the search
    returns the first index whose cumulative weight exceeds u, so a zero-weight index is never
    chosen; u is drawn below the row total, and the rare float rounding that lands on the total
    falls back to the row's last index with weight.
    """
    cdf = weights.float().cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(total.shape, generator=generator, device=weights.device, dtype=cdf.dtype) * total
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    over = idx >= weights.shape[-1]
    if bool(over.any()):
        last = weights.shape[-1] - 1 - (weights.flip(-1) > 0).int().argmax(-1)
        idx = torch.where(over, last, idx)
    return idx


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
        k = _nucleus_bound(scaled, top_p)
        vals, idx = torch.topk(scaled, k, dim=-1)
        probs = torch.softmax(scaled, -1).gather(-1, idx)
        probs = probs * _top_p_keep(probs, top_p)
        return idx.gather(-1, _draw(probs, generator).unsqueeze(-1)).squeeze(-1)
    return _draw(torch.softmax(scaled, -1), generator)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under the model's own (temperature 1) distribution, per row."""
    logits = logits.float()
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
