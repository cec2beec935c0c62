"""CDAS's records in and out: instruction/response data (read through the SFT formatter, so the pair
is the trained one: pairs.py), the selection result, and the kept records + stats written next to
each other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from codeloop.errors import UserError
from codeloop.methods.codeact.pairs import TrainedPair, formatter_fields, sft_rows, trained_pair
from codeloop.records import atomic_write_text, in_format, iter_records, write_jsonl

# Completes a half-named pair (--instruction-field without --response-field, or the reverse), in the
# SFT formatter's order: prompt before instruction, as training reads them.
FIELD_PAIRS = (("prompt", "completion"), ("instruction", "response"))


@dataclass
class InstructionData:
    """Records with the names of their instruction and response fields (checked on read).

    `rows`: the SFT formatter's rows, one per record, when the pair is the trained one (no field
    named); None when the user named the fields to score, which are then taken as they are."""

    records: list[dict[str, Any]]
    instruction_field: str
    response_field: str
    source: str = ""
    rows: list[dict[str, Any]] | None = None
    places: list[str] | None = None  # each record's `file:LINE`, for mistakes found when pairing

    @property
    def pair_source(self) -> str:
        return "trained" if self.rows is not None else "fields"

    def pairs(self, tokenizer: Any = None) -> list[TrainedPair]:
        """The (instruction, response, query) texts per record: what IFD scores and k-means embeds.
        `tokenizer` renders conversations (the model's chat template, as training does)."""
        if self.rows is None:
            return [TrainedPair(r[self.instruction_field], r[self.response_field], r[self.instruction_field])
                    for r in self.records]
        places = self.places or [f"record {i}" for i in range(len(self.rows))]
        return [trained_pair(row, tokenizer, where) for row, where in zip(self.rows, places)]

    @property
    def instructions(self) -> list[str]:
        return [p.instruction for p in self.pairs()]

    @property
    def responses(self) -> list[str]:
        return [p.response for p in self.pairs()]


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
    """Check the records; `numbered` = (where, record). Without field names every record goes through
    the SFT formatter (the pair is the trained one); named fields must be strings in every record."""
    if not numbered:
        raise UserError("no records", source or None)
    for where, rec in numbered:
        if not isinstance(rec, dict):
            raise UserError(f"expected a JSON object, got {type(rec).__name__}", where)
    if instruction_field is None and response_field is None:
        rows = sft_rows(numbered)
        ifield, rfield = formatter_fields(numbered[0][1])
        return InstructionData([rec for _, rec in numbered], ifield, rfield, source, rows,
                               [where for where, _ in numbered])
    ifield, rfield = detect_fields(numbered[0][1], instruction_field, response_field, numbered[0][0])
    for where, rec in numbered:
        for name, option in ((ifield, "--instruction-field"), (rfield, "--response-field")):
            if name not in rec:
                raise UserError(f"missing field '{name}' (set {option} to name another)", f"{where}: {name}")
            if not isinstance(rec[name], str):
                raise UserError(f"field '{name}' must be a string, got {type(rec[name]).__name__}",
                                f"{where}: {name}")
    trained = formatter_fields(numbered[0][1])
    if (ifield, rfield) != trained:
        from codeloop.console import warn

        # named fields are an explicit choice, but IFD then measures a pair training does not learn
        warn(f"scoring {ifield} -> {rfield}, while SFT training on these records learns {trained[0]} -> "
             f"{trained[1]}; leave --instruction-field/--response-field unset to score the trained pair")
    return InstructionData([rec for _, rec in numbered], ifield, rfield, source)


def read_instruction_jsonl(path: str | Path, instruction_field: str | None = None,
                           response_field: str | None = None) -> InstructionData:
    p = Path(path)
    numbered = [(f"{p}:{n}", rec) for n, rec in iter_records(p)]  # JSONL, Parquet, a datasets folder...
    return check_records(numbered, instruction_field, response_field, str(p))


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
