"""Stage types a recipe can name. Each is a config dataclass (validated on load) and a run function.

A stage's run function gets a `StageContext` and returns its metrics; it writes its outputs in its
own folder `runs/NAME/STAGE/` and knows nothing of the recipe around it beyond the stages it
names as input. Stages that loop over many items keep resumable sub-stages (samples/, results/).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from codeloop.errors import UserError
from codeloop.evaluation.harness import EvalConfig
from codeloop.execution import ExecConfig
from codeloop.methods.preference import PreferenceConfig
from codeloop.records import in_format, read_jsonl, write_jsonl
from codeloop.steps import (BATCH_FIELD, FORMAT_FIELD, SANDBOX_FIELDS, Step, StepContext, derive, library_kwargs,
                            generation_fields, option, problem_fields, run_fields, validate_as)
from codeloop.training.config import DPORunConfig, SFTRunConfig


StageContext = StepContext  # the name the method stages use


# -- eval ------------------------------------------------------------------------------------------

def _check_eval(self: Any, where: str) -> None:
    validate_as(EvalConfig, self, where, model="x", seed=0)


# An eval step is `EvalConfig` with the run's model and seed as defaults, an adapter that may come
# from a named train step, and the run's executor and isolation.
EvalStageConfig = derive(
    "EvalStageConfig", EvalConfig, drop=("executor", "isolation"),
    extra=[("adapter_from", Optional[str], option(None, help="A train step: evaluate its final adapter or model "
                                                             "(recipe: a stage name; command line: its folder)."))],
    replace={"model": (Optional[str], option(None, flags=("-m",), help="HF model id or local path; 'default' = "
                                                                      "the embedded model; 'canonical' = the "
                                                                      "reference solutions; default: the run's.")),
             "seed": (Optional[int], option(None, help="Sampling seed; default: the run's."))},
    namespace={"check": _check_eval, "__module__": __name__})


def run_eval(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.evaluation.harness import evaluate

    adapter = str(ctx.stage_path(cfg.adapter_from) / "final") if cfg.adapter_from else cfg.adapter
    ecfg = EvalConfig(**library_kwargs(cfg, EvalConfig, model=ctx.model(cfg.model), adapter=adapter,
                                           seed=ctx.seed(cfg.seed), executor=ctx.executor,
                                           isolation=ctx.isolation))
    summary = evaluate(ecfg, ctx.stage.path)
    m = summary.metrics
    return {"pass@k": m["pass@k"], "problems": m["n_problems"], "samples": m["n_samples"],
            "status": m["status"], "tokens": m["tokens"], "adapter_from": cfg.adapter_from,
            "benchmark": cfg.benchmark, "split": m["split"]}


# -- pairs (DPO method, steps 1-5) ------------------------------------------------------------------

PAIRS_LOCAL = ("The pair distances are log-probs under the model loaded here (a server cannot score): with "
               "backend openai, model must name the served model and load here too.")

# the pairs step writes the source's |gap| and keeps both log-probs: the sign is the curriculum's to take
_CURRICULUM_FIELDS = ("bucket_edges", "drop_bottom", "direction", "signed")


def _check_preference(self: Any, where: str) -> None:
    validate_as(PreferenceConfig, self, where)


PairsStageConfig = derive(
    "PairsStageConfig", PreferenceConfig, drop=_CURRICULUM_FIELDS + ("seed",),
    extra=problem_fields("train") + run_fields("Sampling seed") + [BATCH_FIELD] + SANDBOX_FIELDS + [FORMAT_FIELD]
    + generation_fields(PAIRS_LOCAL),
    namespace={"check": _check_preference, "__module__": __name__})
CurriculumStageConfig = derive(
    "CurriculumStageConfig", PreferenceConfig,
    drop=[f.name for f in dataclasses.fields(PreferenceConfig)
          if f.name not in _CURRICULUM_FIELDS + ("length_normalized",)],
    extra=[("input", str, option(help="The pairs step (recipe: a stage name; command line: its folder or the "
                                      "pairs file: JSONL, Parquet, a datasets folder).", flags=("--pairs",))),
           ("merge", list[str], option(default_factory=list, ref=True,
                                       help="More pairs steps (files on the command line) whose pairs join "
                                            "input's before bucketing, e.g. pairs from a second problem set: "
                                            "the percentiles are over all of them.")),
           ("seed", Optional[int], option(None, help="Shuffle seed within buckets; default: the run's.")),
           ("model", Optional[str], option(None, flags=("-m",), help="For pairs made elsewhere (no 'distance'): "
                                                                    "the initial model that scores the log-prob "
                                                                    "distance, as `codeloop pairs` does.")),
           BATCH_FIELD, FORMAT_FIELD],
    namespace={"check": _check_preference, "__module__": __name__})


def run_pairs(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.methods.preference import make_pairs
    from codeloop.problems import load_problems

    problems = load_problems(cfg.problems, split=cfg.split, limit=cfg.limit)
    pref = PreferenceConfig(**library_kwargs(cfg, PreferenceConfig, seed=ctx.seed(cfg.seed)))
    pairs, stats = make_pairs(problems, pref, ctx.stage.path,
                              model_name=ctx.model(cfg.model),
                              exec_config=ExecConfig(**ctx.sandbox(cfg.timeout_s, cfg.memory_mb)), batch_size=cfg.batch_size,
                              backend=cfg.backend, base_url=cfg.base_url, api_key=cfg.api_key)
    write_jsonl(ctx.stage.path / "pairs.jsonl", in_format(pairs, "pairs", cfg.format))
    return stats


# -- curriculum (DPO method, steps 6-7) -------------------------------------------------------------

def run_curriculum(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.methods.preference import (assign_curriculum, fill_distances,
                                             plot_distance_histogram, read_pairs)

    pairs, sources = [], {}
    for ref in [cfg.input, *cfg.merge]:
        if ref in sources:
            raise UserError(f"'{ref}' is named twice: its pairs would count double", "merge")
        source = ctx.output_file(ref, "pairs.jsonl")
        got = read_pairs(source)  # pairs made elsewhere too: task_id optional
        sources[ref] = len(got)
        pairs += got
    scored = fill_distances(pairs, cfg.model, cfg.length_normalized, cfg.batch_size,
                            where=str(ctx.output_file(cfg.input, "pairs.jsonl")), signed=cfg.signed)
    pref = PreferenceConfig(bucket_edges=cfg.bucket_edges, drop_bottom=cfg.drop_bottom, direction=cfg.direction,
                            signed=cfg.signed, seed=ctx.seed(cfg.seed))
    ordered = assign_curriculum(pairs, pref)
    write_jsonl(ctx.stage.path / "pairs.jsonl", in_format(ordered, "pairs", cfg.format))
    if pairs:
        plot_distance_histogram(pairs, pref, ctx.stage.path / "distance_hist.png")
    counts: dict[str, int] = {}
    for p in ordered:
        counts[str(p.bucket)] = counts.get(str(p.bucket), 0) + 1
    return {"pairs_in": len(pairs), "pairs_out": len(ordered), "buckets": counts, "direction": cfg.direction,
            "signed": cfg.signed, "drop_bottom": cfg.drop_bottom, "sources": sources, "distances_computed": scored}


# -- training ---------------------------------------------------------------------------------------

def _train_config(name: str, base: type, data_flag: str, what: str, extra: list | None = None) -> type:
    def check(self: Any, where: str) -> None:
        validate_as(base, self, where)

    return derive(name, base, drop=("out_dir",), namespace={"check": check, "__module__": __name__}, extra=[
        ("input", str, option(help=f"The step whose {what} to train on (recipe: a stage name; command line: "
                                   "its folder or the file).", flags=(data_flag,))),
        ("file", str, option("", help=f"That step's file (default: {what.split()[0]}.jsonl).")),
        *(extra or []),
    ], replace={
        "model": (Optional[str], option(None, help="Model to train; default: the run's model.")),
        "seed": (Optional[int], option(None, help="Seed for initialisation and data order; default: the run's.")),
    })


TrainSFTConfig = _train_config("TrainSFTConfig", SFTRunConfig, "--data", "sft records")
TrainDPOConfig = _train_config("TrainDPOConfig", DPORunConfig, "--pairs", "pairs", extra=[
    ("align_with", list[str], option(default_factory=list, ref=True,
                                     help="Train steps (folders on the command line) whose bucket checkpoints "
                                          "this run also keeps, at the same step counts: the shuffled arm "
                                          "beside the curriculum arms.")),
])


def _train(ctx: StepContext, cfg: Any, kind: str) -> dict[str, Any]:
    from codeloop.training import train_dpo, train_sft

    base = DPORunConfig if kind == "dpo" else SFTRunConfig
    data = ctx.output_file(cfg.input, cfg.file or ("pairs.jsonl" if kind == "dpo" else "sft.jsonl"))
    fixed: dict[str, Any] = {}
    if kind == "dpo" and cfg.align_with:
        fixed["checkpoint_steps"] = sorted(set(cfg.checkpoint_steps) | aligned_steps(ctx, cfg.align_with))
    run_cfg = base(**library_kwargs(cfg, base, model=ctx.model(cfg.model), out_dir=str(ctx.stage.path),
                                    seed=ctx.seed(cfg.seed), **fixed))
    result = (train_dpo if kind == "dpo" else train_sft)(read_jsonl(data), run_cfg)
    return result.to_dict()


def aligned_steps(ctx: StepContext, steps: list[str]) -> set[int]:
    """The steps at which the named train steps kept their bucket checkpoints."""
    import json

    from codeloop.training.run import SNAPSHOT_DIRNAME

    out: set[int] = set()
    for ref in steps:
        index = ctx.stage_path(ref) / f"{SNAPSHOT_DIRNAME}.json"
        if not index.exists():
            raise UserError(f"'{ref}' kept no bucket checkpoints (train it first, with checkpoint_buckets: true)",
                            "align_with")
        out |= {int(c["step"]) for c in json.loads(index.read_text())}
    return out


def train_summary(m: dict[str, Any]) -> str:
    metrics = m.get("metrics") or {}
    what = "adapter" if m.get("adapter") else "model"
    if m.get("skipped"):
        return f"already complete ({m.get('steps')} steps): {what} in {m.get('output_dir')}"
    parts = [f"{m.get('steps')} steps in {m.get('wall_time_s', 0):.1f}s"]
    if "first_loss" in metrics and "loss" in metrics:
        parts.append(f"loss {metrics['first_loss']:.4f} -> {metrics['loss']:.4f}")
    if "rewards/accuracies_avg" in metrics:
        parts.append(f"reward acc {metrics['rewards/accuracies_avg']:.2f}, "
                     f"margin {metrics.get('rewards/margins', 0):.4f}")
    if "padding_ratio_avg" in metrics:
        parts.append(f"padding {metrics['padding_ratio_avg']:.1%}, "
                     f"{metrics.get('real_tokens_per_s_avg', 0):.0f} real tok/s")
    if m.get("resumed_from_step"):
        parts.append(f"resumed from step {m['resumed_from_step']}")
    return "; ".join(parts) + f"; {what} in {m.get('output_dir')}"


def run_train_dpo(ctx: StepContext, cfg: Any) -> dict[str, Any]:
    return _train(ctx, cfg, "dpo")


def run_train_sft(ctx: StepContext, cfg: Any) -> dict[str, Any]:
    return _train(ctx, cfg, "sft")


def eval_summary(m: dict[str, Any]) -> str:
    passk = ", ".join(f"{k}={v:.4f}" for k, v in (m.get("pass@k") or {}).items())
    status = ", ".join(f"{k} {v}" for k, v in sorted((m.get("status") or {}).items()))
    return f"{passk} on {m.get('benchmark')} ({m.get('problems')} problems, {m.get('samples')} samples: {status})"


EVAL = Step("eval", EvalStageConfig, run_eval, "sample, execute and report pass@k on a benchmark",
            produces=("eval",), sandbox=True, summarize=eval_summary)
PAIRS = Step("pairs", PairsStageConfig, run_pairs,
             "best-of-N on-policy samples judged by tests -> DPO pairs with distances (pairs.jsonl)",
             produces=("pairs",), sandbox=True, output="pairs.jsonl")
CURRICULUM = Step("curriculum", CurriculumStageConfig, run_curriculum,
                  "bucket pairs by log-prob distance and give them a training order (pairs.jsonl)",
                  consumes=("pairs",), produces=("pairs",), output="pairs.jsonl", plot="distance_hist.png")
TRAIN_DPO = Step("train_dpo", TrainDPOConfig, run_train_dpo,
                 "DPO on pairs (TRL), LoRA by default on CPU; curriculum order optional",
                 consumes=("pairs",), produces=("adapter",), summarize=train_summary)
TRAIN_SFT = Step("train_sft", TrainSFTConfig, run_train_sft,
                 "SFT on prompt/completion records (TRL), loss on the completion",
                 consumes=("sft",), produces=("adapter",), summarize=train_summary)
