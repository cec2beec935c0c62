"""EvalPlus-format problem sets: `mbpp+[:PATH]` (MBPP+), `humaneval+:PATH`, with `:base` for the
original inputs only (`mbpp+:base`, `humaneval+:PATH:base`).

An EvalPlus file holds inputs, not expected outputs (fields `task_id`, `prompt`, `entry_point`,
`canonical_solution`, `base_input`, `plus_input`, `atol`): as in EvalPlus, the expected output of
an input is what the reference solution returns on it. Those are computed once, in the sandbox,
and cached by the execution layer (`codeloop.execution.reference`); here a problem carries its
inputs (`meta["reference_inputs"]`, each input's argument list as Python literal text) and ``meta["test_format"] ==
"reference-outputs"``. Outputs compare exactly, floats within `atol` (EvalPlus' default 1e-6 when
the file says 0). MBPP+ stores tuples, sets and complex numbers as JSON lists and strings; the
per-task conversions below are EvalPlus' (its `mbpp_deserialize_inputs`), rewritten as a table.

`mbpp+` without a path reads ``$CODELOOP_DATA/mbppplus.jsonl`` or ``../shared/data/mbppplus.jsonl``
(see that folder's README for provenance). MBPP+'s test split is MBPP's (task ids 11-510).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from codeloop.errors import UserError
from codeloop.problems.code_frame import docstring, frame_from_solution, normalize_newlines
from codeloop.problems.mbpp import split_of as mbpp_split_of
from codeloop.problems.registry import ProblemSet, register
from codeloop.problems.rows import DATA_FOLDERS_HELP, iter_file_rows, local_data_file, need
from codeloop.records import Problem

REFERENCE_OUTPUTS = "reference-outputs"


def _tuples(x: Any) -> Any:
    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x


def _each(f: Callable[[Any], Any]) -> Callable[[list], list]:
    return lambda args: [f(a) for a in args]


# MBPP task number -> how its JSON arguments become the Python values the task takes.
_MBPP_INPUTS: dict[int, Callable[[list], Any]] = {}
for _n in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
           744, 809):
    _MBPP_INPUTS[_n] = _each(tuple)  # every argument is a tuple
for _n in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
    _MBPP_INPUTS[_n] = _each(lambda a: [tuple(x) for x in a])  # lists of tuples
for _n in (75, 413, 444, 753):
    _MBPP_INPUTS[_n] = lambda args: [[tuple(x) for x in args[0]], *args[1:]]
for _n in (106, 750):
    _MBPP_INPUTS[_n] = lambda args: [args[0], tuple(args[1]), *args[2:]]
for _n in (250, 405, 446, 617, 720, 763, 808):
    _MBPP_INPUTS[_n] = lambda args: [tuple(args[0]), *args[1:]]
for _n in (259, 401, 445):
    _MBPP_INPUTS[_n] = _each(lambda a: tuple(tuple(x) for x in a))  # tuples of tuples
for _n in (580, 615, 791):
    _MBPP_INPUTS[_n] = _tuples  # every list, at any depth
_MBPP_INPUTS[115] = lambda args: [[set(x) if isinstance(x, list) and x else {} for x in args[0]]]
_MBPP_INPUTS[124] = lambda args: [float(args[0]), complex(args[1])]
_MBPP_INPUTS[252] = lambda args: [complex(args[0])]
_MBPP_INPUTS[278] = lambda args: [tuple(tuple(x) if isinstance(x, list) else x for x in args[0])]
_MBPP_INPUTS[307] = lambda args: [tuple(args[0]), *args[1:]]
_MBPP_INPUTS[722] = lambda args: [{k: tuple(v) for k, v in args[0].items()}, *args[1:]]


def python_inputs(task_id: str, inputs: list, mbpp: bool) -> list:
    convert = _MBPP_INPUTS.get(int(task_id.rpartition("/")[2])) if mbpp and task_id.rpartition("/")[2].isdigit() \
        else None
    return [convert(args) if convert else args for args in inputs]


def problem_from_row(row: dict[str, Any], where: str, name: str, base_only: bool) -> Problem:
    task_id = need(row, "task_id", where, str)
    entry = need(row, "entry_point", where, str)
    canonical = normalize_newlines(need(row, "canonical_solution", where, str))
    prompt_text = normalize_newlines(need(row, "prompt", where, str))
    base = need(row, "base_input", where, list)
    plus = [] if base_only else need(row, "plus_input", where, (list, dict)) or []  # `{}`: none (Mbpp/793)
    try:
        atol = float(row.get("atol") or 0)
    except (TypeError, ValueError):
        raise UserError(f"atol must be a number, got {row.get('atol')!r}", f"{where}: atol") from None
    mbpp = name == "mbpp+"
    try:
        inputs = python_inputs(task_id, base + plus, mbpp)
    except (TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"inputs of {task_id} do not have the shape this task takes ({exc})", where) from None
    # Each input's arguments as Python literal text (tuples, sets, complex survive; inf/nan are names)
    meta: dict[str, Any] = {"test_format": REFERENCE_OUTPUTS, "reference_inputs": [repr(a) for a in inputs],
                            "atol": atol,
                            "base_inputs": len(base), "plus_inputs": len(plus)}
    if mbpp:
        text = prompt_text.strip().strip("'\"").strip()
        first = (row.get("assertion") or "").strip().splitlines()
        meta["split"] = mbpp_split_of(int(task_id.rpartition("/")[2]))
        frame = frame_from_solution(canonical, entry, f"{text}\n{first[0]}" if first else text)
        if frame is None:
            prompt, program = docstring(text, ""), canonical
        else:
            prompt, program = frame.prompt, frame.canonical_solution
        description = text
    else:  # HumanEval+: the prompt is the function's frame, the reference its body
        prompt, program, description = prompt_text, canonical, ""
    return Problem(task_id=task_id, prompt=prompt, entry_point=entry, description=description, test="",
                   canonical_solution=program, source=name + (":base" if base_only else ""), meta=meta)


def default_mbpp_plus() -> Path:
    path = local_data_file("mbppplus.jsonl")
    if path is None:
        raise UserError(f"no MBPP+ file found in {DATA_FOLDERS_HELP}: give mbpp+:PATH (EvalPlus' MbppPlus.jsonl), "
                        "or set CODELOOP_DATA to its folder", "--problems")
    return path


def _loader(name: str) -> Callable[[str | None, str | None], list[Problem]]:
    def load(source: str | None = None, split: str | None = None) -> list[Problem]:
        base_only = False
        if source and (source == "base" or source.endswith(":base")):
            base_only, source = True, source[:-len("base")].rstrip(":") or None
        if not source:
            if name != "mbpp+":
                raise UserError(f"{name} needs an EvalPlus inputs file: {name}:PATH", "--problems")
            path: Path = default_mbpp_plus()
        else:
            path = Path(source).expanduser()
        problems = [problem_from_row(row, where, name, base_only) for where, row in iter_file_rows(path)]
        return [p for p in problems if split is None or p.meta.get("split") == split]

    return load


register(ProblemSet("mbpp+", "MBPP+ (EvalPlus): MBPP tasks with extended inputs, expected outputs from the "
                    "reference (mbpp+[:PATH][:base])", _loader("mbpp+"), splits=("prompt", "test", "validation",
                                                                                  "train")))
register(ProblemSet("humaneval+", "EvalPlus-format inputs for function problems, e.g. HumanEval+ "
                    "(humaneval+:PATH[:base])", _loader("humaneval+")))
