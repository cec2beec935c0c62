"""pass@k with the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
Trained on Code": pass@k = 1 - C(n-c, k) / C(n, k), per problem, then the mean over problems.

The ratio of binomials is computed as a product, prod_{i=n-c+1}^{n} (1 - k/i), which neither
overflows nor loses precision for n in the thousands (C(n, k) itself would).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable

from codeloop.errors import UserError


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes."""
    if n < 0 or c < 0 or k < 1 or c > n:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of samples n={n}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def parse_ks(text: str) -> list[int]:
    """'1,10,100' -> [1, 10, 100] (UserError naming --k otherwise)."""
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated integers, got {text!r}", "--k") from None
    if not ks or any(k < 1 for k in ks):
        raise UserError("every k must be an integer >= 1", "--k")
    return sorted(set(ks))


def _get(r: Any, name: str) -> Any:
    return r[name] if isinstance(r, dict) else getattr(r, name)


def passk_table(results: Iterable[Any], ks: Iterable[int]) -> dict[str, Any]:
    """pass@k per problem and the mean over problems.

    Returns ``{"per_problem": {task_id: {"n", "c", "pass@k"...}}, "mean": {"pass@k": ...},
    "problems": {"pass@k": how many problems the mean is over}, "skipped": {"pass@k": count}}``.
    A problem with fewer than k samples has no pass@k (it is left out of that mean and counted in
    ``skipped``); a k no problem can support has no entry in ``mean``.
    """
    ks = sorted(set(int(k) for k in ks))
    counts: "OrderedDict[str, list[int]]" = OrderedDict()
    for r in results:
        n_c = counts.setdefault(str(_get(r, "task_id")), [0, 0])
        n_c[0] += 1
        n_c[1] += _get(r, "status") == "passed"
    per_problem: dict[str, dict[str, Any]] = {}
    sums = {k: 0.0 for k in ks}
    used = {k: 0 for k in ks}
    for task_id, (n, c) in counts.items():
        row: dict[str, Any] = {"n": n, "c": c}
        for k in ks:
            if k <= n:
                v = pass_at_k(n, c, k)
                row[f"pass@{k}"] = v
                sums[k] += v
                used[k] += 1
        per_problem[task_id] = row
    mean = {f"pass@{k}": sums[k] / used[k] for k in ks if used[k]}
    return {"per_problem": per_problem, "mean": mean,
            "problems": {f"pass@{k}": used[k] for k in ks},
            "skipped": {f"pass@{k}": len(counts) - used[k] for k in ks if used[k] < len(counts)}}
