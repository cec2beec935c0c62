"""`codeloop problems list|show|stats|export|check`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click
import typer

from codeloop.console import show as show_table
from codeloop.console import stdout, summary


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
        show_table(table)
        summary(f"{len(problem_sets())} problem sets")

    @problems_app.command("show")
    def show(spec: str = typer.Argument(..., help="Problem set, e.g. humaneval, easy, mbpp:PATH."),
             task_id: Optional[str] = typer.Argument(None, help="One task to print in full."),
             split: Optional[str] = typer.Option(None, help="Split (e.g. train/test)."),
             limit: int = typer.Option(5, min=1, help="How many problems to list.")) -> None:
        """Show a problem set's first problems, or one problem in full."""
        from rich.markup import escape
        from rich.syntax import Syntax

        from codeloop.errors import UserError
        from codeloop.problems import load_problems

        problems = load_problems(spec, split=split)
        if task_id is not None:
            match = [p for p in problems if p.task_id == task_id]
            if not match:
                raise UserError(f"no task '{task_id}' in {spec}", "TASK_ID")
            p = match[0]
            stdout.rule(p.task_id)
            stdout.print(Syntax(p.prompt + p.canonical_solution, "python"))
            if p.test:
                stdout.rule("test")
                stdout.print(Syntax(p.test, "python"))
            for t in p.io_tests[:3]:
                stdout.print({"input": t.get("input"), "output": t.get("output")})
            summary(f"{p.task_id} from {spec}")
            return
        for p in problems[:limit]:
            first = (p.description or p.prompt).strip().splitlines()[0][:100] if (p.description or p.prompt) else ""
            stdout.print(f"[bold]{escape(p.task_id)}[/]  {escape(first)}")
        summary(f"{len(problems)} problems in {spec}" + (f" ({split})" if split else ""))

    @problems_app.command("stats")
    def stats(spec: str = typer.Argument(..., help="Problem set, e.g. easy, mbpp, mbpp+, humaneval."),
              train_split: str = typer.Option("train", help="The split a model is trained on."),
              test_split: str = typer.Option("test", help="The split it is evaluated on.")) -> None:
        """Size of each split, and the leak a held-out split must not have: how many test problems
        have a reference solution whose template (constants and strings masked) is also in train."""
        from rich.table import Table

        from codeloop.problems import get_problem_set, load_problems
        from codeloop.problems.templates import template_key, template_overlap

        from codeloop.errors import UserError

        splits = list(get_problem_set(spec).splits) or [None]
        for flag, name in (("--train-split", train_split), ("--test-split", test_split)):
            if splits != [None] and name not in splits:
                raise UserError(f"{spec} has no split '{name}' (splits: {', '.join(splits)})", flag)
        loaded = {s: load_problems(spec, split=s) for s in splits}
        table = Table(title=f"{spec}: splits")
        for col in ("split", "problems", "with reference", "with tests", "distinct templates"):
            table.add_column(col, justify="left" if col == "split" else "right")
        for name, problems in loaded.items():
            keys = {k for p in problems if (k := template_key(p.canonical_solution or "")) is not None}
            table.add_row(name or "(all)", str(len(problems)),
                          str(sum(bool((p.canonical_solution or "").strip()) for p in problems)),
                          str(sum(bool(p.test.strip() or p.io_tests or p.meta.get("plus_inputs")) for p in problems)),
                          str(len(keys)))
        show_table(table)
        if train_split in loaded and test_split in loaded:
            o = template_overlap(loaded[train_split], loaded[test_split])
            stdout.print(f"template overlap: {o['template_in_train']} of {o['test_problems']} {test_split} problems "
                         f"({o['with_reference']} with a reference) share a template with the "
                         f"{o['train_templates']} templates of {train_split}")
            summary(f"{spec}: {len(loaded[train_split])} {train_split} / {len(loaded[test_split])} {test_split} "
                    f"problems, template overlap {o['template_in_train']}")
        else:
            summary(f"{spec}: {sum(len(v) for v in loaded.values())} problems, one split: no train/test overlap "
                    "to measure")

    @problems_app.command("export")
    def export(spec: str = typer.Argument(..., help="Problem set, e.g. humaneval, easy, mbpp:PATH."),
               out: Path = typer.Option(..., "-o", "--out", help="Output: .jsonl, .jsonl.gz or .parquet."),
               split: Optional[str] = typer.Option(None, help="Split (e.g. train/test)."),
               limit: Optional[int] = typer.Option(None, min=1, help="Keep only the first N problems.")) -> None:
        """Write a problem set as codeloop Problem records (JSONL)."""
        from codeloop.problems import load_problems
        from codeloop.records import check_records_output, write_jsonl

        check_records_output(out, "--out")

        problems = load_problems(spec, split=split, limit=limit)
        n = write_jsonl(out, problems)
        summary(f"wrote {n} problems from {spec}" + (f" ({split})" if split else "") + f" to {out}")

    @problems_app.command("check")
    def check(spec: str = typer.Argument(..., help="Problem set, e.g. humaneval, easy, mbpp:PATH."),
              split: Optional[str] = typer.Option(None, help="Split (e.g. train/test)."),
              limit: Optional[int] = typer.Option(None, min=1, help="Check only the first N problems."),
              workers: Optional[int] = typer.Option(None, min=1, help="Sandbox workers (default: CPU count)."),
              timeout: float = typer.Option(10.0, "--timeout", min=0.001, help="Seconds per program (per test case for "
                                                                    "stdin/stdout).")) -> None:
        """Check a problem set's tests: each reference solution must pass, a do-nothing program must
        not, and the tests must execute at least one assertion. Exit 1 if any problem is flagged."""
        from rich.table import Table

        from codeloop.execution import ExecConfig, execute_samples
        from codeloop.execution.judges import do_nothing_program
        from codeloop.problems import load_problems
        from codeloop.records import Sample

        cfg = ExecConfig(timeout_s=timeout, **({"workers": workers} if workers is not None else {}))
        cfg.validate()
        problems = load_problems(spec, split=split, limit=limit)
        broken = {p.task_id: unrunnable(p) for p in problems}
        samples = []
        for p in problems:
            if broken[p.task_id]:
                continue
            if p.canonical_solution.strip():
                samples.append(Sample(task_id=p.task_id, sample_id=0, completion=p.canonical_solution))
            samples.append(Sample(task_id=p.task_id, sample_id=1, code=do_nothing_program(p) or "\n"))
        results: dict[str, dict[int, Any]] = {}
        for r in execute_samples(problems, samples, cfg):
            results.setdefault(r.task_id, {})[r.sample_id] = r
        rows, flagged = [], 0
        for p in problems:
            if broken[p.task_id]:
                issues, notes = [broken[p.task_id]], []
            else:
                issues, notes = check_problem(p, results[p.task_id].get(0), results[p.task_id][1])
            flagged += bool(issues)
            if issues or notes:
                rows.append((p.task_id, "; ".join(issues) or "-", "; ".join(notes)))
        if rows:
            table = Table(title=f"problems flagged in {spec}")
            for col in ("task", "problem", "note"):
                table.add_column(col, overflow="fold")
            for row in rows:
                table.add_row(*row)
            show_table(table)
        summary(f"{flagged} of {len(problems)} problems flagged in {spec}" + (f" ({split})" if split else ""))
        if flagged:
            raise _Flagged()


class _Flagged(click.ClickException):
    """Exit code 1 through `codeloop.cli.main` (which returns a ClickException's code); the table
    and the summary have said everything."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("problems flagged")

    def show(self, file: Any = None) -> None:
        pass


def unrunnable(problem: Any) -> str:
    """Why a problem's tests cannot run at all ('' when they can)."""
    from codeloop.errors import UserError
    from codeloop.execution.judges import rewrite_function_tests

    if not problem.test.strip() and not problem.io_tests:
        return "no tests"
    if problem.kind == "function":
        try:
            rewrite_function_tests(problem.test, problem.entry_point)
        except UserError as exc:
            return exc.message
    return ""


def check_problem(problem: Any, ref: Any, nothing: Any) -> tuple[list[str], list[str]]:
    """(issues, notes) for one problem from its reference's and its do-nothing program's Results."""
    from codeloop.execution._harness import NO_ASSERTION

    issues: list[str] = []
    notes: list[str] = []
    if any(r is not None and NO_ASSERTION in r.detail for r in (ref, nothing)):
        issues.append("tests execute no assertion")
    if ref is None:
        notes.append("no reference solution")
    elif ref.status != "passed" and "tests execute no assertion" not in issues:
        issues.append(f"reference {ref.status}: {ref.detail}"[:200])
    if nothing.status == "passed":
        issues.append("do-nothing program passes")
    return issues, notes
