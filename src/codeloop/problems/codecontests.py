"""CodeContests (Li et al. 2022, AlphaCode): `codecontests:PATH` (Parquet as published, JSONL or JSON)
or `codecontests` / `codecontests:HF_ID` (Hugging Face, needs network; default deepmind/code_contests).
Append ``#generated`` to the source to add the generated tests (large) to the private ones.

Public fields: name, description, public_tests / private_tests / generated_tests ({input: [...],
output: [...]}), solutions ({language: [...], solution: [...]}, language 3 = PYTHON3), difficulty,
source, time_limit ({seconds, nanos}), memory_limit_bytes, cf_rating, cf_tags.
Problems are stdin/stdout problems: `io_tests` = public tests first, then private (then generated);
``meta["public_tests"]`` is how many leading io_tests are public (DPO scoring uses only those).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from codeloop.errors import UserError
from codeloop.problems.registry import ProblemSet, register
from codeloop.problems.code_frame import docstring, normalize_newlines
from codeloop.problems.rows import file_split, is_file_source, iter_file_rows, iter_hub_rows, need
from codeloop.records import Problem

DEFAULT_HF_ID = "deepmind/code_contests"
HUB_SPLITS = ("train", "valid", "test")
PYTHON3 = 3
LANGUAGES = {0: "UNKNOWN_LANGUAGE", 1: "PYTHON", 2: "CPP", 3: "PYTHON3", 4: "JAVA"}
DIFFICULTIES = ["UNKNOWN_DIFFICULTY", "EASY", "MEDIUM", "HARD", "HARDER", "HARDEST", "EXTERNAL"] + \
    [chr(c) for c in range(ord("A"), ord("V") + 1)]
SOURCES = ["UNKNOWN_SOURCE", "CODECHEF", "CODEFORCES", "HACKEREARTH", "CODEJAM", "ATCODER", "AIZU"]


def _tests(row: dict[str, Any], name: str, where: str, required: bool) -> list[dict[str, str]]:
    value = row.get(name)
    if value is None:
        if required:
            raise UserError(f"missing required field '{name}'", where)
        return []
    if not isinstance(value, dict):
        raise UserError(f"field '{name}' must be an object with lists 'input' and 'output'", where)
    inputs, outputs = value.get("input"), value.get("output")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise UserError(f"field '{name}' needs lists '{name}.input' and '{name}.output'", where)
    if len(inputs) != len(outputs):
        raise UserError(f"field '{name}' has {len(inputs)} inputs but {len(outputs)} outputs", where)
    return [{"input": str(i), "output": str(o)} for i, o in zip(inputs, outputs)]


def _is_python3(language: Any) -> bool:
    return language == PYTHON3 or (isinstance(language, str) and language.upper() == "PYTHON3")


def _enum(value: Any, names: list[str]) -> Any:
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value


def _task_name(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip())


def problem_from_row(row: dict[str, Any], where: str, split: str | None = None,
                     include_generated: bool = False) -> Problem:
    name = need(row, "name", where, str)
    description = normalize_newlines(need(row, "description", where, str)).strip()
    public = _tests(row, "public_tests", where, required=True)
    private = _tests(row, "private_tests", where, required=False)
    generated = _tests(row, "generated_tests", where, required=False) if include_generated else []
    solutions = row.get("solutions") or {}
    if not isinstance(solutions, dict):
        raise UserError("field 'solutions' must be an object with lists 'language' and 'solution'", where)
    languages, programs = solutions.get("language") or [], solutions.get("solution") or []
    if len(languages) != len(programs):
        raise UserError(f"field 'solutions' has {len(languages)} languages but {len(programs)} solutions", where)
    python3 = [normalize_newlines(p) for lang, p in zip(languages, programs) if _is_python3(lang)]
    time_limit = row.get("time_limit")
    meta: dict[str, Any] = {
        "split": split, "name": name, "test_format": "io", "public_tests": len(public),
        "private_tests": len(private), "generated_tests": len(generated),
        "difficulty": _enum(row.get("difficulty"), DIFFICULTIES), "contest_source": _enum(row.get("source"), SOURCES),
        "cf_rating": row.get("cf_rating"), "cf_tags": row.get("cf_tags"), "n_python3_solutions": len(python3),
        "memory_limit_bytes": row.get("memory_limit_bytes"),
    }
    if isinstance(time_limit, dict):
        meta["time_limit_s"] = float(time_limit.get("seconds") or 0) + float(time_limit.get("nanos") or 0) / 1e9
    return Problem(task_id=f"codecontests/{_task_name(name)}", prompt=docstring(description, ""),
                   description=description, io_tests=public + private + generated,
                   canonical_solution=python3[0].rstrip() + "\n" if python3 else "", source="codecontests",
                   meta=meta)


def public_io_tests(problem: Problem) -> list[dict[str, str]]:
    """The public tests of a problem (all io_tests when the loader did not say)."""
    n = problem.meta.get("public_tests")
    return problem.io_tests[:n] if isinstance(n, int) else list(problem.io_tests)


def _rows(source: str | None, split: str | None) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    if source and is_file_source(source):
        row_split = file_split(source, split, "codecontests")
        for where, row in iter_file_rows(source):
            yield where, row_split, row
        return
    for hub_split, where, row in iter_hub_rows("codecontests", source or DEFAULT_HF_ID, None,
                                               [split] if split else list(HUB_SPLITS)):
        yield where, hub_split, row


def load_codecontests(source: str | None = None, split: str | None = None,
                      include_generated: bool | None = None) -> list[Problem]:
    if source and source.endswith("#generated"):
        source, include_generated = source[:-len("#generated")] or None, True
    problems = []
    seen: dict[str, int] = {}
    for where, row_split, row in _rows(source, split):
        p = problem_from_row(row, where, row_split, bool(include_generated))
        if p.task_id in seen:
            # Names are unique within a published split; keep ids unique across merged files too.
            seen[p.task_id] += 1
            p.task_id = f"{p.task_id}#{seen[p.task_id]}"
        else:
            seen[p.task_id] = 1
        problems.append(p)
    return problems


register(ProblemSet("codecontests", "CodeContests: codecontests:PATH (Parquet/JSONL/JSON, public format; "
                    "append #generated for generated tests) or the Hugging Face copy when online",
                    load_codecontests))
