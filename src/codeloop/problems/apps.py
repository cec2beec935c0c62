"""APPS (Hendrycks et al. 2021): `apps:PATH` (JSONL/JSON/Parquet in the public format) or `apps` /
`apps:HF_ID` (Hugging Face, needs network; default codeparrot/apps).

Public fields: problem_id, question, solutions (JSON string: list of programs), input_output (JSON
string: {"inputs", "outputs", optional "fn_name"}), difficulty, url, starter_code.
Standard-input problems become stdio problems (`io_tests`, the canonical solution is a whole
program). Call-based problems (`fn_name`) become function problems: a completion frame built from
the first reference solution (or the starter code) and generated `check(candidate)` code that
compares the way the APPS harness does (tuples as lists; an output may be wrapped in a list).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from codeloop.errors import UserError
from codeloop.problems.registry import ProblemSet, register
from codeloop.problems.code_frame import docstring, frame_from_solution, normalize_newlines
from codeloop.problems.rows import file_split, is_file_source, iter_file_rows, iter_hub_rows, json_field, need
from codeloop.records import Problem

DEFAULT_HF_ID = "codeparrot/apps"
HUB_SPLITS = ("train", "test")

# Names the APPS harness makes available to call-based solutions (a subset, without numpy).
CALL_HEADER = ("import collections\nimport heapq\nimport itertools\nimport math\n"
               "from collections import Counter, defaultdict, deque\n"
               "from typing import Dict, List, Optional, Tuple\n\n\n")

_CHECK_TEMPLATE = '''import json


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {{k: _plain(v) for k, v in value.items()}}
    return value


def _matches(got, expected):
    got = _plain(got)
    if got == expected:
        return True
    # APPS stores most call-based outputs wrapped in a one-element list.
    return isinstance(expected, list) and len(expected) == 1 and got == expected[0]


CASES = json.loads({cases!r})


def check(candidate):
    if isinstance(candidate, type):
        candidate = getattr(candidate(), {fn_name!r})
    for args, expected in CASES:
        got = candidate(*args)
        assert _matches(got, expected), (args, got, expected)
'''


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def check_code(fn_name: str, inputs: list[Any], outputs: list[Any]) -> str:
    """`check(candidate)` test code for a call-based APPS problem."""
    cases = json.dumps([[args if isinstance(args, list) else [args], out] for args, out in zip(inputs, outputs)])
    return _CHECK_TEMPLATE.format(cases=cases, fn_name=fn_name)


def problem_from_row(row: dict[str, Any], where: str, split: str | None = None) -> Problem:
    pid = need(row, "problem_id", where, (int, str))
    question = normalize_newlines(need(row, "question", where, str)).strip()
    io = json_field(row, "input_output", where)
    if not isinstance(io, dict):
        raise UserError("field 'input_output' must be a JSON object with 'inputs' and 'outputs'", where)
    inputs, outputs = io.get("inputs"), io.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise UserError("field 'input_output' needs lists 'inputs' and 'outputs'", where)
    if len(inputs) != len(outputs):
        raise UserError(f"field 'input_output' has {len(inputs)} inputs but {len(outputs)} outputs", where)
    solutions = json_field(row, "solutions", where, default=[])
    if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
        raise UserError("field 'solutions' must be a JSON list of strings", where)
    solutions = [normalize_newlines(s) for s in solutions]
    starter = normalize_newlines(row.get("starter_code") or "")
    meta: dict[str, Any] = {"split": split, "difficulty": row.get("difficulty"), "url": row.get("url"),
                            "problem_id": pid, "n_solutions": len(solutions)}
    task_id = f"apps/{split}/{pid}" if split else f"apps/{pid}"
    fn_name = io.get("fn_name")
    if not fn_name:
        meta["test_format"] = "io"
        return Problem(task_id=task_id, prompt=docstring(question, ""), description=question,
                       io_tests=[{"input": _text(i), "output": _text(o)} for i, o in zip(inputs, outputs)],
                       canonical_solution=solutions[0].rstrip() + "\n" if solutions else "",
                       source="apps", meta=meta)
    meta["test_format"] = "check"
    meta["fn_name"] = fn_name
    frame = None
    for sol in solutions:
        frame = frame_from_solution(sol, fn_name, question, imports_prefix=CALL_HEADER)
        if frame is not None:
            break
    if frame is None and starter.strip():
        frame = frame_from_solution(starter.rstrip() + "\n" + _body_indent(starter) + "pass\n", fn_name, question,
                                    imports_prefix=CALL_HEADER)
        if frame is not None:
            frame.canonical_solution = ""
    if frame is None:
        raise UserError(f"call-based problem: neither a solution nor the starter code defines '{fn_name}'", where)
    return Problem(task_id=task_id, prompt=frame.prompt, entry_point=frame.entry_point, description=question,
                   test=check_code(fn_name, inputs, outputs), canonical_solution=frame.canonical_solution,
                   source="apps", meta=meta)


def _body_indent(starter: str) -> str:
    last = [line for line in starter.rstrip().split("\n") if line.strip()][-1]
    return last[:len(last) - len(last.lstrip())] + "    "


def _rows(source: str | None, split: str | None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    if source and is_file_source(source):
        row_split = file_split(source, split, "apps")
        for where, row in iter_file_rows(source):
            yield where, row_split, row
        return
    for hub_split, where, row in iter_hub_rows("apps", source or DEFAULT_HF_ID, None,
                                               [split] if split else list(HUB_SPLITS)):
        yield where, hub_split, row


def load_apps(source: str | None = None, split: str | None = None) -> list[Problem]:
    return [problem_from_row(row, where, row_split) for where, row_split, row in _rows(source, split)]


register(ProblemSet("apps", "APPS: apps:PATH (JSONL/JSON/Parquet, public format) or the Hugging Face copy "
                    "when online; stdin/stdout and call-based problems", load_apps))
