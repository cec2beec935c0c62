"""GiFT's prompt templates: the code prompt framed by the reference, and the 1-shot summary prompt."""

from __future__ import annotations

import ast
import random
import re

from codeloop.problems.code_frame import docstring
from codeloop.records import Problem

SUMMARY_HEADER = "### Code:\n"
SUMMARY_ASK = "### Description of the code above:\n"
SUMMARY_STOPS = ["\n###"]
BUILTIN_SHOT = ("def count_vowels(text: str) -> int:\n"
                "    return sum(1 for ch in text.lower() if ch in 'aeiou')\n",
                "Return how many vowels (a, e, i, o, u, in either case) the string contains.")


def original_description(problem: Problem) -> str:
    """d0: the problem's description, else the docstring text of its prompt."""
    if problem.description.strip():
        return problem.description.strip()
    frame, _ = code_frame(problem)
    rest = problem.prompt[len(frame):]
    return re.sub(r'^\s*[rRuU]?("""|\'\'\')|("""|\'\'\')\s*$', "", rest.strip()).strip() or problem.prompt.strip()


def code_frame(problem: Problem) -> tuple[str, str]:
    """(frame, body indent) of a function problem: its prompt up to the tested function's docstring.

    A stdin/stdout problem has no frame (""). When the prompt cannot be parsed, the frame is the
    prompt up to the end of the line defining the entry point.
    """
    if problem.kind == "stdio":
        return "", ""
    prompt = problem.prompt
    lines = prompt.splitlines(keepends=True)
    last = next((ln for ln in reversed(lines) if ln.strip()), "")
    indent = last[:len(last) - len(last.lstrip())] or "    "
    try:
        tree = ast.parse(prompt + ("\n" if not prompt.endswith("\n") else "") + indent + "pass\n")
    except SyntaxError:
        tree = None
    if tree is not None:
        fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and n.name == problem.entry_point]
        if fns:
            fn = fns[-1]
            body0 = fn.body[0]
            is_doc = isinstance(body0, ast.Expr) and isinstance(body0.value, ast.Constant) \
                and isinstance(body0.value.value, str)
            body_line = lines[body0.lineno - 1] if body0.lineno - 1 < len(lines) else indent
            body_indent = body_line[:len(body_line) - len(body_line.lstrip())] or "    "
            if is_doc and body0.lineno > fn.lineno:
                return "".join(lines[:body0.lineno - 1]), body_indent
            return prompt if prompt.endswith("\n") else prompt + "\n", body_indent
    m = None
    if problem.entry_point:
        for m in re.finditer(rf"^[ \t]*(async\s+)?def\s+{re.escape(problem.entry_point)}\b.*$", prompt, re.M):
            pass
    if m is None:
        return prompt if prompt.endswith("\n") else prompt + "\n", "    "
    return prompt[:m.end()] + "\n", "    "


def code_prompt(problem: Problem, description: str | None) -> str:
    """The prompt the model writes code from; `None` means the original description (the problem's prompt)."""
    if description is None:
        return problem.prompt
    if problem.kind == "stdio":
        return docstring(description, "")
    frame, indent = code_frame(problem)
    return frame + docstring(description, indent)


def summary_code(problem: Problem, completion: str) -> str:
    """The program shown to the summariser: frame + body for function problems (no task docstring)."""
    if problem.kind == "stdio":
        return completion
    frame, _ = code_frame(problem)
    return frame + completion


def without_docstrings(code: str) -> str:
    """`code` without its module, class and function docstrings. An instruction answer is a whole
    program, and one written from a description often restates it in a docstring: the summariser
    must describe the code, not copy the words. Code that does not parse is returned as it is."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = re.split(r"(?<=\n)", code)  # ast counts lines by \n only (str.splitlines also splits on \f, \x1c...)
    drop: set[int] = set()
    fill: dict[int, str] = {}  # a body that was only its docstring keeps a `pass`
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            if lines[first.lineno - 1][:first.col_offset].strip() or \
                    lines[first.end_lineno - 1][first.end_col_offset:].strip():
                continue  # shares a line with other code (`def f(): "doc"; return 1`): leave it
            drop.update(range(first.lineno - 1, first.end_lineno))
            if len(body) == 1 and not isinstance(node, ast.Module):
                fill[first.lineno - 1] = " " * first.col_offset + "pass\n"
    return "".join(fill.get(i, line) for i, line in enumerate(lines) if i not in drop or i in fill)


def summary_input(problem: Problem, kept: dict) -> str:
    """The program shown to the summariser for a chain's kept code (its ``kept`` record): frame +
    body of a completion, or the whole program of an instruction answer, without docstrings."""
    program = kept.get("program")
    if program is not None:
        return without_docstrings(program)
    return summary_code(problem, kept["completion"])


def summary_prompt(code: str, shot: tuple[str, str]) -> str:
    shot_code, shot_desc = shot
    return (f"{SUMMARY_HEADER}{shot_code.rstrip()}\n{SUMMARY_ASK}{shot_desc.strip()}\n\n"
            f"{SUMMARY_HEADER}{code.rstrip()}\n{SUMMARY_ASK}")


# The 1-shot summary as a conversation, for an instruct model (prompt_format: instruction): the shot is
# an earlier user turn (its program) and assistant turn (its description). Given the plain text above,
# or both programs in one request, a 0.5B instruct model mostly described the shot's program, echoed
# the request or looped (measured on MBPP train).
SUMMARY_REQUEST = ("Describe the task this Python program solves, as a task statement in one or two sentences. "
                   "Reply with the task only.\n\n```python\n{code}\n```")


def summary_messages(code: str, shot: tuple[str, str]) -> list[dict[str, str]]:
    shot_code, shot_desc = shot
    return [{"role": "user", "content": SUMMARY_REQUEST.format(code=shot_code.rstrip())},
            {"role": "assistant", "content": shot_desc.strip()},
            {"role": "user", "content": SUMMARY_REQUEST.format(code=code.rstrip())}]


def summary_text(raw: str, instruction: bool) -> str:
    """The description in a summariser's output: up to the next ``###`` (plain 1-shot text), or the
    first paragraph of an answer without a ``Task:`` label (a request)."""
    text = raw.split("\n###")[0].strip()
    if instruction:
        text = re.sub(r"^\W*task\W*:\W*?(?=\w)", "", text.split("\n\n")[0], flags=re.I).strip()
    return text


def has_reference(problem: Problem) -> bool:
    return bool(problem.canonical_solution.strip())


def pick_shot(problem: Problem, pool: list[Problem], shot: str, rng: random.Random) -> tuple[str, str]:
    """The 1-shot example of the summary prompt: another seed problem's (code, description), or the built-in one."""
    others = [p for p in pool if p.task_id != problem.task_id]
    if shot == "builtin" or not others:
        return BUILTIN_SHOT
    other = rng.choice(others)
    return summary_code(other, other.canonical_solution), original_description(other)
