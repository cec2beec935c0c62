"""`eval_buckets`: the blog's figure. Every model a DPO run kept at a curriculum bucket's end (and
the shuffled arm at the same step counts) evaluated on one benchmark: pass@1 against the optimizer
step, one line per arm, with 95% CIs.

    STAGE/
      base/                 the base model, every arm's step 0
      ARM/step-N/           one evaluation per kept model (resumable, as `codeloop eval`)
      curve.json            one row per point: arm, step, buckets, pass@1, CI
      bucket_curve.png      the figure
      bucket_curve.md       the table (the run report shows both)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from codeloop.errors import UserError
from codeloop.evaluation.harness import EvalConfig
from codeloop.records import atomic_write_text
from codeloop.steps import Step, StepContext, derive, library_kwargs, option, validate_as


def _check(self: Any, where: str) -> None:
    if not self.train:
        raise UserError("name at least one train step (an arm)", f"{where}.train")
    if len(set(self.train)) != len(self.train):
        raise UserError("an arm is named twice", f"{where}.train")
    validate_as(EvalConfig, self, where, model="x", seed=0)


# The eval step's fields (EvalConfig, declared once there) with the run's model and seed as defaults,
# the arms in place of one adapter.
EvalBucketsConfig = derive(
    "EvalBucketsConfig", EvalConfig, drop=("executor", "isolation", "adapter"),
    extra=[("train", list[str], option(ref=True, help="The train steps (arms) whose kept models to evaluate (recipe: stage "
                                            "names; command line: their folders).", flags=("--arm",))),
           ("base", bool, option(True, flags=("--base/--no-base",), help="Evaluate the base model too, as every arm's step 0.")),
           ("title", str, option("pass@1 after each curriculum bucket", help="The figure's title."))],
    replace={"model": (Optional[str], option(None, flags=("-m",), help="The base model the arms trained; default: "
                                                                      "the run's.")),
             "seed": (Optional[int], option(None, help="Sampling seed; default: the run's."))},
    namespace={"check": _check, "__module__": __name__})


def arm_points(folder: Path, name: str) -> list[dict[str, Any]]:
    """The models a train step kept (bucket_checkpoints.json), and its final model when no kept one
    is at its last step: {"step", "buckets", "pairs_seen", "adapter"} each."""
    from codeloop.training.run import FINAL_DIRNAME, SNAPSHOT_DIRNAME

    index, summary = folder / f"{SNAPSHOT_DIRNAME}.json", folder / "train_summary.json"
    if not summary.exists():
        raise UserError(f"'{name}' has no finished training (train_summary.json) in {folder}", "train")
    if not index.exists():
        raise UserError(f"'{name}' kept no models along the way: train it with checkpoint_buckets: true (a "
                        "curriculum arm) or align_with: [the curriculum arms] (the shuffled arm)", "train")
    points = [{"step": int(c["step"]), "buckets": c.get("buckets") or [], "pairs_seen": c.get("pairs_seen"),
               "adapter": str(folder / c["path"])} for c in json.loads(index.read_text())]
    last = int(json.loads(summary.read_text())["steps"])
    final = str(folder / FINAL_DIRNAME)
    if all(p["step"] != last for p in points):
        points.append({"step": last, "buckets": [], "pairs_seen": None, "adapter": final})
    elif (folder / FINAL_DIRNAME).is_dir():
        # the model kept at the last step is the final one: name it so, and an eval of the final model
        # elsewhere in the run is the same evaluation (find_finished_evaluation)
        for p in points:
            if p["step"] == last:
                p["adapter"] = final
    return sorted(points, key=lambda p: p["step"])


def _pass1(folder: Path) -> tuple[float, tuple[float, float], int]:
    """pass@1 (mean over problems of passed/n), its 95% bootstrap CI, and the problem count."""
    from codeloop.evaluation.compare import counts_from_results, paired_bootstrap
    from codeloop.evaluation.load import load_eval_results

    counts = counts_from_results(load_eval_results(folder))
    values = np.array([pc.c / pc.n for pc in counts.values()], dtype=float)
    lo, hi = paired_bootstrap(values, resamples=5000, seed=0)
    return float(values.mean()) if len(values) else 0.0, (lo, hi), len(values)


def run_eval_buckets(ctx: StepContext, cfg: Any) -> dict[str, Any]:
    from codeloop.console import console
    from codeloop.evaluation.harness import evaluate, find_finished_evaluation
    from codeloop.problems import load_problems

    arms = {name: arm_points(ctx.stage_path(name), name) for name in cfg.train}  # every arm checked before any eval
    model, seed = ctx.model(cfg.model), ctx.seed(cfg.seed)

    def eval_config(adapter: str | None) -> Any:
        return EvalConfig(**library_kwargs(cfg, EvalConfig, model=model, adapter=adapter, seed=seed,
                                           executor=ctx.executor, isolation=ctx.isolation))

    first = eval_config(None)
    problems = load_problems(first.benchmark, split=first.resolved_split(), limit=first.limit)  # once, not per point
    reused: dict[str, str] = {}
    # a recipe's run folder; on the command line only the step's own folder (never a whole cwd)
    root = ctx.run.root if ctx.recipe is not None else ctx.stage.path

    def point(adapter: str | None, folder: Path) -> tuple[float, tuple[float, float], int]:
        ecfg = eval_config(adapter)
        # The base model and each arm's final model are often evaluated by the recipe's own eval
        # steps with these very settings: read those back instead of sampling them again.
        same = None if (folder / "metrics.json").is_file() else find_finished_evaluation(ecfg, problems, root)
        if same is not None:
            reused[str(folder.relative_to(ctx.stage.path))] = str(same.relative_to(root))
            console.print(f"{folder.relative_to(ctx.stage.path)}: the same evaluation is done in "
                          f"{same.relative_to(root)}/; reading it", markup=False)
            return _pass1(same)
        evaluate(ecfg, folder, write_page=False, problems=problems)  # resumes: a finished point is read back
        return _pass1(folder)

    rows: list[dict[str, Any]] = []
    base = point(None, ctx.stage.path / "base") if cfg.base else None
    for name, points in arms.items():
        if base is not None:
            rows.append({"arm": name, "step": 0, "buckets": [], "pairs_seen": 0, "pass@1": base[0],
                         "ci": list(base[1]), "problems": base[2], "adapter": None})
        for p in points:
            value, ci, n = point(p["adapter"], ctx.stage.path / name / f"step-{p['step']}")
            rows.append({"arm": name, "step": p["step"], "buckets": p["buckets"], "pairs_seen": p["pairs_seen"],
                         "pass@1": value, "ci": list(ci), "problems": n, "adapter": p["adapter"]})
    atomic_write_text(ctx.stage.path / "curve.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(ctx.stage.path / "bucket_curve.md", curve_table(rows, cfg))
    bench = cfg.benchmark.partition(":")[0] + (f" {cfg.split}" if cfg.split else "")  # no file paths in a title
    plot_curve(rows, f"{cfg.title} ({bench})", ctx.stage.path / "bucket_curve.png")
    return {"benchmark": cfg.benchmark, "arms": len(arms), "points": len(rows), "reused": reused,
            "curve": {name: [[r["step"], r["pass@1"]] for r in rows if r["arm"] == name] for name in arms}}


def curve_table(rows: list[dict[str, Any]], cfg: Any) -> str:
    """One row per (arm, step): the buckets finished there, pass@1 and its CI."""
    lines = [f"### {cfg.title} — {cfg.benchmark}" + (f" ({cfg.split})" if cfg.split else ""), "",
             "| arm | step | buckets done | pairs seen | pass@1 | 95% CI |", "|---|---|---|---|---|---|"]
    for r in rows:
        buckets = ", ".join(map(str, r["buckets"])) if r["buckets"] else ("base" if r["step"] == 0 else "—")
        seen = "—" if r["pairs_seen"] is None else str(r["pairs_seen"])
        lines.append(f"| {r['arm']} | {r['step']} | {buckets} | {seen} | {r['pass@1']:.3f} | "
                     f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] |")
    lines += ["", "Bucket numbers are distance buckets (1 = the 10-50th percentile of the gap, higher = larger "
              "gap). A shuffled arm is evaluated at the step counts where the curriculum arms finish a bucket."]
    return "\n".join(lines) + "\n"


def plot_curve(rows: list[dict[str, Any]], title: str, path: Path) -> Path:
    from codeloop.viz import matplotlib_agg, save_figure

    plt = matplotlib_agg()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name in dict.fromkeys(r["arm"] for r in rows):
        pts = sorted((r for r in rows if r["arm"] == name), key=lambda r: r["step"])
        x = [r["step"] for r in pts]
        y = [r["pass@1"] for r in pts]
        line, = ax.plot(x, y, marker="o", label=name)
        ax.fill_between(x, [r["ci"][0] for r in pts], [r["ci"][1] for r in pts], color=line.get_color(), alpha=0.12)
        for r in pts:
            if r["buckets"]:
                ax.annotate("b" + ",".join(map(str, r["buckets"])), (r["step"], r["pass@1"]), fontsize=7,
                            textcoords="offset points", xytext=(0, 6), ha="center", color=line.get_color())
    lows, highs = [r["ci"][0] for r in rows], [r["ci"][1] for r in rows]
    if rows:  # pass@1 lives in [0, 1]; a flat curve still gets a visible band
        ax.set_ylim(max(0.0, min(lows) - 0.05), min(1.02, max(highs) + 0.05))
    ax.set_xlabel("optimizer step (step 0: base model)")
    ax.set_ylabel("pass@1 (95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def eval_buckets_summary(m: dict[str, Any]) -> str:
    return f"{m.get('points')} points over {m.get('arms')} arms on {m.get('benchmark')}: bucket_curve.png, bucket_curve.md"


EVAL_BUCKETS = Step("eval_buckets", EvalBucketsConfig, run_eval_buckets,
                    "evaluate the models DPO arms kept at each curriculum bucket's end -> pass@1 vs step per arm "
                    "(bucket_curve.png/.md)", produces=("report",), sandbox=True, plot="bucket_curve.png",
                    summarize=eval_buckets_summary)
