"""Tests from a reference's outputs (EvalPlus' model): for problems that carry inputs only
(``meta["test_format"] == "reference-outputs"``, e.g. `mbpp+`), the expected output of each input
is what the reference solution returns on it.

The reference runs once per problem in the sandbox (it is data from a file, like any program), its
outputs are cached under the codeloop cache (keyed by a hash of the reference, the entry point and
the inputs, so an edited file is recomputed), and each input becomes one counted test:

    assert _cl_same(entry(*args), expected, atol)

`_cl_same` is EvalPlus' rule: exact equality, except a float (or a list/tuple of floats) compares
within `atol` (1e-6 when the file says 0) plus a 1e-7 relative term. Left out, unlike EvalPlus:
inputs on which the reference itself raises (EvalPlus' inputs are valid by construction), and
inputs whose expected output is longer than `MAX_OUTPUT_CHARS` as text (the test embeds it) or
is not a plain value with a literal (an `re.Match`, an instance of the reference's class); a
reference that does not finish gives its problem no test (every sample then gets `error`, saying
the tests executed no assertion). EvalPlus' few special oracles are not reproduced.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from codeloop.console import progress_bar
from codeloop.execution.config import ExecConfig
from codeloop.problems.evalplus import REFERENCE_OUTPUTS
from codeloop.records import Problem, atomic_write_text

_OK, _EXC = "OK ", "EXC "
MAX_OUTPUT_CHARS = 1 << 20
_SAME = '''nan = float("nan")
inf = float("inf")


def _cl_floats(x):
    return isinstance(x, float) or isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x)


def _cl_close(g, e, atol):
    return isinstance(g, (int, float)) and (g == e or abs(g - e) <= atol + 1e-7 * abs(e))


def _cl_same(got, exp, atol):
    if _cl_floats(exp):
        atol = atol or 1e-6
        if isinstance(exp, float):
            return _cl_close(got, exp, atol)
        return isinstance(got, (list, tuple)) and len(got) == len(exp) and all(
            _cl_close(g, e, atol) for g, e in zip(got, exp))
    return got == exp

'''


_PLAIN = (ast.Expression, ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.USub, ast.UAdd,
          ast.BinOp, ast.Add, ast.Sub, ast.Load)


def _plain(text: str) -> bool:
    """A value's repr that is a literal (numbers, strings, containers; inf, nan, set()): what a test
    can embed. Anything else (`<re.Match object ...>`, a custom class) has no literal to compare with."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in ("inf", "nan"):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "set" and not node.args:
            continue
        if not isinstance(node, _PLAIN) and not (isinstance(node, ast.Name) and node.id == "set"):
            return False
    return True


def needs_reference(problem: Problem) -> bool:
    return problem.meta.get("test_format") == REFERENCE_OUTPUTS and not problem.test.strip()


def _key(problem: Problem) -> str:
    text = json.dumps([problem.canonical_solution, problem.prompt, problem.entry_point,
                       problem.meta["reference_inputs"]])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _driver(problem: Problem, program: str) -> str:
    """The reference plus a loop that prints each output's repr (or the exception it raised)."""
    inputs = "[" + ", ".join(problem.meta["reference_inputs"]) + "]"
    return (program.rstrip() + "\n\n\nimport copy as _cl_copy, sys as _cl_sys\n"
            "inf, nan = float('inf'), float('nan')\n"
            "def _cl_plain(x):  # a Counter, OrderedDict, namedtuple... as the builtin it extends\n"
            "    for t in (dict, list, tuple, set, frozenset):\n"
            "        if isinstance(x, t) and type(x) is not t:\n"
            "            x = t(x.items()) if t is dict else t(x)\n"
            "    if isinstance(x, dict):\n"
            "        return {k: _cl_plain(v) for k, v in x.items()}\n"
            "    if type(x) in (list, tuple, set, frozenset):\n"
            "        return type(x)(_cl_plain(v) for v in x)\n"
            "    return x\n"
            f"for _cl_args in {inputs}:\n"
            "    try:\n"
            f"        _cl_out = repr(_cl_plain({problem.entry_point}(*_cl_copy.deepcopy(_cl_args))))\n"
            f"        _cl_sys.stdout.write({_OK!r} + _cl_out.replace('\\n', ' ') + '\\n')\n"
            "    except BaseException as _cl_exc:\n"
            f"        _cl_sys.stdout.write({_EXC!r} + type(_cl_exc).__name__ + '\\n')\n")


def _test_source(problem: Problem, outputs: list[str | None]) -> str:
    atol = float(problem.meta.get("atol", 0) or 0)
    lines = [_SAME]
    for args, out in zip(problem.meta["reference_inputs"], outputs):
        if out is None:
            continue
        call = f"{problem.entry_point}(*{args})"
        lines.append(f"assert _cl_same({call}, {out}, {atol!r})")
    return "\n".join(lines) + "\n"


def reference_outputs(problems: list[Problem], config: ExecConfig) -> dict[str, list[str | None]]:
    """task_id -> the repr of the reference's output for each input (None where it raised)."""
    from codeloop.models import cache_dir  # the cache's one home
    from codeloop.execution.judges import program_for
    from codeloop.execution.pool import ExecutionPool
    from codeloop.records import Sample

    folder = cache_dir() / "reference-outputs"
    found: dict[str, list[str | None]] = {}
    missing = []
    for p in problems:
        path = folder / f"{_key(p)}.json"
        if path.exists():
            found[p.task_id] = json.loads(path.read_text())
        else:
            missing.append(p)
    if not missing:
        return found
    # One worker: references run one after the other through run_program, which uses an idle pool's first.
    pool_config = dataclasses.replace(config, executor="local", workers=1, timeout_s=max(config.timeout_s, 60.0),
                                      max_output_bytes=256 << 20)
    with ExecutionPool(pool_config) as pool, progress_bar("reference outputs", len(missing)) as advance:
        for p in missing:
            program = program_for(p, Sample(task_id=p.task_id, completion=p.canonical_solution))
            run = pool.run_program(_driver(p, program), timeout_s=pool_config.timeout_s)
            outs: list[str | None] = []
            if run["outcome"] is None:
                for line in run["stdout"].split("\n")[:-1]:
                    ok = line.startswith(_OK) and len(line) <= MAX_OUTPUT_CHARS and _plain(line[len(_OK):])
                    outs.append(line[len(_OK):] if ok else None)
            atomic_write_text(folder / f"{_key(p)}.json", json.dumps(outs) + "\n")
            found[p.task_id] = outs
            advance()
    return found


def with_reference_tests(problems: dict[str, Problem], config: ExecConfig) -> dict[str, Problem]:
    """The problems, with the tests of inputs-only problems built from their reference's outputs."""
    todo = [p for p in problems.values() if needs_reference(p)]
    if not todo:
        return problems
    outputs = reference_outputs(todo, config)
    out = dict(problems)
    for p in todo:
        out[p.task_id] = dataclasses.replace(p, test=_test_source(p, outputs[p.task_id]))
    return out
