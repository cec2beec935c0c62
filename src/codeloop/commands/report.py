"""`codeloop report NAME`: (re)build a run's report.html and report.md."""

from __future__ import annotations

from pathlib import Path

import typer

from codeloop.console import summary


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(name: str = typer.Argument(..., help="Run name (folder under --runs-dir) or a path."),
               runs_dir: Path = typer.Option(Path("runs"), help="Folder holding the runs."),
               check: bool = typer.Option(False, "--check", help="Then open it in a headless Chromium and check "
                                                               "that every figure renders (needs chromium).")) -> None:
        """Write runs/NAME/report.html (+ PNG plots) and report.md from what the stages wrote."""
        from codeloop.pipeline.report import write_report

        root = Path(name) if Path(name).is_dir() else runs_dir / name
        if not check:
            summary(f"report written: {write_report(root)}")
            return
        from codeloop.pipeline.report_check import check_renders, find_browser

        browser = find_browser()  # a missing browser fails before the report is rebuilt
        path = write_report(root)
        result = check_renders(path, browser=browser)
        if not result.ok:
            summary(f"report written: {path}; {len(result.broken)} of {result.figures} figures do not render: "
                    + "; ".join(result.broken))
            raise typer.Exit(1)
        if not result.figures:
            summary(f"report written: {path}; it has no figures yet (it renders in headless Chromium)")
        else:
            what = "its figure renders" if result.figures == 1 else f"all {result.figures} figures render"
            summary(f"report written: {path}; {what} in headless Chromium ({', '.join(result.sizes)} px)")
