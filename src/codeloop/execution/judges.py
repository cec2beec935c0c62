"""Judges: turn a (Problem, Sample) into a job for a sandbox worker.

Function problems (HumanEval ``check(candidate)``, MBPP assert lists, pytest-style ``test_*``
functions, ``unittest.TestCase`` classes): the test code is rewritten once per problem with `ast`.

* Counted tests: each top-level statement of ``check``'s body (or, without ``check``, of the test
  module, after unwrapping ``if __name__ == "__main__":``) that contains an assertion or calls a
  test function that does, each ``test_*`` function the code defines but never calls, and each
  ``test*`` method of a ``unittest.TestCase`` subclass (run with setUp/tearDown). Each becomes

      try:
          __CODELOOP_HOOK__.begin(i)
          <statement>
      except BaseException as _cl_exc:
          __CODELOOP_HOOK__.fail(i, _cl_exc)
      else:
          __CODELOOP_HOOK__.ok(i)

  A counted test passes only if at least one assertion executed in it and none failed; a run in
  which no assertion executed at all is an ``error``. Test code with no counted statement is one
  counted test (so it ends as that error). ``assert True`` is not an assertion.
* Assertions: ``assert T, M`` becomes ``H.a(); if not H.t(T'): raise AssertionError(M)``, where
  in T' every comparison is ``H.c(op, a, b)`` (chains: ``H.cc``), every truth test ``H.t``, every
  operand of arithmetic and every argument of a numeric built-in (abs, round, len, sum, int,
  float, math.*, ...) ``H.v(x)``, and ``all``/``any`` test each item with ``H.t``. The hook
  compares plain builtin values read through the base types' C methods (see _harness._canon),
  so an object's own ``__eq__``/``__bool__``/``__sub__``... never decide. Comparisons elsewhere
  in the test code (helpers such as APPS's ``_matches``) go through ``H.c`` too. ``self.assert*``
  calls become ``H.ut(self, 'assertX', ...)`` (the harness's own implementations, counted).
* The prompt's helper functions that the tests call (HumanEval's ``poly``, ``encode_cyclic``) are
  sent along and defined in the test namespace, so a program cannot redefine what the tests
  trust.

The worker replaces the hook's placeholder name with a per-run random one.

Stdin/stdout problems: each ``{input, output}`` pair is one test, run in its own child with its
own time limit and compared by :func:`outputs_match`.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any, Callable

from codeloop.errors import UserError
from codeloop.execution._harness import HOOK_PLACEHOLDER
from codeloop.records import Problem, Sample

__all__ = ["FunctionTests", "rewrite_function_tests", "program_for", "do_nothing_program", "build_job",
           "outputs_match", "stdio_verdict"]


class FunctionTests:
    """A problem's test code rewritten for counting (see module doc)."""

    __slots__ = ("source", "n_tests", "call_check", "helpers", "problem_error")

    def __init__(self, source: str, n_tests: int, call_check: bool, helpers: str = "", problem_error: str = ""):
        self.source, self.n_tests, self.call_check = source, n_tests, call_check
        self.helpers, self.problem_error = helpers, problem_error


_CMP_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
# Built-ins whose result an argument's special methods decide (abs -> __abs__, len -> __len__ ...).
_NUMERIC_CALLS = {"abs", "round", "int", "float", "complex", "bool", "divmod", "pow", "len", "sum"}
_NUMERIC_MODULES = {"math", "cmath", "np", "numpy"}
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _hook(method: str, *args: ast.expr) -> ast.Call:
    func = ast.Attribute(value=ast.Name(id=HOOK_PLACEHOLDER, ctx=ast.Load()), attr=method, ctx=ast.Load())
    return ast.Call(func=func, args=list(args), keywords=[])


def _trivial_assert(node: ast.AST) -> bool:
    return isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and node.test.value is True


def _self_assert(node: ast.AST) -> bool:
    """A unittest assertion call: self.assertEqual(...), self.fail(...)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"
            and (node.func.attr.startswith("assert") or node.func.attr == "fail"))


def _asserts(node: ast.AST, asserting: set[str] = frozenset()) -> bool:  # type: ignore[assignment]
    """Whether `node` holds an assertion, or calls a test function (by name) that does."""
    for n in ast.walk(node):
        if (isinstance(n, ast.Assert) and not _trivial_assert(n)) or _self_assert(n):
            return True
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in asserting:
            return True
    return False


class _Judged(ast.NodeTransformer):
    """Routes comparisons (everywhere) and the values assertions look at (in asserts) through the hook."""

    def __init__(self) -> None:
        self.in_assert = 0

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)
        ops = [_CMP_OPS[type(op)] for op in node.ops]
        if all(op in ("is", "is not") for op in ops):
            return node
        if len(ops) == 1:
            return _hook("c", ast.Constant(ops[0]), node.left, node.comparators[0])
        pairs = [ast.Tuple(elts=[ast.Constant(op), ast.Lambda(args=_no_args(), body=right)], ctx=ast.Load())
                 for op, right in zip(ops, node.comparators)]
        return _hook("cc", node.left, *pairs)

    def visit_Assert(self, node: ast.Assert) -> Any:
        if _trivial_assert(node):
            return node
        self.in_assert += 1
        test = self._truth(self.visit(node.test))
        msg = self.visit(node.msg) if node.msg is not None else None
        self.in_assert -= 1
        exc = ast.Call(func=ast.Name(id="AssertionError", ctx=ast.Load()), args=[msg] if msg else [], keywords=[])
        # Not an `assert` statement: `python -O` would strip it.
        return [ast.Expr(value=_hook("a")),
                ast.If(test=ast.UnaryOp(op=ast.Not(), operand=test), body=[ast.Raise(exc=exc, cause=None)], orelse=[])]

    def _truth(self, node: ast.expr) -> ast.expr:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "t"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == HOOK_PLACEHOLDER):
            return node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ast.UnaryOp(op=ast.Not(), operand=self._truth(node.operand))
        if isinstance(node, ast.BoolOp):
            return ast.BoolOp(op=node.op, values=[self._truth(v) for v in node.values])
        return _hook("t", node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        self.generic_visit(node)
        if self.in_assert:
            if isinstance(node.op, ast.Not):
                return ast.UnaryOp(op=node.op, operand=_hook("t", node.operand))
            node.operand = _hook("v", node.operand)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        self.generic_visit(node)
        return ast.BoolOp(op=node.op, values=[_hook("t", v) for v in node.values]) if self.in_assert else node

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        self.generic_visit(node)
        if self.in_assert:
            node.test = _hook("t", node.test)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        if self.in_assert:
            node.left, node.right = _hook("v", node.left), _hook("v", node.right)
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        f = node.func
        if _self_assert(node):
            assert isinstance(f, ast.Attribute)
            return ast.Call(func=_hook("ut").func, args=[f.value, ast.Constant(f.attr), *node.args],
                            keywords=node.keywords)
        if not self.in_assert:
            return node
        name = f.id if isinstance(f, ast.Name) else None
        if name in ("all", "any") and len(node.args) == 1 and not node.keywords:
            node.args = [_hook("ts", node.args[0])]
        elif name == "isinstance" and node.args:
            node.args[0] = _hook("j", node.args[0])
        elif name in _NUMERIC_CALLS or (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                                        and f.value.id in _NUMERIC_MODULES):
            node.args = [a if isinstance(a, ast.Starred) else _hook("v", a) for a in node.args]
            for kw in node.keywords:
                if kw.arg is not None:
                    kw.value = _hook("v", kw.value)
        return node


def _no_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                         defaults=[])


def _counted(stmts: list[ast.stmt], index: int) -> ast.stmt:
    handler = ast.ExceptHandler(type=ast.Name(id="BaseException", ctx=ast.Load()), name="_cl_exc",
                                body=[ast.Expr(value=_hook("fail", ast.Constant(index),
                                                           ast.Name(id="_cl_exc", ctx=ast.Load())))])
    return ast.Try(body=[ast.Expr(value=_hook("begin", ast.Constant(index))), *stmts], handlers=[handler],
                   orelse=[ast.Expr(value=_hook("ok", ast.Constant(index)))], finalbody=[])


def _wrap_block(body: list[ast.stmt], start: int, asserting: set[str]) -> tuple[list[ast.stmt], int]:
    out, n = [], start
    for stmt in body:
        if not isinstance(stmt, (*_DEFS, ast.Import, ast.ImportFrom)) and _asserts(stmt, asserting):
            out.append(_counted([stmt], n))
            n += 1
        else:
            out.append(stmt)
    return out, n


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare) or len(stmt.test.ops) != 1:
        return False
    sides = [stmt.test.left, stmt.test.comparators[0]]
    return (isinstance(stmt.test.ops[0], ast.Eq) and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _is_runner_call(stmt: ast.stmt) -> bool:
    """unittest.main() / pytest.main(): they would run (and exit) on their own."""
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Attribute) and stmt.value.func.attr == "main"
            and isinstance(stmt.value.func.value, ast.Name) and stmt.value.func.value.id in ("unittest", "pytest"))


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for stmt in body:
        if _is_main_guard(stmt):
            out.extend(_top_level(stmt.body))  # type: ignore[attr-defined]
        elif not _is_runner_call(stmt):
            out.append(stmt)
    return out


def _calls_check(body: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "check"
               for stmt in body if not isinstance(stmt, _DEFS) for n in ast.walk(stmt))


def _asserting_functions(body: list[ast.stmt]) -> set[str]:
    """Top-level functions that assert, directly or through another such function."""
    funcs = {s.name: s for s in body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found: set[str] = set()
    while True:
        more = {name for name, f in funcs.items() if name not in found and _asserts(f, found)}
        if not more:
            return found
        found |= more


def _is_testcase(cls: ast.ClassDef) -> bool:
    return any((isinstance(b, ast.Name) and b.id.endswith("TestCase"))
               or (isinstance(b, ast.Attribute) and b.attr.endswith("TestCase")) for b in cls.bases)


def _names_used(body: list[ast.stmt], skip: ast.AST | None = None) -> set[str]:
    return {n.id for stmt in body if stmt is not skip for n in ast.walk(stmt)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _call(func: ast.expr, *args: ast.expr) -> ast.stmt:
    return ast.Expr(value=ast.Call(func=func, args=list(args), keywords=[]))


def _parse_prompt(prompt: str) -> ast.Module | None:
    """The prompt as code; one that ends in a bare signature gets a body. None if it is not code."""
    for src in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            return ast.parse(src)
        except (SyntaxError, ValueError):
            pass
    return None


def _prompt_helpers(prompt: str, entry_point: str, used: set[str]) -> str:
    """The prompt's top-level functions/classes that the tests call (other than the entry point),
    with the prompt's imports; '' when there are none or the prompt is not code."""
    tree = _parse_prompt(prompt)
    if tree is None:
        return ""
    defs = [s for s in tree.body if isinstance(s, _DEFS) and s.name != entry_point and s.name in used]
    if not defs:
        return ""
    imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.Module(body=imports + defs, type_ignores=[]))


def rewrite_function_tests(test: str, entry_point: str = "", where: str = "", prompt: str = "") -> FunctionTests:
    """Rewrite test code so that each counted test reports to the harness (see module doc)."""
    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        raise UserError(f"the problem's test code does not parse: {exc.msg} (line {exc.lineno})",
                        where or None) from None
    body = _top_level(tree.body)
    problem_error = ""
    check = next((s for s in body if isinstance(s, ast.FunctionDef) and s.name == "check"), None)
    asserting = _asserting_functions(body)
    call_check = False
    n = 0
    if check is not None and (entry_point or _calls_check(body)):
        check.body, n = _wrap_block(check.body, 0, set())
        if n == 0:
            check.body, n = [_counted(check.body, 0)], 1
        call_check = not _calls_check(body)
        asserting.discard("check")  # its statements are the counted tests; a call to it is not one more
    elif check is not None:
        problem_error = (f"{where or 'the problem'}: the test defines check(candidate) but the problem has no "
                         "entry_point, so there is nothing to call it with")
    body, n = _wrap_block(body, n, asserting)
    # pytest-style test functions that nothing calls, and unittest test methods, run as counted tests.
    extra: list[ast.stmt] = []
    for stmt in body:
        if (isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("test") and stmt.name != "check"
                and stmt.name not in _names_used(body, stmt) and _asserts(stmt, asserting)):
            extra.append(_counted([_call(ast.Name(id=stmt.name, ctx=ast.Load()))], n + len(extra)))
        elif isinstance(stmt, ast.ClassDef) and _is_testcase(stmt):
            for m in stmt.body:
                if isinstance(m, ast.FunctionDef) and m.name.startswith("test"):
                    extra.append(_counted([_call(_hook("case").func, ast.Name(id=stmt.name, ctx=ast.Load()),
                                                 ast.Constant(m.name))], n + len(extra)))
    body += extra
    n += len(extra)
    if n == 0 and body:
        body, n = [_counted(body, 0)], 1
    tree.body = body
    tree = _Judged().visit(tree)
    ast.fix_missing_locations(tree)
    helpers = _prompt_helpers(prompt, entry_point, _names_used(tree.body)) if prompt else ""
    return FunctionTests(ast.unparse(tree), max(n, 1) if problem_error else n, call_check, helpers, problem_error)


def program_for(problem: Problem, sample: Sample) -> str:
    """The program a sample stands for: its `code`, else prompt + completion (function problems)
    or the completion alone (stdio problems)."""
    if sample.code:
        return sample.code
    if problem.kind == "function":
        return problem.prompt + sample.completion
    return sample.completion


def do_nothing_program(problem: Problem) -> str:
    """A program that does nothing useful: for function problems the entry point (the prompt's
    signature where it parses) returning None; for stdin/stdout problems an empty program."""
    if problem.kind == "stdio":
        return ""
    entry = problem.entry_point
    tree = _parse_prompt(problem.prompt) or ast.Module(body=[], type_ignores=[])
    defs = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == entry]
    for d in defs:
        d.body = [ast.Return(value=ast.Constant(None))]
    if entry and not defs and entry.isidentifier():
        tree.body.append(ast.parse(f"def {entry}(*args, **kwargs):\n    return None\n").body[0])
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if tree.body else ""


def io_tests_of(problem: Problem, where: str = "") -> list[dict[str, str]]:
    tests = []
    for i, t in enumerate(problem.io_tests):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise UserError(f"io_tests[{i}] must be an object with 'input' and 'output'", where or None)
        inp, out = t["input"], t["output"]
        if isinstance(inp, list):
            inp = "\n".join(map(str, inp)) + "\n"
        if isinstance(out, list):
            out = "\n".join(map(str, out)) + "\n"
        tests.append({"input": str(inp), "output": str(out)})
    return tests


# ASCII only: float() would also take "1_000", "+5" with full-width digits, "infinity"...
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?[0-9]+[eE][+-]?[0-9]+", re.ASCII)


def outputs_match(got: str, expected: str, float_tol: float = 1e-5) -> bool:
    """Whitespace-token match; only where the expected token is a float may the got token differ.

    Both outputs are split on any whitespace (so trailing spaces/newlines and line breaks vs
    spaces do not matter). Tokens must be equal as strings (case-sensitive), except that where
    the expected token is an ASCII decimal float literal (it has a ``.`` or an exponent: ``0.5``,
    ``1e-9``; no underscores, no other digits) the got token may be any ASCII decimal number
    literal within ``|a - b| <= float_tol * max(1, |b|)`` (b expected). Integer tokens compare as
    strings, so ``1000000000`` never matches ``1000000007``; nan and inf never match by tolerance.
    """
    a, b = got.split(), expected.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        if not (_FLOAT.fullmatch(y) and _NUMBER.fullmatch(x)):
            return False
        fx, fy = float(x), float(y)
        if not (math.isfinite(fx) and math.isfinite(fy)) or abs(fx - fy) > float_tol * max(1.0, abs(fy)):
            return False
    return True


def stdio_verdict(job: dict[str, Any], tests: list[dict[str, str]],
                  run_case: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Run a stdin/stdout job case by case through `run_case` (one sandboxed child each, which
    sees only the input) and compare each output here, outside the sandbox."""
    tol = float(job.get("float_tol", 1e-5))
    passed, first, wall = 0, None, 0.0
    for i, t in enumerate(tests):
        case = {"kind": "stdio", "program": job["program"], "input": t.get("input", ""),
                "timeout_s": job["timeout_s"]}
        run = run_case(case)
        wall += float(run.get("runtime_s", 0.0))
        outcome = run.get("outcome")
        if outcome is None:
            got, expected = run.get("stdout", ""), t.get("output", "")
            if not outputs_match(got, expected, tol):
                outcome = ("failed", f"wrong answer (got {got[:80]!r}, expected {expected[:80]!r})")
        if outcome is None:
            passed += 1
        elif first is None:
            first = (i, outcome)
            if job.get("stop_on_fail"):
                break
    res = {"passed_tests": passed, "total_tests": len(tests), "runtime_s": wall}
    if first is None:
        return {**res, "status": "passed", "detail": ""}
    i, (status, detail) = first
    return {**res, "status": status, "detail": f"test {i + 1}/{len(tests)}: {detail}"}


_REWRITTEN: dict[tuple[str, str, str, str], FunctionTests] = {}
_REWRITTEN_MAX = 4096


def _rewritten(problem: Problem, where: str) -> FunctionTests:
    """Rewritten tests, kept across calls: the rewrite costs milliseconds per problem and an eval
    or a method executes the same problems batch after batch."""
    key = (problem.task_id, problem.test, problem.entry_point, problem.prompt)
    got = _REWRITTEN.get(key)
    if got is None:
        got = rewrite_function_tests(problem.test, problem.entry_point, where, problem.prompt)
        if len(_REWRITTEN) >= _REWRITTEN_MAX:
            del _REWRITTEN[next(iter(_REWRITTEN))]
        _REWRITTEN[key] = got
    return got


def build_job(problem: Problem, program: str, config: Any, cache: dict[str, Any]) -> dict[str, Any]:
    """The message a worker runs. `cache` holds per-problem preparation (rewritten tests)."""
    key = problem.task_id
    prepared = cache.get(key)
    if problem.kind == "stdio":
        if prepared is None:
            prepared = cache[key] = io_tests_of(problem, f"problem {key}")
        return {"kind": "stdio", "program": program, "tests_key": key, "n_tests": len(prepared),
                "timeout_s": config.timeout_s, "float_tol": config.float_tol,
                "stop_on_fail": config.stop_on_fail}
    if prepared is None:
        if not problem.test.strip():
            raise UserError("the problem has neither test code nor io_tests", f"problem {key}")
        prepared = cache[key] = _rewritten(problem, f"problem {key}")
    return {"kind": "function", "program": program, "test": prepared.source, "n_tests": prepared.n_tests,
            "call_check": prepared.call_check, "entry_point": problem.entry_point, "helpers": prepared.helpers,
            "problem_error": prepared.problem_error, "timeout_s": config.timeout_s}
