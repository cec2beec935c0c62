"""Problem sets: each loader returns a list of Problem records.

A problem-set spec is a name, optionally with a source after a colon:
``humaneval``, ``easy``, ``mbpp`` / ``mbpp:PATH`` / ``mbpp:HF_ID``, ``apps:PATH``,
``codecontests:PATH``, ``jsonl:PATH``.
"""

from __future__ import annotations

from codeloop.errors import UserError
from codeloop.problems.registry import _REGISTRY, ProblemSet, register
from codeloop.records import Problem

__all__ = ["ProblemSet", "register", "problem_sets", "get_problem_set", "load_problems", "problems_by_id"]


def problem_sets() -> list[ProblemSet]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def _ensure_loaded() -> None:
    # Importing the loader modules registers them; done lazily so `codeloop --help` stays fast.
    from codeloop.problems import humaneval, jsonl_set  # noqa: F401
    for optional in ("mbpp", "evalplus", "apps", "codecontests", "easy"):
        try:
            __import__(f"codeloop.problems.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"codeloop.problems.{optional}":
                raise


def get_problem_set(spec: str) -> ProblemSet:
    """The registered set a spec names (`mbpp:PATH` -> mbpp)."""
    _ensure_loaded()
    name = spec.partition(":")[0]
    ps = _REGISTRY.get(name)
    if ps is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown problem set '{name}' (known: {known}; or jsonl:PATH)", "--problems")
    return ps


def load_problems(spec: str, split: str | None = None, limit: int | None = None) -> list[Problem]:
    """Load the problems named by `spec` (see module doc); `limit` keeps the first N."""
    ps = get_problem_set(spec)
    name, _, source = spec.partition(":")
    if ps.needs_source and not source:
        raise UserError(f"problem set '{name}' needs a source: {name}:PATH", "--problems")
    if split is not None and ps.splits and split not in ps.splits:
        raise UserError(f"problem set '{name}' has no split '{split}' (splits: {', '.join(ps.splits)})",
                        "--split")
    problems = ps.load(source or None, split)
    if limit is not None:
        problems = problems[:limit]
    return problems


def problems_by_id(problems: list[Problem]) -> dict[str, Problem]:
    return {p.task_id: p for p in problems}
