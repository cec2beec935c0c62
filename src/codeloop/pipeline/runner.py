"""Run a recipe's stages in order in `runs/NAME/`, skipping finished ones, resuming a killed one.

A stage's config hash covers its settings (defaults included), the recipe's model and seed (not its executor: verdicts are
the same wherever they run) and the hashes of every
earlier stage, so changing a stage re-runs it and what follows it, and nothing before it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape

from codeloop.console import console
from codeloop.pipeline.recipe import Recipe
from codeloop.pipeline.registry import get_step
from codeloop.records import atomic_write_text
from codeloop.rundir import OutputLock, RunDir, check_output_dir, config_hash
from codeloop.steps import StepContext


@dataclass
class StageOutcome:
    name: str
    type: str
    status: str  # ran | resumed | skipped
    wall_s: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    root: Path
    stages: list[StageOutcome]
    report: Path | None = None


def resolved_settings(cfg: Any) -> dict[str, Any]:
    """A step config with every field, its defaults included, as JSON-able values."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def run_root(recipe: Recipe, runs_dir: str | Path | None = None) -> Path:
    return Path(runs_dir or recipe.runs_dir) / recipe.name


def one_line(metrics: dict[str, Any]) -> str:
    parts = []
    for k, v in metrics.items():
        if k.startswith("_") or isinstance(v, (dict, list)) and k != "pass@k":
            continue
        if k == "pass@k" and isinstance(v, dict):
            parts += [f"{kk}={vv:.3f}" for kk, vv in v.items()]
        elif isinstance(v, float):
            parts.append(f"{k}={v:.3g}")
        elif v is not None:
            parts.append(f"{k}={v}")
    return " ".join(parts[:6])


def run_recipe(recipe: Recipe, runs_dir: str | Path | None = None, write_report: bool = True) -> RunSummary:
    """Run the recipe in runs/NAME/, holding its lock (a second `codeloop run` of the same run is
    refused, naming the holder's pid)."""
    root = run_root(recipe, runs_dir)
    check_output_dir(root, "--runs-dir" if runs_dir else "runs_dir")
    with OutputLock(root, "run folder"):
        return _run_recipe(recipe, root, write_report)


def _run_recipe(recipe: Recipe, root: Path, write_report: bool) -> RunSummary:
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "recipe.yaml", yaml.safe_dump(recipe.resolved, sort_keys=False))
    chain = config_hash({"model": recipe.model, "seed": recipe.seed})  # the executor changes no result
    outcomes: list[StageOutcome] = []
    console.print(f"[bold]codeloop run[/] {recipe.name}: {len(recipe.stages)} stages -> {root}")
    for i, spec in enumerate(recipe.stages, 1):
        stage = run.stage(spec.name)
        # Every setting counts, the defaults too, and not how it was written: a default that changed
        # between codeloop versions makes the stage run anew (saying so) instead of reusing work done
        # under the old one, while spelling out a default changes nothing.
        settings = resolved_settings(spec.config)
        chain = config_hash({"previous": chain, "settings": settings})
        state = stage.open({"type": spec.type, "settings": settings, "chain": chain,
                            "model": recipe.model, "seed": recipe.seed})
        label = escape(f"[{i}/{len(recipe.stages)}] {spec.name} ({spec.type})")
        if state.status == "done":
            m = stage.metrics()
            outcomes.append(StageOutcome(spec.name, spec.type, "skipped", m.get("_wall_s", 0.0), m))
            console.print(f"[dim]↷ {label}: done earlier, same config — skipped  {escape(one_line(m))}[/]")
            continue
        resumed = state.status == "resume" or _has_earlier_work(stage.path)
        console.print(f"[bold cyan]▶ {label}[/]" + (" resuming" if resumed else ""))
        t0 = time.time()
        ctx = StepContext(run, stage, spec.name, model=recipe.model, seed=recipe.seed, executor=recipe.executor,
                          isolation=recipe.isolation, recipe=recipe)
        metrics = get_step(spec.type).run(ctx, spec.config)
        wall = time.time() - t0
        metrics = {**metrics, "_wall_s": wall, "_type": spec.type}
        stage.finish(metrics)
        outcomes.append(StageOutcome(spec.name, spec.type, "resumed" if resumed else "ran", wall, metrics))
        console.print(f"[green]✓ {label}[/] {wall:.1f}s  {escape(one_line(metrics))}")
    summary = RunSummary(root, outcomes)
    atomic_write_text(root / "run.json", json.dumps(
        {"name": recipe.name, "finished_at": time.time(),
         "stages": [{"name": o.name, "type": o.type, "status": o.status, "wall_s": o.wall_s} for o in outcomes]},
        indent=2) + "\n")
    if write_report:
        from codeloop.pipeline.report import write_report as _write

        summary.report = _write(root)
    return summary


def _has_earlier_work(path: Path) -> bool:
    """Anything an earlier attempt left (sub-stages, checkpoints, files) beside the fresh config.yaml."""
    return path.exists() and any(p.name != "config.yaml" for p in path.iterdir())


def run_sweep(base: Recipe, runs: list[tuple[str, Recipe]], sweep: dict[str, list[Any]],
              runs_dir: str | Path | None = None, write_report: bool = True) -> Path:
    """Run every run of a sweep (each a full run with its own folder, lock and resume), then pool
    them into `runs/NAME-sweep/` (sweep.json, report.html)."""
    roots: dict[str, Path] = {}
    for label, rec in runs:
        check_output_dir(run_root(rec, runs_dir), "--runs-dir" if runs_dir else "runs_dir")
    folder = Path(runs_dir or base.runs_dir) / f"{base.name}-sweep"
    check_output_dir(folder, "--runs-dir" if runs_dir else "runs_dir")
    for i, (label, rec) in enumerate(runs, 1):
        console.print(f"[bold]sweep {i}/{len(runs)}[/] {escape(label)}")
        result = run_recipe(rec, runs_dir, write_report=write_report)
        roots[label] = result.root
    from codeloop.pipeline.report import write_sweep_report

    with OutputLock(folder, "sweep folder"):
        return write_sweep_report(folder, base.name, sweep, roots)
