"""Local sandbox pool vs the Ray executor on this machine, same inputs: the overhead of going through Ray.

    .venv/bin/python benchmarks/ray_execution.py [--repeat R] [--cores-per-actor C] [--address ADDR]

Inputs: HumanEval canonical solutions, 164 x R (all pass), timeout 10 s.
Baseline: `execute_samples` with a local `ExecutionPool` of N workers (N = this machine's CPUs),
pool start-up included. Ray: a single-node Ray instance on this machine with N CPUs (or the
cluster at --address), one actor per C CPUs, each hosting a pool of C workers.

Prints, for Ray: start-up (ray.init; actors until ready), a cold job (actors started for it, as
`codeloop execute --executor ray` does) and a warm job on the same actors; executions/s and the
ratio local / ray (above 1 = Ray is slower); and whether every verdict is identical.
"""

from __future__ import annotations

import argparse
import os
import time

from codeloop.execution import ExecConfig, execute_samples
from codeloop.execution.ray_executor import RayExecutor
from codeloop.problems import load_problems
from codeloop.records import Sample


def verdicts(results):
    return [(r.task_id, r.sample_id, r.status, r.passed_tests, r.total_tests) for r in results]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--cores-per-actor", type=int, default=None, help="default: every CPU in one actor")
    ap.add_argument("--address", default=None, help="an existing cluster (default: start one here)")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    problems = load_problems("humaneval")
    samples = [Sample(task_id=p.task_id, sample_id=r, completion=p.canonical_solution)
               for r in range(args.repeat) for p in problems]
    cfg = ExecConfig(workers=cpus, timeout_s=10.0)
    n = len(samples)
    print(f"{n} executions (HumanEval canonical x {args.repeat}), {cpus} CPUs")

    t = time.perf_counter()
    local = execute_samples(problems, samples, cfg, progress=False)
    local_s = time.perf_counter() - t
    print(f"local pool ({cpus} workers, start-up included): {local_s:.2f} s, {n / local_s:.1f}/s")

    import ray

    t = time.perf_counter()
    if args.address:
        ray.init(address=args.address, logging_level="ERROR")
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=100 << 20, logging_level="ERROR")
    init_s = time.perf_counter() - t
    cores = args.cores_per_actor or cpus

    t = time.perf_counter()
    with RayExecutor(cfg, cores_per_actor=cores) as ex:
        res_cold, summary = ex.execute(problems, samples, progress=False)
    cold_s = time.perf_counter() - t

    with RayExecutor(cfg, cores_per_actor=cores) as ex:
        t = time.perf_counter()
        infos = ex.actor_infos()
        ready_s = time.perf_counter() - t
        t = time.perf_counter()
        res_warm, summary = ex.execute(problems, samples, progress=False)
        warm_s = time.perf_counter() - t

    print(f"ray.init: {init_s:.2f} s; {len(infos)} actor(s) x {cores} workers ready in {ready_s:.2f} s")
    print(f"ray cold (actors started for the job): {cold_s:.2f} s, {n / cold_s:.1f}/s, "
          f"overhead ratio {cold_s / local_s:.2f}x the local pool")
    print(f"ray warm (actors already up):           {warm_s:.2f} s, {n / warm_s:.1f}/s, "
          f"overhead ratio {warm_s / local_s:.2f}x the local pool")
    print("\n".join(summary.lines()))
    same = verdicts(local) == verdicts(res_cold) == verdicts(res_warm)
    print(f"verdicts identical to the local pool: {same}")
    ray.shutdown()


if __name__ == "__main__":
    main()
