"""Prompt formats, code extraction and sanitizing.

Two formats:

- ``completion``: the model continues the problem's prompt (HumanEval style: imports, signature,
  docstring). The program executed is ``prompt + completion`` for function problems, and also
  for stdin/stdout problems, whose prompt is a comment/docstring header the program follows.
- ``instruction``: the problem is stated as an instruction (chat template when the tokenizer has
  one, else a plain template) and the answer is expected in a fenced code block. The answer is
  started with ``params.response_prefix`` (default an opening ```python fence); the program is
  the code extracted from the block, sanitized down to the target function and what it needs.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from codeloop.generation.params import GenerationParams
from codeloop.generation.stops import CODE_FENCE, FUNCTION_STOPS, PROGRAM_STOPS
from codeloop.records import Problem

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def instruction_text(problem: Problem) -> str:
    """The natural-language request for instruction-style prompts."""
    if problem.kind == "stdio":
        body = problem.description or problem.prompt
        return (f"{body.strip()}\n\nWrite a complete Python program that reads the input from standard "
                "input and prints the answer to standard output.")
    return ("Complete the following Python function. Return the whole function in a Python code "
            f"block.\n\n```python\n{problem.prompt.rstrip()}\n```")


def uses_chat(params: GenerationParams, tokenizer: Any = None) -> bool:
    """Whether instruction prompts go through the tokenizer's chat template (`params.chat`)."""
    use_chat = params.chat == "chat" or (params.chat == "auto" and tokenizer is not None
                                        and bool(getattr(tokenizer, "chat_template", None)))
    if use_chat and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
        from codeloop.errors import UserError

        raise UserError("the tokenizer has no chat template; use --chat plain", "--chat")
    return use_chat


def with_system(messages: list[dict[str, str]], params: GenerationParams) -> list[dict[str, str]]:
    """`messages` after `params.system_prompt` as a system message, when one is set."""
    return ([{"role": "system", "content": params.system_prompt}] if params.system_prompt else []) + messages


def render_chat(messages: list[dict[str, str]], params: GenerationParams, tokenizer: Any) -> str:
    """A conversation through the chat template, ready for the assistant's answer (with
    `params.system_prompt` first when set)."""
    text = tokenizer.apply_chat_template(with_system(messages, params), tokenize=False, add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    # The tokenizer adds BOS itself when the prompt is encoded; don't double it.
    return text[len(bos):] if bos and text.startswith(bos) else text


def format_instruction(instruction: str, params: GenerationParams, tokenizer: Any = None) -> str:
    """Wrap an instruction in the chat template (or the plain template) and add the response prefix."""
    if uses_chat(params, tokenizer):
        text = render_chat([{"role": "user", "content": instruction}], params, tokenizer)
    else:
        text = (params.system_prompt + "\n\n" if params.system_prompt else "") + \
            params.plain_template.format(instruction=instruction)
    return text + params.response_prefix


def close_code_block(code: str) -> str:
    """`code` followed by the closing fence on its own line: where an instruction answer's code
    block ends (sampling stops there, so a trained answer should end there too)."""
    return (code if code.endswith("\n") or not code else code + "\n") + CODE_FENCE


def build_prompt(problem: Problem, params: GenerationParams, tokenizer: Any = None) -> str:
    """The exact text fed to the model for `problem`."""
    if params.prompt_format == "completion":
        return problem.prompt
    return format_instruction(instruction_text(problem), params, tokenizer)


def default_stops(problem: Problem, params: GenerationParams) -> list[str]:
    """Stop strings for this problem: the kind's defaults (completion format) plus the user's."""
    base: list[str] = []
    if params.default_stops and params.prompt_format == "completion":
        base = list(PROGRAM_STOPS if problem.kind == "stdio" else FUNCTION_STOPS)
    return base + [s for s in params.stop if s not in base]


def extract_code(text: str, prefix: str = "") -> str:
    """The code in a model answer: the first fenced Python block (or the longest fenced block),
    else the whole text. `prefix` is the part of the answer that was in the prompt (an opening fence)."""
    full = prefix + text
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(full)]
    if not blocks:
        return full.replace(CODE_FENCE, "").strip("\n") + "\n" if full.strip() else ""
    python = [b for lang, b in blocks if lang in ("python", "py", "python3")]
    chosen = python[0] if python else max((b for _, b in blocks), key=len)
    return chosen.strip("\n") + "\n"


def _defined_names(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    names: set[str] = set()
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _used_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _longest_parsable_prefix(code: str) -> str:
    lines = code.splitlines(keepends=True)
    for end in range(len(lines), 0, -1):
        chunk = "".join(lines[:end])
        try:
            ast.parse(chunk)
            return chunk
        except SyntaxError:
            continue
    return ""


def sanitize(code: str, entry_point: str = "", prompt: str = "") -> str:
    """Keep what the target function needs: imports, the entry point and the top-level
    definitions it uses (transitively). Test code, prints and example calls are dropped.

    Code that does not parse is cut to its longest parsable prefix of lines first. Imports of
    the problem's prompt (e.g. ``from typing import List``) are added when the answer lacks them.
    Without an entry point (whole programs) the code is only cut to parse.
    """
    parsable = code if parses(code) else _longest_parsable_prefix(code)
    if not entry_point:
        return parsable
    try:
        tree = ast.parse(parsable)
    except SyntaxError:  # pragma: no cover - prefix parses by construction
        return parsable
    defs: dict[str, ast.stmt] = {}
    imports: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        for name in _defined_names(node):
            defs.setdefault(name, node)
    if entry_point not in defs:
        return _with_prompt_imports(parsable, prompt)
    keep: set[int] = set()
    todo = [entry_point]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        node = defs[name]
        keep.add(id(node))
        todo.extend(_used_names(node) - seen)
    lines = parsable.splitlines(keepends=True)
    parts = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in keep:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            parts.append("".join(lines[start - 1:node.end_lineno]).rstrip("\n") + "\n")
    return _with_prompt_imports("\n".join(parts), prompt)


def parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except SyntaxError:
        return False


def _with_prompt_imports(code: str, prompt: str) -> str:
    if not prompt:
        return code
    have = set(code.splitlines())
    missing = [ln for ln in prompt.splitlines()
               if re.match(r"^(import |from \S+ import )", ln) and ln not in have]
    return ("\n".join(missing) + "\n\n" + code) if missing else code


def assemble_program(problem: Problem, prompt: str, completion: str, params: GenerationParams) -> str:
    """The program a fresh generation stands for, stored as the Sample's ``code``.

    Not `execution.judges.program_for`, which the judge and resume use: that one recovers the
    program of a *stored* sample (its ``code``, else the problem's own prompt + completion). This
    one makes ``code`` at sampling time, from the prompt actually sent (methods such as GiFT
    rewrite it) and, for instruction prompts, from the code block of the answer."""
    if params.prompt_format == "completion":
        code = prompt + completion
    else:
        code = extract_code(completion, params.response_prefix)
        code = sanitize(code) if problem.kind == "stdio" else sanitize(code, problem.entry_point, problem.prompt)
    # A stop can cut the last newline off; test code is often appended right after the program.
    return code if not code or code.endswith("\n") else code + "\n"
