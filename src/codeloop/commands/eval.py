"""`codeloop eval` (sample -> execute -> pass@k) and `codeloop eval compare A B`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.console import show, stdout, summary
from codeloop.execution.passk import parse_ks


def register(app: typer.Typer) -> None:
    eval_app = typer.Typer(help="Evaluate a model: sample, execute, pass@k; compare two evaluations. Rerun the "
                                "same command to resume; `codeloop steps show eval` lists the settings.")
    app.add_typer(eval_app, name="eval")

    from codeloop.commands.steps import make_command
    from codeloop.pipeline.registry import get_step

    # `codeloop eval ...` is the eval step (the same settings as a recipe's eval stage).
    eval_app.callback(invoke_without_command=True)(make_command(get_step("eval"), group=True))

    @eval_app.command("compare")
    def compare(a: Path = typer.Argument(..., help="First eval folder (or its results JSONL): the baseline."),
                b: Path = typer.Argument(..., help="Second eval folder (or results JSONL): the candidate."),
                k: str = typer.Option("1", "--k", help="Comma-separated k values."),
                resamples: int = typer.Option(10_000, min=1, help="Bootstrap resamples."),
                seed: int = typer.Option(0, help="Bootstrap seed."),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the comparison as JSON.")) -> None:
        """Per-problem flips and pass@k deltas of B over A, with paired bootstrap 95% CIs."""
        import json

        from rich.table import Table

        from codeloop.evaluation.compare import compare_counts, counts_from_results
        from codeloop.evaluation.load import load_eval_results
        from codeloop.records import atomic_write_text, check_output_file

        ks = parse_ks(k)
        if out:
            check_output_file(out, "--out")
        ra, rb = load_eval_results(a), load_eval_results(b)
        cmp = compare_counts(counts_from_results(ra), counts_from_results(rb), ks, resamples, seed=seed)
        t = Table(title=f"B = {b}  vs  A = {a}  ({cmp.n_problems} shared problems)")
        for col in ("metric", "A", "B", "B - A", "95% CI"):
            t.add_column(col, justify="right")
        for name, d in cmp.deltas.items():
            t.add_row(name, f"{d['a']:.3f}", f"{d['b']:.3f}", f"{d['delta']:+.3f}",
                      f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
        show(t)
        stdout.print(f"solved by B only: {len(cmp.only_b)}  {', '.join(cmp.only_b[:10])}", markup=False)
        stdout.print(f"solved by A only: {len(cmp.only_a)}  {', '.join(cmp.only_a[:10])}", markup=False)
        if out:
            atomic_write_text(out, json.dumps(cmp.to_dict(), indent=2) + "\n")
        first = next(iter(cmp.deltas.items()), None)
        head = f"{first[0]} {first[1]['delta']:+.3f} [{first[1]['ci_low']:+.3f}, {first[1]['ci_high']:+.3f}]" if first else "no k fits"
        summary(f"{head}; flips +{len(cmp.only_b)} / -{len(cmp.only_a)} (McNemar p={cmp.mcnemar_p:.3g})")
