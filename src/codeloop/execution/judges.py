"""Judges: turn a (Problem, Sample) into a job for a sandbox worker.

Function problems (HumanEval ``check(candidate)``, MBPP assert lists): the test code is rewritten
once per problem with `ast` so that every top-level test statement is counted on its own:

    try:
        <statement that contains an assert>
    except BaseException as _cl_exc:
        __CODELOOP_HOOK__.fail(i, _cl_exc)
    else:
        __CODELOOP_HOOK__.ok(i)

For a ``check`` function the statements of its body are wrapped; otherwise the module's own
top-level statements. Statements without an assert (imports, setup) run as written; a bare
``assert True`` is not a test. Test code with no assert at all is one test. The worker replaces
the hook's placeholder name with a per-run random one.

Stdin/stdout problems: each ``{input, output}`` pair is one test, run in its own child with its
own time limit and compared by :func:`outputs_match`.
"""

from __future__ import annotations

import ast
from typing import Any, Callable

from codeloop.errors import UserError
from codeloop.execution._harness import HOOK_PLACEHOLDER
from codeloop.records import Problem, Sample

__all__ = ["FunctionTests", "rewrite_function_tests", "program_for", "build_job", "outputs_match",
           "stdio_verdict"]


class FunctionTests:
    """A problem's test code rewritten for counting: source, number of tests, whether to call check."""

    __slots__ = ("source", "n_tests", "call_check")

    def __init__(self, source: str, n_tests: int, call_check: bool):
        self.source, self.n_tests, self.call_check = source, n_tests, call_check


def _has_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _trivial_assert(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assert) and isinstance(node.test, ast.Constant) and node.test.value is True


def _hook_call(method: str, *args: ast.expr) -> ast.stmt:
    func = ast.Attribute(value=ast.Name(id=HOOK_PLACEHOLDER, ctx=ast.Load()), attr=method, ctx=ast.Load())
    return ast.Expr(value=ast.Call(func=func, args=list(args), keywords=[]))


def _counted(stmts: list[ast.stmt], index: int) -> ast.stmt:
    handler = ast.ExceptHandler(type=ast.Name(id="BaseException", ctx=ast.Load()), name="_cl_exc",
                                body=[_hook_call("fail", ast.Constant(index), ast.Name(id="_cl_exc", ctx=ast.Load()))])
    return ast.Try(body=stmts, handlers=[handler], orelse=[_hook_call("ok", ast.Constant(index))], finalbody=[])


def _wrap_block(body: list[ast.stmt], start: int) -> tuple[list[ast.stmt], int]:
    out, n = [], start
    for stmt in body:
        if _has_assert(stmt) and not _trivial_assert(stmt) and not isinstance(
                stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(_counted([stmt], n))
            n += 1
        else:
            out.append(stmt)
    return out, n


def _calls_check(tree: ast.Module) -> bool:
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            f = stmt.value.func
            if isinstance(f, ast.Name) and f.id == "check":
                return True
    return False


def rewrite_function_tests(test: str, entry_point: str = "", where: str = "") -> FunctionTests:
    """Rewrite test code so that each test statement reports to the harness (see module doc)."""
    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        raise UserError(f"the problem's test code does not parse: {exc.msg} (line {exc.lineno})",
                        where or None) from None
    check = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"), None)
    if check is not None and (entry_point or _calls_check(tree)):
        body, n = _wrap_block(check.body, 0)
        if n == 0:
            body, n = [_counted(check.body, 0)], 1
        check.body = body
        call_check = not _calls_check(tree)
        if call_check and not entry_point:
            raise UserError("the test defines check(candidate) but the problem has no entry_point", where or None)
    else:
        body, n = _wrap_block(tree.body, 0)
        if n == 0:
            body, n = [_counted(tree.body, 0)] if tree.body else [], 1 if tree.body else 0
        tree.body = body
        call_check = False
    ast.fix_missing_locations(tree)
    return FunctionTests(ast.unparse(tree), n, call_check)


def program_for(problem: Problem, sample: Sample) -> str:
    """The program a sample stands for: its `code`, else prompt + completion (function problems)
    or the completion alone (stdio problems)."""
    if sample.code:
        return sample.code
    if problem.kind == "function":
        return problem.prompt + sample.completion
    return sample.completion


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


def _as_float(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def outputs_match(got: str, expected: str, float_tol: float = 1e-5) -> bool:
    """Whitespace-token match; numeric tokens may differ by ``float_tol`` absolute or relative.

    Both outputs are split on any whitespace (so trailing spaces/newlines and line breaks vs
    spaces do not matter). Tokens must be equal as strings (case-sensitive), or both parse as
    finite floats with ``|a - b| <= float_tol * max(1, |b|)`` where b is the expected token.
    """
    a, b = got.split(), expected.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        fx, fy = _as_float(x), _as_float(y)
        if fx is None or fy is None or fx != fx or fy != fy or abs(fy) == float("inf"):
            return False
        if abs(fx - fy) > float_tol * max(1.0, abs(fy)):
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
        prepared = cache[key] = rewrite_function_tests(problem.test, problem.entry_point, f"problem {key}")
    return {"kind": "function", "program": program, "test": prepared.source, "n_tests": prepared.n_tests,
            "call_check": prepared.call_check, "entry_point": problem.entry_point,
            "timeout_s": config.timeout_s}
