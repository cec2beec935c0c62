"""Completion-style frames built from a reference solution.

Datasets such as MBPP and APPS give a task text and a whole reference program, not a HumanEval
prompt. The frame is: the reference's imports, the `def` line of the tested function and a
docstring holding the task; the canonical solution is the rest of the reference (the function body,
then the reference's other top-level code), so that ``prompt + canonical_solution`` runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def docstring(text: str, indent: str) -> str:
    """`text` as a docstring at `indent`, valid Python whatever the text holds."""
    body = normalize_newlines(text).strip("\n").replace('"""', "'''")
    prefix = 'r"""' if "\\" in body else '"""'
    if body.endswith("\\"):
        body += " "
    lines = [(indent + line) if line.strip() else "" for line in body.splitlines()]
    return f"{indent}{prefix}\n" + "\n".join(lines) + f"\n{indent}\"\"\"\n"


@dataclass
class Frame:
    prompt: str
    canonical_solution: str
    entry_point: str


def _segment(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    """Source between two (1-based line, utf-8 byte column) positions."""
    (l0, c0), (l1, c1) = start, end
    if l0 == l1:
        return lines[l0 - 1].encode()[c0:c1].decode()
    parts = [lines[l0 - 1].encode()[c0:].decode()]
    parts += lines[l0:l1 - 1]
    parts.append(lines[l1 - 1].encode()[:c1].decode())
    return "\n".join(parts)


def _node_text(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1:node.end_lineno])


def _find_function(tree: ast.Module, name: str) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef | None] | None:
    top = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    if top:
        return top[-1], None  # the last definition wins, as at run time
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
                    return item, node
    return None


def _parse(code: str) -> tuple[str, ast.Module] | None:
    code = normalize_newlines(code)
    for candidate in (code, code.expandtabs(8)):
        try:
            return candidate, ast.parse(candidate)
        except (SyntaxError, ValueError):
            continue
    return None


def _names_in(nodes: list[ast.AST]) -> set[str]:
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def frame_from_solution(code: str, entry_point: str, task_text: str, imports_prefix: str = "") -> Frame | None:
    """Split reference `code` around function `entry_point` (top level, or a method of a class).

    Returns None when the code does not parse or does not define `entry_point`.
    """
    parsed = _parse(code)
    if parsed is None:
        return None
    code, tree = parsed
    found = _find_function(tree, entry_point)
    if found is None:
        return None
    fn, cls = found
    lines = code.split("\n")
    first_line = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
    body0 = fn.body[0]
    if body0.lineno > fn.lineno and not lines[body0.lineno - 1].encode()[:body0.col_offset].strip():
        # The header ends at the last code line before the body (comments in between go with the body).
        header_end = body0.lineno - 1
        while header_end > fn.lineno and (not lines[header_end - 1].strip()
                                          or lines[header_end - 1].lstrip().startswith("#")):
            header_end -= 1
        header = "\n".join(lines[first_line - 1:header_end])
        line = lines[body0.lineno - 1]
        indent = line[:len(line) - len(line.lstrip())]
        body = "\n".join(lines[header_end:fn.end_lineno])
    else:
        # `def f(x): return x` -- the body shares the header's line.
        header = _segment(lines, (first_line, 0), (body0.lineno, body0.col_offset)).rstrip()
        def_indent = lines[fn.lineno - 1][:fn.col_offset]
        indent = def_indent + ("\t" if def_indent.startswith("\t") else "    ")
        end = (fn.end_lineno, len(lines[fn.end_lineno - 1].encode()))
        stmts = _segment(lines, (body0.lineno, body0.col_offset), end).split("\n")
        body = "\n".join([indent + stmts[0].strip()] + stmts[1:])

    top = cls if cls is not None else fn
    before = [n for n in tree.body if n.lineno < top.lineno]
    after = [n for n in tree.body if n.lineno > top.lineno]
    imports = [n for n in before if isinstance(n, (ast.Import, ast.ImportFrom))]
    # Code before the function normally follows it in the canonical solution, unless the header
    # (decorators, annotations, defaults, base classes) needs it first; then it stays in the prompt.
    header_nodes: list[ast.AST] = list(fn.decorator_list) + [fn.args] + ([fn.returns] if fn.returns else [])
    if cls is not None:
        header_nodes += list(cls.bases) + list(cls.decorator_list)
    needed = _names_in(header_nodes)
    pre = [n for n in before if n not in imports]
    pre = [n for n in pre if not (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == fn.name)]
    keep_in_prompt = any(_bound_names(n) & needed for n in pre)
    prompt_nodes = imports + pre if keep_in_prompt else imports
    rest_nodes = ([] if keep_in_prompt else pre) + after

    prompt = imports_prefix
    if prompt_nodes:
        prompt_nodes.sort(key=lambda n: n.lineno)
        prompt += "\n".join(line.rstrip() for n in prompt_nodes for line in _node_text(lines, n).split("\n")) + "\n\n\n"
    if cls is not None:
        if cls.body[0].lineno == cls.lineno:
            return None
        cls_first = min([cls.lineno] + [d.lineno for d in cls.decorator_list])
        header = "\n".join(lines[cls_first - 1:_header_last_line(lines, cls)]) + "\n" + header
        others = [n for n in cls.body if n is not fn]
        # Class members other than the tested method follow it, inside the class.
        if others:
            body += "\n" + "\n".join(_node_text(lines, n) for n in others)
    header = "\n".join(line.rstrip() for line in header.split("\n"))
    prompt += header + "\n" + docstring(task_text, indent)
    canonical = body.rstrip() + "\n"
    if rest_nodes:
        canonical += "\n\n" + "\n\n".join(_node_text(lines, n) for n in rest_nodes) + "\n"
    return Frame(prompt=prompt, canonical_solution=canonical, entry_point=cls.name if cls is not None else fn.name)


def _header_last_line(lines: list[str], cls: ast.ClassDef) -> int:
    first = min([n.lineno for n in cls.body] + [d.lineno for n in cls.body for d in getattr(n, "decorator_list", [])])
    end = first - 1
    while end > cls.lineno and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def first_called_function(test_code: str, defined: set[str]) -> str | None:
    """The first function in `defined` that `test_code` calls (what the tests exercise)."""
    try:
        tree = ast.parse(normalize_newlines(test_code))
    except SyntaxError:
        return None
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
            calls.append((node.lineno, node.col_offset, node.func.id))
    return min(calls)[2] if calls else None


def defined_functions(code: str) -> list[str]:
    """Names of the top-level functions (and classes) a program defines."""
    try:
        tree = ast.parse(normalize_newlines(code))
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
