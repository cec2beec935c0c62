"""`codeloop run RECIPE.yaml [KEY=VALUE ...]` and `codeloop runs list|show`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from codeloop.console import console, summary
from codeloop.console import show as show_table


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(recipe: Path = typer.Argument(..., help="Recipe YAML (see recipes/)."),
            overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides, e.g. model=PATH "
                                                                      "stages.pairs.n=8 vars.limit=16; "
                                                                      "seed=0,1,2 (also model=A,B, vars.X=a,b) "
                                                                      "is a sweep: one run per value "
                                                                      "(runs/NAME-seed0, ...) and a pooled "
                                                                      "report in runs/NAME-sweep/."),
            runs_dir: Optional[Path] = typer.Option(None, help="Where run folders live (default: the recipe's "
                                                               "runs_dir, else ./runs)."),
            no_report: bool = typer.Option(False, "--no-report", help="Skip writing report.html at the end.")) -> None:
        """Run a recipe: its stages in order in runs/NAME/, skipping finished stages with the same
        config and resuming a killed one. Ends with the report and the before/after pass@1."""
        from codeloop.pipeline.recipe import expand_sweep, load_recipe, split_sweep_overrides
        from codeloop.pipeline.runner import run_recipe, run_sweep

        plain, sweep = split_sweep_overrides(list(overrides or []))
        rec = load_recipe(recipe, plain)
        sweep = {**{k: v for k, v in rec.sweep.items() if k not in sweep}, **sweep}
        if sweep:
            runs = expand_sweep(recipe, plain, sweep)  # every run validated before the first one moves
            report = run_sweep(rec, runs, sweep, runs_dir, write_report=not no_report)
            summary(f"{rec.name}: sweep of {len(runs)} runs ({', '.join(label for label, _ in runs)}); "
                    f"pooled report: {report}")
            return
        result = run_recipe(rec, runs_dir, write_report=not no_report)
        if result.report:
            console.print(f"report: {result.report}", markup=False)
        from codeloop.pipeline.report import eval_rows
        from codeloop.rundir import RunDir

        headline = []
        for r in eval_rows(RunDir(result.root)):
            p1 = r["pass@k"].get("pass@1", 0.0)
            if r["delta"]:
                lo, hi = r["delta"]["ci"]
                verdict = "; the 95% CI spans 0: no effect shown" if lo <= 0 <= hi else ""
                headline.append(f"{r['stage']} pass@1={p1:.3f} ({r['delta']['delta']:+.3f} [{lo:+.3f}, {hi:+.3f}] "
                                f"vs {r['delta']['vs']}{verdict})")
            else:
                headline.append(f"{r['stage']} pass@1={p1:.3f}")
        ran = sum(o.status != "skipped" for o in result.stages)
        summary(f"{rec.name}: {ran} stages run, {len(result.stages) - ran} skipped; " + "; ".join(headline)
                + (f" — {rec.note}" if rec.note else ""))

    runs_app = typer.Typer(help="List and inspect run folders.", no_args_is_help=True)
    app.add_typer(runs_app, name="runs")

    @runs_app.command("list")
    def list_runs(runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs.")) -> None:
        """One line per run: stages done, last change."""
        import time

        from rich.table import Table

        from codeloop.rundir import RunDir

        t = Table(title=f"runs in {runs_dir}")
        for col in ("run", "stages done", "report", "modified"):
            t.add_column(col)
        n = 0
        for root in sorted(p for p in runs_dir.glob("*") if (p / "recipe.yaml").exists()):
            stages = RunDir(root).stages()
            t.add_row(root.name, f"{sum(s.done for s in stages)}/{len(stages)}",
                      "yes" if (root / "report.html").exists() else "-",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(root.stat().st_mtime)))
            n += 1
        show_table(t)
        summary(f"{n} runs in {runs_dir}")

    @runs_app.command("show")
    def show(name: str = typer.Argument(..., help="Run name (folder under --runs-dir) or a path."),
             runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs.")) -> None:
        """Stages of a run with their state, time and key metrics."""
        from rich.table import Table

        from codeloop.errors import UserError
        from codeloop.pipeline.report import _stage_type
        from codeloop.pipeline.runner import one_line as _one_line
        from codeloop.rundir import RunDir

        root = Path(name) if Path(name).is_dir() else runs_dir / name
        if not (root / "recipe.yaml").exists():
            raise UserError("no such run (expected a folder with recipe.yaml)", str(root))
        t = Table(title=str(root))
        for col in ("stage", "type", "state", "wall s", "metrics"):
            t.add_column(col)
        stages = RunDir(root).stages()
        for s in stages:
            m = s.metrics()
            t.add_row(s.path.name, _stage_type(s), "done" if s.done else "incomplete",
                      f"{m.get('_wall_s', 0):.1f}", _one_line(m))
        show_table(t)
        summary(f"{root.name}: {sum(s.done for s in stages)}/{len(stages)} stages done")
