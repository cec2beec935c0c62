"""MBPP (Austin et al. 2021): `mbpp:PATH` (mbpp.jsonl or sanitized-mbpp.json, also Parquet) or
`mbpp` / `mbpp:sanitized` (mbpp.jsonl / sanitized-mbpp.json from $CODELOOP_DATA or ../shared/data
when there, else Hugging Face) / `mbpp:HF_ID` (Hugging Face, needs network; default
google-research-datasets/mbpp).

The prompt is a completion-style frame built from the reference solution (its imports and the
`def` line of the function the tests call) with a docstring holding the task text and the first
test, as in evalplus' MBPP+; the canonical solution is the rest of the reference. Tests are the
setup code plus the plain `assert` lines (``meta["test_format"] == "asserts"``).
Splits by task_id: prompt 1-10, test 11-510, validation 511-600, train 601-974.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from codeloop.errors import UserError
from codeloop.problems.registry import ProblemSet, register
from codeloop.problems.code_frame import (defined_functions, first_called_function, frame_from_solution,
                                          normalize_newlines)
from codeloop.problems.rows import is_file_source, iter_file_rows, iter_hub_rows, local_data_file, need
from codeloop.records import Problem

DEFAULT_HF_ID = "google-research-datasets/mbpp"
LOCAL_FILES = {"full": "mbpp.jsonl", "sanitized": "sanitized-mbpp.json"}
SPLITS = ("prompt", "test", "validation", "train")
_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:set|sorted|math\.isclose|abs|round)?\(?\s*([A-Za-z_]\w*)\s*\(")


def split_of(task_id: int) -> str:
    """The standard MBPP split of a task id."""
    if task_id <= 10:
        return "prompt"
    if task_id <= 510:
        return "test"
    if task_id <= 600:
        return "validation"
    return "train"


def problem_from_row(row: dict[str, Any], where: str) -> Problem:
    """One MBPP row (original or sanitized format) as a Problem."""
    raw_id = need(row, "task_id", where, (int, str))
    try:
        task_num = int(raw_id)
    except ValueError:
        raise UserError(f"field 'task_id' must be an integer, got {raw_id!r}", where) from None
    sanitized = "text" not in row and "prompt" in row
    text = normalize_newlines(need(row, "prompt" if sanitized else "text", where, str)).strip()
    code = normalize_newlines(need(row, "code", where, str))
    tests = [normalize_newlines(t) for t in need(row, "test_list", where, list)]
    if not tests or not all(isinstance(t, str) for t in tests):
        raise UserError("field 'test_list' must be a non-empty list of strings", where)
    if sanitized:
        setup = "\n".join(normalize_newlines(s) for s in (row.get("test_imports") or []))
    else:
        setup = normalize_newlines(row.get("test_setup_code") or "")
    challenge = [normalize_newlines(t) for t in (row.get("challenge_test_list") or [])]

    defined = set(defined_functions(code))
    entry = first_called_function("\n".join(tests), defined)
    if entry is None:
        m = _ASSERT_CALL.match(tests[0].strip())
        entry = m.group(1) if m else ""
    first_test = tests[0].strip()
    frame = frame_from_solution(code, entry, f"{text}\n{first_test}") if entry else None
    meta: dict[str, Any] = {"split": split_of(task_num), "test_format": "asserts", "mbpp_task_id": task_num,
                            "variant": "sanitized" if sanitized else "full", "test_list": tests}
    if challenge:
        meta["challenge_test_list"] = challenge
    if setup.strip():
        meta["test_setup_code"] = setup
    if frame is None:
        # The reference does not define the tested function (or does not parse): plain-text frame,
        # the whole reference as the canonical program.
        from codeloop.problems.code_frame import docstring

        prompt = docstring(f"{text}\n{first_test}", "")
        canonical = code.rstrip() + "\n"
        meta["frame"] = "text-only"
    else:
        prompt, canonical, entry = frame.prompt, frame.canonical_solution, frame.entry_point
    test = (setup.rstrip() + "\n\n" if setup.strip() else "") + "\n".join(tests) + "\n"
    return Problem(task_id=f"mbpp/{task_num}", prompt=prompt, entry_point=entry, description=text, test=test,
                   canonical_solution=canonical, source="mbpp-sanitized" if sanitized else "mbpp", meta=meta)


def _rows(source: str | None, split: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if source and is_file_source(source):
        yield from iter_file_rows(source)
        return
    # `mbpp:sanitized` / `mbpp:full` pick a configuration of the default dataset; a local copy
    # (CODELOOP_DATA, ../shared/data) is read before the hub, so runs do not depend on the network.
    config = source if source in ("full", "sanitized") else None
    if source is None or config:
        local = local_data_file(LOCAL_FILES[config or "full"])
        if local is not None:
            yield from iter_file_rows(local)
            return
    dataset_id = DEFAULT_HF_ID if source is None or config else source
    hub_splits = [split] if split else list(SPLITS)
    local_name = LOCAL_FILES[config or "full"] if source is None or config else None
    for _, where, row in iter_hub_rows("mbpp", dataset_id, config, hub_splits, local_file=local_name):
        yield where, row


def load_mbpp(source: str | None = None, split: str | None = None) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    for where, row in _rows(source, split):
        p = problem_from_row(row, where)
        if p.task_id in seen:
            raise UserError(f"duplicate task_id {p.meta['mbpp_task_id']} (first at {seen[p.task_id]})", where)
        seen[p.task_id] = where
        if split is None or p.meta["split"] == split:
            problems.append(p)
    problems.sort(key=lambda p: p.meta["mbpp_task_id"])
    return problems


register(ProblemSet("mbpp", "MBPP, 974 basic Python problems: mbpp:PATH (mbpp.jsonl, sanitized-mbpp.json, "
                    "Parquet) or the Hugging Face copy when online", load_mbpp, splits=SPLITS))
