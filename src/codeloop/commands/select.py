"""`codeloop select cdas|ifd-only|random`: pick a training subset of an instruction/response JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from codeloop.commands.steps import declared_option
from codeloop.rundir import locks_output
from codeloop.methods.codeact import CDASConfig
from codeloop.pipeline.stages_cdas import SelectStageConfig

HELP = ("Select training data from an instruction/response JSONL (CodeACT's CDAS, or a baseline).\n\n"
        "IFD and the clusters are computed on the pair `train sft` learns from each record (prompt/"
        "completion, else instruction/response, conversations through the chat template).\n\n"
        "Writes the kept records (every input field plus `ifd` and `cluster`) to --out, the counts "
        "(kept / dropped per reason per cluster) to OUT.stats.json, and plots OUT.ifd_hist.png, "
        "OUT.clusters.png.")


def _plot_path(out: Path, kind: str) -> Path:
    from codeloop.methods.cdas import stats_path_for

    return stats_path_for(out).with_name(stats_path_for(out).name.replace(".stats.json", f".{kind}.png"))


def _run(method: str, data: Path, out: Path, model: str, ratio: float, clusters: int, size: Optional[int],
         rounding: str, seed: int, n_init: int, embedder: str, instruction_field: Optional[str],
         response_field: Optional[str], template: str, batch_size: int, max_length: Optional[int],
         dtype: str, device: str, adapter: Optional[str], plots: bool, fmt: str = "codeloop") -> None:
    import time

    from codeloop.console import summary
    from codeloop.methods import cdas

    config = cdas.CDASConfig(method=method, ratio=ratio, clusters=clusters, size=size, rounding=rounding, seed=seed,
                             n_init=n_init, embedder=embedder, template=template, batch_size=batch_size,
                             max_length=max_length)
    config.validate()
    from codeloop.errors import UserError
    from codeloop.records import check_records_output
    from codeloop.steps import OUTPUT_FORMATS

    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}", "--format")
    check_records_output(out, "--out")
    records = cdas.read_instruction_jsonl(data, instruction_field, response_field)
    start = time.perf_counter()
    lm = tok = None
    if config.needs_model:
        from codeloop.models import load_model

        lm, tok = load_model(model, dtype=dtype, device=device, adapter=adapter)
    result = cdas.select_records(records, config, lm, tok, model_name=model if config.needs_model else "")
    stats_file = cdas.write_selection(result, out, fmt=fmt)
    made = []
    if plots:
        for kind, fn in (("ifd_hist", cdas.plot_ifd_histogram), ("clusters", cdas.plot_clusters)):
            p = fn(result, _plot_path(out, kind))
            if p is not None:
                made.append(p.name)
    note = result.stats.get("k_note")
    summary(f"{cdas.describe(result.stats)} -> {out} (stats {stats_file.name}"
            + (f", plots {', '.join(made)}" if made else "") + f"; {time.perf_counter() - start:.1f}s)"
            + (f" — {note}" if note else ""))


def _command(app: typer.Typer, method: str, doc: str) -> None:
    def command(
        data: Path = typer.Option(..., "--data", "-d", help="Instruction/response records: JSONL, Parquet or a "
                                                                 "datasets folder."),
        out: Path = typer.Option(..., "--out", "-o", help="Where to write the kept records: .jsonl, "
                                                                  ".jsonl.gz or .parquet."),
        model: str = typer.Option("default", "--model", "-m",
                                  help="The model to be tuned (scores IFD): 'default', a local HF folder or a hub id."),
        ratio: float = declared_option(SelectStageConfig, "ratio"),
        clusters: int = declared_option(SelectStageConfig, "clusters"),
        size: Optional[int] = declared_option(SelectStageConfig, "size"),
        rounding: str = declared_option(SelectStageConfig, "rounding"),
        seed: int = declared_option(CDASConfig, "seed"),
        n_init: int = declared_option(SelectStageConfig, "n_init"),
        embedder: str = declared_option(SelectStageConfig, "embedder"),
        instruction_field: Optional[str] = declared_option(SelectStageConfig, "instruction_field"),
        response_field: Optional[str] = declared_option(SelectStageConfig, "response_field"),
        template: str = declared_option(SelectStageConfig, "template"),
        batch_size: int = declared_option(SelectStageConfig, "batch_size"),
        max_length: Optional[int] = declared_option(SelectStageConfig, "max_length"),
        dtype: str = typer.Option("auto", "--dtype", help="auto | bf16 | fp16 | fp32."),
        device: str = typer.Option("auto", "--device"),
        adapter: Optional[str] = typer.Option(None, "--adapter", help="PEFT (LoRA) adapter on the model."),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="Write the IFD histogram and cluster plot."),
        fmt: str = declared_option(SelectStageConfig, "format", "--format"),
    ) -> None:
        _run(method, data, out, model, ratio, clusters, size, rounding, seed, n_init, embedder, instruction_field,
             response_field, template, batch_size, max_length, dtype, device, adapter, plots, fmt)

    command.__doc__ = doc
    app.command(method)(locks_output()(command))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help=HELP, no_args_is_help=True)
    _command(group, "cdas", "CDAS: embed instructions, k-means into K clusters, keep the top m% by IFD per "
                            "cluster (IFD >= 1 dropped).")
    _command(group, "ifd-only", "Keep the top m% by IFD over all records (IFD >= 1 dropped), no clusters.")
    _command(group, "random", "Keep m% (or --size) of the records uniformly at random (seeded); no model.")
    app.add_typer(group, name="select")
