"""Sandbox worker: one warm, small Python process that forks a child per execution.

Started by the pool as ``python -I [-S] _worker.py CONFIG_JSON`` with a scrubbed environment. It
imports only the standard library (never codeloop, never torch), so a fork costs a few
milliseconds. Messages with the pool are length-prefixed JSON on two pipes.

Each child: its own session/process group, a fresh temp directory, a minimal environment,
rlimits, a dedicated unprivileged uid when the worker runs as root (so RLIMIT_NPROC binds and a
final kill(-1) as that uid reaches every escaped process), the worker's network namespace (new
and empty, created once at start-up where the kernel allows it). The verdict travels on a
private pipe, each line tagged with a per-run nonce and the child's pid; stdout never decides.
The worker is a child subreaper, so anything the program double-forks is reparented here and
reaped or killed after the run.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import io
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time

if __package__:  # imported as codeloop.execution._worker
    from codeloop.execution import _harness
else:  # run by the pool as a script; -I leaves the script's folder off sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _harness  # noqa: E402  (stdlib-only sibling; the child runs it)

    del sys.path[0]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 1 << 12, 1 << 14, 1 << 18
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # the world-writable places

_LIBC = ctypes.CDLL(None, use_errno=True)
_MAX_VERDICT_BYTES = 1 << 20
_STDERR_KEEP = 4096


def _outermost(paths) -> list[str]:
    """The paths that are not inside another of them."""
    ps = sorted(set(paths))
    return [p for p in ps if not any(p != q and p.startswith(q + os.sep) for q in ps)]



def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        b = os.read(fd, n)
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv(fd: int) -> dict:
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    return json.loads(_read_exact(fd, n))


def send(fd: int, obj: dict) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _set_limits(lim: dict) -> None:
    def setl(which: int, value: int) -> None:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(which)
            resource.setrlimit(which, (min(value, hard) if hard != resource.RLIM_INFINITY else value, hard))

    setl(resource.RLIMIT_AS, lim["memory_bytes"])
    setl(resource.RLIMIT_CPU, lim["cpu_s"])
    setl(resource.RLIMIT_FSIZE, lim["file_bytes"])
    setl(resource.RLIMIT_NOFILE, lim["open_files"])
    setl(resource.RLIMIT_CORE, 0)
    if lim.get("nproc"):
        setl(resource.RLIMIT_NPROC, lim["nproc"])


def _child_main(job: dict, fds: dict, worker: "Worker", nonce: str, rundir: str, vfd: int) -> None:
    """Runs in the forked child; never returns."""
    code = 70
    try:
        os.setsid()
        os.dup2(fds["in"], 0)
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(fds["verdict"], vfd)
        os.closerange(3, vfd)
        os.closerange(vfd + 1, worker.fd_ceiling)
        _set_limits(worker.limits(job))
        uid = worker.uid
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        # After the credential change (which clears it): die with the worker.
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        os.chdir(rundir)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": rundir, "TMPDIR": rundir,
                           "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                                     errors="replace")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                                      errors="backslashreplace")
        sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        sys.argv = ["<program>"]
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
        channel = _harness.Channel(vfd, nonce)
        del fds, worker
        if job["kind"] == "stdio":
            code = _harness.run_stdio(job, channel)
        else:
            _harness.run_function(job, channel, "_cl_" + nonce[:12])
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except BaseException:
                    pass
            code = 0
    except BaseException:
        code = 71
    finally:
        os._exit(code)


# -------------------------------------------------------------------------------------------------
# The worker

class Worker:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.uid: int | None = cfg.get("uid") if os.geteuid() == 0 else None
        self.notes: list[str] = []
        self.net = "none"
        self.runs = 0
        self.sweeps = 0
        self.base = ""
        self.nproc_base = 0
        self.scratch: list[str] = []
        self.scratch_keep: set[str] = set()
        self.fd_ceiling = 1 << 20

    # -- start-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        # No PDEATHSIG here: it fires when the *thread* that started us ends, and the pool restarts
        # workers from short-lived threads. A pool that dies closes our stdin; we exit on EOF.
        if os.getppid() != self.cfg["parent_pid"]:
            os._exit(0)
        if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            self.notes.append("no child subreaper: escaped processes are found by uid only")
        if self.cfg.get("network", "isolate") == "isolate":
            if _LIBC.unshare(CLONE_NEWNET) == 0:
                self.net = "netns"
            elif os.geteuid() != 0 and _LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
                self.net = "userns+netns"
            else:
                err = ctypes.get_errno()
                self.notes.append(f"network NOT isolated: unshare(CLONE_NEWNET) failed ({os.strerror(err)})")
        else:
            self.notes.append("network NOT isolated (network='allow')")
        if self.uid is None:
            self.notes.append("not root: the program runs as the caller's uid (it can signal the caller's "
                              "processes and read its files); RLIMIT_NPROC counts all of that uid's processes")
            self.nproc_base = self._count_own_processes()
        else:
            self._kill_uid()  # leftovers of a predecessor that died with this uid
        self.scratch = self._private_scratch() if self.uid is not None else []
        if self.uid is not None and not self.scratch:
            self.notes.append("shared /tmp: files the program writes outside its directory outlive the run")
        for name in self.cfg.get("preload", []):
            try:
                __import__(name)
            except Exception:
                pass
        root = self.cfg.get("tmp_root") or None
        import tempfile

        self.base = tempfile.mkdtemp(prefix="codeloop-sbx-", dir=root)
        os.chmod(self.base, 0o711)

    def _private_scratch(self) -> list[str]:
        """Give this worker (and so its children) private, size-capped tmpfs mounts over the
        world-writable directories, emptied after every run. Needs root; [] when not possible."""
        if _LIBC.unshare(CLONE_NEWNS) != 0:
            return []
        if _LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            return []
        size = f"size={int(self.cfg.get('scratch_mb', 256))}m,mode=1777".encode()
        needed = self._interpreter_paths()
        # The interpreter or its environment may live under a directory about to be covered (a
        # project cloned into /tmp with its .venv there): hold a handle to each such directory so
        # it can be bound back once the tmpfs hides it. Scratch clean-up never enters them.
        handles: dict[str, list[tuple[str, int]]] = {}
        for d in SCRATCH_DIRS:
            under = _outermost([p for p in needed if p.startswith(d + os.sep)])
            handles[d] = [(p, os.open(p, os.O_PATH)) for p in under]
        mounted = []
        try:
            for d in SCRATCH_DIRS:
                if not (os.path.isdir(d) and _LIBC.mount(b"tmpfs", d.encode(), b"tmpfs", 0, size) == 0):
                    continue
                mounted.append(d)
                for path, fd in handles[d]:
                    os.makedirs(path, exist_ok=True)
                    if _LIBC.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None):
                        self.notes.append(f"cannot bind {path} for the sandbox uid: imports from there fail")
                    top = os.path.join(d, os.path.relpath(path, d).split(os.sep)[0])
                    self.scratch_keep.add(top)
        finally:
            for entries in handles.values():
                for _, fd in entries:
                    os.close(fd)
        if "/tmp" not in mounted:
            return []
        self._expose_interpreter(needed)
        return mounted

    @staticmethod
    def _interpreter_paths() -> set[str]:
        needed = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}
        needed |= {p for p in sys.path if p and os.path.isdir(p)}
        return {os.path.realpath(p) for p in needed}

    def _expose_interpreter(self, needed: set[str]) -> None:
        """The sandbox uid must be able to import the standard library and site-packages even when
        they live under a directory it may not enter (e.g. /root/.pyenv under a 0700 /root): in
        our mount namespace, cover that directory with an empty tmpfs and bind just the
        interpreter's directories back into it. The rest of it stays hidden."""
        by_blocker: dict[str, set[str]] = {}
        for path in needed:
            parts = path.split(os.sep)
            for i in range(2, len(parts)):
                ancestor = os.sep.join(parts[:i])
                if not os.stat(ancestor).st_mode & 0o001:
                    by_blocker.setdefault(ancestor, set()).add(path)
                    break
        for blocker in sorted(by_blocker, key=len):
            keep = _outermost(by_blocker[blocker])
            fds = [os.open(p, os.O_PATH) for p in keep]
            try:
                if _LIBC.mount(b"tmpfs", blocker.encode(), b"tmpfs", 0, b"size=1m,mode=0755") != 0:
                    self.notes.append(f"cannot expose {', '.join(keep)} to the sandbox uid: imports from there fail")
                    continue
                for path, fd in zip(keep, fds):
                    os.makedirs(path, exist_ok=True)
                    if _LIBC.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None):
                        self.notes.append(f"cannot bind {path} for the sandbox uid: imports from there fail")
            finally:
                for fd in fds:
                    os.close(fd)

    def _empty_scratch(self) -> None:
        for d in self.scratch:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                path = os.path.join(d, name)
                if path == self.base or path in self.scratch_keep:  # our run dirs; bound-back interpreter dirs
                    continue
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        os.unlink(path)
                except OSError:
                    pass

    def isolation(self) -> dict:
        weak = bool(self.notes)
        return {"level": "weak" if weak else "full", "network": self.net, "uid": self.uid,
                "scratch": self.scratch, "notes": self.notes}

    @staticmethod
    def _count_own_processes() -> int:
        uid, n = os.getuid(), 0
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        n += 1
                except OSError:
                    pass
        return n

    def limits(self, job: dict) -> dict:
        lim = dict(self.cfg["limits"])
        timeout = float(job["timeout_s"])
        lim["cpu_s"] = int(timeout) + 2
        if self.uid is not None:
            lim["nproc"] = lim["max_processes"]
        else:
            lim["nproc"] = self.nproc_base + lim["max_processes"] + 64
        return lim

    # -- one child ------------------------------------------------------------------------------
    def run_child(self, job: dict, stdin_data: str | None) -> dict:
        nonce = os.urandom(16).hex()
        rundir = os.path.join(self.base, f"r{self.runs}")
        self.runs += 1
        os.mkdir(rundir, 0o700)
        if self.uid is not None:
            os.chown(rundir, self.uid, self.uid)
        in_fd = os.memfd_create("stdin", 0)
        if stdin_data:
            data = stdin_data.encode()
            view = memoryview(data)
            while view:
                view = view[os.write(in_fd, view):]
            os.lseek(in_fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        v_r, v_w = os.pipe()
        vfd = 20 + (os.urandom(1)[0] % 40)  # below fd_ceiling
        fds = {"in": in_fd, "out": out_w, "err": err_w, "verdict": v_w}
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _child_main(job, fds, self, nonce, rundir, vfd)
        for fd in (in_fd, out_w, err_w, v_w):
            os.close(fd)
        try:
            return self._supervise(pid, job, out_r, err_r, v_r, nonce, t0)
        finally:
            for fd in (out_r, err_r, v_r):
                os.close(fd)
            self._clean_up(rundir)

    def _supervise(self, pid: int, job: dict, out_r: int, err_r: int, v_r: int, nonce: str,
                   t0: float) -> dict:
        cap = int(self.cfg["limits"]["max_output_bytes"])
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, err_r, v_r):
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        out = bytearray()
        err = bytearray()
        verdict = bytearray()
        reason = ""
        deadline = t0 + float(job["timeout_s"])
        open_fds = {out_r, err_r, v_r}

        def drain(fd: int) -> bool:
            """Read what is there now; False at EOF."""
            nonlocal reason
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    return True
                if not chunk:
                    return False
                if fd == v_r:
                    if len(verdict) < _MAX_VERDICT_BYTES:
                        verdict.extend(chunk)
                elif fd == out_r:
                    out.extend(chunk)
                else:
                    err.extend(chunk)
                    if len(err) > 2 * _STDERR_KEEP:
                        del err[:-_STDERR_KEEP]
                if len(out) + len(err) > cap and not reason:
                    reason = "output"
                    return True

        try:
            exited = False
            while not exited and not reason:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    reason = "timeout"
                    break
                for fd, _ in poller.poll(max(1, int(remaining * 1000) + 1)):
                    if fd == pidfd:
                        exited = True
                    elif fd in open_fds and not drain(fd):
                        poller.unregister(fd)
                        open_fds.discard(fd)
            # The whole group goes, whatever state the child is in (still a zombie here, so the
            # group id cannot have been reused).
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            for fd in list(open_fds):
                drain(fd)
            _, wstatus = os.waitpid(pid, 0)
        finally:
            os.close(pidfd)
        wall = time.perf_counter() - t0
        self._reap_escaped()
        if len(out) > cap:
            del out[cap:]
        return {"wstatus": wstatus, "reason": reason, "wall": wall, "pid": pid,
                "events": self._parse_events(bytes(verdict), nonce, pid),
                "stdout": bytes(out), "stderr": bytes(err[-_STDERR_KEEP:])}

    @staticmethod
    def _parse_events(raw: bytes, nonce: str, pid: int) -> list[dict]:
        prefix = (nonce + " ").encode()
        events = []
        for line in raw.split(b"\n"):
            if not line.startswith(prefix):
                continue
            try:
                ev = json.loads(line[len(prefix):])
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("p") == pid:
                events.append(ev)
        return events

    def _reap_escaped(self) -> None:
        """Reap or kill whatever the program left behind (we are its subreaper)."""
        if not self._children_left():
            return
        self.sweeps += 1
        give_up = time.monotonic() + 5.0
        while self._children_left() and time.monotonic() < give_up:
            if self.uid is not None:
                self._kill_uid()
            else:
                self._kill_children()
            time.sleep(0.002)

    @staticmethod
    def _children_left() -> bool:
        while True:
            try:
                res = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                return False
            if res is None:
                return True

    def _kill_uid(self) -> None:
        """kill(-1, SIGKILL) as the sandbox uid: every process of that uid, wherever it went."""
        uid = self.uid
        pid = os.fork()
        if pid == 0:
            try:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)

    @staticmethod
    def _kill_children() -> None:
        me = str(os.getpid())
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
                ppid = stat[stat.rfind(b")") + 2:].split()[1].decode()
            except (OSError, IndexError):
                continue
            if ppid == me:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(int(name), signal.SIGKILL)
                    except OSError:
                        pass

    def _clean_up(self, rundir: str) -> None:
        self._empty_scratch()
        try:
            shutil.rmtree(rundir)
        except OSError:
            # A file the program made undeletable to us (chattr needs root, so this is rare): retry
            # after making everything writable.
            for dirpath, dirnames, _ in os.walk(rundir):
                for d in dirnames:
                    try:
                        os.chmod(os.path.join(dirpath, d), 0o700)
                    except OSError:
                        pass
            shutil.rmtree(rundir, ignore_errors=True)

    # -- judging --------------------------------------------------------------------------------
    def handle(self, job: dict) -> dict:
        if job["kind"] == "stdio":
            return self.run_stdio_case(job)
        return self.judge_function(job)

    def judge_function(self, job: dict) -> dict:
        run = self.run_child(job, None)
        wst = run["wstatus"]
        return _harness.function_verdict(run["events"], int(job["n_tests"]), self._abnormal(run),
                                         os.WEXITSTATUS(wst) if os.WIFEXITED(wst) else -1, run["wall"])

    @staticmethod
    def _signal_of(wstatus: int) -> int | None:
        return os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None

    def _abnormal(self, run: dict) -> tuple[str, str] | None:
        """Status for a run stopped by a limit or a signal, else None."""
        if run["reason"] == "timeout":
            return "timeout", f"wall-clock limit reached ({run['wall']:.2f} s)"
        if run["reason"] == "output":
            return "killed", "output limit exceeded (stdout+stderr > max_output_bytes)"
        sig = self._signal_of(run["wstatus"])
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit (SIGXCPU)"
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            if sig == signal.SIGSEGV and b"MemoryError" not in run["stderr"]:
                return "killed", f"killed by {name} (crash; e.g. C stack overflow from deep recursion)"
            if b"MemoryError" in run["stderr"]:
                return "memory", f"killed by {name} after MemoryError"
            return "killed", f"killed by {name}"
        return None

    def run_stdio_case(self, job: dict) -> dict:
        """One stdin/stdout test case: the child gets only the input. The expected output never
        enters the worker, so no child can read it; the pool compares what this returns."""
        run = self.run_child(job, job.get("input", ""))
        bad = self._abnormal(run)
        ends = [ev for ev in run["events"] if ev.get("e") == "end"]
        outcome = None
        if bad is not None and not ends:
            outcome = bad
        elif ends and ends[-1].get("k") == "memory":
            outcome = ("memory", "MemoryError")
        else:
            wst = run["wstatus"]
            code = os.WEXITSTATUS(wst) if os.WIFEXITED(wst) else -1
            if code != 0:
                tail = run["stderr"].decode("utf-8", "replace").strip().splitlines()
                outcome = ("error", f"exit code {code}" + (f": {tail[-1][:300]}" if tail else ""))
        return {"outcome": list(outcome) if outcome else None, "runtime_s": run["wall"],
                "stdout": "" if outcome else run["stdout"].decode("utf-8", "replace")}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # Ctrl-C in a terminal reaches the whole foreground group; the pool closes us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker = Worker(cfg)
    worker.setup()
    # Every descriptor the worker will hold is below this (it opens a handful per run, lowest
    # numbers first; the verdict fd is placed at 20-59): closing up to it is far cheaper than
    # closing up to the rlimit.
    worker.fd_ceiling = max([int(n) for n in os.listdir("/proc/self/fd")] + [60]) + 128
    send(wfd, {"hello": True, "pid": os.getpid(), "isolation": worker.isolation()})
    try:
        while True:
            try:
                msg = recv(rfd)
            except EOFError:
                break
            op = msg.get("op")
            if op == "run":
                try:
                    reply = worker.handle(msg["job"])
                except Exception as exc:  # a bug in the harness, not the program's doing
                    reply = {"status": "error", "detail": f"sandbox error: {_short_exc(exc)}",
                             "passed_tests": 0, "total_tests": int(msg["job"].get("n_tests", 0)),
                             "runtime_s": 0.0}
                send(wfd, reply)
            elif op == "stats":
                send(wfd, {"fds": len(os.listdir("/proc/self/fd")), "runs": worker.runs,
                           "sweeps": worker.sweeps, "children": worker._children_left(),
                           "pid": os.getpid()})
            elif op == "exit":
                break
    finally:
        if worker.uid is not None:
            worker._kill_uid()
        shutil.rmtree(worker.base, ignore_errors=True)


if __name__ == "__main__":
    main()
