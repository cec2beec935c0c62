"""The eval page: a paper-style table, a pass@k / status bar chart, and example samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeloop.records import Result
from codeloop.viz import Raw, code_block, img, matplotlib_agg, save_figure, table, write_page


def plot_eval(metrics: dict[str, Any], path: Path) -> Path:
    plt = matplotlib_agg()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ks = list(metrics["pass@k"])
    vals = [metrics["pass@k"][k] for k in ks]
    bars = ax1.bar(ks, vals, color="#1a73e8")
    ax1.bar_label(bars, labels=[f"{v:.3f}" for v in vals])
    ax1.set_ylim(0, 1.05)
    ax1.set_title(f"{metrics['benchmark']} ({metrics['n_problems']} problems)")
    st = metrics["status"]
    colors = {"passed": "#34a853", "failed": "#ea4335", "error": "#c5221f", "timeout": "#fbbc04",
              "memory": "#f29900", "killed": "#9aa0a6"}
    ax2.bar(list(st), list(st.values()), color=[colors.get(k, "#777") for k in st])
    ax2.set_title("sample status")
    return save_figure(fig, path)


def write_eval_page(out: Path, metrics: dict[str, Any], results: list[Result]) -> Path:
    chart = plot_eval(metrics, out / "eval.png")
    ks = list(metrics["pass@k"])
    main = table(["model", "benchmark", "problems", "samples", *ks],
                 [[metrics["model"] + (f" + {metrics['adapter']}" if metrics.get("adapter") else ""),
                   metrics["benchmark"] + (f" ({metrics['split']})" if metrics.get("split") else ""),
                   metrics["n_problems"], metrics["n_samples"], *[metrics["pass@k"][k] for k in ks]]])
    status = table(["status", "samples"], sorted(metrics["status"].items()), cls="")
    passed = [r for r in results if r.passed][:3]
    failed = [r for r in results if not r.passed][:3]
    examples = "".join(code_block(r.code, f"{r.task_id} #{r.sample_id} — {r.detail}"[:120], r.status)
                       for r in passed + failed)
    wall = metrics.get("wall_s", {})
    sections = [
        "<h2>Results</h2>" + main, img(chart, "pass@k and status"),
        "<h2>Status breakdown</h2>" + status,
        f"<p>Tokens generated: {metrics.get('tokens', 0)}; wall time: sampling "
        f"{(wall.get('sample') or 0):.1f} s, execution {(wall.get('execute') or 0):.1f} s.</p>",
        "<h2>Example samples</h2>" + Raw(examples or "<p>none</p>"),
    ]
    return write_page(out / "eval.html", f"codeloop eval — {metrics['benchmark']}",
                      f"model {metrics['model']}", sections)
