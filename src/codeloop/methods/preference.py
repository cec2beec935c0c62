"""Code DPO from best-of-N execution feedback, with a logit curriculum.

Sources: "Aligning CodeLLMs with Direct Preference Optimization" (CodeLLM-DPO: on-policy best-of-N
pairs judged by unit tests) and "Tricks for DPO tuning a Code LLM, Part 1 - Logit Curriculum
Learning" (order the pairs by how far apart the initial model's log-probs of chosen and rejected are).

The algorithm, as this file runs it:

    1. samples  <- generate(train problems, N per problem, temperature T)       # on-policy
    2. results  <- execute(samples)                                             # sandbox
    3. score    <- passed_tests / total_tests  (or the count)                   # per sample
    4. pairs    <- per problem: chosen = best score, rejected = worst score;
                   skip ties, dedupe identical code, chosen must pass (or score > 0)
    5. distance <- |log p0(chosen | prompt) - log p0(rejected | prompt)|        # initial model p0
                   (or signed, `signed`: negative where p0 prefers the rejected program)
    6. buckets  <- distance percentiles (10-50, 50-90, 90-100; the bottom decile dropped)
    7. order    <- buckets in the chosen direction, shuffled within a bucket    # the curriculum
    8. train DPO on the pairs in that order (or shuffled by the trainer, the baseline)

The source's choices are the defaults: the absolute gap (the sign is dropped, so a pair the initial
model gets badly wrong sits with the pairs it gets clearly right) and the bottom decile pruned.

Direction of the curriculum. The blog does not say which end comes first. One reading: a pair whose
chosen and rejected completions the initial model already tells far apart (a large gap) is an easy
preference, so easy -> hard is "largest distance first" (`direction="large-first"`, the default,
Curri-DPO's pairwise-distinguishability order); the opposite reading is "small-first". Both are
first-class arms of recipes/dpo_curriculum.yaml; the shuffled baseline is the same pairs trained
with `curriculum: false` (the trainer's seeded sampler), not a direction here, so this file is the
one place a curriculum order is made.

This file holds no sampling, sandbox, scoring or training mechanics: it calls the layers below.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from codeloop.errors import UserError
from codeloop.generation.params import GenerationParams
from codeloop.steps import option, same_as
from codeloop.records import Pair, Problem, Result, normalized_code


DIRECTIONS = ("large-first", "small-first")


@dataclass
class PreferenceConfig:
    n: int = option(4, help="Best-of-N: samples per problem (the source used N=3).", flags=("-n",))
    temperature: float = option(0.8, help="Sampling temperature.")
    top_p: float = option(0.95, help="Nucleus sampling mass.")
    max_new_tokens: int = option(256, help="Generation budget per sample.")
    score: str = option("fraction", choices=("fraction", "count"),
                        help="A sample's score: the fraction or the count of its tests passed.")
    chosen_rule: str = option("passed", choices=("passed", "positive"),
                              help="passed: the chosen sample passes every test; positive: its score is > 0.")
    pairs_per_problem: int = option(1, help="Pair the i-th best with the i-th worst, up to this many per problem.")
    length_normalized: bool = option(False, help="Distance of mean (not summed) per-token log-probs.")
    bucket_edges: list[float] = option(default_factory=lambda: [10.0, 50.0, 90.0, 100.0], flags=("--edges",),
                                       help="Bucket edges as distance percentiles, increasing, ending at 100.")
    drop_bottom: bool = option(True, flags=("--drop-bottom/--keep-bottom",),
                               help="Drop the pairs below the first edge (the bottom decile with the default "
                                    "edges), as the source did.")
    signed: bool = option(False, help="Order by the signed gap log p0(chosen) - log p0(rejected) (negative: the "
                                      "initial model prefers the rejected program) instead of its absolute value "
                                      "(the source's).")
    direction: str = option("large-first", choices=DIRECTIONS,
                            help="Which buckets come first: large-first (largest log-prob gap first, easy -> "
                                 "hard as we read the blog) or small-first. The shuffled baseline is "
                                 "`curriculum: false` at training.")
    seed: int = option(0, help="Sampling seed; shuffle seed within buckets.")
    # an instruct model answers far better through its chat template; the pair's prompt is then the
    # rendered chat text, which DPO trains on as-is and an eval with the same settings renders again
    prompt_format: str = same_as(GenerationParams, "prompt_format")
    chat: str = same_as(GenerationParams, "chat")

    def validate(self) -> None:
        if self.score not in ("fraction", "count"):
            raise UserError("must be 'fraction' or 'count'", "score")
        if self.chosen_rule not in ("passed", "positive"):
            raise UserError("must be 'passed' or 'positive'", "chosen_rule")
        if self.direction not in DIRECTIONS:
            hint = (" (the shuffled baseline is the same pairs trained with curriculum: false)"
                    if self.direction == "shuffled" else "")
            raise UserError(f"must be 'large-first' or 'small-first'{hint}", "direction")
        edges = self.bucket_edges
        if not edges or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0 or edges[-1] != 100:
            raise UserError("must be increasing percentiles ending at 100, e.g. [10, 50, 90, 100]",
                            "bucket_edges")
        if self.n < 2:
            raise UserError("best-of-N needs at least 2 samples per problem", "n")


# -- steps 3-4: scores and pairs ------------------------------------------------------------------

def sample_score(result: Result, mode: str = "fraction") -> float:
    """Tests passed (count) or their fraction; a sample with no counted tests scores 1/0 by status."""
    if result.total_tests > 0:
        return result.passed_tests / result.total_tests if mode == "fraction" else float(result.passed_tests)
    return 1.0 if result.passed else 0.0


def build_pairs(results: Iterable[Result], cfg: PreferenceConfig) -> tuple[list[Pair], dict[str, int]]:
    """Chosen/rejected pairs per problem, and counts of why problems gave no pair."""
    by_task: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_task[r.task_id].append(r)
    pairs: list[Pair] = []
    skipped = {"all_tied": 0, "no_acceptable_chosen": 0, "single_distinct_sample": 0}
    for task_id, rs in by_task.items():
        distinct: dict[str, Result] = {}
        for r in sorted(rs, key=lambda r: r.sample_id):
            distinct.setdefault(normalized_code(r.completion), r)  # identical code counts once
        ranked = sorted(distinct.values(), key=lambda r: (-sample_score(r, cfg.score), r.sample_id))
        if len(ranked) < 2:
            skipped["single_distinct_sample"] += 1
            continue
        scores = [sample_score(r, cfg.score) for r in ranked]
        if scores[0] == scores[-1]:
            skipped["all_tied"] += 1
            continue
        acceptable = [r for r in ranked if (r.passed if cfg.chosen_rule == "passed" else sample_score(r, cfg.score) > 0)]
        if not acceptable:
            skipped["no_acceptable_chosen"] += 1
            continue
        worst_first = ranked[::-1]
        for i in range(cfg.pairs_per_problem):
            if i >= len(acceptable) or i >= len(worst_first):
                break
            chosen, rejected = acceptable[i], worst_first[i]
            cs, rs_ = sample_score(chosen, cfg.score), sample_score(rejected, cfg.score)
            if chosen is rejected or cs <= rs_:  # ran into the middle of the ranking
                break
            pairs.append(Pair(task_id=task_id, prompt=chosen.prompt, chosen=chosen.completion,
                              rejected=rejected.completion, chosen_score=cs, rejected_score=rs_,
                              chosen_status=chosen.status, rejected_status=rejected.status,
                              extra={"chosen_sample_id": chosen.sample_id,
                                     "rejected_sample_id": rejected.sample_id,
                                     "model": chosen.model}))
    return pairs, skipped


# -- step 5: log-prob distance under the initial model --------------------------------------------

def pair_distances(model: Any, tokenizer: Any, pairs: list[Pair], length_normalized: bool = False,
                   batch_size: int = 8, signed: bool = False) -> list[Pair]:
    """Set `distance` = |log p(chosen|prompt) - log p(rejected|prompt)| (summed, or mean per token;
    without the absolute value when `signed`). The log-probs stay in `extra`, so the curriculum can
    take the sign later without the model."""
    from codeloop.scoring import completion_logprobs

    if not pairs:
        return pairs
    texts = [scoring_texts(tokenizer, p) for p in pairs]
    prompts = [t[0] for t in texts] * 2
    completions = [t[1] for t in texts] + [t[2] for t in texts]
    scores = completion_logprobs(model, tokenizer, prompts, completions, batch_size=batch_size)
    k = len(pairs)
    for i, p in enumerate(pairs):
        c, r = scores[i], scores[k + i]
        p.extra.update({"chosen_logprob": c.logprob, "rejected_logprob": r.logprob,
                        "chosen_tokens": c.n_tokens, "rejected_tokens": r.n_tokens,
                        "length_normalized": length_normalized})
        gap = logprob_gap(p)
        p.distance = gap if signed else abs(gap)  # type: ignore[arg-type]
    return pairs


def logprob_gap(pair: Pair) -> float | None:
    """log p0(chosen) - log p0(rejected) as `pair_distances` scored it (per token when it was
    length-normalized); None for a pair whose log-probs were not kept (made elsewhere)."""
    e = pair.extra
    if e.get("chosen_logprob") is None or e.get("rejected_logprob") is None:
        return None
    lc, lr = float(e["chosen_logprob"]), float(e["rejected_logprob"])
    if e.get("length_normalized"):
        lc, lr = lc / max(int(e.get("chosen_tokens") or 1), 1), lr / max(int(e.get("rejected_tokens") or 1), 1)
    return lc - lr


def scoring_texts(tokenizer: Any, pair: Pair) -> tuple[str, str, str]:
    """(prompt, chosen, rejected) as the text the model scores. Strings as they are; TRL's
    conversational pairs rendered with the tokenizer's chat template (the prompt with the
    generation prompt, each answer as what the template adds after it), as DPO training sees them."""
    if isinstance(pair.prompt, str) and isinstance(pair.chosen, str) and isinstance(pair.rejected, str):
        return pair.prompt, pair.chosen, pair.rejected
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"pair {pair.task_id!r} is conversational (message lists) and the model's tokenizer has no "
                        "chat template to render it: use a model with one", "model")

    def msgs(x: Any, role: str) -> list[dict[str, Any]]:
        return x if isinstance(x, list) else [{"role": role, "content": x}]

    prompt = tokenizer.apply_chat_template(msgs(pair.prompt, "user"), tokenize=False, add_generation_prompt=True)

    def answer(x: Any) -> str:
        full = tokenizer.apply_chat_template(msgs(pair.prompt, "user") + msgs(x, "assistant"), tokenize=False)
        return full[len(prompt):] if full.startswith(prompt) else "".join(m["content"] for m in msgs(x, "assistant"))

    return prompt, answer(pair.chosen), answer(pair.rejected)


def read_pairs(path: Any) -> list[Pair]:
    """Pairs from any records file, also pairs made elsewhere: `task_id` is optional (a pair
    without one is named by its place, ``line-N`` / ``row-N``); strings or TRL's conversational shape."""
    from codeloop.records import from_dict, iter_records, records_format

    unit = "line" if records_format(path) == "jsonl" else "row"
    pairs = []
    for n, obj in iter_records(path):
        if obj.get("task_id") is None:
            obj = {**obj, "task_id": f"{unit}-{n}"}
        pairs.append(from_dict(Pair, obj, f"{path}:{n}"))
    return pairs


def fill_distances(pairs: list[Pair], model_name: str | None, length_normalized: bool = False,
                   batch_size: int = 8, where: str | None = None, signed: bool = False) -> int:
    """Give every pair the distance the curriculum orders by: pairs that lack a `distance` get one
    under `model_name` (the same log-prob distance `codeloop pairs` computes, `pair_distances`);
    with `signed`, every pair's distance becomes its signed gap, from the log-probs it carries (or
    scored now when it carries none). Returns how many were scored with the model. Without a
    model, pairs that need scoring are a UserError that says to pass one."""
    missing = [p for p in pairs if p.distance is None or (signed and logprob_gap(p) is None)]
    if missing and not model_name:
        what = "no log-probs to take the sign from" if signed else "no 'distance'"
        raise UserError(f"{len(missing)} of {len(pairs)} pairs have {what} (only `codeloop pairs` computes "
                        "it): pass --model MODEL (recipe: model:) to compute it with the initial model", where)
    if missing:
        from codeloop.models import load_model

        model, tokenizer = load_model(model_name)  # type: ignore[arg-type]
        try:
            pair_distances(model, tokenizer, missing, length_normalized, batch_size=batch_size, signed=signed)
        finally:
            del model
    if signed:
        for p in pairs:
            p.distance = logprob_gap(p)
    return len(missing)


# -- steps 6-7: buckets and order ------------------------------------------------------------------

def bucket_thresholds(distances: list[float], edges: list[float]) -> list[float]:
    """Distance values at the percentile edges (numpy's linear interpolation)."""
    return [float(np.percentile(distances, e)) for e in edges]


def assign_curriculum(pairs: list[Pair], cfg: PreferenceConfig) -> list[Pair]:
    """Bucket pairs by distance percentile and give each an `order` (0 = trained first).

    Buckets: 0 holds distances below the first edge (dropped with `drop_bottom`), bucket i holds
    [edge_{i-1}, edge_i) (the last one closed at the top). Returns the kept pairs in training order.
    """
    if any(p.distance is None for p in pairs):
        raise UserError("every pair needs a 'distance' (`codeloop pairs` computes it; `codeloop curriculum --model "
                        "MODEL` computes it for pairs made elsewhere)", "distance")
    if not pairs:
        return []
    d = [float(p.distance) for p in pairs]  # type: ignore[arg-type]
    thresholds = bucket_thresholds(d, cfg.bucket_edges)
    for p in pairs:
        p.bucket = int(np.searchsorted(thresholds[:-1], p.distance, side="right"))
    kept = [p for p in pairs if not (cfg.drop_bottom and p.bucket == 0)]
    rng = random.Random(cfg.seed)
    buckets = sorted({p.bucket for p in kept}, reverse=cfg.direction == "large-first")
    ordered = []
    for b in buckets:
        members = [p for p in kept if p.bucket == b]
        rng.shuffle(members)
        ordered.extend(members)
    for i, p in enumerate(ordered):
        p.order = i
    return ordered


def plot_distance_histogram(pairs: list[Pair], cfg: PreferenceConfig, path: Any) -> Any:
    """Histogram of pair distances with the bucket edges drawn as vertical lines (PNG)."""
    from codeloop.viz import matplotlib_agg, save_figure

    plt = matplotlib_agg()
    d = [p.distance for p in pairs if p.distance is not None]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(d, bins=min(40, max(5, len(d) // 2)), color="#1a73e8", alpha=0.85)
    if d:
        for edge, value in zip(cfg.bucket_edges, bucket_thresholds(d, cfg.bucket_edges)):
            ax.axvline(value, color="#d93025", linestyle="--", linewidth=1)
            ax.text(value, ax.get_ylim()[1] * 0.95, f"p{edge:g}", rotation=90, va="top", ha="right", fontsize=8)
    ax.set_xlabel(("log p(chosen) - log p(rejected)" if cfg.signed else "|log p(chosen) - log p(rejected)|")
                  + " under the initial model")
    ax.set_ylabel("pairs")
    ax.set_title(f"pair distances ({len(d)} pairs)")
    return save_figure(fig, path)


# -- steps 1-5 together: the layers below ---------------------------------------------------------

def make_pairs(problems: list[Problem], cfg: PreferenceConfig, work_dir: Any, model_name: str = "default",
               exec_config: Any = None, batch_size: int = 8, backend: str = "hf", base_url: str | None = None,
               api_key: str | None = None) -> tuple[list[Pair], dict[str, Any]]:
    """Sample best-of-N on-policy, execute, pair and measure distances; resumable in `work_dir`.

    `work_dir` gets two resumable stages, samples/ and results/: a killed run picks up where it
    stopped. Sampling runs on `backend` (hf, vllm, or an openai server serving `model_name`); the
    distances are log-probs under `model_name` loaded here (with hf: the model that sampled).
    """
    from codeloop.resumable import execute_into, sample_into
    from codeloop.execution import ExecConfig
    from codeloop.generation import GenerationParams, local_model, make_generator, release, require_local_model
    from codeloop.rundir import RunDir

    cfg.validate()
    require_local_model(model_name, backend, "scoring the pair distances")
    run = RunDir(work_dir)
    generator = make_generator(model_name, backend, base_url=base_url, api_key=api_key)
    params = GenerationParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                              max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=batch_size,
                              prompt_format=cfg.prompt_format, chat=cfg.chat)
    samples = sample_into(run.stage("samples"), problems, params, model=model_name, backend=backend,
                          generator=generator)                                                # 1
    results = execute_into(run.stage("results"), problems, samples, exec_config or ExecConfig(),
                           inputs_hash=run.stage("samples").done_hash())                      # 2-3
    pairs, skipped = build_pairs(results, cfg)                                                # 4
    if backend != "hf":
        release(generator)
    model, tokenizer = local_model(generator, model_name)
    pair_distances(model, tokenizer, pairs, cfg.length_normalized, batch_size=batch_size,
                   signed=cfg.signed)                                                         # 5
    stats = {"problems": len(problems), "samples": len(results),
             "passed_samples": sum(r.passed for r in results),
             "problems_with_pass": len({r.task_id for r in results if r.passed}),
             "pairs": len(pairs), "skipped": skipped}
    return pairs, stats
