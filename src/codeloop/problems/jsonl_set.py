"""`jsonl:PATH`: the user's own problems in the codeloop Problem schema."""

from __future__ import annotations

from codeloop.problems.registry import ProblemSet, register
from codeloop.records import Problem, read_jsonl


def load_jsonl(source: str | None, split: str | None = None) -> list[Problem]:
    assert source is not None
    problems = read_jsonl(source, Problem)
    if split is not None:
        problems = [p for p in problems if p.meta.get("split") == split]
    return problems


register(ProblemSet("jsonl", "your own problems in the codeloop schema: jsonl:PATH", load_jsonl,
                    needs_source=True))
