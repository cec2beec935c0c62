"""The run report: `runs/NAME/report.html` and `report.md`, built only from what the stages wrote.

Sections: headline (pass@1 before -> after), configuration, stages (counts, timings), pass@k with
95% confidence intervals and paired deltas against the baseline evaluation, the trained arms
head to head (paired deltas and McNemar between every two trained evals), training curves,
data plots (sample scores, pair distances), and example samples rendered as code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from codeloop.errors import UserError
from codeloop.records import atomic_write_text, iter_jsonl
from codeloop.rundir import RunDir, StageDir
from codeloop.viz import Raw, code_block, esc, img, matplotlib_agg, save_figure, table, write_page


# Stages whose folders hold an evaluation (samples + results + pass@k metrics): the report compares them.
EVAL_TYPES = ("eval", "lintseq_eval")
# pass@k values a head-to-head reports, where both arms drew at least k samples of every shared problem.
DUEL_KS = (1, 2, 5, 10, 20, 100)


def _stage_type(stage: StageDir) -> str:
    return str(stage.metrics().get("_type") or (yaml.safe_load((stage.path / "config.yaml").read_text()) or {})
               .get("type", "?"))


def _eval_counts(stage: StageDir) -> dict[str, Any]:
    """Samples and passes per problem of an eval stage."""
    from codeloop.evaluation.compare import counts_from_results
    from codeloop.evaluation.load import load_eval_results

    return counts_from_results(load_eval_results(stage.path))


def _bootstrap_ci(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    from codeloop.evaluation.compare import paired_bootstrap

    return paired_bootstrap(values, resamples=5000, seed=seed)


def stages_in_recipe_order(run: RunDir) -> list[StageDir]:
    """The run's stages in the order the recipe lists them (folders sort by name, recipes do not)."""
    f = run.root / "recipe.yaml"
    names = [s.get("name") for s in (yaml.safe_load(f.read_text()) or {}).get("stages", [])] if f.exists() else []
    rank = {n: i for i, n in enumerate(names)}
    return sorted(run.stages(), key=lambda s: (rank.get(s.path.name, len(rank)), s.path.name))


def eval_rows(run: RunDir) -> list[dict[str, Any]]:
    """One row per eval stage: pass@k, CI of pass@1, the paired delta against the baseline, and the
    per-problem counts (read once here; the head-to-head comparisons reuse them)."""
    rows: list[dict[str, Any]] = []
    baselines: dict[tuple[str, Any], tuple[str, dict[str, float]]] = {}
    for stage in stages_in_recipe_order(run):
        if _stage_type(stage) not in EVAL_TYPES or not stage.done:
            continue
        m = stage.metrics()
        counts = _eval_counts(stage)
        per = {t: pc.c / pc.n for t, pc in counts.items()}  # pass@1 per problem
        vals = np.array(list(per.values()))
        lo, hi = _bootstrap_ci(vals)
        sampling = _sampling(stage)
        # Only evaluations sampled the same way compare: a greedy baseline says nothing of a T=0.8 arm.
        key = (m.get("benchmark"), m.get("split"), sampling)
        row = {"stage": stage.path.name, "benchmark": m.get("benchmark"), "split": m.get("split"),
               "sampling": sampling,
               "adapter_from": m.get("adapter_from"), "problems": m.get("problems"),
               "pass@k": m.get("pass@k", {}), "ci": (lo, hi), "delta": None, "counts": counts}
        if not m.get("adapter_from"):
            baselines.setdefault(key, (stage.path.name, per))
        elif key in baselines:
            base_name, base = baselines[key]
            shared = sorted(set(base) & set(per))
            diffs = np.array([per[t] - base[t] for t in shared])
            dlo, dhi = _bootstrap_ci(diffs)
            row["delta"] = {"vs": base_name, "delta": float(diffs.mean()) if len(diffs) else 0.0,
                            "ci": (dlo, dhi), "shared": len(shared)}
        rows.append(row)
    return rows


def _sampling(stage: StageDir) -> str:
    """How an eval stage sampled, from its recorded settings: 'greedy' or 'T=0.8 n=20'."""
    f = stage.path / "config.yaml"
    saved = (yaml.safe_load(f.read_text()) or {}) if f.exists() else {}
    raw = saved.get("settings") or saved.get("stage") or {}
    from codeloop.evaluation.harness import EvalConfig

    t = float(raw.get("temperature", EvalConfig.temperature))
    return "greedy" if t == 0 else f"T={t:g} n={int(raw.get('n', EvalConfig.n))}"


def _win_class(delta: dict[str, Any]) -> str:
    """A delta is coloured a win (or a loss) only when its 95% CI excludes 0."""
    lo, hi = delta["ci"]
    return "good" if lo > 0 else "bad" if hi < 0 else ""


def head_to_head(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired comparisons between the trained arms of a recipe (e.g. GiFT vs self-training): every
    two evals of trained models on the same benchmark and split, the earlier one as A. The deltas
    vs base answer "did training help"; these answer "which method helped more"."""
    from codeloop.evaluation.compare import compare_counts

    arms = [r for r in rows if r["adapter_from"]]
    out = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            if (a["benchmark"], a["split"], a["sampling"]) != (b["benchmark"], b["split"], b["sampling"]):
                continue
            cmp = compare_counts(a["counts"], b["counts"], _duel_ks(a, b), resamples=5000)
            out.append({"a": a["stage"], "b": b["stage"], **cmp.to_dict()})
    return out


def _duel_ks(a: dict[str, Any], b: dict[str, Any]) -> list[int]:
    """The k of two evals' pass@k metrics, and every k of DUEL_KS both can estimate (n >= k samples on
    each problem): a step that only recorded pass@1 from 20 samples still gets pass@20 compared."""
    named = {int(k.split("@")[1]) for k in a["pass@k"]} & {int(k.split("@")[1]) for k in b["pass@k"]}
    shared = a["counts"].keys() & b["counts"].keys()
    least = min((min(a["counts"][t].n, b["counts"][t].n) for t in shared), default=1)
    return sorted(named | {k for k in DUEL_KS if k <= least}) or [1]


def _plot_evals(rows: list[dict[str, Any]], path: Path) -> Path | None:
    if not rows:
        return None
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows)), 3.4))
    names = [r["stage"] for r in rows]
    vals = [r["pass@k"].get("pass@1", 0.0) for r in rows]
    err = np.array([[v - r["ci"][0] for v, r in zip(vals, rows)], [r["ci"][1] - v for v, r in zip(vals, rows)]])
    colors = ["#9aa0a6" if not r["adapter_from"] else "#1a73e8" for r in rows]
    bars = ax.bar(names, vals, yerr=np.clip(err, 0, None), capsize=4, color=colors)
    ax.bar_label(bars, labels=[f"{v:.3f}" for v in vals], padding=2)
    ax.set_ylabel("pass@1 (95% CI)")
    ax.set_ylim(0, min(1.05, max(vals + [0.05]) * 1.5 + 0.05))
    ax.set_title("pass@1 per evaluation (grey: base model)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return save_figure(fig, path)


def _training_log(stage: StageDir) -> list[dict[str, Any]]:
    f = stage.path / "metrics.jsonl"
    return [r for _, r in iter_jsonl(f)] if f.exists() else []


CURVE_KEYS = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")


def _plot_training(stages: list[StageDir], path: Path) -> Path | None:
    logs = {s.path.name: _training_log(s) for s in stages}
    logs = {k: v for k, v in logs.items() if any("loss" in r for r in v)}
    if not logs:
        return None
    keys = [k for k in CURVE_KEYS if any(k in r for v in logs.values() for r in v)]
    plt = matplotlib_agg()
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, log in logs.items():
            pts = [(r.get("step", i), r[key]) for i, r in enumerate(log) if key in r and "train_runtime" not in r]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_title(key)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=8)
    return save_figure(fig, path)


def _plot_scores(stage: StageDir, path: Path) -> Path | None:
    results = StageDir(stage.path / "results")
    rows = results.records() if results.path.exists() else []
    if not rows:
        return None
    scores = [(r["passed_tests"] / r["total_tests"]) if r.get("total_tests") else float(r["status"] == "passed")
              for r in rows]
    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(scores, bins=np.linspace(0, 1, 11), color="#34a853")
    ax.set_xlabel("fraction of tests passed")
    ax.set_ylabel("samples")
    ax.set_title(f"best-of-N sample scores ({len(scores)} samples)")
    return save_figure(fig, path)


def _pair_examples(stage: StageDir, k: int = 2) -> str:
    f = stage.path / "pairs.jsonl"
    if not f.exists():
        return ""
    out = []
    for i, (_, p) in enumerate(iter_jsonl(f)):
        if i >= k:
            break
        d = p.get("distance")
        head = f"{p['task_id']} — distance {d:.2f}" if isinstance(d, (int, float)) else p["task_id"]
        out.append(code_block(p["prompt"] + p["chosen"], f"chosen ({head})", p.get("chosen_status") or "passed"))
        out.append(code_block(p["prompt"] + p["rejected"], f"rejected ({head})", p.get("rejected_status") or "failed"))
    return "".join(out)


def _eval_examples(stage: StageDir, k: int = 2) -> str:
    results = StageDir(stage.path / "results")
    if not results.path.exists():
        return ""
    rows = results.records()
    picked = [r for r in rows if r["status"] == "passed"][:k] + [r for r in rows if r["status"] != "passed"][:k]
    return "".join(code_block(r.get("code", ""), f"{r['task_id']} — {r.get('detail', '')}"[:100], r["status"])
                   for r in picked)


def _fmt_ci(ci: tuple[float, float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def write_report(root: str | Path) -> Path:
    """Build report.html (+ PNGs) and report.md for the run at `root`."""
    root = Path(root)
    if not (root / "recipe.yaml").exists():
        raise UserError("not a codeloop run folder (no recipe.yaml)", str(root))
    run = RunDir(root)
    stages = stages_in_recipe_order(run)
    recipe_text = (root / "recipe.yaml").read_text()
    evals = eval_rows(run)
    sections: list[str] = []
    md: list[str] = [f"# codeloop run — {root.name}", ""]

    # headline
    after = [r for r in evals if r["delta"]]
    if after:
        lines = []
        for r in after:
            base = next(e for e in evals if e["stage"] == r["delta"]["vs"])
            lines.append(f"{r['benchmark']}: pass@1 {base['pass@k'].get('pass@1', 0):.3f} → "
                         f"{r['pass@k'].get('pass@1', 0):.3f} ({r['stage']}, Δ {r['delta']['delta']:+.3f}, "
                         f"95% CI {_fmt_ci(r['delta']['ci'])})")
        sections.append("<h2>Headline</h2><ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>")
        md += ["## Headline", *[f"- {x}" for x in lines], ""]

    # stages
    stage_rows = []
    for s in stages:
        m = s.metrics()
        counts = ", ".join(f"{k}={v}" for k, v in m.items()
                           if not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool))[:120]
        stage_rows.append([s.path.name, _stage_type(s), "done" if s.done else "incomplete",
                           f"{m.get('_wall_s', 0):.1f}", counts])
    sections.append("<h2>Stages</h2>" + table(["stage", "type", "state", "wall s", "counts"], stage_rows))
    md += ["## Stages", "", "| stage | type | state | wall s | counts |", "|---|---|---|---|---|",
           *[f"| {' | '.join(str(c) for c in r)} |" for r in stage_rows], ""]

    # pass@k
    if evals:
        ks = sorted({k for r in evals for k in r["pass@k"]}, key=lambda x: int(x.split("@")[1]))
        rows = []
        for r in evals:
            delta = (Raw(f"<span class='{_win_class(r['delta'])}'>"
                         f"{r['delta']['delta']:+.3f}</span> {_fmt_ci(r['delta']['ci'])}")
                     if r["delta"] else "—")
            rows.append([r["stage"], f"{r['benchmark']}" + (f" ({r['split']})" if r["split"] else "")
                         + f", {r['sampling']}",
                         r["adapter_from"] or "base", r["problems"], *[r["pass@k"].get(k, float("nan")) for k in ks],
                         _fmt_ci(r["ci"]), delta])
        chart = _plot_evals(evals, root / "report_passk.png")
        sections.append("<h2>pass@k</h2>" + table(["eval", "benchmark", "model", "problems", *ks,
                                                   "pass@1 95% CI", "Δ pass@1 vs base (95% CI)"], rows)
                        + (img(chart, "pass@1 per evaluation") if chart else ""))
        md += ["## pass@k", "", f"| eval | benchmark | model | problems | {' | '.join(ks)} | pass@1 95% CI | Δ vs base |",
               "|---" * (6 + len(ks)) + "|"]
        for r, row in zip(evals, rows):
            d = f"{r['delta']['delta']:+.3f} {_fmt_ci(r['delta']['ci'])}" if r["delta"] else "—"
            md.append("| " + " | ".join([str(c) if not isinstance(c, float) else f"{c:.3f}" for c in row[:-1]] + [d]) + " |")
        md += ["", "![pass@1](report_passk.png)", ""]

    # trained arms against each other
    duels = head_to_head(evals)
    if duels:
        rows = [[d["a"], d["b"], k, f"{v['a']:.3f}", f"{v['b']:.3f}", f"{v['delta']:+.3f}",
                 _fmt_ci((v["ci_low"], v["ci_high"])), f"+{len(d['only_b'])} / -{len(d['only_a'])}",
                 f"{d['mcnemar_p']:.3g}"]
                for d in duels for k, v in d["deltas"].items()]
        head = ["A", "B", "metric", "A", "B", "B − A", "95% CI (paired bootstrap)", "problems solved: B only / A only",
                "McNemar p"]
        sections.append("<h2>Trained arms, head to head</h2>" + table(head, rows))
        md += ["## Trained arms, head to head", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|",
               *["| " + " | ".join(r) + " |" for r in rows], ""]

    # training curves
    train_stages = [s for s in stages if _stage_type(s).startswith("train")]
    curves = _plot_training(train_stages, root / "report_training.png")
    if curves:
        sections.append("<h2>Training</h2>" + img(curves, "training curves"))
        md += ["## Training", "", "![training](report_training.png)", ""]

    # data
    data_parts = []
    for s in stages:
        t = _stage_type(s)
        if t == "pairs":
            p = _plot_scores(s, root / f"report_scores_{s.path.name}.png")
            if p:
                data_parts.append(img(p, "sample scores"))
                md.append(f"![scores]({p.name})")
        if t in EVAL_TYPES:
            continue  # eval charts are summarised in the pass@k section
        for png in sorted(s.path.glob("*.png")):  # each method stage's own plots (distances, IFD, chains)
            data_parts.append(f"<h3>{esc(s.path.name)} — {esc(png.stem.replace('_', ' '))}</h3>" + img(png, png.stem))
            md.append(f"![{png.stem}]({s.path.name}/{png.name})")
        for table_md in sorted(s.path.glob("*.md")):  # e.g. the CodeACT table
            data_parts.append(f"<h3>{esc(s.path.name)} — {esc(table_md.name)}</h3><pre>{esc(table_md.read_text())}</pre>")
            md += ["", table_md.read_text(), ""]
    if data_parts:
        sections.append("<h2>Data</h2>" + "".join(data_parts))

    # examples
    ex = []
    for s in stages:
        t = _stage_type(s)
        if t in ("pairs", "curriculum") and not ex:
            ex.append(f"<h3>pairs from {esc(s.path.name)}</h3>" + _pair_examples(s))
    for s in stages:
        if _stage_type(s) in EVAL_TYPES:
            ex.append(f"<h3>samples from {esc(s.path.name)}</h3>" + _eval_examples(s))
    if ex:
        sections.append("<h2>Examples</h2>" + "".join(ex))

    sections.append("<h2>Configuration</h2><pre>" + esc(recipe_text) + "</pre>")
    md += ["## Configuration", "", "```yaml", recipe_text.rstrip(), "```", ""]
    atomic_write_text(root / "report.md", "\n".join(md))
    return write_page(root / "report.html", f"codeloop run — {root.name}", f"{root.resolve()}", sections)


def report_summary(root: str | Path) -> dict[str, Any]:
    """The numbers a command prints at the end: pass@1 before/after per benchmark."""
    rows = eval_rows(RunDir(root))
    return {"evals": [{"stage": r["stage"], "pass@1": r["pass@k"].get("pass@1"), "delta": r["delta"]} for r in rows]}


def dumps_summary(root: str | Path) -> str:
    return json.dumps(report_summary(root), indent=2, default=str)


# -------------------------------------------------------------------------------------------------
# A sweep (`codeloop run RECIPE seed=0,1,2`): the runs pooled

def sweep_summary(runs: dict[str, Path], resamples: int = 5000) -> dict[str, Any]:
    """Pool the eval stages of a sweep's runs (one per value: label -> run folder).

    Per arm (eval stage): pass@k of each run and their mean. Headline deltas: each trained arm
    against its baseline (as in one run's report); a recipe without a trained arm compares its last
    eval with its first on the same benchmark and split. The CI is `compare.paired_bootstrap` over
    the (problem, run) pairs of every run: problems x seeds, each paired with itself."""
    from codeloop.evaluation.compare import paired_bootstrap

    per_run = {label: eval_rows(RunDir(root)) for label, root in runs.items()}
    arms: list[str] = []
    info: dict[str, dict[str, Any]] = {}
    for rows in per_run.values():
        for r in rows:
            if r["stage"] not in info:
                arms.append(r["stage"])
                info[r["stage"]] = {"benchmark": r["benchmark"], "split": r["split"],
                                    "adapter_from": r["adapter_from"]}
    arm_rows = []
    for arm in arms:
        by_run = {label: next((r for r in rows if r["stage"] == arm), None) for label, rows in per_run.items()}
        ks = sorted({k for r in by_run.values() if r for k in r["pass@k"]}, key=lambda x: int(x.split("@")[1]))
        values = {k: {label: r["pass@k"][k] for label, r in by_run.items() if r and k in r["pass@k"]} for k in ks}
        arm_rows.append({"arm": arm, **info[arm], "runs": sum(r is not None for r in by_run.values()),
                         "pass@k": {k: float(np.mean(list(v.values()))) for k, v in values.items() if v},
                         "per_run": values})
    pairs: list[tuple[str, str]] = []
    for rows in per_run.values():
        for r in rows:
            if r["delta"] and (r["delta"]["vs"], r["stage"]) not in pairs:
                pairs.append((r["delta"]["vs"], r["stage"]))
    if not pairs and len(arms) >= 2:
        first, last = arms[0], arms[-1]
        if (info[first]["benchmark"], info[first]["split"]) == (info[last]["benchmark"], info[last]["split"]):
            pairs.append((first, last))
    deltas = []
    for base, arm in pairs:
        diffs: list[float] = []
        a_vals: list[float] = []
        b_vals: list[float] = []
        used = 0
        for rows in per_run.values():
            ra = next((r for r in rows if r["stage"] == base), None)
            rb = next((r for r in rows if r["stage"] == arm), None)
            if ra is None or rb is None:
                continue
            used += 1
            for t in sorted(set(ra["counts"]) & set(rb["counts"])):
                pa = ra["counts"][t].c / ra["counts"][t].n
                pb = rb["counts"][t].c / rb["counts"][t].n
                a_vals.append(pa)
                b_vals.append(pb)
                diffs.append(pb - pa)
        arr = np.array(diffs, dtype=float)
        lo, hi = paired_bootstrap(arr, resamples=resamples, seed=0)
        deltas.append({"a": base, "b": arm, "metric": "pass@1", "runs": used, "pairs": len(diffs),
                       "a_mean": float(np.mean(a_vals)) if a_vals else 0.0,
                       "b_mean": float(np.mean(b_vals)) if b_vals else 0.0,
                       "delta": float(arr.mean()) if len(arr) else 0.0, "ci": [lo, hi]})
    return {"runs": {label: str(root) for label, root in runs.items()}, "arms": arm_rows, "deltas": deltas}


def write_sweep_report(folder: str | Path, name: str, sweep: dict[str, list[Any]], runs: dict[str, Path]) -> Path:
    """`runs/NAME-sweep/`: sweep.json and report.html pooling the runs of a sweep."""
    folder = Path(folder)
    data = {"name": name, "sweep": sweep, **sweep_summary(runs)}
    atomic_write_text(folder / "sweep.json", json.dumps(data, indent=2, default=str) + "\n")
    labels = list(runs)
    sections = ["<h2>Runs</h2>" + table(["run", "folder"], [[label, str(root)] for label, root in runs.items()])]
    if data["deltas"]:
        sections.append("<h2>Headline (pooled over runs)</h2>" + table(
            ["A", "B", "metric", "A mean", "B mean", "B - A", "95% CI (problems x runs)", "pairs"],
            [[d["a"], d["b"], d["metric"], f"{d['a_mean']:.3f}", f"{d['b_mean']:.3f}", f"{d['delta']:+.3f}",
              _fmt_ci(d["ci"]), d["pairs"]] for d in data["deltas"]]))
    if data["arms"]:
        ks = sorted({k for a in data["arms"] for k in a["pass@k"]}, key=lambda x: int(x.split("@")[1]))
        rows = []
        for a in data["arms"]:
            for k in ks:
                per = a["per_run"].get(k, {})
                rows.append([a["arm"], a["benchmark"], k, f"{a['pass@k'].get(k, 0.0):.3f}",
                             *[f"{per[label]:.3f}" if label in per else "-" for label in labels]])
        sections.append("<h2>pass@k per arm (mean over runs)</h2>" + table(
            ["arm", "benchmark", "metric", "mean", *labels], rows))
    what = ", ".join(f"{k} in {v}" for k, v in sweep.items())
    return write_page(folder / "report.html", f"codeloop sweep — {name}", f"{len(runs)} runs: {what}", sections)
