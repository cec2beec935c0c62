"""CDAS's records in and out: instruction/response data (fields detected and checked on read), the
selection result, and the kept records + stats written next to each other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codeloop.errors import UserError
from codeloop.records import atomic_write_text, in_format, iter_records, write_jsonl

# Tried in order when no field names are given: the first pair present in the first record wins.
FIELD_PAIRS = (("instruction", "response"), ("prompt", "completion"))


@dataclass
class InstructionData:
    """Records with the names of their instruction and response fields (checked on read)."""

    records: list[dict[str, Any]]
    instruction_field: str
    response_field: str
    source: str = ""

    @property
    def instructions(self) -> list[str]:
        return [r[self.instruction_field] for r in self.records]

    @property
    def responses(self) -> list[str]:
        return [r[self.response_field] for r in self.records]


def detect_fields(first: dict[str, Any], instruction_field: str | None, response_field: str | None,
                  where: str) -> tuple[str, str]:
    """Field names given, or the first pair of FIELD_PAIRS the first record has."""
    if instruction_field and response_field:
        return instruction_field, response_field
    for inst, resp in FIELD_PAIRS:
        if (instruction_field in (None, inst)) and (response_field in (None, resp)) and inst in first and resp in first:
            return inst, resp
    if instruction_field and not response_field:
        for _, resp in FIELD_PAIRS:
            if resp in first:
                return instruction_field, resp
    if response_field and not instruction_field:
        for inst, _ in FIELD_PAIRS:
            if inst in first:
                return inst, response_field
    pairs = " or ".join(f"{a}/{b}" for a, b in FIELD_PAIRS)
    have = ", ".join(sorted(first)) or "none"
    raise UserError(f"no instruction/response fields found (looked for {pairs}; the record has: {have}); "
                    "name them with --instruction-field/--response-field", where)


def check_records(numbered: Sequence[tuple[str, dict[str, Any]]], instruction_field: str | None = None,
                  response_field: str | None = None, source: str = "") -> InstructionData:
    """Check every record has string instruction/response fields; `numbered` = (where, record)."""
    if not numbered:
        raise UserError("no records", source or None)
    for where, rec in numbered:
        if not isinstance(rec, dict):
            raise UserError(f"expected a JSON object, got {type(rec).__name__}", where)
    ifield, rfield = detect_fields(numbered[0][1], instruction_field, response_field, numbered[0][0])
    for where, rec in numbered:
        for name, option in ((ifield, "--instruction-field"), (rfield, "--response-field")):
            if name not in rec:
                raise UserError(f"missing field '{name}' (set {option} to name another)", f"{where}: {name}")
            if not isinstance(rec[name], str):
                raise UserError(f"field '{name}' must be a string, got {type(rec[name]).__name__}",
                                f"{where}: {name}")
    return InstructionData([rec for _, rec in numbered], ifield, rfield, source)


def read_instruction_jsonl(path: str | Path, instruction_field: str | None = None,
                           response_field: str | None = None) -> InstructionData:
    p = Path(path)
    numbered = [(f"{p}:{n}", rec) for n, rec in iter_records(p)]  # JSONL, Parquet, a datasets folder...
    return check_records(numbered, instruction_field, response_field, str(p))


@dataclass
@dataclass
class SelectionResult:
    records: list[dict[str, Any]]  # the kept records: every input field plus `ifd` and `cluster`
    stats: dict[str, Any]
    ifd: list[float] | None  # per input record (None for random)
    labels: list[int] | None  # per input record (None unless cdas)
    reasons: list[str]
    embeddings: np.ndarray | None = None

    def selected_mask(self) -> np.ndarray:
        return np.array([r == "kept" for r in self.reasons], dtype=bool)


def stats_path_for(out: str | Path) -> Path:
    """S.jsonl -> S.stats.json (S.jsonl.gz -> S.stats.json)."""
    p = Path(out)
    name = p.name
    for suffix in (".jsonl.gz", ".jsonl", ".json", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".stats.json")


def write_selection(result: SelectionResult, out: str | Path, stats_path: str | Path | None = None,
                    fmt: str = "codeloop") -> Path:
    """The kept records to `out` (atomic; its name says the format) and the stats JSON next to it;
    returns the stats path. `fmt` "trl": prompt/completion records TRL's SFTTrainer takes."""
    write_jsonl(out, in_format(result.records, "sft", fmt, prompt_field=result.stats.get("instruction_field"),
                               completion_field=result.stats.get("response_field")))
    sp = Path(stats_path) if stats_path else stats_path_for(out)
    atomic_write_text(sp, json.dumps(result.stats, indent=2, default=_json_default) + "\n")
    return sp


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(type(x).__name__)
