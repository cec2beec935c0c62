"""The LintSeq comparison's figures: pass@k over k, and over generated tokens (the paper's
test-time compute axis), one panel per benchmark, one line per arm and temperature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeloop.viz import matplotlib_agg, save_figure


def _panels(arms: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    panels: dict[str, list[dict[str, Any]]] = {}
    for a in arms:
        name = f"{a['benchmark']} {a.get('split') or ''}".strip()
        panels.setdefault(name, []).append(a)
    return panels


def _plot(arms: list[dict[str, Any]], path: Path, title: str, tokens: bool) -> Path:
    plt = matplotlib_agg()
    panels = _panels(arms)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels.items()):
        for a in rows:
            if tokens and a["tokens_per_sample"] <= 0:
                continue  # no token counts (e.g. reference solutions): nothing to place on the axis
            ks = sorted(a["passk"])
            xs = [k * a["tokens_per_sample"] for k in ks] if tokens else ks
            label = a["label"] if a.get("temperature") is None else f"{a['label']} (T={a['temperature']})"
            ax.plot(xs, [a["passk"][k] for k in ks], marker="o", markersize=3, label=label)
        ax.set_xscale("log")
        ax.set_xlabel("generated tokens per problem (k x tokens per sample)" if tokens else "k (samples per problem)")
        ax.set_ylabel("pass@k")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + (": pass@k vs test-time tokens" if tokens else ": pass@k"))
    return save_figure(fig, path)


def plot_passk(arms: list[dict[str, Any]], path: Path, title: str = "LintSeq") -> Path:
    """pass@k against k."""
    return _plot(arms, path, title, tokens=False)


def plot_passk_tokens(arms: list[dict[str, Any]], path: Path, title: str = "LintSeq") -> Path:
    """pass@k against the tokens k samples cost (k x mean generated tokens per sample)."""
    return _plot(arms, path, title, tokens=True)
