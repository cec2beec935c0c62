"""`codeloop problems list|show|export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.console import console, summary


def register(app: typer.Typer) -> None:
    problems_app = typer.Typer(help="List, inspect and export problem sets.", no_args_is_help=True)
    app.add_typer(problems_app, name="problems")

    @problems_app.command("list")
    def list_sets() -> None:
        """List the problem sets codeloop can load."""
        from rich.table import Table

        from codeloop.problems import problem_sets

        table = Table(title="problem sets")
        table.add_column("name", style="bold")
        table.add_column("splits")
        table.add_column("description")
        for ps in problem_sets():
            table.add_row(ps.name + (":PATH" if ps.needs_source else ""), ", ".join(ps.splits) or "-",
                          ps.summary)
        console.print(table)
        summary(f"{len(problem_sets())} problem sets")

    @problems_app.command("show")
    def show(spec: str = typer.Argument(..., help="Problem set, e.g. humaneval, easy, mbpp:PATH."),
             task_id: Optional[str] = typer.Argument(None, help="One task to print in full."),
             split: Optional[str] = typer.Option(None, help="Split (e.g. train/test)."),
             limit: int = typer.Option(5, help="How many problems to list.")) -> None:
        """Show a problem set's first problems, or one problem in full."""
        from rich.syntax import Syntax

        from codeloop.errors import UserError
        from codeloop.problems import load_problems

        problems = load_problems(spec, split=split)
        if task_id is not None:
            match = [p for p in problems if p.task_id == task_id]
            if not match:
                raise UserError(f"no task '{task_id}' in {spec}", "TASK_ID")
            p = match[0]
            console.rule(p.task_id)
            console.print(Syntax(p.prompt + p.canonical_solution, "python"))
            if p.test:
                console.rule("test")
                console.print(Syntax(p.test, "python"))
            for t in p.io_tests[:3]:
                console.print({"input": t.get("input"), "output": t.get("output")})
            summary(f"{p.task_id} from {spec}")
            return
        for p in problems[:limit]:
            first = (p.description or p.prompt).strip().splitlines()[0][:100] if (p.description or p.prompt) else ""
            console.print(f"[bold]{p.task_id}[/]  {first}")
        summary(f"{len(problems)} problems in {spec}" + (f" ({split})" if split else ""))

    @problems_app.command("export")
    def export(spec: str = typer.Argument(..., help="Problem set, e.g. humaneval, easy, mbpp:PATH."),
               out: Path = typer.Option(..., "-o", "--out", help="Output JSONL (.gz compresses)."),
               split: Optional[str] = typer.Option(None, help="Split (e.g. train/test)."),
               limit: Optional[int] = typer.Option(None, help="Keep only the first N problems.")) -> None:
        """Write a problem set as codeloop Problem records (JSONL)."""
        from codeloop.problems import load_problems
        from codeloop.records import write_jsonl

        problems = load_problems(spec, split=split, limit=limit)
        n = write_jsonl(out, problems)
        summary(f"wrote {n} problems from {spec}" + (f" ({split})" if split else "") + f" to {out}")
