"""Comparing two evaluations of the same problems: flips, pass@k deltas, paired bootstrap CIs.

Definitions (stated so users can check them):
- Both evaluations are restricted to the task_ids they share.
- Per problem, pass@k is the unbiased estimator of each run; the delta of a run pair is
  mean_B(pass@k) - mean_A(pass@k) over the shared problems.
- Paired bootstrap: draw the shared problems with replacement (`resamples` times, seeded), take the
  mean per-problem difference of each draw; the CI is the (alpha/2, 1-alpha/2) percentile interval.
  Pairing by problem removes problem difficulty from the noise, which is why it is much tighter
  than comparing two independent intervals.
- A problem is "solved" by a run when at least one of its samples passed (for greedy n=1 runs this
  is pass@1). Flips: solved by A only (regressions) and by B only (improvements).
- McNemar's exact test on the flips: two-sided binomial p-value of min(b, c) under p=1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codeloop.execution.passk import pass_at_k


@dataclass
class ProblemCounts:
    n: int
    c: int


@dataclass
class Comparison:
    n_problems: int
    only_a: list[str] = field(default_factory=list)  # solved by A, not by B (regressions)
    only_b: list[str] = field(default_factory=list)  # solved by B, not by A (improvements)
    deltas: dict[str, dict[str, float]] = field(default_factory=dict)  # pass@k -> stats
    mcnemar_p: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"n_problems": self.n_problems, "only_a": self.only_a, "only_b": self.only_b,
                "deltas": self.deltas, "mcnemar_p": self.mcnemar_p}


def counts_from_results(results: list[dict[str, Any]]) -> dict[str, ProblemCounts]:
    """Per task_id: number of samples and number that passed."""
    out: dict[str, ProblemCounts] = {}
    for r in results:
        pc = out.setdefault(str(r["task_id"]), ProblemCounts(0, 0))
        pc.n += 1
        pc.c += r.get("status") == "passed"
    return out


def paired_bootstrap(diffs: np.ndarray, resamples: int = 10_000, alpha: float = 0.05,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of per-problem paired differences."""
    if len(diffs) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    return (float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2)))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare_counts(a: dict[str, ProblemCounts], b: dict[str, ProblemCounts], ks: list[int],
                   resamples: int = 10_000, alpha: float = 0.05, seed: int = 0) -> Comparison:
    shared = sorted(set(a) & set(b))
    cmp = Comparison(n_problems=len(shared))
    solved_a = {t for t in shared if a[t].c > 0}
    solved_b = {t for t in shared if b[t].c > 0}
    cmp.only_a = sorted(solved_a - solved_b)
    cmp.only_b = sorted(solved_b - solved_a)
    cmp.mcnemar_p = mcnemar_exact(len(cmp.only_a), len(cmp.only_b))
    for k in ks:
        usable = [t for t in shared if a[t].n >= k and b[t].n >= k]
        if not usable:
            continue
        pa = np.array([pass_at_k(a[t].n, a[t].c, k) for t in usable])
        pb = np.array([pass_at_k(b[t].n, b[t].c, k) for t in usable])
        lo, hi = paired_bootstrap(pb - pa, resamples, alpha, seed)
        cmp.deltas[f"pass@{k}"] = {"a": float(pa.mean()), "b": float(pb.mean()),
                                   "delta": float((pb - pa).mean()), "ci_low": lo, "ci_high": hi,
                                   "n_problems": len(usable)}
    return cmp
