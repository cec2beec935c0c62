"""`codeloop report NAME`: (re)build a run's report.html and report.md."""

from __future__ import annotations

from pathlib import Path

import typer

from codeloop.console import summary


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(name: str = typer.Argument(..., help="Run name (folder under --runs-dir) or a path."),
               runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs.")) -> None:
        """Write runs/NAME/report.html (+ PNG plots) and report.md from what the stages wrote."""
        from codeloop.pipeline.report import write_report

        root = Path(name) if Path(name).is_dir() else runs_dir / name
        path = write_report(root)
        summary(f"report written: {path}")
