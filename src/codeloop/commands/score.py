"""`codeloop score`: log-prob / perplexity / IFD of a JSONL of prompt/answer records."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.rundir import locks_output

PROMPT_FIELDS = ("prompt", "instruction", "question", "description")
ANSWER_FIELDS = ("answer", "completion", "response", "output", "code")
METRICS = ("ppl", "logprob", "ifd")


def _pick_field(first: dict, given: Optional[str], candidates: tuple[str, ...], option: str, where: str) -> str:
    from codeloop.errors import UserError

    if given:
        return given
    for name in candidates:
        if name in first:
            return name
    raise UserError(f"none of the fields {', '.join(candidates)} found; name one with {option}", where)


def register(app: typer.Typer) -> None:
    @app.command("score")
    @locks_output()
    def score(
        records: Path = typer.Argument(..., help="JSONL of records with a prompt and an answer field."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the records with scores added."),
        model: str = typer.Option("default", "--model", "-m", help="'default', a local HF folder or a hub id."),
        metric: str = typer.Option("ppl", "--metric",
                                   help="ppl: PPL(answer|prompt); logprob: the same, summed log-prob; "
                                        "ifd: PPL(answer|template(prompt)) / PPL(answer)."),
        prompt_field: Optional[str] = typer.Option(None, "--prompt-field",
                                                   help=f"Default: first of {', '.join(PROMPT_FIELDS)}."),
        answer_field: Optional[str] = typer.Option(None, "--answer-field",
                                                   help=f"Default: first of {', '.join(ANSWER_FIELDS)}."),
        template: str = typer.Option("Question:\n{q}\n\nAnswer:\n", "--template",
                                     help="ifd: how the instruction is put before the answer ({q})."),
        add_eos: bool = typer.Option(False, "--add-eos", help="Score EOS after the answer too (ppl/logprob)."),
        max_length: Optional[int] = typer.Option(None, "--max-length", help="Cut prompts so rows fit."),
        batch_size: int = typer.Option(8, "--batch-size"),
        adapter: Optional[str] = typer.Option(None, "--adapter", help="PEFT (LoRA) adapter folder."),
        dtype: str = typer.Option("auto", "--dtype", help="auto | bf16 | fp16 | fp32."),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Score answers given prompts with a model and write the records back with scores."""
        import math
        import time

        from codeloop.console import summary
        from codeloop.errors import UserError
        from codeloop.models import load_model
        from codeloop.records import check_records_output, iter_records, write_jsonl
        from codeloop.scoring import completion_logprobs, ifd_scores

        if metric not in METRICS:
            raise UserError(f"unknown metric '{metric}' (choose one of {', '.join(METRICS)})", "--metric")
        if metric == "ifd" and "{q}" not in template:
            raise UserError("the template must contain {q}", "--template")
        if batch_size < 1:
            raise UserError(f"must be >= 1, got {batch_size}", "--batch-size")
        check_records_output(out, "--out")
        rows = list(iter_records(records))  # JSONL, Parquet, a datasets folder...
        if not rows:
            raise UserError("no records", str(records))
        pf = _pick_field(rows[0][1], prompt_field, PROMPT_FIELDS, "--prompt-field", f"{records}:{rows[0][0]}")
        af = _pick_field(rows[0][1], answer_field, ANSWER_FIELDS, "--answer-field", f"{records}:{rows[0][0]}")
        for lineno, rec in rows:
            for f in (pf, af):
                if not isinstance(rec.get(f), str):
                    what = "missing" if f not in rec else f"not a string ({type(rec[f]).__name__})"
                    raise UserError(f"field '{f}' is {what}", f"{records}:{lineno}")
        prompts = [r[pf] for _, r in rows]
        answers = [r[af] for _, r in rows]
        lm, tok = load_model(model, dtype=dtype, device=device, adapter=adapter)
        start = time.perf_counter()
        scored = []
        if metric == "ifd":
            for (_, rec), s in zip(rows, ifd_scores(lm, tok, prompts, answers, template=template,
                                                     batch_size=batch_size, max_length=max_length)):
                scored.append({**rec, "ppl_conditional": s.ppl_conditional,
                               "ppl_unconditional": s.ppl_unconditional, "ifd": s.ifd, "n_tokens": s.n_tokens})
        else:
            for (_, rec), s in zip(rows, completion_logprobs(lm, tok, prompts, answers, batch_size=batch_size,
                                                             add_eos=add_eos, max_length=max_length)):
                scored.append({**rec, "logprob": s.logprob, "n_tokens": s.n_tokens, "mean_nll": s.mean_nll,
                               "ppl": s.ppl})
        elapsed = time.perf_counter() - start
        write_jsonl(out, scored)
        key = "ifd" if metric == "ifd" else "ppl"
        vals = sorted(r[key] for r in scored if isinstance(r[key], float) and math.isfinite(r[key]))
        median = vals[len(vals) // 2] if vals else float("nan")
        summary(f"scored {len(scored)} records ({metric}, median {key} {median:.3g}) with {model} -> {out} "
                f"({len(scored) / max(elapsed, 1e-9):.1f} records/s)")
