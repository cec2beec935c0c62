"""The harness inside the sandboxed child: loads the program, runs its tests, reports events.

Imported by the worker at start-up (stdlib only). `run_function` / `run_stdio` run in the forked
child after the limits are in place; `function_verdict` runs in the worker, outside the child,
and turns the events the child reported into a verdict.
"""

from __future__ import annotations

import builtins
import json
import os
import sys

HOOK_PLACEHOLDER = "__CODELOOP_HOOK__"


class Channel:
    """Writes verdict events to the private pipe; each line carries the nonce and our pid."""

    def __init__(self, fd: int, nonce: str):
        self._write, self._fd, self._pid = os.write, fd, os.getpid()
        self._prefix = (nonce + " ").encode()
        self._dumps = json.dumps

    def emit(self, event: dict) -> None:
        event["p"] = self._pid
        try:
            self._write(self._fd, self._prefix + self._dumps(event).encode() + b"\n")
        except OSError:
            pass


def _short_exc(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:300]


def _exc_kind(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, SystemExit):
        return "exit"
    return "error"


class _Hook:
    """Counts the harness's tests. The rewritten test code calls ok(i) / fail(i, exc)."""

    def __init__(self, channel: "Channel"):
        self.channel = channel
        self.ok_ids: set[int] = set()
        self.fail_ids: set[int] = set()

    def ok(self, i: int) -> None:
        self.ok_ids.add(i)
        self.channel.emit({"e": "t", "i": i, "ok": 1})

    def fail(self, i: int, exc: BaseException) -> None:
        self.fail_ids.add(i)
        self.channel.emit({"e": "t", "i": i, "ok": 0, "k": _exc_kind(exc), "m": _short_exc(exc)})


def run_function(job: dict, channel: "Channel", hook_name: str) -> None:
    ns: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        code = compile(job["program"], "<program>", "exec")
    except BaseException as exc:  # SyntaxError, ValueError (null bytes), MemoryError, RecursionError
        channel.emit({"e": "load", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    try:
        exec(code, ns)
    except BaseException as exc:
        channel.emit({"e": "load", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    entry = job.get("entry_point")
    if job.get("call_check") and entry not in ns:
        channel.emit({"e": "load", "k": "error", "m": f"the program does not define {entry!r}"})
        return
    channel.emit({"e": "loaded"})
    hook = _Hook(channel)
    test_src = job["test"].replace(HOOK_PLACEHOLDER, hook_name)
    ns[hook_name] = hook
    try:
        exec(compile(test_src, "<test>", "exec"), ns)
        if job.get("call_check"):
            ns["check"](ns[job["entry_point"]])
    except BaseException as exc:  # an uncounted statement of the tests raised: the run did not pass
        channel.emit({"e": "abort", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    channel.emit({"e": "end", "ok": sorted(hook.ok_ids), "fail": sorted(hook.fail_ids)})


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def run_stdio(job: dict, channel: "Channel") -> int:
    ns: dict = {"__name__": "__main__", "__builtins__": builtins}
    status, kind = 0, ""
    try:
        exec(compile(job["program"], "<program>", "exec"), ns)
    except SystemExit as exc:
        status = _exit_code(exc)
    except BaseException as exc:
        kind = _exc_kind(exc)
        status = 1
        try:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        except BaseException:
            pass
    try:
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # like the interpreter: join non-daemon threads
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    channel.emit({"e": "end", "exit": status, "k": kind})
    return status


def function_verdict(events: list, total: int, abnormal: tuple | None, exit_code: int, wall: float) -> dict:
    """The verdict of a function-test run from its harness events (read in the worker, outside the
    child). `abnormal`: (status, detail) when a limit or a signal stopped the child, else None."""
    ok_ids = {ev["i"] for ev in events if ev.get("e") == "t" and ev.get("ok") == 1}
    fails = [ev for ev in events if ev.get("e") == "t" and ev.get("ok") == 0]
    fail_ids = {ev["i"] for ev in fails}
    passed = len(ok_ids - fail_ids)
    res = {"passed_tests": passed, "total_tests": total, "runtime_s": wall}
    final = {ev.get("e"): ev for ev in events if ev.get("e") in ("load", "loaded", "abort", "end")}
    first_fail = fails[0] if fails else None
    if "load" in final:
        ev = final["load"]
        if ev["k"] == "exit":
            return {**res, "status": "failed",
                    "detail": f"program exited before the tests ran ({ev['m']})"}
        return {**res, "status": "memory" if ev["k"] == "memory" else "error",
                "detail": f"program failed to load: {ev['m']}"}
    if "end" in final:
        end = final["end"]
        if set(end["ok"]) != ok_ids or set(end["fail"]) != fail_ids:
            return {**res, "status": "failed", "detail": "test records inconsistent (tampering?)"}
        if not fail_ids and passed == total:
            return {**res, "status": "passed", "detail": ""}
        if first_fail is not None:
            return {**res, **_test_failure(first_fail, total)}
        return {**res, "status": "failed", "detail": f"only {passed} of {total} tests ran"}
    if first_fail is not None:  # the verdict was already 'not passed' when the run stopped
        return {**res, **_test_failure(first_fail, total)}
    if "abort" in final:
        ev = final["abort"]
        status = "memory" if ev["k"] == "memory" else "failed"
        return {**res, "status": status, "detail": f"tests stopped: {ev['m']}"}
    bad = abnormal
    if bad is not None:
        return {**res, "status": bad[0], "detail": bad[1] + _stage(final, passed, total)}
    code = exit_code
    return {**res, "status": "failed",
            "detail": f"process exited (code {code}) before the tests finished"
                      + _stage(final, passed, total)}


def _stage(final: dict, passed: int, total: int) -> str:
    if "loaded" not in final:
        return " while loading the program"
    return f" after {passed} of {total} tests passed"


def _test_failure(ev: dict, total: int) -> dict:
    status = "memory" if ev.get("k") == "memory" else "failed"
    return {"status": status, "detail": f"test {ev['i'] + 1}/{total}: {ev.get('m', '')}"}
