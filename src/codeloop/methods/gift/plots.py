"""GiFT's figures: per-round progress of the chains, and the perplexity of the kept codes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from codeloop.viz import matplotlib_agg, save_figure

ROUNDS_PNG = "gift_rounds.png"
PPL_PNG = "gift_ppl_hist.png"


def plot_chain(stats: dict[str, Any], kept: list[dict[str, Any]], out_dir: Any) -> list[Path]:
    """gift_rounds.png (share with a pass, distinct codes, description drift per round) and
    gift_ppl_hist.png (perplexity of the kept codes, with the resampling weight curve)."""
    plt = matplotlib_agg()
    out = Path(out_dir)
    per = stats["per_round"]
    xs = [m["round"] for m in per]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, key, title in zip(axes, ("share_with_pass", "distinct_code_share", "description_drift"),
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
    return paths
