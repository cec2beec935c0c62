"""GiFT's figures and tables: per-round progress of the chains, the resampling's choice, and the
perplexity of the kept codes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from codeloop.records import atomic_write_text
from codeloop.viz import matplotlib_agg, save_figure

ROUNDS_PNG = "gift_rounds.png"
PPL_PNG = "gift_ppl_hist.png"
RESAMPLING_PNG = "gift_resampling.png"
ROUNDS_MD = "gift_rounds.md"


def plot_chain(stats: dict[str, Any], kept: list[dict[str, Any]], out_dir: Any) -> list[Path]:
    """gift_rounds.png (kept codes, share with a pass, distinct codes, description drift per round),
    gift_ppl_hist.png (perplexity of the kept codes) and, when the stats carry them,
    gift_resampling.png (candidates and effective candidates per problem)."""
    plt = matplotlib_agg()
    out = Path(out_dir)
    per = stats["per_round"]
    xs = [m["round"] for m in per]
    kept_per_round = stats.get("kept_per_round") or [sum(1 for k in kept if k["round"] == x) for x in xs]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    axes[0].bar(xs, kept_per_round, color="#1a73e8", alpha=0.85, label="this round")
    cum = [sum(kept_per_round[:i + 1]) for i in range(len(kept_per_round))]
    axes[0].plot(xs, cum, marker="o", color="#b3261e", label="so far")
    axes[0].set_title("kept codes", fontsize=9)
    axes[0].set_xlabel("round")
    axes[0].legend(fontsize=7)
    for ax, key, title in zip(axes[1:], ("share_with_pass", "distinct_code_share", "description_drift"),
                              ("problems with >= 1 passing code", "distinct codes / sampled",
                               "description drift (1 - word Jaccard)")):
        ax.plot(xs, [m.get(key) or 0.0 for m in per], marker="o", color="#1a73e8")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylim(0, 1.05)
    paths = [save_figure(fig, out / ROUNDS_PNG)]
    ppls = [k["ppl"] for k in kept if k.get("ppl") is not None and math.isfinite(k["ppl"])]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(ppls, bins=min(40, max(5, len(ppls) // 2)), color="#1a73e8", alpha=0.85)
    ax.set_xlabel("perplexity of kept code | its description")
    ax.set_ylabel("codes")
    ax.set_title(f"kept codes ({len(ppls)}); resampling ∝ exp({stats.get('resample_temperature', '')} · PPL)"
                 if ppls else "no kept codes")
    paths.append(save_figure(fig, out / PPL_PNG))
    rs = stats.get("resampling")
    if rs is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        for ax, key, title in zip(axes, ("candidates_per_problem", "effective_candidates_per_problem"),
                                  ("kept codes per problem", "effective candidates per problem (1 / Σ w²)")):
            vals = rs.get(key) or []
            ax.hist(vals, bins=min(30, max(5, len(vals) // 2)), color="#1a73e8", alpha=0.85)
            ax.axvline(1.0, color="#b3261e", lw=1)  # 1: nothing to choose between
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("problems")
        fig.suptitle(f"resampling ({rs.get('weighting')}, k={rs.get('k')}): {rs.get('problems_with_choice', 0)} of "
                     f"{rs.get('problems_with_candidates', 0)} problems had >= 2 distinct codes", fontsize=9)
        paths.append(save_figure(fig, out / RESAMPLING_PNG))
    return paths


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def rounds_table(stats: dict[str, Any], title: str = "GiFT chains") -> str:
    """Markdown: one row per round (kept codes, pass share, diversity, drift, fallbacks), the
    resampling's choice, and the training set's make-up."""
    lines = [f"## {title}", ""]
    per = stats.get("per_round") or []
    if per:
        kpr = stats.get("kept_per_round") or [m.get("problems_with_pass", 0) for m in per]
        lines += ["| round | active chains | kept codes | kept so far | share with a pass | distinct codes / sampled "
                  "| description drift | mean PPL of kept | no-pass fallbacks |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        total = 0
        for m, k in zip(per, kpr):
            total += k
            fb = ", ".join(f"{a} {b}" for a, b in sorted((m.get("fallbacks") or {}).items())) or "—"
            lines.append(f"| {m['round']} | {m.get('active', '—')} | {k} | {total} | {_f(m.get('share_with_pass'))} | "
                         f"{_f(m.get('distinct_code_share'))} | {_f(m.get('description_drift'))} | "
                         f"{_f(m.get('kept_ppl_mean'))} | {fb} |")
        lines.append("")
    rs = stats.get("resampling")
    if rs:
        lines += [f"### Resampling ({rs['weighting']}, k={rs['k']}"
                  + (f", T={rs['resample_temperature']}" if rs["weighting"] == "ppl-softmax" else "") + ")", "",
                  "| | |", "|---|---:|",
                  f"| problems with >= 1 kept code | {rs['problems_with_candidates']} of {stats.get('problems', '—')} |",
                  f"| problems with >= 2 distinct kept codes (a choice) | {rs['problems_with_choice']} |",
                  f"| kept codes per problem (mean / max) | {_f(rs['candidates_mean'], 2)} / {rs['candidates_max']} |",
                  f"| distinct kept codes per problem (mean) | {_f(rs['distinct_candidates_mean'], 2)} |",
                  f"| effective candidates per problem, 1 / Σ w² (mean) | {_f(rs['effective_candidates_mean'], 2)} |",
                  f"| largest weight per problem (mean) | {_f(rs['top_weight_mean'])} |",
                  f"| distinct codes drawn per problem (mean) | {_f(rs['distinct_drawn_mean'], 2)} |",
                  f"| draws from round 0 (the original description) | {rs['drawn_from_round0']} of {rs['drawn']} |", ""]
    if "gold_records" in stats:
        lines += [f"### Training set ({stats.get('train_set')})", "",
                  "| gold solutions | resampled codes | records |", "|---:|---:|---:|",
                  f"| {stats['gold_records']} | {stats['resampled_records']} | {stats['records']} |", ""]
    return "\n".join(lines)


def write_rounds_table(stats: dict[str, Any], out_dir: Any, name: str = ROUNDS_MD, title: str = "GiFT chains") -> Path:
    path = Path(out_dir) / name
    atomic_write_text(path, rounds_table(stats, title) + "\n")
    return path
