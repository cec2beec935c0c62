"""Templates: a reference solution with its constants and strings masked.

Two problems with the same template differ only in constants (`x * 2 + 1` vs `x * 3 + 5`): a model
trained on one can pass the other by recall. A held-out split must keep templates apart, and
`codeloop problems stats` measures how many test problems share a template with train.
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from typing import Iterable

from codeloop.records import Problem


class _MaskConstants(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.copy_location(ast.Constant(value=type(node.value).__name__), node)


def template_key(code: str) -> str | None:
    """A hash of the code's syntax tree with every constant replaced by its type; None if it does not
    parse. A function body (indented, as HumanEval-style references are) is parsed as such."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        try:
            tree = ast.parse("def _():\n" + code)
        except SyntaxError:
            return None
    return hashlib.sha256(ast.dump(_MaskConstants().visit(tree)).encode()).hexdigest()[:16]


def template_overlap(train: Iterable[Problem], test: Iterable[Problem]) -> dict[str, int]:
    """How many test problems have a reference whose template also occurs in train."""
    seen = {k for p in train if (k := template_key(p.canonical_solution or "")) is not None}
    test = list(test)
    keys = [template_key(p.canonical_solution or "") for p in test]
    return {"test_problems": len(test), "with_reference": sum(k is not None for k in keys),
            "template_in_train": sum(k is not None and k in seen for k in keys),
            "train_templates": len(seen)}
