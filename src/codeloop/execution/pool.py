"""The pool of warm sandbox workers, and the `local` executor on top of it.

Workers are fresh ``python -s -P`` processes running `_worker.py` (stdlib only), never forks of this
process: forking from a parent that has imported torch costs 19-59 ms a fork. One thread per
worker feeds it jobs; results come back to the calling thread, which calls `on_result` in the
order executions finish and returns the results in input order. A worker that dies or stops
answering is replaced; the job it held is run once more on the new worker.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from codeloop.console import nullbar, progress_bar, warn
from codeloop.errors import UserError
from codeloop.execution.config import ExecConfig
from codeloop.execution.judges import build_job, program_for, stdio_verdict
from codeloop.records import Problem, Result, Sample

WORKER_SCRIPT = (Path(__file__).parent / "_worker.py").resolve()
_UID_LOCK_DIR = Path("/tmp/codeloop-sandbox-uids")
_UID_SLOTS = 4096
_START_TIMEOUT_S = 60.0
_SLACK_S = 30.0  # how much longer than its own limits a job may take before its worker is replaced


class WorkerDied(RuntimeError):
    pass


class _PoolClosed(Exception):
    """The pool was closed while a job ran: that job gets no verdict."""


def _claim_uid(base: int) -> tuple[int, int]:
    """Lock a uid slot for one worker's lifetime, across every codeloop process on this machine.

    The lock is an flock on a file whose descriptor the worker inherits: it is released when the
    worker dies, however it dies. Two pools must never share a uid (a kill(-1) sweep as that uid
    would hit the other pool's executions)."""
    _UID_LOCK_DIR.mkdir(mode=0o755, exist_ok=True)
    for slot in range(_UID_SLOTS):
        fd = os.open(_UID_LOCK_DIR / f"{base + slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return base + slot, fd
    raise RuntimeError(f"no free sandbox uid in {base}..{base + _UID_SLOTS - 1}")


class _WorkerHandle:
    def __init__(self, config: ExecConfig):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.isolation: dict[str, Any] = {}
        self.restarts = -1

    def start(self) -> None:
        self.restarts += 1
        cfg = self.config.worker_config()
        cfg["parent_pid"] = os.getpid()
        lock_fd = None
        if os.geteuid() == 0:
            cfg["uid"], lock_fd = _claim_uid(self.config.uid_base)
        # -I's isolation without its -E: the environment is ours (below), and it sets the hash seed.
        args = [sys.executable, "-s", "-P"] + ([] if self.config.site_packages else ["-S"])
        args += [str(WORKER_SCRIPT), json.dumps(cfg)]
        # A fixed hash seed: set and dict-of-str orders are then the same in every worker and every
        # run, so a verdict (and a reference's expected output) does not depend on which worker ran it.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                         pass_fds=(lock_fd,) if lock_fd is not None else (), close_fds=True,
                                         cwd="/")
        finally:
            if lock_fd is not None:
                os.close(lock_fd)  # the worker holds the lock now
        hello = self._recv(_START_TIMEOUT_S)
        if "fatal" in hello:
            self.kill()
            raise RuntimeError(hello["fatal"])
        self.isolation = hello["isolation"]

    # -- framing ---------------------------------------------------------------------------------
    def _send(self, obj: dict) -> None:
        data = json.dumps(obj).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise WorkerDied(f"cannot write to the worker: {exc}") from None

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerDied("the worker did not answer in time")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise WorkerDied("the worker exited")
            buf.extend(chunk)
        return bytes(buf)

    def _recv(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack(">I", self._read(4, deadline))
        return json.loads(self._read(n, deadline))

    # -- calls -----------------------------------------------------------------------------------
    def run(self, job: dict) -> dict:
        self._send({"op": "run", "job": job})
        reply = self._recv(job["timeout_s"] + _SLACK_S)
        if "sandbox_error" in reply:  # the worker exits after this; the job runs again on a fresh one
            raise WorkerDied(f"sandbox error: {reply['sandbox_error']}")
        return reply

    def stats(self) -> dict:
        self._send({"op": "stats"})
        return self._recv(10.0)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            self.proc = None

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            self._send({"op": "exit"})
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=10)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc = None
        except (WorkerDied, subprocess.TimeoutExpired, OSError):
            self.kill()


class ExecutionPool:
    """Warm sandbox workers; a context manager, reusable across calls of `run_jobs`/`execute_samples`."""

    def __init__(self, config: ExecConfig | None = None):
        self.config = config or ExecConfig()
        self.config.validate()
        self._workers = [_WorkerHandle(self.config) for _ in range(self.config.workers)]
        self._started = False
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.warned = False  # execute_samples says what isolation is missing once per pool

    def start(self) -> "ExecutionPool":
        with self._lock:
            if not self._started:
                self._closing.clear()
                _remove_stale_cgroups()
                for w in self._workers:
                    w.start()
                self._started = True
                iso = self._workers[0].isolation
                if self.config.isolation == "full" and iso.get("level") != "full":
                    for w in self._workers:
                        w.close()
                    self._started = False
                    raise UserError("isolation 'full' was asked for, but on this machine the sandbox gets "
                                    + isolation_summary(iso), "--isolation")
        return self

    def __enter__(self) -> "ExecutionPool":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # a job cut short by this is not given a verdict
        with self._lock:
            for w in self._workers:
                w.close()
            self._started = False

    @property
    def isolation(self) -> dict[str, Any]:
        """What the sandbox could put in place on this machine: level ('full' or 'partial'), each
        feature (user, mount, pid, ipc, net, cgroup, seccomp, no_new_privs), what is missing, notes."""
        self.start()
        return self._workers[0].isolation

    @property
    def restarts(self) -> int:
        return sum(max(0, w.restarts) for w in self._workers)

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None]

    def stats(self) -> list[dict]:
        """Per worker: open fds, runs, sweeps of escaped processes, children left (for leak checks)."""
        self.start()
        return [w.stats() for w in self._workers]

    def run_program(self, program: str, stdin: str = "", timeout_s: float | None = None) -> dict:
        """Run one program as a stdin/stdout program in the sandbox, on an idle pool:
        ``{"outcome": None or [status, detail], "stdout": str, "runtime_s": float}``."""
        self.start()
        job = {"kind": "stdio", "program": program, "input": stdin, "timeout_s": timeout_s or self.config.timeout_s}
        return self._run_once(self._workers[0], job)

    def _run_on(self, w: _WorkerHandle, job: dict, tests: list | None) -> dict:
        if job["kind"] == "stdio":
            return stdio_verdict(job, tests or [], lambda case: self._run_once(w, case))
        return self._run_once(w, job)

    def _run_once(self, w: _WorkerHandle, job: dict) -> dict:
        for attempt in (1, 2):
            try:
                if self._closing.is_set():
                    raise _PoolClosed
                proc = w.proc
                if proc is None or proc.poll() is not None:
                    w.kill()
                    w.start()
                return w.run(job)
            except (WorkerDied, AttributeError) as exc:  # AttributeError: closed under our feet
                if self._closing.is_set():
                    raise _PoolClosed from None
                w.kill()
                if attempt == 2:
                    lost = {"status": "killed", "detail": f"sandbox worker lost twice ({exc})",
                            "passed_tests": 0, "total_tests": job.get("n_tests", 0), "runtime_s": 0.0}
                    if job["kind"] == "stdio":
                        return {"outcome": ["killed", lost["detail"]], "runtime_s": 0.0, "stdout": ""}
                    return lost
        raise AssertionError("unreachable")

    def run_jobs(self, jobs: list[dict], tests: dict[str, list] | None = None,
                 on_done: Callable[[int, dict], None] | None = None) -> list[dict]:
        """Run worker jobs (see judges.build_job); results in input order, `on_done(i, r)` as each ends."""
        self.start()
        tests = tests or {}
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for i, job in enumerate(jobs):
            todo.put((i, job))
        done: queue.SimpleQueue = queue.SimpleQueue()
        n_threads = min(len(self._workers), len(jobs))
        for _ in range(n_threads):
            todo.put(None)

        def feed(w: _WorkerHandle) -> None:
            while True:
                item = todo.get()
                if item is None:
                    done.put(None)
                    return
                i, job = item
                try:
                    res = self._run_on(w, job, tests.get(job.get("tests_key", "")))
                except _PoolClosed:
                    done.put(None)
                    return
                except BaseException as exc:  # never leave the caller waiting
                    res = {"status": "error", "detail": f"sandbox error: {exc!r}"[:300], "passed_tests": 0,
                           "total_tests": job.get("n_tests", 0), "runtime_s": 0.0}
                done.put((i, res))

        threads = [threading.Thread(target=feed, args=(w,), daemon=True) for w in self._workers[:n_threads]]
        for t in threads:
            t.start()
        out: list[dict | None] = [None] * len(jobs)
        finished = 0
        try:
            while finished < n_threads:
                item = done.get()
                if item is None:
                    finished += 1
                    continue
                i, res = item
                out[i] = res
                if on_done is not None:
                    on_done(i, res)
        except BaseException:
            # The caller's callback failed or Ctrl-C: hand out no more jobs, let the running ones end.
            while True:
                try:
                    todo.get_nowait()
                except queue.Empty:
                    break
            for _ in range(n_threads):
                todo.put(None)
            raise
        finally:
            for t in threads:
                t.join(timeout=0 if self._closing.is_set() else None)
        if any(r is None for r in out):
            raise RuntimeError("the execution pool was closed while its jobs were running")
        return out  # type: ignore[return-value]


_FEATURES = {"user": "no separate user (uid or user namespace)", "mount": "no private read-only file system",
             "pid": "no PID namespace", "ipc": "no IPC namespace per execution", "net": "network not isolated",
             "cgroup": "no memory/pids cgroup", "seccomp": "no seccomp filter", "no_new_privs": "no NO_NEW_PRIVS"}


def isolation_summary(iso: dict[str, Any]) -> str:
    """'full', or 'partial: <what is missing>' in words; what every Result records."""
    if iso.get("level") == "full":
        return "full"
    missing = [_FEATURES.get(m, m) for m in iso.get("missing", [])]
    return "partial: " + "; ".join(missing + list(iso.get("notes", [])) or ["unknown"])


def _remove_stale_cgroups() -> None:
    """Remove the cgroups of sandbox workers that died without cleaning up (SIGKILL)."""
    if os.geteuid() != 0:
        return
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for base in ([f"/sys/fs/cgroup/{c}" for c in ctrls.split(",")] if ctrls else ["/sys/fs/cgroup"]):
            parent = Path(base + path)
            try:
                entries = list(parent.glob("codeloop-*"))
            except OSError:
                continue
            for d in entries:
                pid = d.name.rpartition("-")[2]
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    try:
                        d.rmdir()
                    except OSError:
                        pass


class LocalExecutor:
    """The `local` executor: this machine's pool of warm sandbox workers.

    `pool`: a started or unstarted ExecutionPool to reuse (its config wins; it is left open on
    close); else one is made here, started on first use and closed on close.
    """

    def __init__(self, config: ExecConfig | None = None, pool: ExecutionPool | None = None):
        self._own_pool = pool is None
        self.pool = pool or ExecutionPool(config)
        self.config = self.pool.config

    def start(self) -> "LocalExecutor":
        self.pool.start()
        return self

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()

    def run(self, problems: dict[str, Problem], samples: list[Sample],
            on_result: Callable[[Result], None] | None = None, progress: bool = True) -> list[Result]:
        """Results in input order; `on_result` is called (in this thread) as each execution finishes."""
        cache: dict[str, Any] = {}
        jobs, programs = [], []
        for s in samples:
            problem = problems.get(s.task_id)
            if problem is None:
                raise UserError(f"sample {s.sample_id} is for task '{s.task_id}', which is not in the problem set",
                                "--samples")
            program = program_for(problem, s)
            programs.append(program)
            jobs.append(build_job(problem, program, self.config, cache))
        tests = {k: v for k, v in cache.items() if isinstance(v, list)}
        results: list[Result | None] = [None] * len(samples)
        pool = self.pool
        note = isolation_summary(pool.isolation) if samples else "full"
        if note != "full" and not pool.warned:
            pool.warned = True
            warn(f"sandbox isolation is {note} (pass --isolation full to refuse this; see docs/execution.md)")
        with progress_bar("execute", len(samples)) if progress else nullbar() as advance:
            def done(i: int, res: dict) -> None:
                r = _result(samples[i], programs[i], res, note)
                results[i] = r
                if on_result is not None:
                    on_result(r)
                advance()

            pool.run_jobs(jobs, tests, done)
        return results  # type: ignore[return-value]


def _result(sample: Sample, program: str, res: dict, note: str | None) -> Result:
    data = {f.name: getattr(sample, f.name) for f in dataclasses.fields(Sample)}
    data["extra"] = dict(sample.extra)
    if note:
        data["extra"]["isolation"] = note
    data["code"] = program
    return Result(**data, status=res["status"], passed_tests=int(res.get("passed_tests", 0)),
                  total_tests=int(res.get("total_tests", 0)), runtime_s=round(float(res.get("runtime_s", 0.0)), 6),
                  detail=str(res.get("detail", "")))

