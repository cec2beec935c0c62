"""Recipe stages for GiFT (Gibbs fine-tuning), registered on import.

- ``gift``: Gibbs chains code <-> description on a frozen model, perplexity of each kept code,
  resampling -> ``sft.jsonl`` (original prompt, code), ``chains.json``, ``kept.jsonl`` and two
  plots (``gift_rounds.png``, ``gift_ppl_hist.png``). Rounds resume one by one (``round-NN/``).
- ``self_training``: the plain baseline with the same code budget: iters x num_seq samples per
  problem from the original prompt only, passing ones kept, k drawn uniformly -> ``sft.jsonl``.

Train either with the ``train_sft`` stage (``input: <this stage>``) and evaluate with ``eval``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from dataclasses import dataclass
from typing import Any

from codeloop.errors import UserError
from codeloop.pipeline.stages import StageContext
from codeloop.steps import Step
from codeloop.records import atomic_write_text, write_jsonl


@dataclass
class GiFTStageConfig:
    problems: str = "easy"
    split: str | None = "train"
    limit: int | None = None
    iters: int = 20
    num_seq: int = 3
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 384
    summary_temperature: float = 1.0
    summary_top_p: float = 0.95
    summary_max_new_tokens: int = 128
    shot: str = "other-problem"
    k: int = 8
    resample_temperature: float = 2.0
    weighting: str = "ppl-softmax"
    no_pass: str = "keep-last"
    tests_limit: int | None = 10
    batch_size: int = 8
    model: str | None = None
    seed: int | None = None
    timeout_s: float = 10.0
    memory_mb: int = 1024

    def gift_config(self, seed: int = 0) -> Any:
        from codeloop.methods.gift import GiFTConfig

        names = {f.name for f in dataclasses.fields(GiFTConfig)} - {"seed"}
        return GiFTConfig(**{n: getattr(self, n) for n in names}, seed=seed)

    def check(self, where: str) -> None:
        try:
            self.gift_config().validate()
        except UserError as exc:
            raise UserError(exc.message, f"{where}.{exc.where}") from None


def _load(ctx: StageContext, cfg: Any) -> tuple[list[Any], Any, Any, Any]:
    from codeloop.generation import HFGenerator
    from codeloop.methods.gift import freeze
    from codeloop.models import load_model
    from codeloop.problems import load_problems

    problems = load_problems(cfg.problems, split=cfg.split, limit=cfg.limit)
    if not problems:
        raise UserError(f"'{cfg.problems}' has no problems (split {cfg.split!r})", f"stages.{ctx.name}.problems")
    name = ctx.model(cfg.model)
    model, tokenizer = load_model(name)
    freeze(model)
    return problems, model, tokenizer, HFGenerator(model, tokenizer, name=name)


def run_gift(ctx: StageContext, cfg: GiFTStageConfig) -> dict[str, Any]:
    from codeloop.methods.gift import gift, model_scorer, plot_chain

    problems, model, tokenizer, generator = _load(ctx, cfg)
    gcfg = cfg.gift_config(ctx.seed(cfg.seed))
    try:
        sft, stats = gift(problems, gcfg, generator, model_scorer(model, tokenizer, cfg.batch_size),
                          ctx.stage.path / "chains", ctx.exec_config(cfg.timeout_s, cfg.memory_mb))
    finally:
        del generator, model
        gc.collect()
    if not sft:
        raise UserError(f"no code passed its tests in {gcfg.iters} rounds on {len(problems)} problems: nothing to "
                        "train on (more problems, rounds or samples, or an easier set)", f"stages.{ctx.name}")
    write_jsonl(ctx.stage.path / "sft.jsonl", sft)
    kept = _read_kept(ctx)
    write_jsonl(ctx.stage.path / "kept.jsonl", kept)
    atomic_write_text(ctx.stage.path / "chains.json", json.dumps(stats, indent=2, default=str) + "\n")
    plot_chain(stats, kept, ctx.stage.path)
    return {k: v for k, v in stats.items() if k != "per_round"}


def _read_kept(ctx: StageContext) -> list[dict[str, Any]]:
    from codeloop.methods.gift import kept_codes
    from codeloop.rundir import RunDir

    records = []
    for stage in RunDir(ctx.stage.path / "chains").stages():
        if stage.path.name.startswith("round-"):
            records.extend(stage.records())
    return kept_codes(records)


@dataclass
class SelfTrainingStageConfig:
    problems: str = "easy"
    split: str | None = "train"
    limit: int | None = None
    samples_per_problem: int | None = None  # default: budget_from's iters x num_seq
    budget_from: str | None = None  # a gift stage: sample its iters x num_seq codes per problem
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 384
    k: int = 8
    tests_limit: int | None = 10
    batch_size: int = 8
    model: str | None = None
    seed: int | None = None
    timeout_s: float = 10.0
    memory_mb: int = 1024

    def check(self, where: str) -> None:
        if self.samples_per_problem is not None and self.samples_per_problem < 1:
            raise UserError("must be >= 1", f"{where}.samples_per_problem")
        if self.samples_per_problem is None and not self.budget_from:
            raise UserError("set samples_per_problem, or budget_from: a gift stage whose budget to match",
                            f"{where}.samples_per_problem")
        from codeloop.methods.gift import GiFTConfig

        try:
            GiFTConfig(temperature=self.temperature, top_p=self.top_p, k=self.k,
                       tests_limit=self.tests_limit).validate()
        except UserError as exc:
            raise UserError(exc.message, f"{where}.{exc.where}") from None


def run_self_training(ctx: StageContext, cfg: SelfTrainingStageConfig) -> dict[str, Any]:
    from codeloop.methods.gift import GiFTConfig, self_training

    gcfg = GiFTConfig(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, k=cfg.k,
                      tests_limit=cfg.tests_limit, batch_size=cfg.batch_size, seed=ctx.seed(cfg.seed))
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
    problems, model, tokenizer, generator = _load(ctx, cfg)
    try:
        sft, stats = self_training(problems, gcfg, generator, ctx.stage.path,
                                   ctx.exec_config(cfg.timeout_s, cfg.memory_mb), samples_per_problem=n)
    finally:
        del generator, model
        gc.collect()
    if not sft:
        raise UserError(f"none of the {stats['samples']} samples passed its tests: nothing to train on",
                        f"stages.{ctx.name}")
    write_jsonl(ctx.stage.path / "sft.jsonl", sft)
    return stats


GIFT = Step("gift", GiFTStageConfig, run_gift, "GiFT: Gibbs chains code <-> description on a frozen model, perplexity-weighted resampling -> sft.jsonl",
            produces=("sft",), sandbox=True, output="sft.jsonl")
SELF_TRAINING = Step("self_training", SelfTrainingStageConfig, run_self_training, "plain self-training baseline: samples from the original prompts only, same budget -> sft.jsonl",
                     produces=("sft",), sandbox=True, output="sft.jsonl")
