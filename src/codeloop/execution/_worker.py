"""Sandbox worker: one warm, small Python process that forks a child per execution.

Started by the pool as ``python -s -P [-S] _worker.py CONFIG_JSON`` with a scrubbed environment. It
imports only the standard library (never codeloop, never torch), so a fork costs about a
millisecond. Messages with the pool are length-prefixed JSON on two pipes.

Isolation, built once per worker and once per execution from kernel namespaces and cgroups (the
model of nsjail and bubblewrap; see docs/execution.md for what each gives):

* worker, at start-up: a user namespace when not root (so a non-root caller gets the same model),
  a mount namespace whose root is a new read-only tree holding only the system directories and
  the interpreter's own (the codeloop package and benchmark answer keys masked), an empty
  network namespace, its own UTS namespace, and a memory + pids cgroup (v2, or the v1
  controllers) that every one of its executions joins.
* each execution: a new PID namespace (the program is its PID 1: when it exits, the kernel kills
  everything it started), a new IPC namespace (SysV/POSIX IPC dies with it), a new mount namespace
  with fresh size- and inode-capped tmpfs over /tmp, /var/tmp, /dev/shm and /run and its own
  /proc, a dedicated uid (as root) or no capabilities (user namespace), NO_NEW_PRIVS, a seccomp
  filter, rlimits. Clean-up is O(1): the namespaces die with the program.

Whatever of this the host does not allow is recorded in `Worker.isolation()`; the pool reports it
and `isolation='full'` refuses to run with less. The verdict travels on a private pipe, each line
tagged with a per-run nonce and the child's pid; stdout never decides.
"""

from __future__ import annotations

import ctypes
import gc
import io
import json
import os
import platform
import resource
import select
import signal
import struct
import sys
import tempfile
import time

if __package__:  # imported as codeloop.execution._worker
    from codeloop.execution import _harness
else:  # run by the pool as a script; -I leaves the script's folder off sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _harness  # noqa: E402  (stdlib-only sibling; the child runs it)

    del sys.path[0]

PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SECCOMP_MODE_FILTER = 2
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # the writable places, fresh per execution
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom")

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_LIBC.syscall.restype = ctypes.c_long
_MAX_VERDICT_BYTES = 1 << 20
_STDERR_KEEP = 4096

# Syscalls the program never needs and that open ways out or between executions: kernel keyrings
# (a store shared by every process of a uid), namespace and mount manipulation, ptrace and
# cross-process memory access, io_uring/bpf/perf (large kernel attack surface), module/kexec/clock
# changes. Denied with EPERM; clone3 gets ENOSYS so libc falls back to clone, whose namespace
# flags the filter can inspect.
_DENY = ("add_key", "keyctl", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "mount",
         "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount", "fsopen",
         "fsconfig", "fsmount", "fspick", "mount_setattr", "bpf", "perf_event_open", "userfaultfd",
         "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
         "init_module", "finit_module", "delete_module", "swapon", "swapoff", "reboot", "acct",
         "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog", "name_to_handle_at",
         "open_by_handle_at", "quotactl", "vhangup", "lookup_dcookie", "personality")
_SYSCALLS = {
    "x86_64": dict(zip(_DENY + ("clone", "clone3"), (
        248, 250, 249, 101, 310, 311, 165, 166, 155, 161, 272, 308, 428, 429, 430, 431, 432, 433, 442, 321, 298,
        323, 425, 426, 427, 246, 320, 175, 313, 176, 167, 168, 169, 163, 164, 227, 305, 159, 103, 303, 304, 179,
        153, 212, 135, 56, 435))),
    "aarch64": dict(zip(_DENY + ("clone", "clone3"), (
        217, 219, 218, 117, 270, 271, 40, 39, 41, 51, 97, 268, 428, 429, 430, 431, 432, 433, 442, 280, 241,
        282, 425, 426, 427, 104, 294, 105, 273, 106, 224, 225, 142, 89, 170, 112, 266, 171, 116, 264, 265, 60,
        58, 18, 92, 220, 435))),
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_CLONE_NS_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x02000000


def _seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter (struct sock_filter[]) for this machine, or None."""
    arch = platform.machine()
    nrs = _SYSCALLS.get(arch)
    if nrs is None:
        return None
    ld_w_abs, jeq_k, jset_k, ret_k, jge_k = 0x20, 0x15, 0x45, 0x06, 0x35
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    deny = sorted({nrs[name] for name in _DENY if name in nrs})
    ins: list[tuple[int, int, int, int]] = [(ld_w_abs, 0, 0, 4)]  # seccomp_data.arch
    ins.append((jeq_k, 1, 0, _AUDIT_ARCH[arch]))
    ins.append((ret_k, 0, 0, kill))
    ins.append((ld_w_abs, 0, 0, 0))  # seccomp_data.nr
    if arch == "x86_64":
        ins.append((jge_k, 0, 1, 0x40000000))  # the x32 ABI: another syscall table, not ours
        ins.append((ret_k, 0, 0, eperm))
    for nr in deny:
        ins.append((jeq_k, 0, 1, nr))
        ins.append((ret_k, 0, 0, eperm))
    ins.append((jeq_k, 0, 1, nrs["clone3"]))
    ins.append((ret_k, 0, 0, enosys))
    ins.append((jeq_k, 0, 3, nrs["clone"]))
    ins.append((ld_w_abs, 0, 0, 16))  # args[0], low 32 bits (little-endian): the clone flags
    ins.append((jset_k, 0, 1, _CLONE_NS_FLAGS))
    ins.append((ret_k, 0, 0, eperm))
    ins.append((ret_k, 0, 0, allow))
    return b"".join(struct.pack("HBBI", *i) for i in ins)


def _outermost(paths) -> list[str]:
    """The paths that are not inside another of them."""
    ps = sorted(set(paths))
    return [p for p in ps if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in ps)]


def _own_packages() -> set[str]:
    """The codeloop package this script belongs to, and any other the interpreter would import as
    `codeloop` (an editable install, a PYTHONPATH of the caller's): it holds problem sets and their
    reference solutions."""
    import importlib.util

    paths = {os.path.dirname(os.path.dirname(os.path.realpath(__file__)))}
    try:
        spec = importlib.util.find_spec("codeloop")
    except (ImportError, ValueError):
        spec = None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        paths.add(os.path.realpath(loc))
    return paths


def _pivot_root(new_root: str, put_old: str) -> None:
    """glibc has no wrapper for pivot_root: the raw system call (this machine's number)."""
    nr = _SYSCALLS.get(platform.machine(), {}).get("pivot_root", 155)
    _check(_LIBC.syscall(nr, new_root.encode(), put_old.encode()), "pivot_root")


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_LIBC.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {dst}")


def _remount_ro(path: str) -> None:
    """Read-only remount of a bind mount, keeping the flags the kernel locks for a user namespace."""
    f = os.statvfs(path).f_flag
    keep = 0
    for st_bit, ms_bit in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                           (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                           (os.ST_RELATIME, MS_RELATIME)):
        if f & st_bit:
            keep |= ms_bit
    _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | keep)


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _remove_tree(path: str) -> None:
    """Delete a directory tree without recursion and without long paths: a program can nest
    directories thousands deep, past Python's recursion limit and PATH_MAX. One directory
    descriptor at a time, moving down by name and back up by "..", never following symlinks.
    What cannot be removed is left (the caller checks)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    names: list[str] = []  # the way down from `path`
    skip: list[set[str]] = [set()]  # per level: entries that resisted, not to be tried again
    while True:
        sub = None
        try:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            entries = []
        for name, is_dir in entries:
            if name in skip[-1]:
                continue
            if is_dir:
                sub = name
                break
            try:
                os.unlink(name, dir_fd=fd)
            except OSError:
                skip[-1].add(name)
        if sub is not None:
            try:
                os.chmod(sub, 0o700, dir_fd=fd)  # a directory (not a link): the program may have locked it
            except OSError:
                pass
            try:
                child = os.open(sub, flags, dir_fd=fd)
            except OSError:
                skip[-1].add(sub)
                continue
            os.close(fd)
            fd = child
            names.append(sub)
            skip.append(set())
            continue
        if not names:
            os.close(fd)
            try:
                os.rmdir(path)
            except OSError:
                pass
            return
        try:
            parent = os.open("..", flags, dir_fd=fd)
        except OSError:
            os.close(fd)
            return
        os.close(fd)
        fd = parent
        name = names.pop()
        skip.pop()
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            skip[-1].add(name)


# -------------------------------------------------------------------------------------------------
# Protocol with the pool

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


# -------------------------------------------------------------------------------------------------
# Inside the child

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


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities() -> None:
    """No capability left, in any set (the user-namespace mode keeps the uid, so setuid can't)."""
    for cap in range(64):
        if _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    _LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    data = (_CapData * 2)()
    _check(_LIBC.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


class _FProg(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Seccomp:
    """The filter, built once in the worker; a child only installs it (building the ctypes objects
    per execution cost ~0.4 ms)."""

    def __init__(self, prog: bytes):
        self._buf = ctypes.create_string_buffer(prog, len(prog))
        self._fprog = _FProg(len(prog) // 8, ctypes.addressof(self._buf))
        self._ref = ctypes.byref(self._fprog)

    def install(self) -> None:
        _check(_LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self._ref, 0, 0), "seccomp")


def _program_environment(home: str) -> None:
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
                       "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"})


def _std_streams() -> tuple:
    """Text streams over descriptors 0-2 as the program gets them. The worker makes them once and
    never writes to them; each child inherits an untouched copy (building them per execution, like
    most per-child work on Python objects, costs more than the fork)."""
    return (io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                             errors="replace"),
            io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                             errors="backslashreplace"),
            io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                             errors="backslashreplace", line_buffering=True))


def _child_main(job: dict, fds: dict, worker: "Worker", nonce: str, rundir: str, vfd: int) -> None:
    """Runs in the forked child; never returns."""
    code = 70
    try:
        os.setsid()
        os.dup2(fds["in"], 0)
        os.dup2(fds["out"], 1)
        os.dup2(fds["err"], 2)
        os.dup2(fds["verdict"], vfd)
        if worker.cg_procs:  # join the execution cgroup before anything else can start
            for fd in worker.cg_procs:
                os.write(fd, b"0")
        if worker.ns_mount:
            _check(_LIBC.unshare(CLONE_NEWNS), "unshare(mount)")
            size = worker.cfg.get("scratch_mb", 256)
            opts = f"size={size}m,nr_inodes={worker.cfg.get('scratch_inodes', 16384)},mode=1777"
            # The interpreter's own directories under a scratch dir: held at a staging point while
            # the fresh tmpfs covers them, then bound back (a bind must come from this namespace).
            for path, staging in worker.rebind:
                _mount(path, staging, None, MS_BIND | MS_REC)
            for d in SCRATCH_DIRS:
                _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, opts)
            for path, staging in worker.rebind:
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(staging, path, None, MS_BIND | MS_REC)
                _remount_ro(path)
        os.closerange(3, vfd)
        os.closerange(vfd + 1, worker.fd_ceiling)
        _set_limits(worker.limits(job))
        uid = worker.uid
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        elif worker.userns:
            _drop_capabilities()
        # After the credential change (which clears it): die with the worker.
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if worker.no_new_privs:
            _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if worker.seccomp is not None:
            worker.seccomp.install()
        os.chdir(rundir)
        if os.environ.get("HOME") != rundir:  # set once in the worker where the run dir is always /tmp
            _program_environment(rundir)
        sys.stdin, sys.stdout, sys.stderr = worker.streams  # fresh copies: made in the worker, never used there
        sys.argv = ["<program>"]
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
        self.root = os.geteuid() == 0
        self.uid: int | None = cfg.get("uid") if self.root else None
        self.notes: list[str] = []
        self.net = "none"
        self.runs = 0
        self.sweeps = 0
        self.base = ""
        self.nproc_base = 0
        self.fd_ceiling = 1 << 20
        self.userns = False  # not root: a user namespace holds the worker's other namespaces
        self.ns_mount = False  # the worker lives in the read-only tree; executions get fresh tmpfs
        self.ns_pid = False  # the worker is PID 1 of its own PID namespace
        self.ns_ipc = False  # an IPC namespace per execution
        self.ipc_fd = -1
        self.cgroup = "none"
        self.cg_dirs: list[tuple[int, str]] = []  # (parent dir fd, name) to remove at exit
        self.cg_procs: list[int] = []  # cgroup.procs of each controller, open for writing
        self.cg_oom: tuple[int, str] | None = None  # (fd, key) of the OOM-kill counter
        self.seccomp: Seccomp | None = None
        self.streams: tuple = ()
        # (path, staging mount point) of interpreter directories that a fresh scratch tmpfs would
        # hide (a checkout and its .venv under /tmp, as in CI): each execution binds them back.
        self.rebind: list[tuple[str, str]] = []
        self.bound: list[str] = []  # interpreter directories bound into the sandbox's root
        self.no_new_privs = False

    # -- start-up -----------------------------------------------------------------------------
    def setup(self) -> None:
        # No PDEATHSIG here: it fires when the *thread* that started us ends, and the pool restarts
        # workers from short-lived threads. A pool that dies closes our stdin; we exit on EOF.
        if os.getppid() != self.cfg["parent_pid"]:
            os._exit(0)
        if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            self.notes.append("no child subreaper: escaped processes are found by uid only")
        for name in self.cfg.get("preload", []):
            try:
                __import__(name)
            except Exception:
                pass
        isolate_net = self.cfg.get("network", "isolate") == "isolate"
        if not isolate_net:
            self.notes.append("network NOT isolated (network='allow')")
        if self.cfg.get("isolation") == "none":
            self.notes.append("isolation='none': no namespaces, cgroup or seccomp")
            return self._legacy_setup(False)
        self._setup_cgroup()  # before the mount namespace hides /sys
        flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNET if isolate_net else 0)
        if not self.root:
            uid, gid = os.getuid(), os.getgid()
            if _LIBC.unshare(CLONE_NEWUSER | CLONE_NEWPID | flags) != 0:
                err = os.strerror(ctypes.get_errno())
                self.notes.append(f"no user namespace ({err}): no mount, PID, IPC or network namespace, "
                                  "the program runs as the caller's uid and can read its files")
                return self._legacy_setup(isolate_net)
            self.userns = True
            _write_file("/proc/self/setgroups", "deny")
            _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
            _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
        elif _LIBC.unshare(CLONE_NEWPID | flags) != 0:
            self.notes.append(f"unshare failed ({os.strerror(ctypes.get_errno())}): no mount, PID or network "
                              "namespace")
            return self._legacy_setup(isolate_net)
        # The worker goes on as PID 1 of a new PID namespace; this process only waits for it. Its
        # executions see no process but the worker's, and whatever one leaves behind dies by one
        # kill(-1) (from a namespace's init it reaches every other process in it, and only them).
        inner = os.fork()
        if inner:
            _, status = os.waitpid(inner, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        self.ns_pid = True
        if self.root:  # the OOM killer must pick the execution, never the worker
            try:
                _write_file("/proc/self/oom_score_adj", "-1000")
            except OSError:
                pass
        if isolate_net:
            self.net = "netns"
        _LIBC.sethostname(b"sandbox", 7)
        self._build_root()  # a failure here is a bug or an unusual host: the pool shows the message
        self.ns_mount = True
        self._setup_ipc()
        self.no_new_privs = True
        prog = _seccomp_program()
        self.seccomp = Seccomp(prog) if prog else None
        if self.seccomp is None:
            self.notes.append(f"no seccomp filter for {platform.machine()}")

    def _legacy_setup(self, isolate_net: bool) -> None:
        """Without a mount namespace: a temp directory per run, the host's file system, subreaper
        sweeps for escaped processes. Only used where the kernel refuses namespaces."""
        if isolate_net:
            if _LIBC.unshare(CLONE_NEWNET) == 0:
                self.net = "netns"
            else:
                self.notes.append(f"network NOT isolated: unshare(CLONE_NEWNET) failed "
                                  f"({os.strerror(ctypes.get_errno())})")
        if self.uid is None:
            self.nproc_base = self._count_own_processes()
        else:
            self._kill_uid()
        self.no_new_privs = True
        prog = _seccomp_program()
        self.seccomp = Seccomp(prog) if prog else None
        self.base = tempfile.mkdtemp(prefix="codeloop-sbx-", dir=self.cfg.get("tmp_root") or None)
        os.chmod(self.base, 0o711)

    def _setup_cgroup(self) -> None:
        """A cgroup for this worker's executions: memory and pids bound every process of one run."""
        mem_bytes = int(self.cfg["limits"]["memory_bytes"])
        pids = int(self.cfg["limits"]["max_processes"])
        name = f"codeloop-{os.getpid()}"
        own = {}
        try:
            with open("/proc/self/cgroup") as fh:
                for line in fh:
                    _, ctrls, path = line.rstrip("\n").split(":", 2)
                    for c in ctrls.split(",") if ctrls else [""]:
                        own[c] = path
        except OSError:
            pass
        v2_root = "/sys/fs/cgroup"
        if os.path.exists(os.path.join(v2_root, "cgroup.controllers")) and "" in own:
            parent = v2_root + own[""]
            try:
                with open(os.path.join(parent, "cgroup.subtree_control")) as fh:
                    enabled = fh.read().split()
                if not {"memory", "pids"} <= set(enabled):
                    raise OSError(0, "memory/pids not delegated to this cgroup's children")
                path = os.path.join(parent, name)
                os.mkdir(path)
                self.cg_dirs.append((os.open(parent, os.O_RDONLY | os.O_DIRECTORY), name))
                _write_file(os.path.join(path, "memory.max"), str(mem_bytes))
                _write_file(os.path.join(path, "memory.swap.max"), "0") if os.path.exists(
                    os.path.join(path, "memory.swap.max")) else None
                _write_file(os.path.join(path, "pids.max"), str(pids))
                self.cg_procs.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY))
                self.cg_oom = (os.open(os.path.join(path, "memory.events"), os.O_RDONLY), "oom_kill")
                self.cgroup = "v2"
                return
            except OSError as exc:
                self._drop_cgroup()
                v2_why = exc.strerror or str(exc)
        else:
            v2_why = ""
        try:
            for ctrl in ("memory", "pids"):
                base = f"/sys/fs/cgroup/{ctrl}"
                if ctrl not in own or not os.path.isdir(base):
                    raise OSError(0, f"no cgroup v1 {ctrl} controller")
                parent = base + own[ctrl]
                path = os.path.join(parent, name)
                os.mkdir(path)
                self.cg_dirs.append((os.open(parent, os.O_RDONLY | os.O_DIRECTORY), name))
                if ctrl == "memory":
                    _write_file(os.path.join(path, "memory.limit_in_bytes"), str(mem_bytes))
                    if os.path.exists(os.path.join(path, "memory.memsw.limit_in_bytes")):
                        _write_file(os.path.join(path, "memory.memsw.limit_in_bytes"), str(mem_bytes))
                    self.cg_oom = (os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY), "oom_kill")
                else:
                    _write_file(os.path.join(path, "pids.max"), str(pids))
                self.cg_procs.append(os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY))
            self.cgroup = "v1"
        except OSError as exc:
            self._drop_cgroup()
            why = exc.strerror or str(exc)
            self.notes.append("no cgroup (" + "; ".join(w for w in (v2_why and f"v2: {v2_why}", f"v1: {why}") if w)
                              + "): memory is bounded per process (RLIMIT_AS), not per execution")

    def _drop_cgroup(self) -> None:
        for fd in self.cg_procs:
            os.close(fd)
        self.cg_procs = []
        if self.cg_oom:
            os.close(self.cg_oom[0])
            self.cg_oom = None
        for parent_fd, name in self.cg_dirs:
            try:
                os.rmdir(name, dir_fd=parent_fd)
            except OSError:
                pass
            os.close(parent_fd)
        self.cg_dirs = []

    def oom_kills(self) -> int:
        if not self.cg_oom:
            return 0
        fd, key = self.cg_oom
        try:
            for line in os.pread(fd, 4096, 0).decode().splitlines():
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def _build_root(self) -> None:
        """pivot_root into a new read-only tree: the system directories and the interpreter's,
        bound from the host read-only; scratch mount points; a few devices; nothing else."""
        interpreter = _outermost(self._interpreter_paths())  # host paths, resolved before the pivot
        hidden = _outermost(set(self.cfg.get("hide", [])) | _own_packages())
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        # A tmpfs over /tmp becomes the staging root; after the pivot the host tree is /old (with
        # its /tmp uncovered again, so an interpreter that lives under /tmp can still be bound).
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        os.mkdir("/tmp/old")
        os.mkdir("/tmp/new")
        _pivot_root("/tmp", "/tmp/old")
        os.chdir("/")
        _mount("tmpfs", "/new", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        new = "/new"
        bound: list[str] = []

        def bind(host: str) -> None:
            src = "/old" + host
            dst = new + host
            if os.path.isdir(src):
                os.makedirs(dst, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
                open(dst, "a").close()
            _mount(src, dst, None, MS_BIND | MS_REC)
            bound.append(dst)

        for name in SYSTEM_DIRS:
            src = "/old/" + name
            if os.path.islink(src):
                os.symlink(os.readlink(src), f"{new}/{name}")
            elif os.path.isdir(src):
                bind("/" + name)
        covered = ["/" + n for n in SYSTEM_DIRS if os.path.isdir("/old/" + n) and not os.path.islink("/old/" + n)]
        for path in interpreter:
            if not any(path == c or path.startswith(c + "/") for c in covered) and os.path.exists("/old" + path):
                bind(path)
                covered.append(path)
                self.bound.append(path)
        for d in SCRATCH_DIRS + ("/proc",):
            os.makedirs(new + d, mode=0o755, exist_ok=True)
        for path in self.bound:
            if any(path.startswith(d + "/") for d in SCRATCH_DIRS):
                staging = f"/.codeloop/rebind-{len(self.rebind)}"
                os.makedirs(new + staging, mode=0o755)
                self.rebind.append((path, staging))
        _mount("tmpfs", new + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
        os.mkdir(new + "/dev/shm")
        for dev in DEVICES:
            if os.path.exists("/old/dev/" + dev):
                open(f"{new}/dev/{dev}", "a").close()
                _mount(f"/old/dev/{dev}", f"{new}/dev/{dev}", None, MS_BIND)
        for link, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2")):
            os.symlink(target, f"{new}/dev/{link}")
        # The worker's PID namespace's own /proc (mounted while the host's is still visible: a user
        # namespace may mount proc only then).
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        for path in hidden:
            target = new + path
            if not os.path.lexists(target) or os.path.islink(target):
                continue
            if os.path.isdir(target):
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0555")
            else:
                _mount(new + "/dev/null", target, None, MS_BIND)
                _remount_ro(target)
        # Every bind (and whatever was mounted under the bound host directories) read-only.
        with open("/old/proc/self/mountinfo") as fh:
            points = [line.split()[4].replace("\\040", " ") for line in fh]
        for p in points:
            if any(p == b or p.startswith(b + "/") for b in bound):
                try:
                    _remount_ro(p)
                except OSError as exc:
                    if any(p == b for b in bound):
                        raise
                    self.notes.append(f"{p[len(new):]} stays writable ({exc.strerror})")
        os.chdir(new)
        _pivot_root(".", ".")
        _check(_LIBC.umount2(b".", MNT_DETACH), "umount old root")
        os.chdir("/")
        _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        _mount(None, "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC)

    def _setup_ipc(self) -> None:
        """Check that an IPC namespace per execution works here (unshare, then back)."""
        try:
            self.ipc_fd = os.open("/proc/self/ns/ipc", os.O_RDONLY)
            _check(_LIBC.unshare(CLONE_NEWIPC), "unshare(IPC)")
            _check(_LIBC.setns(self.ipc_fd, CLONE_NEWIPC), "setns(IPC)")
            self.ns_ipc = True
        except OSError as exc:
            self.notes.append(f"no IPC namespace per execution ({exc}): IPC objects may outlive a run")

    @staticmethod
    def _interpreter_paths() -> set[str]:
        needed = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix}
        needed |= {p for p in sys.path if p and os.path.isdir(p)}
        needed |= {os.path.dirname(p) for p in sys.path if p and os.path.isfile(p)}  # zipped stdlib
        return {os.path.realpath(p) for p in needed} | {os.path.abspath(p) for p in needed}

    def isolation(self) -> dict:
        parts = {
            "user": ("uid" if self.uid is not None else "userns" if self.userns else "none"),
            "mount": self.ns_mount, "pid": self.ns_pid, "ipc": self.ns_ipc, "net": self.net != "none",
            "cgroup": self.cgroup, "seccomp": self.seccomp is not None, "no_new_privs": self.no_new_privs,
        }
        missing = [k for k, v in parts.items() if v in (False, "none")]
        return {"level": "partial" if missing or self.notes else "full", "missing": missing, **parts,
                "network": self.net, "uid": self.uid, "notes": self.notes}

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
        elif self.cgroup != "none":
            lim["nproc"] = 0  # the pids cgroup bounds the execution
        elif self.userns:
            lim["nproc"] = lim["max_processes"] + 8  # counted per uid inside the worker's user namespace
        else:
            lim["nproc"] = self.nproc_base + lim["max_processes"] + 64
        return lim

    # -- one child ------------------------------------------------------------------------------
    def run_child(self, job: dict, stdin_data: str | None) -> dict:
        nonce = os.urandom(16).hex()
        if self.ns_mount:
            rundir = "/tmp"
        else:
            rundir = os.path.join(self.base, f"r{self.runs}")
            os.mkdir(rundir, 0o700)
            if self.uid is not None:
                os.chown(rundir, self.uid, self.uid)
        self.runs += 1
        in_fd = os.memfd_create("stdin", 0)
        if stdin_data:
            data = stdin_data.encode("utf-8", "surrogatepass")
            view = memoryview(data)
            while view:
                view = view[os.write(in_fd, view):]
            os.lseek(in_fd, 0, os.SEEK_SET)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        v_r, v_w = os.pipe()
        vfd = 20 + (os.urandom(1)[0] % 40)  # below fd_ceiling
        fds = {"in": in_fd, "out": out_w, "err": err_w, "verdict": v_w}
        oom_before = self.oom_kills()
        t0 = time.perf_counter()
        if self.ns_ipc:
            _check(_LIBC.unshare(CLONE_NEWIPC), "unshare(IPC)")
        pid = os.fork()
        if pid == 0:
            _child_main(job, fds, self, nonce, rundir, vfd)
        if self.ns_ipc:
            _check(_LIBC.setns(self.ipc_fd, CLONE_NEWIPC), "setns(IPC)")
        for fd in (in_fd, out_w, err_w, v_w):
            os.close(fd)
        try:
            run = self._supervise(pid, job, out_r, err_r, v_r, nonce, t0)
            run["oom"] = self.oom_kills() > oom_before
            return run
        finally:
            for fd in (out_r, err_r, v_r):
                os.close(fd)
            if not self.ns_mount:
                self._remove_rundir(rundir)

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
        err_total = 0
        verdict = bytearray()
        reason = ""
        deadline = t0 + float(job["timeout_s"])
        open_fds = {out_r, err_r, v_r}

        def drain(fd: int) -> bool:
            """Read what is there now; False at EOF."""
            nonlocal reason, err_total
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
                    err_total += len(chunk)
                    err.extend(chunk)
                    if len(err) > 2 * _STDERR_KEEP:
                        del err[:-_STDERR_KEEP]
                if len(out) + err_total > cap and not reason:
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
            # The child is still a zombie here, so neither its pid nor its group id can have been
            # reused.
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
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
        """Reap or kill whatever the program left behind (we are its subreaper). With a PID
        namespace nothing can be left; without one, escapees are found by uid or parentage."""
        if not self._children_left():
            return
        self.sweeps += 1
        give_up = time.monotonic() + 5.0
        while self._children_left() and time.monotonic() < give_up:
            if self.ns_pid:
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
            elif self.uid is not None:
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
                    stat_ = fh.read()
                ppid = stat_[stat_.rfind(b")") + 2:].split()[1].decode()
            except (OSError, IndexError):
                continue
            if ppid == me:
                for kill in (os.killpg, os.kill):
                    try:
                        kill(int(name), signal.SIGKILL)
                    except OSError:
                        pass

    def _remove_rundir(self, rundir: str) -> None:
        """Without a mount namespace the run directory is removed file by file (never recursion:
        see `_remove_tree`); a directory that will not go is renamed out of the way."""
        _remove_tree(rundir)
        if os.path.lexists(rundir):
            raise OSError(f"cannot remove {rundir}")

    # -- judging --------------------------------------------------------------------------------
    def handle(self, job: dict) -> dict:
        if job["kind"] == "stdio":
            return self.run_stdio_case(job)
        return self.judge_function(job)

    def judge_function(self, job: dict) -> dict:
        run = self.run_child(job, None)
        if run.get("oom"):  # one of its processes was OOM-killed: over memory_mb, whatever the tests said
            return {"status": "memory", "detail": self._abnormal(run)[1], "passed_tests": 0,
                    "total_tests": int(job["n_tests"]), "runtime_s": run["wall"]}
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
        if run.get("oom"):
            return "memory", "the execution's memory cgroup ran out (memory_mb, all processes together)"
        sig = self._signal_of(run["wstatus"])
        if sig == signal.SIGXCPU:
            return "timeout", "CPU time limit (SIGXCPU)"
        if sig is not None:
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            if sig == signal.SIGSEGV and b"MemoryError" not in run["stderr"]:
                return "killed", f"killed by {name} (crash; e.g. C stack overflow from deep recursion)"
            if b"MemoryError" in run["stderr"]:
                return "memory", f"killed by {name} after MemoryError"
            if sig == signal.SIGSYS:
                return "killed", "killed by SIGSYS (a system call the sandbox forbids)"
            return "killed", f"killed by {name}"
        return None

    def run_stdio_case(self, job: dict) -> dict:
        """One stdin/stdout test case: the child gets only the input. The expected output never
        enters the worker, so no child can read it; the pool compares what this returns."""
        run = self.run_child(job, job.get("input", ""))
        bad = self._abnormal(run)
        ends = [ev for ev in run["events"] if ev.get("e") == "end"]
        outcome = None
        if bad is not None and (not ends or run.get("oom") or run["reason"]):
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

    def close(self) -> None:
        if self.uid is not None and not self.ns_pid:
            self._kill_uid()
        if self.base and not self.ns_mount:
            _remove_tree(self.base)
        self._drop_cgroup()


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
    try:
        try:
            worker.setup()
        except Exception as exc:
            send(wfd, {"fatal": f"sandbox set-up failed: {type(exc).__name__}: {exc}"[:500]})
            return
        # Every descriptor the worker will hold is below this (it opens a handful per run, lowest
        # numbers first; the verdict fd is placed at 20-59): closing up to it is far cheaper than
        # closing up to the rlimit.
        worker.fd_ceiling = max([int(n) for n in os.listdir("/proc/self/fd")] + [60]) + 128
        worker.streams = _std_streams()
        if worker.ns_mount:
            _program_environment("/tmp")
        # Everything the worker holds now goes to a generation the collector never scans: a child's
        # collections then do not touch (and copy) every inherited object's page.
        gc.collect()
        gc.freeze()
        send(wfd, {"hello": True, "pid": os.getpid(), "isolation": worker.isolation()})
        while True:
            try:
                msg = recv(rfd)
            except EOFError:
                break
            op = msg.get("op")
            if op == "run":
                try:
                    reply = worker.handle(msg["job"])
                except Exception as exc:  # a fault of the sandbox itself, not a verdict on the program
                    send(wfd, {"sandbox_error": f"{type(exc).__name__}: {exc}"[:300]})
                    break  # the pool starts a fresh worker and runs the job again
                send(wfd, reply)
            elif op == "stats":
                send(wfd, {"fds": len(os.listdir("/proc/self/fd")), "runs": worker.runs,
                           "sweeps": worker.sweeps, "children": worker._children_left(),
                           "pid": os.getpid()})
            elif op == "exit":
                break
    finally:
        worker.close()


if __name__ == "__main__":
    main()
