"""Recipe stage for LintSeq: SFT records whose completions are linter-clean insertion-edit sequences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codeloop.errors import UserError
from codeloop.pipeline.stages import StageContext
from codeloop.steps import FORMAT_FIELD, Step, option
from codeloop.records import atomic_write_text, in_format, read_jsonl, write_jsonl


@dataclass
class LintSeqStageConfig:
    input: str = option("", flags=("--data",), help="A step with sft.jsonl records (e.g. sft_data) whose "
                                                    "`field` holds the program (command line: its folder or file).")
    file: str = option("sft.jsonl", help="That step's file.")
    field: str = option("response", help="The record field holding the program to refactor into edits.")
    instruction_field: str = option("prompt", help="What the model is given (the eval prompt, so training and "
                                                   "test see the same format).")
    s: int = option(5, flags=("--sequences",), help="Edit sequences per program (the paper's s).")
    seed: int | None = option(None, help="Seed of the edit sampling; default: the run's.")
    workers: int = option(2, help="Processes that lint in parallel.")
    format: str = FORMAT_FIELD[2]

    def check(self, where: str) -> None:
        if not self.input:
            raise UserError("missing required key 'input' (a stage with sft.jsonl)", f"{where}.input")
        if self.s < 1:
            raise UserError("must be >= 1", f"{where}.s")


def run_lintseq(ctx: StageContext, cfg: LintSeqStageConfig) -> dict[str, Any]:
    import json

    from codeloop.methods.lintseq import lintseq_records, sft_records_from_edits

    records = read_jsonl(ctx.output_file(cfg.input, cfg.file))
    with_edits, stats = lintseq_records(records, field=cfg.field, s=cfg.s, seed=ctx.seed(cfg.seed),
                                        workers=cfg.workers)
    sft = sft_records_from_edits(with_edits, instruction_field=cfg.instruction_field)
    write_jsonl(ctx.stage.path / "edits.jsonl", with_edits)
    write_jsonl(ctx.stage.path / "sft.jsonl", in_format(sft, "sft", cfg.format))
    counts = stats.as_dict()
    atomic_write_text(ctx.stage.path / "lintseq_stats.json", json.dumps(counts, indent=2, default=str) + "\n")
    return {"programs": len(records), "sequences": len(sft),
            **{k: v for k, v in counts.items() if isinstance(v, (int, float))}}


LINTSEQ = Step("lintseq", LintSeqStageConfig, run_lintseq, "programs -> s linter-clean insertion-edit sequences each, as SFT records (writes sft.jsonl)",
               consumes=("sft",), produces=("sft",), output="sft.jsonl")
