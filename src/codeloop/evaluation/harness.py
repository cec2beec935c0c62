"""`codeloop eval`: sample -> execute -> pass@k, as two resumable stages of a run directory.

    OUT/
      samples/   stage: Sample records (resumes by (task_id, sample_id))
      results/   stage: Result records
      per_problem.jsonl  n, c, pass@k per problem
      metrics.json       pass@k (mean), status breakdown, tokens, wall time, config
      eval.html + eval.png   a paper-style table and a bar chart

Benchmark conventions: HumanEval/MBPP/easy use the completion prompt of the problem (MBPP's holds
the task text and one test); stdin/stdout sets (APPS, CodeContests) ask for a full program that
reads standard input. Greedy pass@1 in fp32 is the default (temperature 0, n 1): bf16 greedy output
drifts with batch shapes and load, so a before/after delta could come from the kernels.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codeloop.console import summary, warn
from codeloop.errors import UserError
from codeloop.steps import generation_option, option, same_as
from codeloop.execution import ExecConfig
from codeloop.execution.passk import passk_table
from codeloop.generation import GenerationParams
from codeloop.generation.decoders import get_decoder
from codeloop.models import DTYPES as EVAL_DTYPES
from codeloop.problems import load_problems
from codeloop.records import Problem, Result, Sample, atomic_write_text, from_dict, write_jsonl
from codeloop.resumable import execute_into, sample_into
from codeloop.rundir import RunDir, StageDir

def __getattr__(name: str) -> Any:
    if name == "decode_lintseq":  # moved to codeloop.methods.lintseq (the "lintseq" decoder); kept for callers
        return get_decoder("lintseq").decode
    raise AttributeError(name)


# Default split per benchmark: evaluate on held-out problems unless told otherwise.
DEFAULT_SPLITS = {"easy": "test", "mbpp": "test"}


@dataclass
class EvalConfig:
    benchmark: str = option("humaneval", flags=("-b",), help="humaneval | mbpp[:PATH] | apps:PATH | "
                                                           "codecontests:PATH | easy | jsonl:PATH")
    model: str = option("default", flags=("-m",), help="HF model id or local path; 'default' = the embedded "
                                                      "model; 'canonical' = the reference solutions (checks the "
                                                      "benchmark and sandbox).")
    adapter: str | None = option(None, help="A LoRA adapter (or full model dir) from `codeloop train`.")
    backend: str = generation_option("backend")
    base_url: str | None = generation_option("base_url")
    api_key: str | None = generation_option("api_key")
    split: str | None = option(None, help="Problem split (default: test for easy and mbpp).")
    limit: int | None = option(None, min=1, help="Evaluate only the first N problems.")
    n: int = option(1, flags=("-n",), min=1, help="Samples per problem.")
    ks: list[int] = option(default_factory=lambda: [1], flags=("--k",), aliases=("k",), min=1,
                           help="k values for pass@k, e.g. 1,10.")
    temperature: float = option(0.0, help="0 = greedy (the default, for pass@1).")
    top_p: float = option(0.95, help="Nucleus sampling mass (temperature > 0).")
    top_k: int = option(0, help="Sample among the k most likely tokens only (0: off).")
    max_new_tokens: int = option(384, min=1, help="Generation budget per sample.")
    batch_size: int = option(8, min=1, help="Prompts per generation batch.")
    seed: int = option(0, help="Sampling seed.")
    workers: int | None = option(None, min=1, help="Sandbox workers (default: CPU count).")
    timeout_s: float = option(10.0, flags=("--timeout",), gt=0,
                              help="Seconds per sample (per test case for stdin/stdout problems).")
    memory_mb: int = option(1024, min=64, help="Memory of one execution, all its processes together (MiB).")
    executor: str = option("local", help="Where executions run: local, ray or ray:ADDRESS (docs/ray.md).")
    isolation: str = option("auto", choices=("auto", "full"),
                            help="auto: every sandbox isolation feature this machine allows; full: refuse to "
                                 "run with less (docs/execution.md).")
    decode: str = option("none", help="A registered decoder, e.g. lintseq: the model writes edit sequences.")
    prompt_format: str = same_as(GenerationParams, "prompt_format")
    chat: str = same_as(GenerationParams, "chat")
    dtype: str = option("fp32", choices=EVAL_DTYPES,
                        help="Weights and activations while sampling (hf, vllm). fp32, the default, gives the "
                             "same greedy output run after run; bf16 kernels change with batch shape and load, "
                             "and flipped a demo's pass@1 by 1/60 between two runs. fp32 sampling takes about "
                             "2x the time of bf16 on a CPU with AMX (measured: benchmarks/models.py); 'auto' "
                             "picks bf16 where the hardware runs it.")

    def validate(self) -> None:
        if self.n < 1:
            raise UserError("must be at least 1", "-n")
        if any(k < 1 for k in self.ks):
            raise UserError("every k must be at least 1", "--k")
        if self.temperature == 0 and self.n > 1:
            raise UserError("greedy decoding (temperature 0) gives n identical samples; "
                            "set --temperature > 0 for n > 1", "--temperature")
        get_decoder(self.decode)
        if max(self.ks) > self.n:
            raise UserError(f"k={max(self.ks)} needs at least that many samples per problem (-n {self.n})",
                            "--k")

    def resolved_split(self) -> str | None:
        name = self.benchmark.partition(":")[0]
        return self.split if self.split is not None else DEFAULT_SPLITS.get(name)

    def exec_config(self) -> ExecConfig:
        return ExecConfig(timeout_s=self.timeout_s, memory_mb=self.memory_mb, executor=self.executor,
                          isolation=self.isolation,
                          **({"workers": self.workers} if self.workers else {}))

    def generation_params(self) -> GenerationParams:
        params = GenerationParams(n=self.n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                                  max_new_tokens=self.max_new_tokens, seed=self.seed,
                                  batch_size=self.batch_size, prompt_format=self.prompt_format, chat=self.chat)
        decoder = get_decoder(self.decode)
        if decoder is not None and decoder.stop:
            params = params.replace(default_stops=False, stop=list(decoder.stop))
        return params


def backend_options(cfg: EvalConfig) -> dict[str, Any]:
    """hf / vllm: the dtype; openai: the server and key (None: $OPENAI_BASE_URL / $OPENAI_API_KEY)."""
    if cfg.backend != "openai":
        return {"dtype": cfg.dtype}
    return {"base_url": cfg.base_url, "api_key": cfg.api_key}


@dataclass
class EvalSummary:
    out_dir: Path
    metrics: dict[str, Any]

    @property
    def passk(self) -> dict[str, float]:
        return self.metrics["pass@k"]


def _key(rec: dict[str, Any]) -> tuple[str, int]:
    return (str(rec["task_id"]), int(rec.get("sample_id", 0)))


CANONICAL = "canonical"  # --model canonical: the benchmark's reference solutions (a sandbox/benchmark check)


def canonical_samples(stage: StageDir, problems: list[Problem]) -> list[Sample]:
    """One Sample per problem holding its reference solution, so the harness can be checked end to end."""
    stage.open({"problems": [p.task_id for p in problems], "model": CANONICAL})
    if not stage.done:
        missing = [p.task_id for p in problems if not p.canonical_solution.strip()]
        if missing:
            raise UserError(f"{len(missing)} problems have no reference solution (first: {missing[0]})",
                            "--model canonical")
        with stage.writer() as out:
            for p in problems:
                out.write(Sample(task_id=p.task_id, prompt=p.prompt, completion=p.canonical_solution,
                                 model=CANONICAL))
        stage.finish({"samples": len(problems), "wall_s": 0.0})
    return [from_dict(Sample, r) for r in stage.records()]


def _sampling_extra(cfg: EvalConfig) -> dict[str, Any]:
    return {"benchmark": cfg.benchmark, "split": cfg.resolved_split(), "decode": cfg.decode,
            **({"dtype": cfg.dtype} if cfg.backend != "openai" else {})}


def find_finished_evaluation(cfg: EvalConfig, problems: list[Problem], root: str | Path) -> Path | None:
    """A finished evaluation under `root` (a run folder) whose samples and verdicts are exactly the
    ones `evaluate(cfg)` would make: the same problems, model, adapter, sampling settings and seed,
    and the same sandbox settings and judge. Found by the two stage keys, so a folder made with any
    other setting never matches. Lets one model evaluated twice in a recipe (an arm's final model in
    its own eval and on a curve) be sampled once."""
    from codeloop.resumable.execute import execute_stage_config
    from codeloop.resumable.sample import sample_stage_config
    from codeloop.rundir import DONE_FILE, config_hash

    if cfg.model == CANONICAL:
        return None
    samples_hash = config_hash(sample_stage_config(problems, cfg.generation_params(), cfg.model, cfg.backend,
                                                   cfg.adapter, _sampling_extra(cfg)))
    results_hash = config_hash(execute_stage_config(cfg.exec_config(), samples_hash))
    for done in sorted(Path(root).rglob(f"samples/{DONE_FILE}")):
        folder = done.parent.parent
        if (RunDir(folder).stage("samples").done_hash() == samples_hash
                and RunDir(folder).stage("results").done_hash() == results_hash
                and (folder / "metrics.json").is_file()):
            return folder
    return None


def evaluate(cfg: EvalConfig, out_dir: str | Path, generator: Any = None, problems: list[Problem] | None = None,
             write_page: bool = True) -> EvalSummary:
    """Run (or resume) an evaluation into `out_dir`; `generator` may be an already-loaded model."""
    cfg.validate()
    out = Path(out_dir)
    run = RunDir(out)
    if problems is None:
        problems = load_problems(cfg.benchmark, split=cfg.resolved_split(), limit=cfg.limit)
    if not problems:
        raise UserError(f"no problems in {cfg.benchmark}" + (f" split {cfg.resolved_split()}" if cfg.split else ""),
                        "--benchmark")
    decoder = get_decoder(cfg.decode)
    if cfg.n > 1 and cfg.n < 20 and max(cfg.ks) > 1:
        warn(f"pass@k from n={cfg.n} samples per problem has a wide spread; the unbiased estimator is usually "
             "run with n >= 20 (-n 20)")
    if cfg.model == CANONICAL:
        samples = canonical_samples(run.stage("samples", key=_key), problems)
    else:
        samples = sample_into(run.stage("samples", key=_key), problems, cfg.generation_params(),
                              model=cfg.model, backend=cfg.backend, adapter=cfg.adapter, generator=generator,
                              extra_config=_sampling_extra(cfg), postprocess=decoder.decode if decoder else None,
                              backend_options=backend_options(cfg))
    results = execute_into(run.stage("results", key=_key), problems, samples, cfg.exec_config(),
                           inputs_hash=run.stage("samples").done_hash())
    rank = {p.task_id: i for i, p in enumerate(problems)}
    results.sort(key=lambda r: (rank.get(r.task_id, len(rank)), r.sample_id))  # problem order, not finish order
    metrics = summarize(cfg, problems, results, run)
    per_problem = metrics.pop("_per_problem")
    write_jsonl(out / "per_problem.jsonl", [{"task_id": p.task_id, **per_problem[p.task_id]}
                                            for p in problems if p.task_id in per_problem])
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if write_page:
        from codeloop.evaluation.page import write_eval_page

        write_eval_page(out, metrics, results)
    return EvalSummary(out, metrics)


def summarize(cfg: EvalConfig, problems: list[Problem], results: list[Result], run: RunDir) -> dict[str, Any]:
    table = passk_table(results, cfg.ks)
    statuses = Counter(r.status for r in results)
    tokens = sum(r.n_tokens or 0 for r in results)
    return {
        "benchmark": cfg.benchmark, "split": cfg.resolved_split(), "model": cfg.model, "adapter": cfg.adapter,
        "n_problems": len(problems), "n_samples": len(results),
        "pass@k": table["mean"], "status": dict(sorted(statuses.items())),
        "tokens": tokens,
        "wall_s": {"sample": run.stage("samples").metrics().get("wall_s"),
                   "execute": run.stage("results").metrics().get("wall_s")},
        "config": {**asdict(cfg), "api_key": "***" if cfg.api_key else None},  # no secret in metrics.json
        "_per_problem": table["per_problem"],
    }


def print_summary(s: EvalSummary) -> None:
    m = s.metrics
    ks = ", ".join(f"{k}={v:.3f}" for k, v in m["pass@k"].items())
    st = ", ".join(f"{k} {v}" for k, v in m["status"].items())
    summary(f"{m['benchmark']}: {ks} over {m['n_problems']} problems ({st}) -> {s.out_dir}")
