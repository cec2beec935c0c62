"""GiFT's algorithm (see the package docstring): Gibbs chains, perplexity scoring, resampling, and
the plain self-training baseline on the same budget."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from codeloop.errors import UserError
from codeloop.steps import option, same_as
from codeloop.execution import ExecConfig, Executor, open_executor
from codeloop.generation import GenerationParams, generate, generate_texts
from codeloop.generation.prompts import close_code_block, parses, render_chat, uses_chat
from codeloop.methods.gift.prompts import (SUMMARY_STOPS, code_prompt, has_reference, original_description,
                                           pick_shot, summary_code, summary_input, summary_prompt,
                                           summary_messages, summary_text,
                                           without_docstrings)
from codeloop.records import Problem, normalized_code
from codeloop.resumable import execute_into, sample_into
from codeloop.rundir import RunDir, config_hash
from codeloop.scoring import completion_logprobs

WEIGHTINGS = ("ppl-softmax", "uniform", "conditional-only")
NO_PASS = ("keep-last", "restart-reference", "stop")
SHOTS = ("other-problem", "builtin")
TRAIN_SETS = ("gold+resampled", "resampled")
AFTER_CHAINS = ("k", "weighting", "resample_temperature", "train_set")
INSTRUCTION_PROMPTS_VERSION = 2  # 2: the summary as a chat exchange (1: plain 1-shot text)


@dataclass
class GiFTConfig:
    iters: int = option(20, help="Gibbs rounds (paper: 20).")
    num_seq: int = option(3, help="Codes sampled per problem per round (paper: 3).")
    temperature: float = option(1.0, help="Code sampling temperature (paper: 1.0).")
    top_p: float = option(1.0, help="Code sampling nucleus mass (paper: none, 1.0).")
    max_new_tokens: int = option(384, help="Generation budget per code.")
    summary_temperature: float = option(1.0, help="Description sampling temperature (paper: the code's).")
    summary_top_p: float = option(0.95, help="Description sampling nucleus mass.")
    summary_max_new_tokens: int = option(128, help="Generation budget per description.")
    shot: str = option("other-problem", choices=SHOTS,
                       help="The 1-shot summary example: another seed problem, or the built-in one.")
    k: int = option(8, help="Training codes drawn per problem, with replacement (paper: 8).")
    resample_temperature: float = option(2.0, help="T in p_i ∝ exp(T * PPL_i) (paper: 2.0).")
    weighting: str = option("ppl-softmax", choices=WEIGHTINGS,
                            help="How kept codes are weighted for resampling.")
    no_pass: str = option("keep-last", choices=NO_PASS,
                          help="When no code of a round passes: keep the last description, restart from the "
                               "original one, or stop the chain.")
    train_set: str = option("gold+resampled", choices=TRAIN_SETS,
                            help="What is fine-tuned on: the seed problems with their reference solutions plus "
                                 "the resampled self-generated codes (the official code), or the resampled codes "
                                 "only.")
    tests_limit: int | None = option(10, help="stdin/stdout cases judged per code (paper: the first 10); "
                                              "null = all.")
    batch_size: int = option(8, help="Prompts per generation / scoring batch.")
    seed: int = option(0, help="Sampling seed.")
    # How the codes (and the summaries) are asked for: an instruct model writes a
    # code prompt's function as a chat answer; the training records are then the rendered chat
    # prompt of the original description and the answer, the tokens it sampled.
    prompt_format: str = same_as(GenerationParams, "prompt_format")
    chat: str = same_as(GenerationParams, "chat")

    def validate(self) -> None:
        def bad(name: str, msg: str) -> UserError:
            return UserError(msg, name)

        if self.iters < 1:
            raise bad("iters", f"must be >= 1, got {self.iters}")
        if self.num_seq < 1:
            raise bad("num_seq", f"must be >= 1, got {self.num_seq}")
        if self.k < 1:
            raise bad("k", f"must be >= 1, got {self.k}")
        if self.temperature <= 0 or self.summary_temperature <= 0:
            raise bad("temperature", "Gibbs sampling needs temperatures > 0")
        if not 0 < self.top_p <= 1 or not 0 < self.summary_top_p <= 1:
            raise bad("top_p", "must be in (0, 1]")
        if self.weighting not in WEIGHTINGS:
            raise bad("weighting", f"must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.no_pass not in NO_PASS:
            raise bad("no_pass", f"must be one of {', '.join(NO_PASS)}, got {self.no_pass!r}")
        if self.train_set not in TRAIN_SETS:
            raise bad("train_set", f"must be one of {', '.join(TRAIN_SETS)}, got {self.train_set!r}")
        if self.shot not in SHOTS:
            raise bad("shot", f"must be one of {', '.join(SHOTS)}, got {self.shot!r}")
        if self.tests_limit is not None and self.tests_limit < 1:
            raise bad("tests_limit", f"must be >= 1 or null, got {self.tests_limit}")
        if not math.isfinite(self.resample_temperature):
            raise bad("resample_temperature", "must be a finite number")
        self.code_params(0)  # prompt_format, chat: checked where they are declared

    @property
    def instruction(self) -> bool:
        return self.prompt_format == "instruction"

    def code_params(self, round_index: int) -> GenerationParams:
        return GenerationParams(n=self.num_seq, temperature=self.temperature, top_p=self.top_p,
                                max_new_tokens=self.max_new_tokens, seed=_round_seed(self.seed, round_index, 0),
                                batch_size=self.batch_size, prompt_format=self.prompt_format, chat=self.chat)

    def summary_params(self, round_index: int) -> GenerationParams:
        return GenerationParams(n=1, temperature=self.summary_temperature, top_p=self.summary_top_p,
                                max_new_tokens=self.summary_max_new_tokens,
                                seed=_round_seed(self.seed, round_index, 1), batch_size=self.batch_size,
                                stop=list(SUMMARY_STOPS))


def _round_seed(seed: int, round_index: int, part: int) -> int:
    # Each round (and each half of it) has its own seed, so a resumed round samples what the
    # killed one would have.
    return (seed * 1_000_003 + round_index * 2 + part) % (2**31)


def judged_problem(problem: Problem, tests_limit: int | None) -> Problem:
    """The problem as the chain judges it: at most `tests_limit` stdin/stdout cases.

    Function test code runs whole (it is one program; its asserts are not cut).
    """
    if tests_limit is None or len(problem.io_tests) <= tests_limit:
        return problem
    return dataclasses.replace(problem, io_tests=list(problem.io_tests[:tests_limit]))


# -- step 4: resampling weights ---------------------------------------------------------------------

def ppl_softmax(ppls: Sequence[float], temperature: float) -> np.ndarray:
    """softmax(T * PPL), computed stably (the largest logit is subtracted before exp)."""
    z = temperature * np.asarray(ppls, dtype=np.float64)
    if z.size == 0:
        return z
    z = z - z.max()
    w = np.exp(z)
    return w / w.sum()


def resample_weights(ppls: Sequence[float], rounds: Sequence[int], cfg: GiFTConfig) -> np.ndarray:
    """Probabilities over one problem's kept codes. Codes without a finite perplexity get 0
    under ppl-softmax; conditional-only keeps the codes of round 0 (the original description)."""
    n = len(ppls)
    if n == 0:
        return np.zeros(0)
    if cfg.weighting == "ppl-softmax":
        ok = np.array([math.isfinite(p) for p in ppls])
        w = np.zeros(n)
        if ok.any():
            w[ok] = ppl_softmax([p for p, good in zip(ppls, ok) if good], cfg.resample_temperature)
        return w
    mask = np.ones(n) if cfg.weighting == "uniform" else np.array([1.0 if r == 0 else 0.0 for r in rounds])
    total = mask.sum()
    return mask / total if total else mask


def _draw(w: np.ndarray, cfg: GiFTConfig, rng: np.random.Generator) -> np.ndarray:
    """k indices drawn at the weights `w`.

    The official code draws perplexity-weighted picks with replacement, but uniform picks
    without replacement whenever a problem has at least k codes (random.sample), so a uniform
    arm trains on k different codes where it can.
    """
    eligible = np.flatnonzero(w > 0)
    if cfg.weighting != "ppl-softmax" and len(eligible) >= cfg.k:
        return rng.choice(eligible, size=cfg.k, replace=False)
    return rng.choice(len(w), size=cfg.k, replace=True, p=w)


def _candidates(kept: list[dict[str, Any]], problems: list[Problem],
                cfg: GiFTConfig) -> list[tuple[Problem, list[dict[str, Any]], np.ndarray]]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in kept:
        by_task[rec["task_id"]].append(rec)
    out = []
    for p in problems:
        cands = sorted(by_task.get(p.task_id, []), key=lambda r: r["round"])
        w = resample_weights([float(c["ppl"]) if c.get("ppl") is not None else float("nan") for c in cands],
                             [c["round"] for c in cands], cfg)
        out.append((p, cands, w))
    return out


def training_completion(kept: dict[str, Any], cfg: GiFTConfig) -> str:
    """An SFT record's completion for a self-generated code: the completion itself, or an
    instruction answer without docstrings (the official code strips them from self-generated codes
    before training; here they would also carry the chain's rewritten descriptions) and with its
    fence closed. An answer that does not parse whole (cut by the token limit after the code that
    passed) is replaced by its program, the part that was executed."""
    if not cfg.instruction:
        return kept["completion"]
    code = kept["completion"]
    if not parses(code) and kept.get("program"):
        code = kept["program"]
    return close_code_block(without_docstrings(code))


def resample(kept: list[dict[str, Any]], problems: list[Problem], cfg: GiFTConfig,
             prompts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """k training records per problem: (original prompt, kept code), drawn at the weights.

    `prompts`: the text the model was given for each problem's original description (a rendered
    chat prompt for instruction prompts); default the problem's own prompt."""
    rng = np.random.default_rng(cfg.seed)
    prompts = prompts or {}
    out = []
    for p, cands, w in _candidates(kept, problems, cfg):
        if not cands or w.sum() <= 0:
            continue
        for i in _draw(w, cfg, rng):
            c = cands[int(i)]
            out.append({"task_id": p.task_id, "prompt": prompts.get(p.task_id, p.prompt),
                        "completion": training_completion(c, cfg),
                        "round": c["round"], "ppl": c["ppl"], "weight": float(w[int(i)]),
                        "description": c["description"], "source": "gift"})
    return out


def gold_records(problems: list[Problem], cfg: GiFTConfig | None = None,
                 prompts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The seed problems with their reference solutions, once each (the official code trains on
    these plus the resampled codes: ``data.extend(data1)``). As an instruction answer the reference
    is the whole program (frame + body), as the model writes one."""
    prompts = prompts or {}
    instruction = cfg is not None and cfg.instruction
    return [{"task_id": p.task_id, "prompt": prompts.get(p.task_id, p.prompt),
             "completion": close_code_block(summary_code(p, p.canonical_solution)) if instruction
             else p.canonical_solution, "round": None,
             "ppl": None, "weight": None, "description": original_description(p), "source": "gold"}
            for p in problems if has_reference(p)]


def training_set(problems: list[Problem], drawn: list[dict[str, Any]], cfg: GiFTConfig,
                 prompts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """What the model is fine-tuned on, as `cfg.train_set` names it."""
    return (gold_records(problems, cfg, prompts) if cfg.train_set == "gold+resampled" else []) + drawn


def resampling_stats(kept: list[dict[str, Any]], problems: list[Problem], cfg: GiFTConfig,
                     drawn: list[dict[str, Any]]) -> dict[str, Any]:
    """How much choice the resampling had: per problem, how many (distinct) codes it drew from,
    how concentrated the weights were, and how many distinct codes it drew."""
    drawn_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in drawn:
        drawn_by[r["task_id"]].append(r)
    n_cands, n_distinct, eff, top, n_drawn = [], [], [], [], []
    for p, cands, w in _candidates(kept, problems, cfg):
        if not cands or w.sum() <= 0:
            continue
        n_cands.append(len(cands))
        n_distinct.append(len({normalized_code(c["completion"]) for c in cands}))
        eff.append(float(1.0 / np.sum(w ** 2)))  # effective number of candidates (1 = no choice)
        top.append(float(w.max()))
        n_drawn.append(len({normalized_code(r["completion"]) for r in drawn_by[p.task_id]}))

    def mean(xs: list[float]) -> float | None:
        return float(np.mean(xs)) if xs else None

    return {"weighting": cfg.weighting, "k": cfg.k, "resample_temperature": cfg.resample_temperature,
            "problems_with_candidates": len(n_cands),
            "problems_with_choice": sum(1 for d in n_distinct if d >= 2),
            "candidates_mean": mean(n_cands), "candidates_max": max(n_cands) if n_cands else 0,
            "distinct_candidates_mean": mean(n_distinct),
            "effective_candidates_mean": mean(eff), "top_weight_mean": mean(top),
            "distinct_drawn_mean": mean(n_drawn),
            "drawn": len(drawn), "drawn_from_round0": sum(1 for r in drawn if r.get("round") == 0),
            "candidates_per_problem": n_cands, "effective_candidates_per_problem": eff}


# -- steps 2-3: the Gibbs chains --------------------------------------------------------------------

Scorer = Callable[[list[str], list[str]], list[tuple[float, int]]]


def model_scorer(model: Any, tokenizer: Any, batch_size: int = 8) -> Scorer:
    """(summed log-prob, tokens) of each code body + EOS given its prompt, under `model`."""
    def score(prompts: list[str], completions: list[str]) -> list[tuple[float, int]]:
        s = completion_logprobs(model, tokenizer, prompts, completions, batch_size=batch_size, add_eos=True,
                                description="perplexity")
        return [(x.logprob, x.n_tokens) for x in s]

    return score


def freeze(model: Any) -> Any:
    """The chain's model never trains: eval mode, no gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _ppl(logprob: float, n_tokens: int) -> float:
    return math.exp(-logprob / n_tokens) if n_tokens else float("nan")


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9_]+", text.lower()))


def description_drift(d0: str, d: str) -> float:
    """1 - word Jaccard similarity between the original description and `d` (0 = same words)."""
    a, b = _words(d0), _words(d)
    if not a and not b:
        return 0.0
    return 1.0 - len(a & b) / len(a | b)


@dataclass
class ChainState:
    """Where each problem's chain stands before a round."""

    description: dict[str, str | None]  # None: the original description (the problem's own prompt)
    last_kept: dict[str, dict[str, Any] | None]  # the last kept code's record (None: none passed yet)
    active: dict[str, bool]

    @classmethod
    def start(cls, problems: list[Problem]) -> "ChainState":
        return cls({p.task_id: None for p in problems}, {p.task_id: None for p in problems},
                   {p.task_id: True for p in problems})

    def advance(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            t = r["task_id"]
            if r.get("kept"):
                self.last_kept[t] = r["kept"]
            if r.get("next_description") is None:
                self.active[t] = False
            else:
                self.description[t] = r["next_description"]


def gibbs_round(t: int, problems: list[Problem], state: ChainState, cfg: GiFTConfig, generator: Any,
                scorer: Scorer, executor: Executor,
                shot_pool: list[Problem]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One round for every active problem: sample codes, execute, keep one, score it, summarise it."""
    active = [p for p in problems if state.active[p.task_id]]
    rng = random.Random(_round_seed(cfg.seed, t, 2))
    prompts = [code_prompt(p, state.description[p.task_id]) for p in active]

    # codes ~ p(code | prompt(d_t)): one generation call for the whole round.
    t0 = time.time()
    # An instruction prompt states a stdin/stdout task from its description: it gets d_t too.
    asked = [dataclasses.replace(p, prompt=q, description=state.description[p.task_id] or p.description)
             for p, q in zip(active, prompts)]
    samples = generate(asked, cfg.code_params(t), generator=generator) if active else []
    gen_s = time.time() - t0
    t1 = time.time()
    results = executor.run({p.task_id: judged_problem(p, cfg.tests_limit) for p in active}, samples,
                           progress=False) if samples else []
    exec_s = time.time() - t1
    by_task: dict[str, list[Any]] = defaultdict(list)
    for r in results:
        by_task[r.task_id].append(r)

    # keep one passing code per problem, at random; score it under the description that made it.
    records: list[dict[str, Any]] = []
    for i, p in enumerate(active):
        rs = by_task[p.task_id]
        passing = [r for r in rs if _usable(r)]
        kept = rng.choice(passing) if passing else None
        rec = {"task_id": p.task_id, "round": t, "description": state.description[p.task_id],
               "code_prompt": prompts[i],
               "samples": [{"completion": r.completion, "status": r.status} for r in rs],
               "passed": len(passing),
               "kept": {"completion": kept.completion, "sample_id": kept.sample_id} if kept else None}
        if rs and rs[0].prompt and rs[0].prompt != prompts[i]:
            rec["model_prompt"] = rs[0].prompt  # what the model was given: the code prompt as a chat turn
        if kept and cfg.instruction:
            rec["kept"]["program"] = kept.code  # the answer's code block: the whole program
        records.append(rec)
    to_score = [(i, r) for i, r in enumerate(records) if r["kept"]]
    t2 = time.time()
    if to_score:
        # The perplexity of the kept answer given the exact text the model wrote it from; an
        # instruction answer ends where its block closes (the scorer adds the end of the turn).
        end = close_code_block if cfg.instruction else (lambda text: text)
        scores = scorer([r.get("model_prompt", r["code_prompt"]) for _, r in to_score],
                        [end(r["kept"]["completion"]) for _, r in to_score])
        for (_, r), (lp, n) in zip(to_score, scores):
            r["kept"].update({"logprob": lp, "n_tokens": n, "ppl": _ppl(lp, n)})
    score_s = time.time() - t2

    # d_{t+1} ~ p(description | 1-shot prompt, code): the kept code, or the no-pass fallback.
    to_sum: list[tuple[dict[str, Any], str]] = []
    summary_prompt_for = _summary_prompter(cfg, generator)
    for p, r in zip(active, records):
        if r["kept"]:
            r["summarised"], code = "kept", summary_input(p, r["kept"])
        elif cfg.no_pass == "keep-last" and state.last_kept[p.task_id] is not None:
            r["summarised"], code = "last-kept", summary_input(p, state.last_kept[p.task_id])
        elif cfg.no_pass in ("keep-last", "restart-reference") and has_reference(p):
            r["summarised"], code = "reference", summary_code(p, p.canonical_solution)
        else:
            r["summarised"], code = None, ""  # stop, or nothing to continue from
        if r["summarised"] is None:
            r["next_description"] = None
        else:
            to_sum.append((r, summary_prompt_for(code, pick_shot(p, shot_pool, cfg.shot, rng))))
    t3 = time.time()
    if to_sum:
        outs = generate_texts([q for _, q in to_sum], cfg.summary_params(t), generator=generator,
                              stops=[list(SUMMARY_STOPS)] * len(to_sum))
        for (r, _), out in zip(to_sum, outs):
            text = summary_text(out[0].text, cfg.instruction)
            # An empty summary would leave the next prompt without a task: keep the description.
            r["next_description"] = text if text else (r["description"] if r["description"] is not None
                                                       else original_description(_by_id(active, r["task_id"])))
            r["empty_summary"] = not text
    sum_s = time.time() - t3

    metrics = round_stats(t, problems, records)
    metrics.update({"generate_s": gen_s + sum_s, "execute_s": exec_s, "score_s": score_s,
                    "wall_s": time.time() - t0, "code_samples": len(samples), "summaries": len(to_sum)})
    return records, metrics


def _summary_prompter(cfg: GiFTConfig, generator: Any) -> Callable[[str, tuple[str, str]], str]:
    """(code, shot) -> the 1-shot summary prompt: plain text, or for instruction prompts through the
    chat template, the shot as an earlier exchange (without a chat template: the plain text)."""
    params = GenerationParams(prompt_format="instruction", chat=cfg.chat)
    tokenizer = getattr(generator, "tokenizer", None)
    if not cfg.instruction or not uses_chat(params, tokenizer):
        return summary_prompt
    return lambda code, shot: render_chat(summary_messages(code, shot), params, tokenizer)


def _usable(result: Any) -> bool:
    # A blank completion that "passes" (the prompt alone satisfies the tests) teaches nothing.
    return result.passed and bool(result.completion.strip())


def _by_id(problems: list[Problem], task_id: str) -> Problem:
    return next(p for p in problems if p.task_id == task_id)


def round_stats(t: int, problems: list[Problem], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-round diversity and progress figures."""
    d0 = {p.task_id: original_description(p) for p in problems}
    codes = [normalized_code(s["completion"]) for r in records for s in r["samples"]]
    kept_ppl = [r["kept"]["ppl"] for r in records if r["kept"] and math.isfinite(r["kept"].get("ppl", float("nan")))]
    drift = [description_drift(d0[r["task_id"]], r["description"] if r["description"] is not None else d0[r["task_id"]])
             for r in records]
    with_pass = sum(1 for r in records if r["passed"])
    return {"round": t, "active": len(records), "problems_with_pass": with_pass,
            "share_with_pass": with_pass / len(problems) if problems else 0.0,
            "passing_samples": sum(r["passed"] for r in records),
            "distinct_code_share": len(set(codes)) / len(codes) if codes else 0.0,
            "description_drift": float(np.mean(drift)) if drift else 0.0,
            "kept_ppl_mean": float(np.mean(kept_ppl)) if kept_ppl else None,
            "fallbacks": dict(Counter(r.get("summarised") or "stopped" for r in records if not r["kept"]))}


def run_chains(problems: list[Problem], cfg: GiFTConfig, generator: Any, scorer: Scorer, work_dir: Any,
               exec_config: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run (or resume) the chains in `work_dir`: one stage folder per round, ``round-00/`` ...

    A killed run restarts at the first unfinished round; finished rounds are read back.
    Returns (round records, per-round metrics).
    """
    cfg.validate()
    run = RunDir(work_dir)
    state = ChainState.start(problems)
    shot_pool = [p for p in problems if has_reference(p)]
    # What happens after the chains (the draw, the training set) does not change them: switching
    # it reuses the finished rounds.
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in AFTER_CHAINS}
    if cfg.instruction:  # how instruction prompts and summaries are worded: rounds made otherwise are redone
        settings["instruction_prompts"] = INSTRUCTION_PROMPTS_VERSION
    chain = config_hash({"gift": settings, "problems": [p.task_id for p in problems],
                         "model": getattr(generator, "name", "")})
    all_records: list[dict[str, Any]] = []
    per_round: list[dict[str, Any]] = []
    # One executor for every round: its sandbox workers stay warm between rounds.
    with open_executor(exec_config or ExecConfig()) as executor:
        for t in range(cfg.iters):
            stage = run.stage(f"round-{t:02d}", key=lambda r: r["task_id"])
            status = stage.open({"round": t, "chain": chain}).status
            if status == "done":
                records, metrics = stage.records(), stage.metrics()
            else:
                records, metrics = gibbs_round(t, problems, state, cfg, generator, scorer, executor, shot_pool)
                with stage.writer() as out:
                    for r in records:
                        out.write(r)
                stage.finish(metrics)
                records = stage.records()
            chain = stage.hash or chain
            state.advance(records)
            all_records.extend(records)
            per_round.append(metrics)
    return all_records, per_round


def model_prompts(records: list[dict[str, Any]]) -> dict[str, str]:
    """Per problem, the text the model got for the original description (round 0): what a training
    record's prompt is, so the model is trained on the prompt it sampled from."""
    return {r["task_id"]: r.get("model_prompt", r["code_prompt"]) for r in records if r["round"] == 0}


def kept_codes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chains' kept codes, one per (problem, round) that passed."""
    return [{"task_id": r["task_id"], "round": r["round"], "completion": r["kept"]["completion"],
             "ppl": r["kept"].get("ppl"), "description": r["description"],
             **({"program": r["kept"]["program"]} if "program" in r["kept"] else {})}
            for r in records if r.get("kept")]


def gift(problems: list[Problem], cfg: GiFTConfig, generator: Any, scorer: Scorer, work_dir: Any,
         exec_config: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Steps 1-4: chains, perplexities, resampling. Returns (SFT records, stats)."""
    problems = [p for p in problems]
    records, per_round = run_chains(problems, cfg, generator, scorer, work_dir, exec_config)   # 2-3
    kept = kept_codes(records)
    prompts = model_prompts(records)
    drawn = resample(kept, problems, cfg, prompts)                                             # 4
    sft = training_set(problems, drawn, cfg, prompts)
    return sft, chain_summary(problems, cfg, kept, per_round, sft, drawn)


def chain_summary(problems: list[Problem], cfg: GiFTConfig, kept: list[dict[str, Any]],
                  per_round: list[dict[str, Any]], sft: list[dict[str, Any]],
                  drawn: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    samples = sum(m.get("code_samples", 0) + m.get("summaries", 0) for m in per_round)
    gen_s = sum(m.get("generate_s", 0.0) for m in per_round)
    wall = sum(m.get("wall_s", 0.0) for m in per_round)
    ppls = [k["ppl"] for k in kept if k.get("ppl") is not None and math.isfinite(k["ppl"])]
    drawn = [r for r in sft if r.get("source") != "gold"] if drawn is None else drawn
    kept_per_round = Counter(k["round"] for k in kept)
    return {"problems": len(problems), "rounds": len(per_round), "kept_codes": len(kept),
            "distinct_kept_codes": len({(k["task_id"], normalized_code(k["completion"])) for k in kept}),
            "problems_with_kept": len({k["task_id"] for k in kept}), "records": len(sft),
            "train_set": cfg.train_set, "gold_records": len(sft) - len(drawn), "resampled_records": len(drawn),
            "kept_per_round": [kept_per_round.get(m["round"], 0) for m in per_round],
            "resampling": resampling_stats(kept, problems, cfg, drawn),
            "weighting": cfg.weighting, "no_pass": cfg.no_pass, "resample_temperature": cfg.resample_temperature,
            "ppl_mean": float(np.mean(ppls)) if ppls else None,
            "ppl_median": float(np.median(ppls)) if ppls else None,
            "chain_samples_per_s": samples / wall if wall else None,
            "generation_samples_per_s": samples / gen_s if gen_s else None,
            "chain_wall_s": wall,
            "share_with_pass_per_round": [m.get("share_with_pass") for m in per_round],
            "distinct_code_share_per_round": [m.get("distinct_code_share") for m in per_round],
            "description_drift_per_round": [m.get("description_drift") for m in per_round],
            "per_round": per_round}


# -- the plain baseline: conditional samples only, same budget -------------------------------------

def self_training(problems: list[Problem], cfg: GiFTConfig, generator: Any, work_dir: Any,
                  exec_config: Any = None, samples_per_problem: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample iters x num_seq codes per problem from the ORIGINAL prompt (GiFT's code budget),
    keep the passing ones, draw k per problem uniformly (distinct codes where a problem has k, as the
    official code's unweighted draw); the training set adds the gold solutions as GiFT's does
    (`train_set`). Resumable in `work_dir`."""
    cfg.validate()
    n = samples_per_problem or cfg.iters * cfg.num_seq
    run = RunDir(work_dir)
    params = cfg.code_params(0).replace(n=n)
    name = getattr(generator, "name", "")
    t0 = time.time()
    samples = sample_into(run.stage("samples"), problems, params, model=name, generator=generator)
    gen_s = float(run.stage("samples").metrics().get("wall_s", time.time() - t0))
    judged = [judged_problem(p, cfg.tests_limit) for p in problems]
    results = execute_into(run.stage("results"), judged, samples, exec_config or ExecConfig(),
                           inputs_hash=run.stage("samples").done_hash())
    kept = [{"task_id": r.task_id, "round": 0, "completion": r.completion, "ppl": None, "description": None,
             **({"program": r.code} if cfg.instruction else {})}
            for r in sorted(results, key=lambda r: (r.task_id, r.sample_id)) if _usable(r)]
    ucfg = dataclasses.replace(cfg, weighting="uniform")
    prompts = {s.task_id: s.prompt for s in samples if s.prompt}
    drawn = resample(kept, problems, ucfg, prompts)
    for rec in drawn:
        rec["source"] = "self-training"
    sft = training_set(problems, drawn, cfg, prompts)
    with_pass = {k["task_id"] for k in kept}
    return sft, {"problems": len(problems), "samples": len(results), "samples_per_problem": n,
                 "passing_samples": len(kept), "problems_with_pass": len(with_pass),
                 "share_with_pass": len(with_pass) / len(problems) if problems else 0.0,
                 "distinct_kept_codes": len({(k["task_id"], normalized_code(k["completion"])) for k in kept}),
                 "records": len(sft), "train_set": cfg.train_set, "gold_records": len(sft) - len(drawn),
                 "resampled_records": len(drawn), "resampling": resampling_stats(kept, problems, ucfg, drawn),
                 "generation_samples_per_s": len(samples) / gen_s if gen_s else None}
