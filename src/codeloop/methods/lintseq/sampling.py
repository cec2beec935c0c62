"""LintSeq's algorithm box: backward sampling of linter-clean states, reversed into insertion edits,
every sequence verified; many programs in a deterministic process pool."""

from __future__ import annotations

import ast
import multiprocessing
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from codeloop.linting import OFFICIAL_ERRORS, LintConfig, Linter, detect_indent, syntax_error_message
from codeloop.methods.lintseq.edits import DIFF_TOKEN, apply_edit, insertion_diff
from codeloop.steps import option

PROGRAM_FIELDS = ("code", "completion", "response")

# ---------------------------------------------------------------------------------------------
# Programs and lines


def canonical_program(code: str) -> str:
    """CRLF -> LF; leading and trailing blank lines dropped. The text edit sequences rebuild.

    Not `records.normalized_code`: an edit sequence must rebuild the program byte for byte,
    trailing spaces included (the linter sees them), so only what no diff can express is dropped."""
    lines = code.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def extract_code(text: str, language: str = "python") -> str:
    """The ```python fenced blocks of a chat response joined, else the text unchanged."""
    fence = f"```{language}"
    chunks, rest = [], text
    while fence in rest:
        rest = rest[rest.find(fence) + len(fence):]
        end = rest.find("```")
        chunks.append(rest if end < 0 else rest[:end])
        rest = "" if end < 0 else rest[end + 3:]
    return "\n".join(chunks).strip() if chunks else text


def line_indents(lines: Sequence[str]) -> list[int]:
    """Indentation per line; blank lines and one-character lines (a lone `)`) inherit the previous
    line's, so a closing bracket or a blank line inside a block counts as part of that block."""
    indents, current = [], 0
    for line in lines:
        stripped = line.lstrip()
        if len(stripped) > 1:
            current = len(line) - len(stripped)
        indents.append(current)
    return indents


def sampleable_lines(lines: Sequence[str]) -> list[int]:
    """Lines that can be sampled for deletion: code lines, minus the continuation lines of
    multi-line UPPER_CASE global definitions."""
    code_lines = [i for i, line in enumerate(lines)
                  if line.strip() and not line.lstrip().startswith("#")]
    out, open_bracket = [], None
    for i in code_lines:
        line = lines[i].rstrip()
        if open_bracket is None:
            out.append(i)
            head = line[: line.find("=")] if "=" in line else ""
            if head and head.replace(" ", "").isupper() and line[-1] in "([":
                open_bracket = line[-1]
        elif line[-1] == {"(": ")", "[": "]"}[open_bracket]:
            open_bracket = None
    return out


def line_weights(indents: Sequence[int], indent_bias: float | None = 1.0) -> list[float]:
    unit = next((i for i in indents if i > 0), 1)
    if indent_bias is None:
        return [1.0] * len(indents)
    return [1.0 if li == 0 else li / unit * indent_bias for li in indents]


def string_continuations(program: str) -> dict[int, list[int]]:
    """First line of each multi-line string literal (docstrings included) -> its other lines:
    with atomic strings those lines are never sampled alone and go wherever the first one goes,
    so no intermediate state holds a fragment of prose as code."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return {}
    out: dict[int, list[int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and (isinstance(node, ast.JoinedStr)
                                                                or isinstance(node.value, (str, bytes))):
            first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
            if last > first:
                out.setdefault(first, [])
                out[first] = sorted(set(out[first]) | set(range(first + 1, last + 1)))
    return out


def _children(target: int, indents: Sequence[int]) -> list[int]:
    out = []
    for j in range(target + 1, len(indents)):
        if indents[j] <= indents[target]:
            break
        out.append(j)
    return out


def _is_code_free(lines: Sequence[str], state: Sequence[int]) -> bool:
    return all(not lines[i].strip() or lines[i].lstrip().startswith("#") for i in state)


# ---------------------------------------------------------------------------------------------
# Backward sampling


@dataclass(frozen=True)
class LintSeqOptions:
    errors: tuple[str, ...] = option(OFFICIAL_ERRORS, help="pylint categories / message ids that count as "
                                                           "errors (official: E,F,I,W0311,W0231).")
    indent: str = option("auto", choices=("auto", "official"),
                         help="auto: lint each program with its own indentation unit; official: pylint's 4 "
                              "spaces.")
    indent_bias: float | None = option(1.0, help="Weight of a line's indentation when choosing lines to delete.")
    max_steps: int | None = option(None, help="Deletions per sequence at most (the official code stops after "
                                              "512).")
    # Multi-line strings as one unit (their lines come and go together); the official code samples
    # their lines one by one, so a docstring's lines turn up as code in intermediate states.
    atomic_strings: bool = option(False, flags=("--atomic-strings",),
                                  help="Multi-line strings (docstrings) as one unit: their lines arrive in one "
                                       "edit. Default: line by line, as the official code samples them.")

    def __post_init__(self) -> None:
        if self.indent not in ("auto", "official"):
            raise ValueError(f"indent must be 'auto' or 'official', got {self.indent!r}")
        LintConfig(errors=tuple(self.errors))  # raises on an unknown category or id

    def lint_config(self, program: str) -> LintConfig:
        unit = detect_indent(program) if self.indent == "auto" else "    "
        return LintConfig(errors=tuple(self.errors), indent_string=unit)


class SequenceError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def sample_states(program: str, rng: random.Random, linter: Linter,
                  options: LintSeqOptions = LintSeqOptions()) -> tuple[list[str], list[list[int]]]:
    """Backward sampling: the program's lines and the deletion states, full program first,
    empty program last (each a sorted list of line indices)."""
    lines = program.split("\n")
    indents = line_indents(lines)
    attached = string_continuations(program) if options.atomic_strings else {}
    inside = {j for rest in attached.values() for j in rest}
    for first, rest in attached.items():
        for j in rest:  # a string's later lines (prose at any indentation) belong to its first line's block
            indents[j] = indents[first]
    weights = line_weights(indents, options.indent_bias)
    remaining = [i for i in sampleable_lines(lines) if i not in inside]
    alive = [True] * len(lines)
    states = [list(range(len(lines)))]
    steps = 0
    while remaining and (options.max_steps is None or steps < options.max_steps):
        target = rng.choices(remaining, weights=[weights[i] for i in remaining])[0]
        step: set[int] = set()
        affected = [target]
        while True:
            grown: set[int] = set()
            todo = list(affected)
            while todo:  # the lines, their indented children and their strings' lines, transitively
                line = todo.pop()
                if line in grown or line in step:
                    continue
                grown.add(line)
                todo.extend(_children(line, indents))
                todo.extend(attached.get(line, ()))
            step.update(grown)
            state = [i for i in range(len(lines)) if alive[i] and i not in step]
            flagged = linter.flagged_lines("\n".join(lines[i] for i in state))
            if not flagged:
                break
            if not state:
                raise SequenceError("error", "the linter flags the empty program")
            affected = [state[n - 1] if 1 <= n <= len(state) else state[-1] for n in flagged]
        for i in step:
            alive[i] = False
        remaining = [i for i in remaining if alive[i]]
        states.append(state)
        steps += 1
    if states[-1]:
        states.append([])
    # A state with no code (only top-level comments or blank lines) would make a content-free
    # first edit; it is folded into the next one.
    kept = [states[0]] + [s for s in states[1:-1] if not _is_code_free(lines, s)] + [states[-1]]
    return lines, kept


def edits_from_states(lines: Sequence[str], states: Sequence[Sequence[int]]) -> list[str]:
    forward = list(reversed(states))
    return [insertion_diff(lines, forward[k], forward[k + 1]) for k in range(len(forward) - 1)]


def verify_sequence(program: str, edits: Sequence[str], linter: Linter) -> list[str]:
    """Problems with an edit sequence (empty list = valid): every hunk an insertion, every state
    before the full program lint-clean, and the edits rebuild `program` exactly."""
    problems: list[str] = []
    lines: list[str] = []
    for k, diff in enumerate(edits):
        try:
            apply_edit(lines, diff, k)
        except ValueError as exc:
            return [str(exc)]
        text = "\n".join(lines)
        if k < len(edits) - 1 and not linter.is_clean(text):
            problems.append(f"state after edit {k} is not lint-clean: lines {linter.flagged_lines(text)}")
    if "\n".join(lines) != program:
        problems.append("resolving the edits does not rebuild the program")
    return problems


# ---------------------------------------------------------------------------------------------
# Programs -> edit sequences, in parallel


_LINTERS: dict[LintConfig, Linter] = {}


def linter_for(config: LintConfig) -> Linter:
    """This process's linter for `config` (pylint is set up once per process and config)."""
    linter = _LINTERS.get(config)
    if linter is None:
        linter = _LINTERS[config] = Linter(config)
    return linter


def sequence_rng(seed: int, index: int, sequence: int) -> random.Random:
    """The RNG of one sequence: fixed by (seed, record index, sequence index) alone, so results do
    not depend on the worker count or on which worker runs which record."""
    return random.Random(f"lintseq:{seed}:{index}:{sequence}")


def lintseq_program(program: str, s: int, seed: int, index: int = 0,
                    options: LintSeqOptions = LintSeqOptions()) -> dict[str, Any]:
    """Up to `s` verified edit sequences of one canonical program.

    Returns {"sequences": [(sequence index, edits), ...], "rejects": [{"sequence", "kind",
    "reason"}], "program_clean": bool | None, "lint": lint counters for this program}.
    """
    result: dict[str, Any] = {"sequences": [], "rejects": [], "program_clean": None, "lint": {}}

    def reject_all(kind: str, reason: str) -> dict[str, Any]:
        result["rejects"] = [{"sequence": j, "kind": kind, "reason": reason} for j in range(s)]
        return result

    all_lines = program.split("\n")
    if _is_code_free(all_lines, range(len(all_lines))):
        return reject_all("invalid_input", "no code in the program")
    syntax = syntax_error_message(program)
    if syntax is not None:
        detail = re.sub(r" \([^()]*\)'$", "", syntax.msg.removeprefix("Parsing failed: '"))
        return reject_all("invalid_input", f"syntax error in the input at line {syntax.line}: {detail}")
    if DIFF_TOKEN in program:
        return reject_all("invalid_input", f"the program contains the edit separator {DIFF_TOKEN}")

    linter = linter_for(options.lint_config(program))
    before = linter.stats.as_dict()
    try:
        result["program_clean"] = linter.is_clean(program)
        for j in range(s):
            try:
                lines, states = sample_states(program, sequence_rng(seed, index, j), linter, options)
                edits = edits_from_states(lines, states)
                problems = verify_sequence(program, edits, linter)
            except SequenceError as exc:
                result["rejects"].append({"sequence": j, "kind": exc.kind, "reason": str(exc)})
                continue
            if problems:
                result["rejects"].append({"sequence": j, "kind": "verify_failed",
                                          "reason": "; ".join(problems[:3])})
            else:
                result["sequences"].append((j, edits))
    except Exception as exc:  # an astroid/pylint crash on an odd program: report it, keep going
        done = {j for j, _ in result["sequences"]} | {r["sequence"] for r in result["rejects"]}
        result["rejects"].extend({"sequence": j, "kind": "error", "reason": f"{type(exc).__name__}: {exc}"}
                                 for j in range(s) if j not in done)
    after = linter.stats.as_dict()
    result["lint"] = {k: after[k] - before[k] for k in after}
    return result


def _run_chunk(chunk: list[tuple[int, str]], s: int, seed: int,
               options: LintSeqOptions) -> list[tuple[int, dict[str, Any]]]:
    return [(index, lintseq_program(program, s, seed, index, options)) for index, program in chunk]


@dataclass
class LintSeqStats:
    programs: int = 0
    sequences_requested: int = 0
    sequences: int = 0
    edits: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    programs_not_clean: int = 0
    lint: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rejects: list[dict[str, Any]] = field(default_factory=list)  # {"index", "sequence", "kind", "reason"}

    def as_dict(self) -> dict[str, Any]:
        return {"programs": self.programs, "sequences_requested": self.sequences_requested,
                "sequences": self.sequences, "edits": self.edits, "rejected": dict(self.rejected),
                "programs_not_clean": self.programs_not_clean, "lint": dict(self.lint),
                "seconds": round(self.seconds, 3),
                "sequences_per_second": round(self.sequences / self.seconds, 3) if self.seconds else None}


def program_of(record: dict, field_name: str) -> tuple[str, bool]:
    """The canonical program in `record[field_name]`, and whether it came out of a markdown fence."""
    text = str(record[field_name])
    code = extract_code(text)
    return canonical_program(code), code != text


def choose_field(record: dict, field_name: str | None) -> str:
    if field_name is not None:
        return field_name
    for name in PROGRAM_FIELDS:
        if name in record:
            return name
    return PROGRAM_FIELDS[0]


def lintseq_records(records: Sequence[dict], field: str | None = None, s: int = 5, seed: int = 0,
                    workers: int = 1, options: LintSeqOptions = LintSeqOptions(),
                    progress: Any = None) -> tuple[list[dict], LintSeqStats]:
    """LintSeq over records: one output record per verified sequence, in input order: the input
    record plus `edits` (list of diffs, empty -> full program) and `lintseq` = {index, sequence,
    seed[, program]} (`program` only when it was extracted from a markdown fence).

    `field`: which field holds the program (None: the first of code/completion/response present).
    Rejected sequences are not in the output; `stats.rejects` lists each with its reason.
    `progress`: optional callable(n) called as programs finish.
    Raises KeyError("record N has no field 'F'") when a record lacks the field.
    """
    started = time.perf_counter()
    s = int(s)
    stats = LintSeqStats(programs=len(records), sequences_requested=len(records) * s)
    items: list[tuple[int, str]] = []
    extracted: dict[int, str] = {}
    for i, rec in enumerate(records):
        name = choose_field(rec, field)
        if name not in rec or rec[name] is None:
            raise KeyError(f"record {i} has no field '{name}'")
        program, was_extracted = program_of(rec, name)
        if was_extracted:
            extracted[i] = program
        items.append((i, program))

    results: dict[int, dict[str, Any]] = {}
    chunk_size = max(1, min(8, len(items) // max(1, workers * 4)))
    chunks = [items[k:k + chunk_size] for k in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            for index, res in _run_chunk(chunk, s, seed, options):
                results[index] = res
                if progress:
                    progress(1)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # forkserver/spawn: the caller may have torch loaded, which makes fork slow and unsafe.
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_chunk, chunk, s, seed, options) for chunk in chunks]
            for fut in as_completed(futures):
                for index, res in fut.result():
                    results[index] = res
                    if progress:
                        progress(1)

    out: list[dict] = []
    for i, rec in enumerate(records):
        res = results[i]
        if res["program_clean"] is False:
            stats.programs_not_clean += 1
        for k, v in res["lint"].items():
            stats.lint[k] = stats.lint.get(k, 0) + v
        for rej in res["rejects"]:
            stats.rejected[rej["kind"]] = stats.rejected.get(rej["kind"], 0) + 1
            stats.rejects.append({"index": i, **rej})
        for j, edits in res["sequences"]:
            meta: dict[str, Any] = {"index": i, "sequence": j, "seed": seed}
            if i in extracted:
                meta["program"] = extracted[i]
            out.append({**rec, "edits": edits, "lintseq": meta})
            stats.sequences += 1
            stats.edits += len(edits)
    stats.seconds = time.perf_counter() - started
    return out, stats
