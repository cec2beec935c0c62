"""LintSeq's edit format: insertion-only unified-diff hunks joined by <|diff|>, resolved back into
programs (strictly for training data, tolerantly for generated text), and the training text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence


DIFF_TOKEN = "<|diff|>"
SEPARATOR = "\n" + DIFF_TOKEN
# The official training text ends with two empty diffs: a generation is complete at this string.
STOP_SEQUENCE = SEPARATOR + SEPARATOR

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


# ---------------------------------------------------------------------------------------------
# Diffs


def insertion_diff(lines: Sequence[str], before: Sequence[int], after: Sequence[int]) -> str:
    """Zero-context unified diff (no file headers) from state `before` to state `after`, both
    sorted line-index lists with `before` a subset of `after`: one hunk per run of new lines,
    formatted as difflib.unified_diff(n=0) formats insertions."""
    present = set(before)
    hunks: list[str] = []
    old_seen = 0
    j = 0
    while j < len(after):
        if after[j] in present:
            old_seen += 1
            j += 1
            continue
        start = j
        while j < len(after) and after[j] not in present:
            j += 1
        count = j - start
        new_range = f"{start + 1}" if count == 1 else f"{start + 1},{count}"
        body = "\n".join("+" + lines[i] for i in after[start:j])
        hunks.append(f"@@ -{old_seen},0 +{new_range} @@\n{body}")
    return "\n".join(hunks)


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    added: list[str]
    removed: list[str]


def parse_hunks(diff: str, strict: bool = True) -> tuple[list[Hunk], int]:
    """Hunks of one zero-context diff, and how many malformed pieces were skipped.

    strict: raise ValueError on anything that is not a well-formed hunk.
    """
    hunks: list[Hunk] = []
    malformed = 0
    current: Hunk | None = None
    bad_piece = False
    for raw in diff.split("\n"):
        m = _HUNK_HEADER.match(raw)
        if m:
            if current is not None:
                hunks.append(current)
            current = Hunk(int(m.group(1)), 1 if m.group(2) is None else int(m.group(2)),
                           int(m.group(3)), 1 if m.group(4) is None else int(m.group(4)), [], [])
            bad_piece = False
            continue
        if current is not None and raw.startswith("+"):
            current.added.append(raw[1:])
        elif current is not None and raw.startswith("-"):
            current.removed.append(raw[1:])
        elif not raw.strip() and current is None:
            continue  # blank text between a separator and the first hunk
        else:
            if strict:
                raise ValueError(f"not part of a unified-diff hunk: {raw!r}")
            if current is not None:
                malformed += 1  # a hunk with a stray line is dropped whole
                current = None
                bad_piece = True
            elif not bad_piece:
                malformed += 1
                bad_piece = True
    if current is not None:
        hunks.append(current)
    return hunks, malformed


def split_edits(text: str) -> list[str]:
    """The edits of a `<|diff|>`-joined text (empty pieces dropped)."""
    pieces = (piece.rstrip("\n") for part in text.split(SEPARATOR) for piece in part.split(DIFF_TOKEN))
    return [piece for piece in pieces if piece.strip()]


def apply_edit(lines: list[str], diff: str, k: int) -> None:
    """Apply edit `k` (one zero-context diff) to `lines` in place; ValueError when it is malformed,
    not an insertion, or its coordinates do not fit the program."""
    hunks, _ = parse_hunks(diff, strict=True)
    if not hunks:
        raise ValueError(f"edit {k} has no hunk")
    inserted = 0
    for h in hunks:
        if h.removed or h.old_len != 0:
            raise ValueError(f"edit {k}: hunk at +{h.new_start} is not an insertion")
        if h.new_len != len(h.added) or h.new_len == 0:
            raise ValueError(f"edit {k}: hunk at +{h.new_start} says {h.new_len} lines, "
                             f"has {len(h.added)}")
        pos = h.new_start - 1
        if h.old_start != pos - inserted or not 0 <= pos <= len(lines):
            raise ValueError(f"edit {k}: hunk @@ -{h.old_start},0 +{h.new_start} @@ does not fit "
                             f"a program of {len(lines) - inserted} lines")
        lines[pos:pos] = h.added
        inserted += len(h.added)


def resolve(edits: Sequence[str] | str) -> str:
    """Apply an insertion-only edit sequence to the empty program; strict (ValueError on any
    malformed, non-insertion or inconsistent hunk). A string is read as `<|diff|>`-joined edits."""
    if isinstance(edits, str):
        edits = split_edits(edits.split(STOP_SEQUENCE)[0])
    lines: list[str] = []
    for k, diff in enumerate(edits):
        apply_edit(lines, diff, k)
    return "\n".join(lines)


@dataclass
class Decoded:
    program: str
    edits: int = 0
    hunks_applied: int = 0
    hunks_malformed: int = 0  # unparseable pieces, non-insertion hunks, positions out of range


def decode_generated_detail(text: str) -> Decoded:
    """Tolerant decoding of a generated completion: everything after the stop sequence is
    ignored, malformed pieces and non-insertion hunks are skipped (counted), insert positions
    past the end append (counted)."""
    text = text.split(STOP_SEQUENCE)[0]
    out = Decoded(program="")
    lines: list[str] = []
    for piece in split_edits(text):
        hunks, malformed = parse_hunks(piece, strict=False)
        out.hunks_malformed += malformed
        if hunks:
            out.edits += 1
        for h in hunks:
            if h.removed or not h.added:
                out.hunks_malformed += 1
                continue
            pos = h.new_start - 1
            if not 0 <= pos <= len(lines):
                out.hunks_malformed += 1
                pos = min(max(pos, 0), len(lines))
            lines[pos:pos] = h.added
            out.hunks_applied += 1
    out.program = "\n".join(lines)
    return out


def decode_generated(text: str) -> str:
    """The program a generated `<|diff|>`-separated completion describes (see decode_generated_detail)."""
    return decode_generated_detail(text).program




# ---------------------------------------------------------------------------------------------
# Training text


def completion_text(edits: Sequence[str], diff_in_prompt: bool = False) -> str:
    """The diff part of the official training text, ending in the stop sequence; with
    `diff_in_prompt` without its first separator (the prompt ends with it)."""
    text = SEPARATOR.join([""] + list(edits) + ["", ""])
    return text[len(SEPARATOR):] if diff_in_prompt else text


def training_text(instruction: str, edits: Sequence[str]) -> str:
    """instruction + "\\n<|diff|>".join([""] + edits + ["", ""]), as in the official code."""
    return instruction + completion_text(edits)


def _instruction_of(record: dict, instruction_field: str | None) -> str:
    if instruction_field is not None:
        if instruction_field not in record:
            raise KeyError(instruction_field)
        return str(record[instruction_field])
    for key in ("instruction", "prompt", "description"):
        if key in record and record[key] is not None:
            return str(record[key])
    raise KeyError("instruction/prompt/description")


def sft_records_from_edits(records: Iterable[dict], instruction_field: str | None = None,
                           diff_in_prompt: bool = True) -> list[dict]:
    """Prompt/completion records for SFT (loss on the completion): prompt = the instruction
    (`instruction_field`, else the first of instruction/prompt/description), completion = the
    edits' diff text ending in STOP_SEQUENCE (the task_id is kept when the record has one).
    The training text is the official one either way; `diff_in_prompt` (default) puts its first
    ``\n<|diff|>`` at the end of the prompt, which is where the test-time prompt ends, so the
    loss falls on the edits and the prompt's tokens are those the model is given at test time.
    Records without `edits` are skipped."""
    out = []
    for rec in records:
        if rec.get("edits"):
            row = {"task_id": rec["task_id"]} if rec.get("task_id") is not None else {}
            instruction = _instruction_of(rec, instruction_field)
            row.update(prompt=instruction + (SEPARATOR if diff_in_prompt else ""),
                       completion=completion_text(rec["edits"], diff_in_prompt))
            out.append(row)
    return out


def sft_records_plain(records: Iterable[dict], field: str = "code",
                      instruction_field: str | None = None, prompt_end: str = "") -> list[dict]:
    """The baseline's prompt/completion records: the same instruction (plus `prompt_end`), the
    plain program (the task_id is kept when the record has one)."""
    out = []
    for r in records:
        row = {"task_id": r["task_id"]} if r.get("task_id") is not None else {}
        row.update(prompt=_instruction_of(r, instruction_field) + prompt_end, completion=str(r[field]))
        out.append(row)
    return out
