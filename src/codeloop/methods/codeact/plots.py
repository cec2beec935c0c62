"""CDAS's figures: the IFD histogram with its cut-off, and the clusters with what each kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codeloop.methods.codeact.cdas import is_failed_score
from codeloop.methods.codeact.io import SelectionResult
from codeloop.viz import matplotlib_agg, save_figure

def plot_ifd_histogram(result: SelectionResult, path: str | Path) -> Path | None:
    """IFD of every scored record and of the kept ones; the IFD = 1 cut-off marked."""
    if result.ifd is None:
        return None
    vals = np.array([v for v in result.ifd if not is_failed_score(v)])
    if vals.size == 0:
        return None
    kept = np.array([result.ifd[i] for i, r in enumerate(result.reasons) if r == "kept"])
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bins = np.linspace(min(vals.min(), 0.0), max(vals.max(), 1.05), 31)
    ax.hist(vals, bins=bins, color="#9aa0a6", label=f"all scored ({vals.size})")
    if kept.size:
        ax.hist(kept, bins=bins, color="#1a73e8", label=f"kept ({kept.size})")
    ax.axvline(1.0, color="#b3261e", linestyle="--", linewidth=1, label="IFD = 1 (dropped at or above)")
    ax.set_xlabel("IFD = PPL(answer | question) / PPL(answer)")
    ax.set_ylabel("records")
    ax.set_title(f"{result.stats['method']}: IFD of {len(result.ifd)} records")
    ax.legend(fontsize=8)
    return save_figure(fig, Path(path))


def plot_clusters(result: SelectionResult, path: str | Path) -> Path | None:
    """Left: the instruction embeddings in 2-D (PCA), coloured by cluster, kept ones filled.
    Right: per cluster, how many records were kept, not selected, dropped (IFD >= 1), failed."""
    if result.labels is None or result.embeddings is None or len(result.labels) == 0:
        return None
    emb = np.asarray(result.embeddings, dtype=np.float64)
    labels = np.asarray(result.labels)
    if len(emb) >= 2 and emb.shape[1] >= 2:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(emb)
    else:
        xy = np.zeros((len(emb), 2))
    kept = result.selected_mask()
    plt = matplotlib_agg()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1.2, 1]})
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    colors = [cmap(int(c) % cmap.N) for c in labels]
    ax.scatter(xy[~kept, 0], xy[~kept, 1], facecolors="none", edgecolors=[colors[i] for i in np.where(~kept)[0]],
               s=18, linewidths=0.8)
    ax.scatter(xy[kept, 0], xy[kept, 1], c=[colors[i] for i in np.where(kept)[0]], s=22)
    ax.set_title(f"instruction embeddings (PCA), K={result.stats.get('k_used')}; colour = cluster")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.scatter([], [], facecolors="none", edgecolors="#5f6368", s=18, label="not kept")
    ax.scatter([], [], c="#5f6368", s=22, label="kept")
    ax.legend(fontsize=8)
    pcs = result.stats["per_cluster"]
    xs = np.arange(len(pcs))
    bottom = np.zeros(len(pcs))
    for key, color, label in (("kept", "#1a73e8", "kept"), ("not_selected", "#c6dafc", "not in top m%"),
                              ("dropped_ifd_ge_1", "#f28b82", "IFD >= 1"), ("dropped_failed", "#5f6368", "failed")):
        vals = np.array([p[key] for p in pcs], dtype=float)
        bx.bar(xs, vals, bottom=bottom, color=color, label=label)
        bottom += vals
    bx.set_xticks(xs, [str(p["cluster"]) for p in pcs])
    bx.set_xlabel("cluster")
    bx.set_ylabel("records")
    bx.set_title(f"kept per cluster ({result.stats['kept']} of {result.stats['n_input']})")
    bx.legend(fontsize=8)
    return save_figure(fig, Path(path))
