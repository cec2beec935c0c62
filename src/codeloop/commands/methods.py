"""Method commands: `codeloop pairs` and `codeloop curriculum` (code DPO with a logit curriculum)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.console import summary


def register(app: typer.Typer) -> None:
    @app.command("pairs")
    def pairs(
        problems: str = typer.Option(..., "--problems", "-p", help="Training problems, e.g. easy, mbpp:PATH, jsonl:PATH."),
        out: Path = typer.Option(..., "--out", "-o", help="Pairs JSONL (prompt, chosen, rejected, scores, distance)."),
        model: str = typer.Option("default", "--model", "-m", help="The model to be tuned (samples are on-policy)."),
        split: Optional[str] = typer.Option("train", help="Problem split."),
        limit: Optional[int] = typer.Option(None, help="Only the first N problems."),
        n: int = typer.Option(4, "-n", help="Best-of-N: samples per problem."),
        temperature: float = typer.Option(0.8, help="Sampling temperature."),
        top_p: float = typer.Option(0.95, help="Nucleus sampling mass."),
        max_new_tokens: int = typer.Option(256, help="Generation budget per sample."),
        score: str = typer.Option("fraction", help="Sample score: fraction | count of tests passed."),
        chosen_rule: str = typer.Option("passed", help="passed: chosen passes every test; positive: score > 0."),
        pairs_per_problem: int = typer.Option(1, help="Pair the i-th best with the i-th worst, up to this many."),
        length_normalized: bool = typer.Option(False, help="Distance of mean per-token log-probs instead of sums."),
        timeout: float = typer.Option(10.0, help="Seconds per execution."),
        seed: int = typer.Option(0, help="Sampling seed."),
        batch_size: int = typer.Option(8, help="Generation / scoring batch size."),
    ) -> None:
        """Best-of-N on-policy samples, executed against the tests, into DPO pairs with log-prob distances.

        Resumable: intermediate samples and results live in OUT.work/ and a rerun continues there.
        """
        from codeloop.execution import ExecConfig
        from codeloop.methods.preference import PreferenceConfig, make_pairs
        from codeloop.problems import load_problems
        from codeloop.records import write_jsonl

        cfg = PreferenceConfig(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                               score=score, chosen_rule=chosen_rule, pairs_per_problem=pairs_per_problem,
                               length_normalized=length_normalized, seed=seed)
        cfg.validate()
        probs = load_problems(problems, split=split, limit=limit)
        result, stats = make_pairs(probs, cfg, out.with_name(out.name + ".work"), model_name=model,
                                   exec_config=ExecConfig(timeout_s=timeout), batch_size=batch_size)
        write_jsonl(out, result)
        summary(f"{stats['pairs']} pairs from {stats['problems']} problems "
                f"({stats['passed_samples']}/{stats['samples']} samples passed; skipped {stats['skipped']}) -> {out}")

    @app.command("curriculum")
    def curriculum(
        pairs_file: Path = typer.Argument(..., help="Pairs JSONL from `codeloop pairs` (with distances)."),
        out: Path = typer.Option(..., "--out", "-o", help="Pairs with `bucket` and `order` added, in training order."),
        edges: str = typer.Option("10,50,90,100", help="Bucket edges as distance percentiles."),
        drop_bottom: bool = typer.Option(False, help="Drop pairs below the first edge (the source dropped the bottom 10%)."),
        direction: str = typer.Option("large-first", help="large-first (easy -> hard, default) | small-first | shuffled."),
        seed: int = typer.Option(0, help="Shuffle seed within buckets."),
        plot: Optional[Path] = typer.Option(None, help="Histogram PNG (default: OUT with .png)."),
    ) -> None:
        """Bucket pairs by log-prob distance percentile and order them for training (easy -> hard)."""
        from codeloop.errors import UserError
        from codeloop.methods.preference import PreferenceConfig, assign_curriculum, plot_distance_histogram
        from codeloop.records import Pair, read_jsonl, write_jsonl

        try:
            edge_list = [float(x) for x in edges.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"expected comma-separated percentiles, got {edges!r}", "--edges") from None
        cfg = PreferenceConfig(bucket_edges=edge_list, drop_bottom=drop_bottom, direction=direction, seed=seed)
        cfg.validate()
        rows = read_jsonl(pairs_file, Pair)
        ordered = assign_curriculum(rows, cfg)
        write_jsonl(out, ordered)
        png = plot or out.with_suffix(".png")
        plot_distance_histogram(rows, cfg, png)
        counts = {b: sum(p.bucket == b for p in ordered) for b in sorted({p.bucket for p in ordered})}
        summary(f"{len(ordered)}/{len(rows)} pairs ordered {direction}, buckets {counts} -> {out} (histogram {png})")
