"""`codeloop eval` (sample -> execute -> pass@k) and `codeloop eval compare A B`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.console import console, summary
from codeloop.execution.passk import parse_ks


def register(app: typer.Typer) -> None:
    eval_app = typer.Typer(help="Evaluate a model: sample, execute, pass@k; compare two evaluations.",
                           invoke_without_command=True)
    app.add_typer(eval_app, name="eval")

    @eval_app.callback()
    def run_eval(
        ctx: typer.Context,
        model: str = typer.Option("default", "--model", "-m",
                                  help="HF model id or local path; 'default' = the embedded Gemma 3 270M; 'canonical' = the reference solutions (checks the benchmark and sandbox)."),
        adapter: Optional[Path] = typer.Option(None, help="A LoRA adapter (or full model dir) from `codeloop train`."),
        benchmark: str = typer.Option("humaneval", "--benchmark", "-b",
                                      help="humaneval | mbpp[:PATH] | apps:PATH | codecontests:PATH | easy | jsonl:PATH"),
        n: int = typer.Option(1, "-n", help="Samples per problem."),
        k: str = typer.Option("1", "--k", help="Comma-separated k values for pass@k, e.g. 1,10."),
        temperature: float = typer.Option(0.0, help="0 = greedy (the default, for pass@1)."),
        top_p: float = typer.Option(0.95, help="Nucleus sampling mass (temperature > 0)."),
        max_new_tokens: int = typer.Option(384, help="Generation budget per sample."),
        split: Optional[str] = typer.Option(None, help="Problem split (default: test for easy and mbpp)."),
        limit: Optional[int] = typer.Option(None, help="Evaluate only the first N problems."),
        backend: str = typer.Option("hf", help="Generation backend: hf | vllm | openai."),
        base_url: Optional[str] = typer.Option(None, help="openai backend: the server, e.g. http://127.0.0.1:8000/v1."),
        batch_size: int = typer.Option(8, help="Prompts per generation batch."),
        seed: int = typer.Option(0, help="Sampling seed."),
        workers: Optional[int] = typer.Option(None, help="Sandbox workers (default: CPU count)."),
        timeout: float = typer.Option(10.0, help="Seconds per sample (per test for stdin/stdout)."),
        memory_mb: int = typer.Option(1024, help="Address-space limit per execution."),
        executor: str = typer.Option("local", help="Where executions run: local, ray or ray:ADDRESS "
                                                   "(sandbox actors on a Ray cluster; docs/ray.md)."),
        decode: str = typer.Option("none", help="none | lintseq (the model writes LintSeq edit sequences)."),
        isolation: str = typer.Option("auto", help="auto: every sandbox isolation feature this machine allows; "
                                                   "full: refuse to run with less (docs/execution.md)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (resumable run directory)."),
    ) -> None:
        """Sample from a model, execute in the sandbox, report pass@k.

        Writes OUT/samples, OUT/results, OUT/per_problem.jsonl, OUT/metrics.json and OUT/eval.html.
        Re-running the same command resumes where it stopped.
        """
        if ctx.invoked_subcommand is not None:
            return
        from codeloop.errors import UserError

        if out is None:
            raise UserError("an output folder is required", "--out")
        from codeloop.evaluation.harness import EvalConfig, evaluate, print_summary

        cfg = EvalConfig(benchmark=benchmark, model=model, adapter=str(adapter) if adapter else None,
                         backend=backend, base_url=base_url, split=split, limit=limit, n=n, ks=parse_ks(k),
                         temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, seed=seed, workers=workers, timeout_s=timeout,
                         memory_mb=memory_mb, decode=decode, executor=executor, isolation=isolation)
        print_summary(evaluate(cfg, out))

    @eval_app.command("compare")
    def compare(a: Path = typer.Argument(..., help="First eval folder (or its results JSONL): the baseline."),
                b: Path = typer.Argument(..., help="Second eval folder (or results JSONL): the candidate."),
                k: str = typer.Option("1", "--k", help="Comma-separated k values."),
                resamples: int = typer.Option(10_000, help="Bootstrap resamples."),
                seed: int = typer.Option(0, help="Bootstrap seed."),
                out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the comparison as JSON.")) -> None:
        """Per-problem flips and pass@k deltas of B over A, with paired bootstrap 95% CIs."""
        import json

        from rich.table import Table

        from codeloop.evaluation.compare import compare_counts, counts_from_results
        from codeloop.evaluation.load import load_eval_results
        from codeloop.records import atomic_write_text

        ra, rb = load_eval_results(a), load_eval_results(b)
        cmp = compare_counts(counts_from_results(ra), counts_from_results(rb), parse_ks(k), resamples, seed=seed)
        t = Table(title=f"B = {b}  vs  A = {a}  ({cmp.n_problems} shared problems)")
        for col in ("metric", "A", "B", "B - A", "95% CI"):
            t.add_column(col, justify="right")
        for name, d in cmp.deltas.items():
            t.add_row(name, f"{d['a']:.3f}", f"{d['b']:.3f}", f"{d['delta']:+.3f}",
                      f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
        console.print(t)
        console.print(f"solved by B only: {len(cmp.only_b)}  {', '.join(cmp.only_b[:10])}")
        console.print(f"solved by A only: {len(cmp.only_a)}  {', '.join(cmp.only_a[:10])}")
        if out:
            atomic_write_text(out, json.dumps(cmp.to_dict(), indent=2) + "\n")
        first = next(iter(cmp.deltas.items()), None)
        head = f"{first[0]} {first[1]['delta']:+.3f} [{first[1]['ci_low']:+.3f}, {first[1]['ci_high']:+.3f}]" if first else "no k fits"
        summary(f"{head}; flips +{len(cmp.only_b)} / -{len(cmp.only_a)} (McNemar p={cmp.mcnemar_p:.3g})")
