"""Per-execution cost of building the jail: bubblewrap (a new jail + a new interpreter per program)
against codeloop's sandbox (a fork of a warm worker inside namespaces built once), same program.

    .venv/bin/python benchmarks/jail.py [--n 40]

bubblewrap is the Debian package `bubblewrap` (`apt-get install bubblewrap`); without it only
the sandbox's figure is printed. Both run one at a time, alternating in rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from codeloop.execution import ExecConfig, ExecutionPool, execute_samples
from codeloop.records import Problem, Sample

PROGRAM = "from typing import List\ndef add(a, b):\n    return a + b\n"
TEST = "assert add(1, 2) == 3\n"


def bwrap_args() -> list[str]:
    py = os.path.realpath(sys.executable)
    args = ["bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("lib", "lib64", "bin", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for prefix in {sys.base_prefix, sys.prefix}:
        args += ["--ro-bind", prefix, prefix]
    return args + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent",
                   "--new-session", py, "-I", "-S", "-c", PROGRAM + TEST]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="executions per round and method")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.2f} (time it alone)")
    have_bwrap = shutil.which("bwrap") is not None
    problem = Problem(task_id="t/add", prompt="", entry_point="add", test=TEST)
    samples = [Sample(task_id="t/add", sample_id=i, code=PROGRAM) for i in range(args.n)]
    t_box = t_bw = 0.0
    with ExecutionPool(ExecConfig(workers=1)) as pool:
        print(f"sandbox isolation: {pool.isolation['level']} {pool.isolation.get('missing')}")
        execute_samples([problem], samples[:5], pool=pool, progress=False)
        if have_bwrap:
            subprocess.run(bwrap_args(), check=True)
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            rs = execute_samples([problem], samples, pool=pool, progress=False)
            t_box += time.perf_counter() - t0
            assert all(r.status == "passed" for r in rs), rs[0].detail
            if have_bwrap:
                t0 = time.perf_counter()
                for _ in range(args.n):
                    subprocess.run(bwrap_args(), check=True)
                t_bw += time.perf_counter() - t0
    n = args.n * args.rounds
    print(f"codeloop sandbox (fork of a warm worker)  {1000 * t_box / n:7.2f} ms/exec")
    if have_bwrap:
        print(f"bubblewrap + python -I -S                 {1000 * t_bw / n:7.2f} ms/exec")
        print(f"ratio                                     {t_bw / t_box:7.1f}x")
    else:
        print("bubblewrap: not installed (apt-get install bubblewrap)")


if __name__ == "__main__":
    main()
