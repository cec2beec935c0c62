"""The LintSeq paper's comparison of a LintSeq arm and a plain arm, from their evaluations' results:

- pass@k for every k up to the samples per problem (the unbiased estimator, mean over problems);
- pass@k against generated tokens: k samples cost k x (mean generated tokens per sample), the
  paper's test-time FLOPs axis for one model size (FLOPs ~ 2 x parameters x tokens);
- malformed outputs of the edit arm: samples with a hunk that did not parse or apply;
- distinct correct programs per problem (diversity among the passing samples).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from codeloop.execution.passk import pass_at_k
from codeloop.records import atomic_write_text, normalized_code

REPORT_KS = (1, 2, 5, 10, 20)
STEP_TOLERANCE = 0.05  # the arms' optimizer steps may differ by rejected edit sequences only


def _get(r: Any, name: str, default: Any = None) -> Any:
    return r.get(name, default) if isinstance(r, dict) else getattr(r, name, default)


def passk_curve(results: Iterable[Any]) -> dict[int, float]:
    """k -> mean pass@k over the problems with at least k samples, for k = 1 .. the most samples."""
    per: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per[str(_get(r, "task_id"))].append(_get(r, "status") == "passed")
    if not per:
        return {}
    top = max(len(v) for v in per.values())
    curve = {}
    for k in range(1, top + 1):
        vals = [pass_at_k(len(v), sum(v), k) for v in per.values() if len(v) >= k]
        curve[k] = sum(vals) / len(vals)
    return curve


def malformed_counts(results: Iterable[Any]) -> dict[str, int] | None:
    """Samples of an edit arm whose output had a malformed or misplaced hunk, and those with no
    hunk at all; None for an arm without decoded edits."""
    decoded = [(_get(r, "extra") or {}).get("decode") for r in results]
    decoded = [d for d in decoded if d is not None]
    if not decoded:
        return None
    return {"samples": len(decoded), "malformed": sum(1 for d in decoded if d.get("hunks_malformed", 0) > 0),
            "no_hunk": sum(1 for d in decoded if d.get("hunks_applied", 0) == 0),
            "hunks_malformed": sum(int(d.get("hunks_malformed", 0)) for d in decoded)}


def distinct_correct(results: Iterable[Any]) -> dict[str, float]:
    """Distinct passing programs per problem (code compared as `normalized_code`): the mean over all
    problems and over the solved ones."""
    per: dict[str, set[str]] = defaultdict(set)
    problems: set[str] = set()
    for r in results:
        task = str(_get(r, "task_id"))
        problems.add(task)
        if _get(r, "status") == "passed":
            per[task].add(normalized_code(_get(r, "code") or _get(r, "completion") or ""))
    counts = [len(per[t]) for t in problems]
    solved = [c for c in counts if c]
    return {"per_problem": sum(counts) / len(counts) if counts else 0.0,
            "per_solved_problem": sum(solved) / len(solved) if solved else 0.0}


def arm_summary(label: str, metrics: dict[str, Any], results: list[Any], train_steps: int | None = None) -> dict[str, Any]:
    """One evaluation's row of the comparison."""
    # The sampling settings as the samples recorded them: a step's metrics may not repeat them.
    params = (_get(results[0], "params") or {}) if results else {}
    config = {**params, **(metrics.get("config") or {})}
    tokens = [int(_get(r, "n_tokens") or 0) for r in results]
    return {"label": label, "benchmark": metrics.get("benchmark"), "split": metrics.get("split"),
            "temperature": config.get("temperature"), "n": config.get("n"),
            "problems": metrics.get("n_problems", metrics.get("problems")), "samples": len(results),
            "train_steps": train_steps,
            "passk": passk_curve(results), "tokens_per_sample": sum(tokens) / len(tokens) if tokens else 0.0,
            "malformed": malformed_counts(results), "distinct_correct": distinct_correct(results)}


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def report_markdown(arms: list[dict[str, Any]], title: str) -> str:
    top = max((max(a["passk"], default=0) for a in arms), default=0)
    ks = [k for k in REPORT_KS if k <= top] or [1]
    head = (["arm", "benchmark", "T", "n"] + [f"pass@{k}" for k in ks]
            + ["tokens/sample", "malformed samples", "distinct correct / problem", "train steps"])
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in arms:
        mal = a["malformed"]
        mal_text = "—" if mal is None else f"{mal['malformed']}/{mal['samples']} ({mal['malformed'] / max(1, mal['samples']):.1%})"
        row = [a["label"], f"{a['benchmark']} {a['split'] or ''}".strip(), _fmt(a["temperature"], 1), _fmt(a["n"])]
        row += [_fmt(a["passk"].get(k)) for k in ks]
        row += [f"{a['tokens_per_sample']:.1f}", mal_text, f"{a['distinct_correct']['per_problem']:.2f}",
                _fmt(a["train_steps"])]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "pass@k: unbiased estimator, mean over problems. tokens/sample: generated tokens per sample "
              "(the pass@k-vs-tokens plot puts k samples at k x this). malformed samples: edit-arm outputs with "
              "at least one hunk that did not parse or did not fit the program (skipped when decoding). "
              "distinct correct: distinct passing programs per problem (mean over all problems)."]
    steps = {a["train_steps"] for a in arms if a["train_steps"]}
    if steps and (max(steps) - min(steps)) > STEP_TOLERANCE * max(steps):
        lines += ["", f"**The arms were not trained for equal optimizer steps** ({', '.join(map(str, sorted(steps)))}): "
                  "the paper compares them at equal steps (plain epochs = LintSeq epochs x s)."]
    return "\n".join(lines) + "\n"


def write_report(arms: list[dict[str, Any]], out: Path, title: str) -> dict[str, Any]:
    """report.md, report.json and the two plots in `out`; the step's metrics."""
    from codeloop.methods.lintseq.plots import plot_passk, plot_passk_tokens

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", report_markdown(arms, title))
    atomic_write_text(out / "report.json", json.dumps(arms, indent=2) + "\n")
    plot_passk(arms, out / "passk.png", title)
    plot_passk_tokens(arms, out / "passk_tokens.png", title)
    return {"arms": [{"label": a["label"], "pass@1": a["passk"].get(1), "malformed": a["malformed"],
                      "distinct_correct": a["distinct_correct"]["per_problem"]} for a in arms]}
