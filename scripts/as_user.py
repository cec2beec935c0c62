"""Run a command as an unprivileged user, from root, with this interpreter still usable.

    python scripts/as_user.py [--user nobody] -- COMMAND...

Used by `make test` (as root) to run the sandbox corpus a second time as a non-root user, the
mode in which the sandbox builds its namespaces inside a user namespace. The interpreter, its
virtual environment or the checkout may live under a directory the user may not enter (pyenv
under a 0700 /root): in a private mount namespace each such directory is covered with an empty
tmpfs into which just the needed paths are bound back. Nothing changes outside that namespace.
Standard library only; Linux; must start as root.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pwd
import sys

CLONE_NEWNS, MS_BIND, MS_REC, MS_PRIVATE = 0x00020000, 4096, 16384, 1 << 18
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _LIBC.mount(src.encode() if src else None, dst.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {dst}: {os.strerror(err)}")


def _outermost(paths) -> list[str]:
    ps = sorted(set(paths))
    return [p for p in ps if not any(p != q and p.startswith(q.rstrip(os.sep) + os.sep) for q in ps)]


def expose(needed: set[str]) -> None:
    """Make every path in `needed` reachable by any user, in this process's mount namespace."""
    by_blocker: dict[str, set[str]] = {}
    for path in needed:
        parts = path.split(os.sep)
        for i in range(2, len(parts) + 1):  # every closed folder on the way, outermost first
            folder = os.sep.join(parts[:i])
            if not os.stat(folder).st_mode & 0o001:
                # The path itself closed (a checkout made in a `mktemp -d` folder): bind back its entries.
                inside = [os.path.join(path, e) for e in os.listdir(path)] if folder == path else \
                    [os.sep.join(parts[:i + 1])]
                by_blocker.setdefault(folder, set()).update(inside)
    for blocker in sorted(by_blocker, key=len):
        keep = _outermost(by_blocker[blocker])
        fds = [os.open(p, os.O_PATH) for p in keep]  # still reachable once the tmpfs hides them
        _mount("tmpfs", blocker, "tmpfs", 0, "size=1m,mode=0755")
        for path, fd in zip(keep, fds):
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--user", default="nobody")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")
    if os.geteuid() != 0:
        sys.exit("as_user.py: must run as root")
    pw = pwd.getpwnam(args.user)
    if _LIBC.unshare(CLONE_NEWNS) != 0:
        sys.exit(f"as_user.py: unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    needed = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.getcwd())}
    needed |= {os.path.realpath(p) for p in sys.path if p and os.path.exists(p)}
    expose(needed)
    os.chdir(os.getcwd())  # the working directory through the new mounts, not the covered folder
    os.setgroups([])
    os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
    os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "CI") or
           k.startswith(("HF_", "TRANSFORMERS_", "PYTEST_"))}
    env.update(HOME="/tmp", USER=args.user, TMPDIR="/tmp")
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
