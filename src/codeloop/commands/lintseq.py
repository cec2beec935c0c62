"""`codeloop lintseq`: programs -> linter-clean insertion-edit sequences (LintSeq)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.commands.steps import declared_option
from codeloop.methods.lintseq.sampling import LintSeqOptions
from codeloop.pipeline.stages_lintseq import LintSeqStageConfig
from codeloop.rundir import locks_output

from codeloop.console import console, progress_bar, summary, warn


def register(app: typer.Typer) -> None:
    @app.command("lintseq")
    @locks_output()
    def lintseq(
        data: Path = typer.Option(..., "--data", help="Records holding a program: JSONL(.gz), Parquet or a "
                                                      "datasets folder."),
        out: Path = typer.Option(..., "--out", help="Output (.jsonl, .jsonl.gz, .parquet): each input record "
                                                    "plus `edits`, one line per edit sequence; with --sft, SFT "
                                                    "records of the edits."),
        s: int = declared_option(LintSeqStageConfig, "s", "-s"),
        field: Optional[str] = typer.Option(None, "--field", help="Field with the program "
                                            "(default: the first of code, completion, response)."),
        seed: int = typer.Option(0, "--seed", help="Results depend on the seed only, "
                                                   "not on --workers."),
        workers: int = declared_option(LintSeqStageConfig, "workers"),
        errors: str = typer.Option(",".join(("E", "F", "I", "W0311", "W0231")), "--errors",
                                   help="pylint categories / message ids that count as errors "
                                        "(official: E,F,I,W0311,W0231)."),
        indent: str = declared_option(LintSeqOptions, "indent"),
        rejects: Optional[Path] = typer.Option(None, "--rejects", help="Where rejected sequences go "
                                               "(default: OUT with .rejects.jsonl, only if any)."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N records."),
        sft: bool = typer.Option(False, "--sft", help="Write SFT-ready records instead: prompt = the record's "
                                 "instruction/prompt/description (--instruction-field), completion = the "
                                 "edit-sequence text (what `codeloop train sft` then learns)."),
        instruction_field: Optional[str] = typer.Option(None, "--instruction-field", help="With --sft: the field "
                                                        "the prompt comes from (default: instruction, prompt or "
                                                        "description)."),
        atomic_strings: bool = declared_option(LintSeqOptions, "atomic_strings", "--atomic-strings"),
        diff_in_prompt: bool = declared_option(LintSeqStageConfig, "diff_in_prompt",
                                               "--diff-in-prompt/--diff-in-target"),
        fmt: str = typer.Option("codeloop", "--format", help="With --sft: codeloop (task_id, prompt, completion) "
                                "or trl (the keys TRL's SFTTrainer takes); trl implies --sft."),
    ) -> None:
        """Refactor programs into sequences of linter-clean insertion edits (LintSeq).

        Each sequence is verified (every state lints clean, insertion-only hunks, the edits rebuild
        the program); rejected ones are counted and written to --rejects with their reason.
        """
        import os

        from codeloop.errors import UserError
        from codeloop.methods.lintseq import LintSeqOptions, choose_field, lintseq_records
        from codeloop.methods.lintseq import sft_records_from_edits
        from codeloop.records import check_records_output, in_format, iter_records, write_jsonl
        from codeloop.steps import OUTPUT_FORMATS

        if s < 1:
            raise UserError("must be at least 1", "-s")
        if indent not in ("auto", "official"):
            raise UserError(f"'{indent}' is not one of: auto, official", "--indent")
        if fmt not in OUTPUT_FORMATS:
            raise UserError(f"must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}", "--format")
        sft = sft or fmt == "trl"
        check_records_output(out, "--out")
        error_set = tuple(e.strip() for e in errors.split(",") if e.strip())
        try:
            from codeloop.linting import LintConfig

            LintConfig(errors=error_set)
        except ValueError as exc:
            raise UserError(str(exc), "--errors") from None

        records, linenos = [], []
        for lineno, rec in iter_records(data):
            name = choose_field(rec, field)
            if rec.get(name) is None or not isinstance(rec.get(name), str):
                hint = "" if field else " (choose one with --field)"
                raise UserError(f"record has no string field '{name}'{hint}", f"{data}:{lineno}")
            records.append(rec)
            linenos.append(lineno)
            if limit is not None and len(records) >= limit:
                break
        if not records:
            raise UserError("no records", str(data))

        n_workers = workers or os.cpu_count() or 1
        options = LintSeqOptions(errors=error_set, indent=indent, atomic_strings=atomic_strings)
        with progress_bar("lintseq", len(records)) as advance:
            try:
                results, stats = lintseq_records(records, field=field, s=s, seed=seed,
                                                 workers=n_workers, options=options, progress=advance)
            except ValueError as exc:
                raise UserError(str(exc), "--errors") from None
        if sft:
            try:
                written = in_format(sft_records_from_edits(results, instruction_field=instruction_field,
                                                         diff_in_prompt=diff_in_prompt), "sft", fmt)
            except KeyError as exc:
                raise UserError(f"a record has no instruction field {exc} to be the SFT prompt (choose one with "
                                "--instruction-field)", str(data)) from None
        else:
            written = results
        write_jsonl(out, written)
        rejects_path = rejects or out.with_name(out.name.removesuffix(".gz").removesuffix(".jsonl")
                                                + ".rejects.jsonl")
        if stats.rejects:
            write_jsonl(rejects_path, [{"line": linenos[r["index"]], **r} for r in stats.rejects])
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.rejected.items()))
            warn(f"{len(stats.rejects)} sequences rejected ({kinds}); reasons in {rejects_path}")
        if stats.programs_not_clean:
            console.print(f"{stats.programs_not_clean} input programs have lint errors themselves "
                          "(kept: their flagged lines arrive in the last edit)")
        lint = stats.lint
        summary(f"{stats.sequences}/{stats.sequences_requested} edit sequences from "
                f"{stats.programs} programs -> {out} ({stats.edits} edits, "
                f"{stats.sequences / stats.seconds if stats.seconds else 0:.1f} seq/s; lint checks "
                f"{lint.get('checks', 0)}: {lint.get('pylint_calls', 0)} pylint, "
                f"{lint.get('syntax_fastpath', 0)} parse-only, {lint.get('memo_hits', 0)} cached)")
