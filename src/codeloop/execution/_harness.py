"""The harness inside the sandboxed child: loads the program, runs its tests, reports events.

Imported by the worker at start-up (stdlib only). `run_function` / `run_stdio` run in the forked
child after the limits are in place; `function_verdict` runs in the worker, outside the child,
and turns the events the child reported into a verdict.

The program runs in its own namespace; the tests run in another one that gets copies of the
program's top-level names, the trusted helpers of the problem's prompt, and the hook (under a
per-run name). Nothing of the harness is left in the program's globals, in `builtins` or in
`sys.modules`. Every name the harness uses after the program has run is bound here at import
(`from builtins import *`, C functions of the standard library), so a program that patches
`builtins`, `json`, `os`... changes nothing here. The rewritten test code (see judges.py) sends
every comparison and truth test of an assertion through `_Hook.c` / `_Hook.t`, which first turn
the operands into plain builtin values (`_canon`) read through the base types' C methods.
"""

from __future__ import annotations

import builtins
import cmath
import collections
import collections.abc  # imported now, so that its later import changes nothing in the snapshots below
import decimal
import fractions
import heapq
import itertools
import math
import numbers
import operator
import os
import re
import string
import sys
import threading
import traceback
import bisect
import functools
from builtins import *  # noqa: F401,F403  (each builtin bound here now: the program may patch `builtins`)

from _json import encode_basestring_ascii as _json_str

HOOK_PLACEHOLDER = "__CODELOOP_HOOK__"
NO_ASSERTION = "the tests executed no assertion"

_write, _getpid, _modules, _re_search = os.write, os.getpid, sys.modules, re.search
_ModuleType = type(sys)
_real_import = builtins.__import__
_print_exception, _thread_shutdown = traceback.print_exception, threading._shutdown  # type: ignore[attr-defined]

# The test code's own imports of these get private copies of the modules as they were before any
# program ran (a program that replaces `math.isclose` does not change what the tests call).
_SNAPSHOTS = {m.__name__: dict(vars(m)) for m in (math, cmath, operator, itertools, functools, collections, re,
                                                    string, heapq, bisect, fractions, decimal)}
_TEST_BUILTINS = dict(vars(builtins))


class Channel:
    """Writes verdict events to the private pipe; each line carries the nonce and our pid."""

    def __init__(self, fd: int, nonce: str):
        self._fd, self._pid = fd, _getpid()
        self._prefix = (nonce + " ").encode()

    def emit(self, event: dict) -> None:
        event["p"] = self._pid
        try:
            _write(self._fd, self._prefix + _encode(event).encode() + b"\n")
        except OSError:
            pass


def _encode(v: object) -> str:
    """JSON for the events' few shapes, with C functions only (json.dumps is patchable Python)."""
    t = type(v)
    if t is str:
        return _json_str(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return int.__repr__(v)
    if t is list or t is tuple:
        return "[" + ",".join([_encode(e) for e in v]) + "]"
    if t is dict:
        return "{" + ",".join([_json_str(k) + ":" + _encode(x) for k, x in dict.items(v)]) + "}"
    return "null"


_type_name = type.__dict__["__name__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
_type_flags = type.__dict__["__flags__"].__get__


def _short_exc(exc: BaseException) -> str:
    name = _type_name(type(exc))
    try:
        text = str(exc)  # the program's __str__ may run here; whatever it does, it is only the message
    except BaseException:
        text = ""
    text = f"{name}: {str.__str__(text)}" if isinstance(text, str) and text else name
    return text[:300]


def _exc_kind(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, SystemExit):
        return "exit"
    return "error"


# -------------------------------------------------------------------------------------------------
# Canonical values: what an assertion compares

class Unjudgeable(AssertionError):
    """An operand the harness will not compare: Python-level comparison code, a cycle, too deep."""


# Special methods that comparisons, truth tests, arithmetic and numeric built-ins call implicitly.
# An object whose type resolves any of them to Python code (the program's, or a library class the
# program may have patched) is not judged. __str__/__repr__/__format__/__hash__ are not here: text
# conversion is the program's own business, and a hash alone decides no comparison.
_DANGEROUS = tuple("__" + n + "__" for n in (
    "eq ne lt le gt ge bool len length_hint iter next reversed contains getitem getattribute getattr class "
    "int float complex index round trunc floor ceil abs neg pos invert divmod rdivmod "
    "array array_ufunc array_function array_wrap array_finalize array_prepare".split()
    + [p + op for op in "add sub mul matmul truediv floordiv mod pow lshift rshift and xor or".split()
       for p in ("", "r", "i")]))
# Sets of type ids, not of types: `t in {types}` would call a metaclass's own __hash__/__eq__.
_C_KINDS = frozenset(map(id, (type(object.__eq__), type(str.join), type(len), type(dict.__dict__["fromkeys"]))))
_OBJECT_CLASS = object.__dict__["__class__"]
_HEAPTYPE = 1 << 9
_static_ok: dict = {}


def _python_dunder(t: type, names: tuple = _DANGEROUS) -> str | None:
    """The first of `names` that `t` resolves to something other than C code, else None."""
    if id(t) in _static_ok:
        return None
    mro = _type_mro(t)
    for name in names:
        for k in mro:
            d = _type_dict(k)
            if name in d:
                v = d[name]
                if v is not None and id(type(v)) not in _C_KINDS and not (name == "__class__" and v is _OBJECT_CLASS):
                    return name
                break
    if not _type_flags(t) & _HEAPTYPE and names is _DANGEROUS:
        _static_ok[id(t)] = t  # static types cannot change (and are never freed)
    return None


_Fraction, _Decimal = fractions.Fraction, decimal.Decimal
_OrderedDict, _Counter, _deque = collections.OrderedDict, collections.Counter, collections.deque
_Namespace = type(sys.implementation)
_dict_keys, _dict_items = type({}.keys()), type({}.items())
_ATOMS = frozenset(map(id, (int, float, bool, complex, str, bytes, type(None), _Decimal)))
_CANONICAL = _ATOMS | frozenset(map(id, (list, tuple, dict, set, frozenset, _Fraction, _OrderedDict, _deque,
                                         _Namespace, range)))
_creal, _cimag = complex.__dict__["real"].__get__, complex.__dict__["imag"].__get__
_frac_num, _frac_den = _Fraction.__dict__["_numerator"].__get__, _Fraction.__dict__["_denominator"].__get__
_ns_dict = object.__getattribute__
_PRISTINE = [(d, dict(d)) for d in (vars(_Fraction), vars(fractions), vars(numbers), vars(math), vars(operator),
                                    vars(_Counter), vars(collections))]
_BUSY = object()
_MAX_DEPTH = 200
_ALL = slice(None)


def _pristine() -> None:
    """Fraction (and Counter) arithmetic and comparison are Python code: trust them only while
    nothing of them, nor of the modules they use, has been replaced since the harness started."""
    for now, then in _PRISTINE:
        if (any(now.get(k, _BUSY) is not v for k, v in dict.items(then))
                or any(k in _TEST_BUILTINS for k in now if k not in then)):  # a new global shadowing a builtin
            raise Unjudgeable("fractions/collections were modified: Fraction/Counter values cannot be judged")


def _canon(x: object, memo: dict, depth: int = 0) -> object:
    """`x` as plain builtin values (exact types, recursively), read through the base types' C
    methods; objects of types whose comparisons are C code stay as they are."""
    t = type(x)
    if id(t) in _ATOMS:
        return x
    if t is _Fraction:
        _pristine()
        return x
    key = id(x)
    if key in memo:
        v = memo[key]
        if v is _BUSY:
            raise Unjudgeable("a cyclic value cannot be judged")
        return v
    if depth > _MAX_DEPTH:
        raise Unjudgeable("a value nested this deeply cannot be judged")
    memo[key] = _BUSY
    v = memo[key] = _canon_new(x, t, memo, depth + 1)
    return v


def _canon_new(x: object, t: type, memo: dict, d: int) -> object:
    if issubclass(t, int):
        return int.__int__(x)
    if issubclass(t, float):
        return float.__float__(x)
    if issubclass(t, complex):
        return complex(_creal(x), _cimag(x))
    if issubclass(t, str):
        return str.__str__(x)
    if issubclass(t, bytes):
        return bytes.__getitem__(x, _ALL)
    if issubclass(t, bytearray):
        return bytes(bytearray.__getitem__(x, _ALL))
    if issubclass(t, list):
        return [_canon(e, memo, d) for e in list.__iter__(x)]
    if issubclass(t, tuple):
        return tuple([_canon(e, memo, d) for e in tuple.__iter__(x)])
    if issubclass(t, _OrderedDict):
        od = _OrderedDict()
        for k, v in iter(_OrderedDict.items(x)):
            od[_canon(k, memo, d)] = _canon(v, memo, d)
        return od
    if issubclass(t, dict):
        return {_canon(k, memo, d): _canon(v, memo, d) for k, v in iter(dict.items(x))}
    if issubclass(t, frozenset):
        return frozenset([_canon(e, memo, d) for e in frozenset.__iter__(x)])
    if issubclass(t, set):
        return set([_canon(e, memo, d) for e in set.__iter__(x)])
    if issubclass(t, _deque):
        return _deque([_canon(e, memo, d) for e in _deque.__iter__(x)])
    if issubclass(t, _Fraction):
        _pristine()
        return _Fraction(int.__int__(_frac_num(x)), int.__int__(_frac_den(x)))
    if issubclass(t, _Decimal):
        return _Decimal(_Decimal.__str__(x))
    if t is _dict_keys:  # compares like a set
        return frozenset([_canon(e, memo, d) for e in iter(x)])
    if t is _dict_items:
        try:
            return frozenset([(_canon(k, memo, d), _canon(v, memo, d)) for k, v in iter(x)])
        except TypeError:
            raise Unjudgeable("an items view with unhashable values cannot be judged") from None
    if t is _Namespace:
        return _Namespace(**_canon(_ns_dict(x, "__dict__"), memo, d))
    bad = _python_dunder(t)
    if bad is not None:
        raise Unjudgeable(f"cannot judge a value of type {_type_name(t)!r}: its {bad} is Python code")
    if _type_flags(t) & _HEAPTYPE and any("dtype" in _type_dict(k) for k in _type_mro(t)):
        raise Unjudgeable(f"cannot judge a value of type {_type_name(t)!r} (an array type defined in Python)")
    dt = getattr(x, "dtype", None)  # numpy: an object array compares its elements with their own __eq__
    if dt is not None and getattr(dt, "hasobject", False) is True:
        raise Unjudgeable(f"cannot judge an array of Python objects ({_type_name(t)!r} with dtype=object)")
    return x


def _contains(item: object, container: object) -> bool:
    ci, cc = _canon(item, {}), _canon(container, {})
    if id(type(cc)) in _CANONICAL or getattr(cc, "dtype", None) is not None:
        return ci in cc
    # Another C iterable (a generator, map, dict_values...) would compare its items with their own
    # __eq__: judge them one by one instead, lazily as `in` does.
    for e in iter(cc):
        if _canon(e, {}) == ci:
            return True
    return False


_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge, "is": operator.is_, "is not": operator.is_not}


def _compare(op: str, a: object, b: object) -> object:
    if op == "in":
        return _contains(a, b)
    if op == "not in":
        return not _contains(a, b)
    if op == "is" or op == "is not":
        return _CMP[op](a, b)
    memo: dict = {}
    return _CMP[op](_canon(a, memo), _canon(b, memo))


# unittest assertion methods the harness implements itself (TestCase's are patchable Python).
_UT_CMP = {"assertEqual": "==", "assertEquals": "==", "assertListEqual": "==", "assertTupleEqual": "==",
           "assertDictEqual": "==", "assertSetEqual": "==", "assertSequenceEqual": "==",
           "assertMultiLineEqual": "==", "assertNotEqual": "!=", "assertNotEquals": "!=", "assertIn": "in",
           "assertNotIn": "not in", "assertIs": "is", "assertIsNot": "is not", "assertGreater": ">",
           "assertGreaterEqual": ">=", "assertLess": "<", "assertLessEqual": "<="}


_UT_TRUTH = {"assertTrue": "t", "assert_": "t", "assertFalse": "f", "assertIsNone": "none",
             "assertIsNotNone": "some"}


class _Raises:
    """`with self.assertRaises(E):` as the harness implements it."""

    def __init__(self, expected: object, regex: object = None):
        self.expected, self.regex, self.exception = expected, regex, None

    def __enter__(self) -> "_Raises":
        return self

    def __exit__(self, et: object, ev: object, tb: object) -> bool:
        if et is None:
            raise AssertionError(f"{self.expected!r} not raised")
        if not issubclass(et, self.expected):  # type: ignore[arg-type]
            return False
        if self.regex is not None and _re_search(self.regex, str(ev)) is None:  # type: ignore[arg-type]
            raise AssertionError(f"exception message does not match {self.regex!r}")
        self.exception = ev
        return True


class _Hook:
    """What the rewritten test code calls: begin/ok/fail around each counted test, a() for each
    assertion that executes, c()/cc()/t()/v()/j() for the values an assertion looks at."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.ok_ids: set = set()
        self.fail_ids: set = set()
        self.asserts = 0
        self.stack: list = []
        self.counts: dict = {}
        self.classes_set_up: set = set()

    # -- counted tests ----------------------------------------------------------------------
    def begin(self, i: int) -> None:
        self.stack.append(i)
        self.counts[i] = 0

    def _end(self, i: int) -> int:
        while self.stack:
            if self.stack.pop() == i:
                break
        return self.counts.pop(i, 0)

    def ok(self, i: int) -> None:
        if self._end(i) == 0:  # a test in which no assertion ran has not passed
            self.fail_ids.add(i)
            self.channel.emit({"e": "t", "i": i, "ok": 0, "k": "none", "m": "no assertion executed"})
            return
        self.ok_ids.add(i)
        self.channel.emit({"e": "t", "i": i, "ok": 1})

    def fail(self, i: int, exc: BaseException) -> None:
        self._end(i)
        self.fail_ids.add(i)
        self.channel.emit({"e": "t", "i": i, "ok": 0, "k": _exc_kind(exc), "m": _short_exc(exc)})

    def a(self) -> None:
        self.asserts += 1
        if self.stack:
            self.counts[self.stack[-1]] += 1

    # -- values -------------------------------------------------------------------------------
    @staticmethod
    def c(op: str, a: object, b: object) -> object:
        return _compare(op, a, b)

    def cc(self, a: object, *rest: tuple) -> object:
        """A chained comparison: each operand evaluated once and only when needed, as Python does."""
        r: object = True
        for op, thunk in rest:
            b = thunk()
            r = _compare(op, a, b)
            if not self.t(r):
                return r
            a = b
        return r

    @staticmethod
    def t(x: object) -> bool:
        return bool(_canon(x, {}))

    @staticmethod
    def ts(x: object) -> object:
        """For all()/any(): each item truth-tested as t() does."""
        return map(_Hook.t, iter(_canon(x, {})))

    @staticmethod
    def v(x: object) -> object:
        if type(x) is _Counter:  # Counter arithmetic (a + b) has no dict equivalent
            _pristine()
            return x
        return _canon(x, {})

    @staticmethod
    def j(x: object) -> object:
        """For isinstance(): the object itself, unless its type fakes __class__."""
        bad = _python_dunder(type(x), ("__class__", "__getattribute__"))
        if bad is not None:
            raise Unjudgeable(f"cannot judge a value of type {_type_name(type(x))!r}: its {bad} is Python code")
        return x

    # -- unittest ---------------------------------------------------------------------------
    def case(self, cls: type, name: str) -> None:
        """Run one test method of a unittest.TestCase subclass as a counted test."""
        if cls not in self.classes_set_up:
            self.classes_set_up.add(cls)
            cls.setUpClass()  # type: ignore[attr-defined]
        inst = cls(name)
        inst.setUp()
        try:
            getattr(inst, name)()
        finally:
            inst.tearDown()

    def ut(self, case: object, name: str, *args: object, **kw: object) -> object:
        self.a()
        msg = kw.pop("msg", None)
        if name in _UT_CMP:
            op = _UT_CMP[name]
            if not self.t(_compare(op, args[0], args[1])):
                raise AssertionError(msg or f"{name} failed")
            return None
        if name in _UT_TRUTH:
            kind, x = _UT_TRUTH[name], args[0]
            good = self.t(x) if kind == "t" else not self.t(x) if kind == "f" else (x is None) == (kind == "none")
            if not good:
                raise AssertionError(msg or f"{name} failed")
            return None
        if name in ("assertIsInstance", "assertNotIsInstance"):
            if isinstance(self.j(args[0]), args[1]) != (name == "assertIsInstance"):  # type: ignore[arg-type]
                raise AssertionError(msg or f"{name} failed")
            return None
        if name in ("assertAlmostEqual", "assertNotAlmostEqual"):
            a, b = self.v(args[0]), self.v(args[1])
            places, delta = kw.get("places", args[2] if len(args) > 2 else None), kw.get("delta")
            if a == b:
                close = True
            elif delta is not None:
                close = abs(a - b) <= self.v(delta)  # type: ignore[operator]
            else:
                close = round(abs(a - b), 7 if places is None else places) == 0  # type: ignore[operator,arg-type]
            if close != (name == "assertAlmostEqual"):
                raise AssertionError(msg or f"{name} failed")
            return None
        if name == "assertCountEqual":
            rest = list(_canon(list(iter(args[1])), {}))  # type: ignore[call-overload]
            for e in _canon(list(iter(args[0])), {}):  # type: ignore[call-overload,attr-defined]
                if e not in rest:
                    raise AssertionError(msg or "assertCountEqual failed")
                rest.remove(e)
            if rest:
                raise AssertionError(msg or "assertCountEqual failed")
            return None
        if name in ("assertRaises", "assertRaisesRegex"):
            regex = args[1] if name == "assertRaisesRegex" else None
            call = args[2:] if name == "assertRaisesRegex" else args[1:]
            ctx = _Raises(args[0], regex)
            if not call:
                return ctx
            with ctx:
                call[0](*call[1:], **kw)  # type: ignore[operator]
            return None
        if name in ("assertRegex", "assertNotRegex"):
            found = _re_search(self.v(args[1]), self.v(args[0])) is not None  # type: ignore[call-overload]
            if found != (name == "assertRegex"):
                raise AssertionError(msg or f"{name} failed")
            return None
        if name == "fail":
            raise AssertionError(args[0] if args else msg or "fail() called")
        # Other TestCase assertions run as TestCase defines them (counted, not hardened).
        if msg is not None:
            kw["msg"] = msg
        return getattr(case, name)(*args, **kw)


# -------------------------------------------------------------------------------------------------
# Running

def _hide_harness(main: object = None) -> None:
    """Before the program runs: no way back to the harness through sys.modules (the worker runs
    as __main__ and holds this module as a global)."""
    for name in ("_harness", "codeloop.execution._harness"):
        _modules.pop(name, None)
    _modules["__main__"] = main if main is not None else _ModuleType("__main__")


def _test_namespace(prog: dict, job: dict, hook_name: str, hook: _Hook) -> dict:
    made: dict = {}

    def test_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level == 0 and name in _SNAPSHOTS:
            mod = made.get(name)
            if mod is None:
                mod = made[name] = _ModuleType(name)
                mod.__dict__.update(_SNAPSHOTS[name])
            return mod
        return _real_import(name, globals, locals, fromlist, level)

    tb = dict(_TEST_BUILTINS)
    tb["__import__"] = test_import
    entry = job.get("entry_point") or ""
    ns: dict = {}
    for k, v in dict.items(prog):
        # A program's `abs = lambda x: 0` or `math = Fake()` must not reach the tests.
        if type(k) is str and (k not in tb or k == entry) and not k.startswith("__"):
            ns[k] = test_import(k) if k in _SNAPSHOTS else v
    ns.update({"__name__": "__codeloop_test__", "__builtins__": tb, hook_name: hook})
    return ns


def run_function(job: dict, channel: Channel, hook_name: str) -> None:
    _hide_harness()
    if job.get("problem_error"):
        channel.emit({"e": "bad", "m": str.__str__(job["problem_error"])})
        return
    prog: dict = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        code = compile(job["program"], "<program>", "exec")
    except BaseException as exc:  # SyntaxError, ValueError (null bytes), MemoryError, RecursionError
        channel.emit({"e": "load", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    try:
        exec(code, prog)
    except BaseException as exc:
        channel.emit({"e": "load", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    entry = job.get("entry_point")
    if job.get("call_check") and entry not in prog:
        channel.emit({"e": "load", "k": "error", "m": f"the program does not define {entry!r}"})
        return
    channel.emit({"e": "loaded"})
    hook = _Hook(channel)
    try:
        ns = _test_namespace(prog, job, hook_name, hook)
        if job.get("helpers"):  # the prompt's own helpers (poly, encode_cyclic...), not the program's
            exec(compile(job["helpers"], "<prompt>", "exec"), ns)
            if entry in prog:
                ns[entry] = prog[entry]
        exec(compile(job["test"].replace(HOOK_PLACEHOLDER, hook_name), "<test>", "exec"), ns)
        if job.get("call_check"):
            ns["check"](prog[entry])
    except BaseException as exc:  # an uncounted statement of the tests raised: the run did not pass
        channel.emit({"e": "abort", "k": _exc_kind(exc), "m": _short_exc(exc)})
        return
    channel.emit({"e": "end", "ok": sorted(hook.ok_ids), "fail": sorted(hook.fail_ids), "a": hook.asserts})


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


def run_stdio(job: dict, channel: Channel) -> int:
    main = _ModuleType("__main__")
    _hide_harness(main)
    ns = main.__dict__
    ns["__builtins__"] = builtins
    status, kind = 0, ""
    try:
        exec(compile(job["program"], "<program>", "exec"), ns)
    except SystemExit as exc:
        status = _exit_code(exc)
    except BaseException as exc:
        kind = _exc_kind(exc)
        status = 1
        try:
            _print_exception(exc, file=sys.stderr)
        except BaseException:
            pass
    try:
        _thread_shutdown()  # like the interpreter: join non-daemon threads
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    channel.emit({"e": "end", "exit": status, "k": kind})
    return status


# -------------------------------------------------------------------------------------------------
# The verdict (in the worker)

def function_verdict(events: list, total: int, abnormal: tuple | None, exit_code: int, wall: float) -> dict:
    """The verdict of a function-test run from its harness events (read in the worker, outside the
    child). `abnormal`: (status, detail) when a limit or a signal stopped the child, else None."""
    ok_ids = {ev["i"] for ev in events if ev.get("e") == "t" and ev.get("ok") == 1}
    fails = [ev for ev in events if ev.get("e") == "t" and ev.get("ok") == 0]
    fail_ids = {ev["i"] for ev in fails}
    passed = len(ok_ids - fail_ids)
    res = {"passed_tests": passed, "total_tests": total, "runtime_s": wall}
    final = {ev.get("e"): ev for ev in events if ev.get("e") in ("bad", "load", "loaded", "abort", "end")}
    first_fail = fails[0] if fails else None
    if "bad" in final:
        return {**res, "status": "error", "detail": str(final["bad"].get("m", ""))}
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
        if not end.get("a") and all(ev.get("k") == "none" for ev in fails):
            return {**res, "status": "error", "detail": f"{NO_ASSERTION} (nothing was checked)"}
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
