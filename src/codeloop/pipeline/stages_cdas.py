"""Recipe stages for CodeACT (CDAS data selection + Dynamic Pack), registered on import.

- ``sft_data``: prompt/completion SFT records from a problem set's reference solutions.
- ``select``: CDAS / ifd-only / random selection of an earlier stage's records, scored on the pair
  SFT trains (methods/codeact/pairs.py).
- ``train_sft_profiled``: the ``train_sft`` stage plus the training's peak memory, and the
  Dynamic Pack row layout as an option (``next-fit``, the paper's, by default).
- ``cdas_table``: pass@1, training time and peak memory side by side (the paper's Table I).
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from typing import Any, Optional

from codeloop.errors import UserError
from codeloop.methods.codeact import CDASConfig
from codeloop.pipeline.stages import StageContext, TrainSFTConfig
from codeloop.generation.params import GenerationParams
from codeloop.generation.prompts import close_code_block, format_instruction, instruction_text, with_system
from codeloop.steps import (FORMAT_FIELD, Step, derive, library_kwargs, option, problem_fields, run_fields,
                            same_as, validate_as)
from codeloop.training.packing import LAYOUTS
from codeloop.records import atomic_write_text, in_format, write_jsonl

# -- sft_data ---------------------------------------------------------------------------------------

INSTRUCTION_SOURCES = ("auto", "description", "prompt")


def _check_sft_data(self: Any, where: str) -> None:
    validate_as(GenerationParams, self, where)  # prompt_format, chat


SFTDataStageConfig = derive(
    "SFTDataStageConfig", None, namespace={"check": _check_sft_data, "__module__": __name__},
    extra=problem_fields("train") + [
        ("instruction", str, option("auto", choices=INSTRUCTION_SOURCES,
                                    help="What the records' `instruction` field holds: the problem's description, "
                                         "its prompt, or auto (the description when there is one, else the "
                                         "prompt). Training and CDAS read prompt/completion.")),
        ("prompt_format", str, same_as(GenerationParams, "prompt_format")),
        ("chat", str, same_as(GenerationParams, "chat")), FORMAT_FIELD])


def problem_sft_record(problem: Any, instruction: str = "auto",
                       params: GenerationParams | None = None) -> dict[str, Any] | None:
    """One record per problem with a reference solution, None without one.

    ``prompt``/``completion`` are the pair that is trained, in the format the model is evaluated in
    (`params`: an eval's prompt_format and chat), so the tuned model is asked the way it is
    evaluated; CDAS scores and embeds the same pair (the SFT formatter reads ``prompt`` before
    ``instruction``: codeact/pairs.py).

    - completion: the problem's prompt, continued by the reference solution;
    - instruction: the evaluation's request in words (`generation.prompts.instruction_text`) and the
      whole reference program as the answer's code block: a conversation (TRL's conversational
      prompt/completion, rendered by the tuned model's chat template), or with ``chat: plain`` the
      plain template's strings.

    ``instruction``/``response`` (the task in words, the whole reference program) describe the
    problem for other steps, e.g. LintSeq's edits of the program.
    """
    solution = problem.canonical_solution or ""
    if not solution.strip():
        return None
    if instruction == "prompt" or (instruction == "auto" and not (problem.description or "").strip()):
        text = problem.prompt
    else:
        text = problem.description
    program = solution if problem.kind == "stdio" else problem.prompt + solution
    rec = {"task_id": problem.task_id, "source": problem.source, "instruction": text.strip(),
           "response": program, "prompt": problem.prompt, "completion": solution}
    if params is not None and params.prompt_format == "instruction":
        answer = close_code_block(program)
        if params.chat == "plain":
            rec.update(prompt=format_instruction(instruction_text(problem), params), completion=answer)
        else:
            rec.update(prompt=with_system([{"role": "user", "content": instruction_text(problem)}], params),
                       completion=[{"role": "assistant", "content": params.response_prefix + answer}])
    return rec


def run_sft_data(ctx: StageContext, cfg: SFTDataStageConfig) -> dict[str, Any]:
    from codeloop.problems import load_problems

    problems = load_problems(cfg.problems, split=cfg.split, limit=cfg.limit)
    params = GenerationParams(prompt_format=cfg.prompt_format, chat=cfg.chat)
    records = [r for r in (problem_sft_record(p, cfg.instruction, params) for p in problems) if r is not None]
    if not records:
        raise UserError(f"none of the {len(problems)} problems of '{cfg.problems}' has a reference solution "
                        "(canonical_solution)", f"stages.{ctx.name}.problems")
    write_jsonl(ctx.stage.path / "sft.jsonl", in_format(records, "sft", cfg.format))
    return {"problems": len(problems), "records": len(records), "no_solution": len(problems) - len(records)}


# -- select -----------------------------------------------------------------------------------------

def _check_select(self: Any, where: str) -> None:
    if self.size is not None and self.size_from:
        raise UserError("set size or size_from, not both", f"{where}.size_from")
    size = self.size if self.size is not None else (0 if self.size_from else None)
    validate_as(CDASConfig, self, where, seed=0, size=size)


SelectStageConfig = derive(
    "SelectStageConfig", CDASConfig, drop=("seed",), namespace={"check": _check_select, "__module__": __name__},
    extra=[("input", str, option(flags=("--data", "-d"), help="The step whose records to select from (command "
                                                             "line: its folder or the JSONL file).")),
           ("file", str, option("sft.jsonl", help="That step's file.")),
           ("size_from", Optional[str], option(None, help="random / ifd-only: keep as many as that earlier select "
                                                          "step kept.")),
           ("instruction_field", Optional[str], option(None, help="Score this field as the instruction "
                                                                  "instead of the pair SFT trains on (default: "
                                                                  "the trained pair, prompt else instruction).")),
           ("response_field", Optional[str], option(None, help="Score this field as the response instead of "
                                                               "the trained one (completion else response).")),
           *run_fields("KMeans random_state / random baseline seed"), FORMAT_FIELD])


def _release_models() -> None:
    """Free the scoring model and the embedder so later stages' memory figures don't carry them."""
    from codeloop.scoring import load_embedder

    load_embedder.cache_clear()
    gc.collect()


def run_select(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.methods import cdas

    size = cfg.size
    if cfg.size_from:
        stats_file = ctx.output_file(cfg.size_from, "stats.json")
        size = int(json.loads(stats_file.read_text())["kept"])
    config = CDASConfig(**library_kwargs(cfg, CDASConfig, seed=ctx.seed(cfg.seed), size=size))
    path = ctx.output_file(cfg.input, cfg.file)
    data = cdas.read_instruction_jsonl(path, cfg.instruction_field, cfg.response_field)
    model_name = ctx.model(cfg.model)
    lm = tok = None
    try:
        if config.needs_model:
            from codeloop.models import load_model

            lm, tok = load_model(model_name)
        result = cdas.select_records(data, config, lm, tok, model_name=model_name if lm is not None else "")
    finally:
        del lm, tok
        _release_models()
    out = ctx.stage.path / "sft.jsonl"
    cdas.write_selection(result, out, ctx.stage.path / "stats.json", fmt=cfg.format)
    cdas.plot_ifd_histogram(result, ctx.stage.path / "ifd_hist.png")
    cdas.plot_clusters(result, ctx.stage.path / "clusters.png")
    s = result.stats
    metrics = {k: s[k] for k in ("method", "n_input", "kept", "kept_fraction", "dropped_ifd_ge_1", "dropped_failed",
                                 "not_selected")}
    for k in ("k_used", "k_requested", "k_note", "ifd_median", "ifd_median_kept"):
        if s.get(k) not in (None, ""):
            metrics[k] = s[k]
    return metrics


# -- train_sft_profiled --------------------------------------------------------------------------

ProfiledTrainStageConfig = derive("ProfiledTrainStageConfig", TrainSFTConfig, namespace={"__module__": __name__},
                                  replace={"pack_layout": (str, option("next-fit", choices=LAYOUTS,
                                                                       help="Dynamic Pack rows: next-fit (the "
                                                                            "paper's) or balanced."))})


def run_train_sft_profiled(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop import training

    data = ctx.output_file(cfg.input, cfg.file or "sft.jsonl")
    records = training.load_sft_records(str(data))
    run_cfg = training.SFTRunConfig(**library_kwargs(cfg, training.SFTRunConfig, model=ctx.model(cfg.model),
                                                     out_dir=str(ctx.stage.path), seed=ctx.seed(cfg.seed)))
    from codeloop.training.memory import PeakMemory

    with PeakMemory() as mem:
        result = training.train_sft(records, run_cfg)
    out = result.to_dict()
    out.update(records=len(records), train_time_s=result.wall_time_s, packing=cfg.packing,
               pack_layout=cfg.pack_layout)
    if not result.skipped:
        out.update(mem.metrics())
        atomic_write_text(ctx.stage.path / "memory.json", json.dumps(mem.metrics(), indent=2) + "\n")
    elif (ctx.stage.path / "memory.json").exists():
        out.update(json.loads((ctx.stage.path / "memory.json").read_text()))
    gc.collect()
    return out


# -- cdas_table ------------------------------------------------------------------------------------

def _eval_columns(value: Any, where: str) -> dict[str, str]:
    """A row's `eval`: one eval step (column pass@1) or {column: eval step} (e.g. mbpp, mbpp+)."""
    if isinstance(value, str) and value:
        return {"": value}
    if isinstance(value, dict) and value and all(isinstance(k, str) and k and isinstance(v, str) and v
                                                 for k, v in value.items()):
        return dict(value)
    raise UserError("must be an eval step (a string) or {column: eval step}", where)


@dataclass
class TableStageConfig:
    rows: list[dict] = option(default_factory=list, help="One row per variant: {label, train: a train step, "
                                                         "eval: its eval step, or {column: eval step} for several "
                                                         "benchmarks}.")
    title: str = option("CodeACT Table I", help="The table's title.")
    # not `baseline`: the recipe loader takes a field of that name for one earlier step's name
    base_eval: Optional[Any] = option(None, help="The untuned model's eval step(s), as a row's eval: a reference "
                                                 "row without training.")

    def check(self, where: str) -> None:
        if not self.rows:
            raise UserError("needs at least one row {label, train, eval}", f"{where}.rows")
        columns = None
        for i, row in enumerate(self.rows):
            for key in ("label", "train"):
                if not isinstance(row.get(key), str) or not row[key]:
                    raise UserError(f"missing '{key}' (a string)", f"{where}.rows[{i}].{key}")
            if row.get("eval") is None:
                raise UserError("missing 'eval' (a string, or {column: eval step})", f"{where}.rows[{i}].eval")
            cols = list(_eval_columns(row["eval"], f"{where}.rows[{i}].eval"))
            if columns is not None and cols != columns:
                raise UserError(f"eval columns {cols} differ from the first row's {columns}", f"{where}.rows[{i}].eval")
            columns = cols
            extra = set(row) - {"label", "train", "eval"}
            if extra:
                raise UserError(f"unknown key '{sorted(extra)[0]}' (keys: label, train, eval)", f"{where}.rows[{i}]")
        if self.base_eval is not None and list(_eval_columns(self.base_eval, f"{where}.base_eval")) != columns:
            raise UserError(f"needs the rows' eval columns {columns}", f"{where}.base_eval")


    def stage_refs(self) -> list[tuple[str, str]]:
        """The earlier steps the rows name, (key, name), for the recipe loader to check."""
        refs = []
        for i, row in enumerate(self.rows):
            refs.append((f"rows[{i}].train", row["train"]))
            refs += [(f"rows[{i}].eval", step) for step in _eval_columns(row["eval"], "").values()]
        if self.base_eval is not None:
            refs += [("base_eval", step) for step in _eval_columns(self.base_eval, "").values()]
        return refs


def _stage_metrics(ctx: StageContext, name: str) -> dict[str, Any]:
    return json.loads(ctx.output_file(name, "metrics.json").read_text())


def _fmt(x: Any, digits: int | None = None) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}f}" if digits is not None and isinstance(x, (int, float)) and not isinstance(x, bool) \
        else str(x)


def _pass_at_1(ctx: StageContext, evals: dict[str, str]) -> dict[str, Any]:
    return {col: (_stage_metrics(ctx, step).get("pass@k") or {}).get("pass@1") for col, step in evals.items()}


def _pass_key(col: str) -> str:
    return f"pass@1 {col}" if col else "pass@1"


def run_cdas_table(ctx: StageContext, cfg: TableStageConfig) -> dict[str, Any]:
    rows = []
    columns: list[str] = []
    if cfg.base_eval is not None:
        evals = _eval_columns(cfg.base_eval, "base_eval")
        rows.append({"label": "base model (no tuning)", "train": None, "eval": evals,
                     **{_pass_key(c): v for c, v in _pass_at_1(ctx, evals).items()}})
    for row in cfg.rows:
        evals = _eval_columns(row["eval"], "eval")
        columns = list(evals)
        tm = _stage_metrics(ctx, row["train"])
        metrics = tm.get("metrics") or {}
        rows.append({"label": row["label"], "train": row["train"], "eval": row["eval"],
                     "records": tm.get("records"), "steps": tm.get("steps"), "packing": tm.get("packing"),
                     **{_pass_key(c): v for c, v in _pass_at_1(ctx, evals).items()},
                     "train_time_s": tm.get("train_time_s", tm.get("wall_time_s")),
                     "peak_rss_mb": tm.get("peak_rss_mb"), "peak_rss_delta_mb": tm.get("peak_rss_delta_mb"),
                     "peak_cuda_mb": tm.get("peak_cuda_mb"), "padding_ratio": metrics.get("padding_ratio_avg"),
                     "train_loss": metrics.get("train_loss")})
    pass_cols = [(_pass_key(c), _pass_key(c), 3) for c in columns]
    cols = [("variant", "label", None), ("records", "records", None), ("steps", "steps", None),
            ("packing", "packing", None), *pass_cols, ("train time s", "train_time_s", 1),
            ("peak RSS MB", "peak_rss_mb", 0), ("peak RSS Δ MB", "peak_rss_delta_mb", 0),
            ("padding", "padding_ratio", 3), ("train loss", "train_loss", 3)]
    if any(r.get("peak_cuda_mb") is not None for r in rows):
        cols.insert(cols.index(("peak RSS MB", "peak_rss_mb", 0)), ("peak CUDA MB", "peak_cuda_mb", 0))
    md = [f"# {cfg.title}", "", "| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        md.append("| " + " | ".join(_fmt(r.get(k), d) for _, k, d in cols) + " |")
    atomic_write_text(ctx.stage.path / "table.md", "\n".join(md) + "\n")
    atomic_write_text(ctx.stage.path / "table.json", json.dumps(rows, indent=2) + "\n")
    _plot_table(rows, [k for _, k, _ in pass_cols], cfg.title, ctx.stage.path / "table.png")
    first = _pass_key(columns[0]) if columns else "pass@1"
    scored = [r for r in rows if r.get("train") and r.get(first) is not None]
    best = max(scored, key=lambda r: r[first]) if scored else None
    return {"rows": rows, "variants": len(cfg.rows), "best": best["label"] if best else None,
            "best_pass@1": best[first] if best else None}


def _plot_table(rows: list[dict[str, Any]], pass_keys: list[str], title: str, path: Any) -> None:
    """pass@1 per benchmark, training time and peak memory per variant, side by side."""
    from codeloop.viz import matplotlib_agg, save_figure

    plt = matplotlib_agg()
    trained = [r for r in rows if r.get("train")]
    mem_key = "peak_cuda_mb" if any(r.get("peak_cuda_mb") is not None for r in trained) else "peak_rss_mb"
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(rows) + 2.2))
    y = list(range(len(rows)))
    width = 0.8 / max(len(pass_keys), 1)
    ax = axes[0]
    for j, key in enumerate(pass_keys):
        ax.barh([v + j * width for v in y], [r.get(key) or 0.0 for r in rows], height=width, label=key)
    ax.set_yticks([v + width * (len(pass_keys) - 1) / 2 for v in y], [r["label"] for r in rows])
    ax.invert_yaxis()
    top = max([r.get(k) or 0.0 for r in rows for k in pass_keys] + [0.0])
    ax.set_xlim(0, max(0.05, top * 1.15))  # all-zero scores (a tiny run) still get an axis
    ax.set_xlabel("pass@1")
    if len(pass_keys) > 1:
        ax.legend(fontsize=8)
    for ax, key, label in ((axes[1], "train_time_s", "training time (s)"),
                           (axes[2], mem_key, "peak CUDA memory (MB)" if mem_key == "peak_cuda_mb"
                            else "peak RSS (MB)")):
        ty = list(range(len(trained)))
        ax.barh(ty, [r.get(key) or 0.0 for r in trained],
                color=["#1a73e8" if r.get("packing") == "codeact" else "#9aa0a6" for r in trained])
        ax.set_yticks(ty, [r["label"] for r in trained])
        ax.invert_yaxis()
        ax.set_xlabel(label)
    axes[1].set_title("blue: Dynamic Pack", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


SFT_DATA = Step("sft_data", SFTDataStageConfig, run_sft_data, "instruction/response SFT records from a problem set's reference solutions (writes sft.jsonl)",
                produces=("sft",), output="sft.jsonl")
SELECT = Step("select", SelectStageConfig, run_select, "CDAS (k-means + top IFD per cluster), ifd-only or random selection -> sft.jsonl, stats, plots",
              consumes=("sft",), produces=("sft",), output="sft.jsonl",
              requires=(("sklearn", "scikit-learn"), ("sentence_transformers", "sentence-transformers")))
TRAIN_SFT_PROFILED = Step("train_sft_profiled", ProfiledTrainStageConfig, run_train_sft_profiled, "train_sft plus training time and peak memory; Dynamic Pack layout selectable",
                          consumes=("sft",), produces=("adapter",))
CDAS_TABLE = Step("cdas_table", TableStageConfig, run_cdas_table, "pass@1, training time and peak memory per (data, packing) variant -> table.md / table.json",
                  produces=("report",))
