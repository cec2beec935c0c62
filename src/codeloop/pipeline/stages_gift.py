"""Recipe stages for GiFT (Gibbs fine-tuning), registered on import.

- ``gift``: Gibbs chains code <-> description on a frozen model, perplexity of each kept code,
  resampling -> ``sft.jsonl`` (original prompt, code; with ``train_set: gold+resampled`` the seed
  problems' reference solutions too), ``chains.json``, ``kept.jsonl``, the rounds table
  ``gift_rounds.md`` and plots (``gift_rounds.png``, ``gift_ppl_hist.png``,
  ``gift_resampling.png``). Rounds resume one by one (``round-NN/``).
- ``self_training``: the plain baseline with the same code budget: iters x num_seq samples per
  problem from the original prompt only, passing ones kept, k drawn uniformly, the same
  ``train_set`` -> ``sft.jsonl`` and ``self_training.md``.

Train either with the ``train_sft`` stage (``input: <this stage>``) and evaluate with ``eval``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from typing import Any, Optional

from codeloop.errors import UserError
from codeloop.execution import ExecConfig
from codeloop.methods.gift import GiFTConfig
from codeloop.pipeline.stages import StageContext
from codeloop.steps import (FORMAT_FIELD, SANDBOX_FIELDS, Step, derive, generation_fields, library_kwargs, option,
                            problem_fields, run_fields, validate_as)
from codeloop.records import atomic_write_text, in_format, write_jsonl


def _check_gift(self: Any, where: str) -> None:
    validate_as(GiFTConfig, self, where, seed=0)


GIFT_LOCAL = ("Each kept code's perplexity is scored by the model loaded here (a server cannot score): with "
              "backend openai, model must name the served model and load here too; with vllm both share the GPU.")


GiFTStageConfig = derive("GiFTStageConfig", GiFTConfig, drop=("seed",),
                         extra=problem_fields("train") + run_fields("Sampling seed") + SANDBOX_FIELDS + [FORMAT_FIELD]
                         + generation_fields(GIFT_LOCAL),
                         namespace={"check": _check_gift, "__module__": __name__})


def _load(ctx: StageContext, cfg: Any, scores: str = "") -> tuple[list[Any], Any, Any, Any]:
    """The problems, the local model and tokenizer when the step `scores` (else None, None), and the
    sampler on the step's backend (hf: the same loaded model)."""
    from codeloop.generation import local_model, make_generator, require_local_model
    from codeloop.methods.gift import freeze
    from codeloop.problems import load_problems

    problems = load_problems(cfg.problems, split=cfg.split, limit=cfg.limit)
    if not problems:
        raise UserError(f"'{cfg.problems}' has no problems (split {cfg.split!r})", f"stages.{ctx.name}.problems")
    name = ctx.model(cfg.model)
    if scores:
        require_local_model(name, cfg.backend, scores, f"stages.{ctx.name}.model")
    generator = make_generator(name, cfg.backend, base_url=cfg.base_url, api_key=cfg.api_key)
    model = tokenizer = None
    if scores:
        model, tokenizer = local_model(generator, name)
        freeze(model)
    elif getattr(generator, "backend", None) == "hf":
        freeze(generator.model)
    return problems, model, tokenizer, generator


def run_gift(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.methods.gift import gift, model_scorer, plot_chain, write_rounds_table

    problems, model, tokenizer, generator = _load(ctx, cfg, scores="scoring each kept code's perplexity")
    gcfg = GiFTConfig(**library_kwargs(cfg, GiFTConfig, seed=ctx.seed(cfg.seed)))
    try:
        sft, stats = gift(problems, gcfg, generator, model_scorer(model, tokenizer, cfg.batch_size),
                          ctx.stage.path / "chains", ExecConfig(**ctx.sandbox(cfg.timeout_s, cfg.memory_mb)))
    finally:
        del generator, model
        gc.collect()
    # Gold alone would make GiFT plain SFT on the seeds: say so rather than train a look-alike arm.
    if not stats["resampled_records"]:
        raise UserError(f"no code passed its tests in {gcfg.iters} rounds on {len(problems)} problems: nothing "
                        "self-generated to train on (more problems, rounds or samples, or an easier set)",
                        f"stages.{ctx.name}")
    write_jsonl(ctx.stage.path / "sft.jsonl", in_format(sft, "sft", cfg.format))
    kept = _read_kept(ctx)
    write_jsonl(ctx.stage.path / "kept.jsonl", kept)
    atomic_write_text(ctx.stage.path / "chains.json", json.dumps(stats, indent=2, default=str) + "\n")
    plot_chain(stats, kept, ctx.stage.path)
    write_rounds_table(stats, ctx.stage.path)
    return _metrics(stats)


def _metrics(stats: dict[str, Any]) -> dict[str, Any]:
    # The per-round and per-problem lists live in chains.json and the table, not in the metrics.
    out = {k: v for k, v in stats.items() if k not in ("per_round", "resampling")}
    out["resampling"] = {k: v for k, v in stats["resampling"].items() if not k.endswith("_per_problem")}
    return out


def _read_kept(ctx: StageContext) -> list[dict[str, Any]]:
    from codeloop.methods.gift import kept_codes
    from codeloop.rundir import RunDir

    records = []
    for stage in RunDir(ctx.stage.path / "chains").stages():
        if stage.path.name.startswith("round-"):
            records.extend(stage.records())
    return kept_codes(records)


_SELF_TRAINING_KEEPS = ("temperature", "top_p", "max_new_tokens", "k", "train_set", "tests_limit", "batch_size",
                        "prompt_format", "chat")


def _check_self_training(self: Any, where: str) -> None:
    if self.samples_per_problem is not None and self.samples_per_problem < 1:
        raise UserError("must be >= 1", f"{where}.samples_per_problem")
    if self.samples_per_problem is None and not self.budget_from:
        raise UserError("set samples_per_problem, or budget_from: a gift stage whose budget to match",
                        f"{where}.samples_per_problem")
    _check_gift(self, where)


# The plain baseline shares GiFT's sampling and resampling settings (declared there), no chains.
SelfTrainingStageConfig = derive(
    "SelfTrainingStageConfig", GiFTConfig,
    drop=[f.name for f in dataclasses.fields(GiFTConfig) if f.name not in _SELF_TRAINING_KEEPS],
    extra=problem_fields("train") + run_fields("Sampling seed") + SANDBOX_FIELDS + [FORMAT_FIELD] + generation_fields() + [
        ("samples_per_problem", Optional[int], option(None, help="Codes sampled per problem (default: the "
                                                                "budget_from step's iters x num_seq).")),
        ("budget_from", Optional[str], option(None, help="A gift step whose code budget (iters x num_seq per "
                                                         "problem) to match."))],
    namespace={"check": _check_self_training, "__module__": __name__})


def run_self_training(ctx: StageContext, cfg: Any) -> dict[str, Any]:
    from codeloop.methods.gift import self_training, write_rounds_table

    gcfg = GiFTConfig(**library_kwargs(cfg, GiFTConfig, seed=ctx.seed(cfg.seed)))
    n = cfg.samples_per_problem
    if cfg.budget_from:
        try:
            spec = ctx.recipe.stage(cfg.budget_from)
        except KeyError:
            raise UserError(f"no stage named '{cfg.budget_from}'", f"stages.{ctx.name}.budget_from") from None
        if spec.type != "gift":
            raise UserError(f"stage '{cfg.budget_from}' is a {spec.type} stage, not gift", f"stages.{ctx.name}.budget_from")
        g = spec.config
        n = n or g.iters * g.num_seq
        for name in ("prompt_format", "chat"):  # the baseline is asked as the chains are, or it compares nothing
            if getattr(g, name) != getattr(cfg, name):
                raise UserError(f"{name} is {getattr(cfg, name)!r} here but {getattr(g, name)!r} on '{cfg.budget_from}'",
                                f"stages.{ctx.name}.{name}")
    problems, _, _, generator = _load(ctx, cfg)
    try:
        sft, stats = self_training(problems, gcfg, generator, ctx.stage.path,
                                   ExecConfig(**ctx.sandbox(cfg.timeout_s, cfg.memory_mb)), samples_per_problem=n)
    finally:
        del generator
        gc.collect()
    if not stats["resampled_records"]:
        raise UserError(f"none of the {stats['samples']} samples passed its tests: nothing self-generated to "
                        "train on", f"stages.{ctx.name}")
    write_jsonl(ctx.stage.path / "sft.jsonl", in_format(sft, "sft", cfg.format))
    write_rounds_table(stats, ctx.stage.path, "self_training.md", "Self-training (samples from the original "
                       "descriptions only)")
    return _metrics(stats)


GIFT = Step("gift", GiFTStageConfig, run_gift, "GiFT: Gibbs chains code <-> description on a frozen model, perplexity-weighted resampling -> sft.jsonl",
            produces=("sft",), sandbox=True, output="sft.jsonl")
SELF_TRAINING = Step("self_training", SelfTrainingStageConfig, run_self_training, "plain self-training baseline: samples from the original prompts only, same budget -> sft.jsonl",
                     produces=("sft",), sandbox=True, output="sft.jsonl")
