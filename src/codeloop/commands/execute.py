"""`codeloop passk` (pass@k of a results file). `codeloop execute` is a step (codeloop.resumable.steps)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from codeloop.console import console, show, summary, warn


def register(app: typer.Typer) -> None:
    @app.command("passk")
    def passk(
        results: Path = typer.Argument(..., help="Results JSONL (from `codeloop execute`), or an eval folder "
                                                 "(from `codeloop eval` or a recipe's eval stage)."),
        k: str = typer.Option("1", "--k", help="Comma-separated k values, e.g. 1,10,100."),
        per_problem: bool = typer.Option(False, "--per-problem", help="Also print each problem's n, c, pass@k."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write the table as JSON here."),
    ) -> None:
        """pass@k (unbiased estimator, Chen et al. 2021) per problem and its mean."""
        import json

        from rich.table import Table

        from codeloop.execution.passk import parse_ks, passk_table
        from codeloop.records import Result, atomic_write_text, check_output_file, read_jsonl

        ks = parse_ks(k)
        if out is not None:
            check_output_file(out, "--out")
        if results.is_dir():  # an eval folder: its results/ stage (or a results stage itself)
            from codeloop.evaluation.load import load_eval_results

            table = passk_table(load_eval_results(results), ks)
        else:
            table = passk_table(read_jsonl(results, Result), ks)
        if per_problem:
            t = Table(title="per problem")
            for col in ["task_id", "n", "c"] + [f"pass@{x}" for x in ks]:
                t.add_column(col)
            for task_id, row in table["per_problem"].items():
                t.add_row(task_id, str(row["n"]), str(row["c"]),
                          *[f"{row[f'pass@{x}']:.4f}" if f"pass@{x}" in row else "-" for x in ks])
            show(t)
        for name, n_skipped in table["skipped"].items():
            used = table["problems"][name]
            warn(f"{name}: {n_skipped} problem(s) have fewer than {name[5:]} samples and are left out"
                 + (f" (mean over {used})" if used else "; no problem has enough samples"))
        if out is not None:
            atomic_write_text(out, json.dumps(table, indent=2) + "\n")
        typer.echo(json.dumps(table["mean"]))
        shown = ", ".join(f"{name}={v:.4f}" for name, v in table["mean"].items()) or "no k had enough samples"
        summary(f"{shown} over {len(table['per_problem'])} problems")
