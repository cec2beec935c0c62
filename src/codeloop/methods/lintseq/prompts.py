"""What a LintSeq model is asked and what it answers, the same at training and at test time.

As in the official code (upiterbarg/lintseq, MBPP ``prompt_version 1``), the model is given the task
in words with the signature of the function the tests call (``Write a function `f(a, b)` to ...``)
and answers with the *response program* (imports, ``def`` line, body), either as LintSeq edits or
plain. The benchmark's completion prompt (imports, signature, docstring) is not part of the
target, so the model never copies it, and its docstring is never cut into edits.

At test time the program executed is the benchmark's code prompt followed by the decoded program
(the official HumanEval evaluation runs ``prompt + resolved program`` too): the prompt brings its
imports and helpers, and the model's ``def`` replaces the prompt's stub.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Callable, Sequence

from codeloop.generation.decoders import register_decoder
from codeloop.methods.lintseq.edits import SEPARATOR, STOP_SEQUENCE, decode_generated_detail
from codeloop.records import Sample

DOCSTRING_MODES = ("drop", "atomic")

# The edit arm's prompt ends with the first separator, so the model starts right at the first
# hunk and the separator's tokens are the prompt's at training and at test time alike.
EDIT_PROMPT_END = SEPARATOR
# The plain arm: instruction, newline, program (the official baseline's format).
PLAIN_PROMPT_END = "\n"


def _parse_code(prompt: str) -> ast.Module | None:
    """A code prompt as a module; one ending in a bare signature gets a body. None if not code."""
    for src in (prompt, prompt.rstrip() + "\n    pass\n"):
        try:
            return ast.parse(src)
        except (SyntaxError, ValueError):
            continue
    return None


def signature_of(code_prompt: str, entry_point: str = "") -> str:
    """``name(args) -> ret`` of the function the prompt asks for: `entry_point` when given and
    defined there, else the prompt's last top-level function (where completion prompts end).
    '' when the prompt is not code or defines no function."""
    tree = _parse_code(code_prompt) if code_prompt.strip() else None
    if tree is None:
        return ""
    funcs = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    chosen = next((f for f in funcs if f.name == entry_point), None) if entry_point else None
    chosen = chosen or (funcs[-1] if funcs else None)
    if chosen is None:
        return ""
    returns = f" -> {ast.unparse(chosen.returns)}" if chosen.returns is not None else ""
    return f"{chosen.name}({ast.unparse(chosen.args)}){returns}"


_WRITE_A_FUNCTION = re.compile(r"^(\s*Write an? (?:\w+ )?function)\b", re.IGNORECASE)


def task_instruction(description: str, code_prompt: str = "", signature: bool = True) -> str:
    """The natural-language task, with the signature the tests call named in it.

    An MBPP-style task ("Write a [python] function to ...") gets the signature after "function",
    as the official MBPP prompts do; any other gets the HumanEvalPack instruction the official
    HumanEval evaluation uses ("Write a Python function `sig` to solve the following problem:").
    A task that already holds the signature is left as it is."""
    text = description.strip()
    sig = signature_of(code_prompt) if signature else ""
    if not sig or sig in text:
        return text
    if _WRITE_A_FUNCTION.match(text):
        return _WRITE_A_FUNCTION.sub(lambda m: f"{m.group(1)} `{sig}`", text, count=1)
    return f"Write a Python function `{sig}` to solve the following problem:\n{text}"


def problem_instruction(problem: Any, signature: bool = True) -> str:
    """`task_instruction` of a benchmark problem: its description (its prompt when it has none, as
    sft_data's `instruction: auto` does) and, for function problems, its code prompt's signature."""
    description = (problem.description or "").strip() or problem.prompt.strip()
    code_prompt = problem.prompt if problem.kind == "function" else ""
    return task_instruction(description, code_prompt, signature)


def arm_prompt(instruction: str, arm: str) -> str:
    """The text the model is given: the instruction plus the arm's prompt end."""
    return instruction + (EDIT_PROMPT_END if arm == "edits" else PLAIN_PROMPT_END)


# ---------------------------------------------------------------------------------------------
# The response program


def _docstring_nodes(tree: ast.Module) -> list[tuple[ast.AST, ast.Expr]]:
    owners = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef))]
    out = []
    for owner in owners:
        body = getattr(owner, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            out.append((owner, body[0]))
    return out


def strip_docstrings(program: str) -> str:
    """The program without its docstrings (module, class and function), line for line otherwise.

    A docstring that shares a line with code (``def f(): "doc"``) stays: removing it would mean
    rewriting code. A body that held only a docstring keeps a ``pass`` at its indentation."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return program
    lines = program.split("\n")
    drop: set[int] = set()
    passes: dict[int, str] = {}
    for owner, node in _docstring_nodes(tree):
        first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
        if lines[first][:node.col_offset].strip() or lines[last][node.end_col_offset:].strip():  # type: ignore[index]
            continue
        drop.update(range(first, last + 1))
        if len(getattr(owner, "body", [])) == 1 and not isinstance(owner, ast.Module):
            passes[first] = lines[first][:node.col_offset] + "pass"
    out = [passes.get(i, line) for i, line in enumerate(lines) if i not in drop or i in passes]
    return "\n".join(out)


def response_program(program: str, docstrings: str = "drop") -> str:
    """The program a LintSeq target builds: `docstrings` "drop" removes them (the instruction
    carries the task in words); "atomic" keeps them, for sampling with atomic strings."""
    if docstrings not in DOCSTRING_MODES:
        raise ValueError(f"docstrings must be one of {', '.join(DOCSTRING_MODES)}, got {docstrings!r}")
    return strip_docstrings(program) if docstrings == "drop" else program


def prompt_context(code_prompt: str) -> str:
    """What goes before a decoded program when it is executed: the benchmark's code prompt (its
    imports and helpers; the model's ``def`` then replaces the prompt's stub), with a ``pass``
    where it ends in a bare signature. '' for a prompt that is not code (an instruction)."""
    if not code_prompt.strip() or "<|diff|>" in code_prompt:
        return ""
    for src in (code_prompt, code_prompt.rstrip() + "\n    pass\n"):
        try:
            ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        return src if src.endswith("\n") else src + "\n"
    return ""


# ---------------------------------------------------------------------------------------------
# Tokenization at the prompt boundary


def boundary_mismatch(tokenizer: Any, prompt: str, completion: str) -> str | None:
    """None when the prompt's token ids at test time (`codeloop.models.encode_prompt`) are the first
    ids of prompt + completion as training tokenizes it (one string, as TRL does); else where
    they differ. A merge across the boundary would train the model on a prompt it never sees."""
    from codeloop.models import encode_prompt

    test_ids = encode_prompt(tokenizer, prompt)
    train_ids = encode_prompt(tokenizer, prompt + completion)
    if train_ids[:len(test_ids)] == test_ids:
        return None
    k = next(i for i, (a, b) in enumerate(zip(test_ids, train_ids)) if a != b) \
        if any(a != b for a, b in zip(test_ids, train_ids)) else min(len(test_ids), len(train_ids))
    return (f"token {k}: test-time prompt ends {tokenizer.decode(test_ids[k:])!r}, training has "
            f"{tokenizer.decode(train_ids[k:k + 3])!r}")


# ---------------------------------------------------------------------------------------------
# Sending the instruction prompt in place of the code prompt


class InstructionPrompts:
    """A generator that sends each problem's LintSeq prompt in place of its code prompt.

    The eval harness keeps the problem (code prompt, tests) for execution and for `Sample.prompt`,
    so the decoder can put the decoded program after the code prompt; only the text the model
    sees changes. `stops` replaces the per-problem stop strings: the edit arm stops at the
    closing empty diffs, the plain arm at end of sequence, as the official evaluation does (code
    stops such as ``\\ndef`` would cut a program that starts with imports). The model is loaded on
    first use, so a finished evaluation that is only re-read loads nothing."""

    def __init__(self, load: Callable[[], Any], prompts: dict[str, str], stops: Sequence[str]):
        self._load = load
        self._inner: Any = None
        self.prompts = prompts
        self.stops = list(stops)

    @property
    def inner(self) -> Any:
        if self._inner is None:
            self._inner = self._load()
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def generate_texts(self, prompts: list[str], params: Any, stops: Any = None, on_result: Any = None,
                       **kwargs: Any) -> Any:
        sent = [self.prompts[p] for p in prompts]
        return self.inner.generate_texts(sent, params, stops=[list(self.stops) for _ in sent],
                                         on_result=on_result, **kwargs)


def decode_sample(sample: Sample) -> Sample:
    """A generated edit sequence -> the program executed: the sample's code prompt (its imports and
    helpers; '' when the prompt is an instruction) followed by the program the edits build, whose
    ``def`` replaces the prompt's stub (the official HumanEval evaluation runs prompt + program)."""
    detail = decode_generated_detail(sample.completion)
    context = prompt_context(sample.prompt)
    sample.code = context + ("\n" if context and detail.program else "") + detail.program
    if sample.code and not sample.code.endswith("\n"):
        sample.code += "\n"  # test code is appended right after the program
    sample.extra["decode"] = {"edits": detail.edits, "hunks_applied": detail.hunks_applied,
                              "hunks_malformed": detail.hunks_malformed}
    return sample


# `eval --decode lintseq`: the model writes edit sequences ending in STOP_SEQUENCE.
register_decoder("lintseq", decode_sample, stop=(STOP_SEQUENCE,))
