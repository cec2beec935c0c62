"""Training records: read and check SFT records and DPO pairs, and put them in curriculum order.

SFT records: ``{"prompt", "completion"}`` (``instruction``/``response`` accepted as aliases).
DPO pairs: ``{"prompt", "chosen", "rejected"}`` plus optional ``bucket``/``order`` (curriculum) and
``ref_chosen_logps``/``ref_rejected_logps`` (reference log-probs computed elsewhere).
Every mistake names the file and line (or the record index) and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable, Sequence

from codeloop.errors import UserError
from codeloop.records import iter_jsonl

SFT_ALIASES = {"prompt": ("prompt", "instruction"), "completion": ("completion", "response")}
DPO_FIELDS = ("prompt", "chosen", "rejected")
DPO_OPTIONAL = ("bucket", "order", "ref_chosen_logps", "ref_rejected_logps")


def _numbered(source: Any) -> list[tuple[str, dict[str, Any]]]:
    """(where, dict) for each record of a path or an in-memory list (dicts or dataclasses)."""
    if isinstance(source, (str, os.PathLike)):
        return [(f"{source}:{lineno}", obj) for lineno, obj in iter_jsonl(source)]
    out = []
    for i, rec in enumerate(source):
        if dataclasses.is_dataclass(rec) and not isinstance(rec, type):
            rec = dataclasses.asdict(rec)
        if not isinstance(rec, dict):
            raise UserError(f"expected a dict or a record, got {type(rec).__name__}", f"record {i}")
        out.append((f"record {i}", rec))
    return out


def _text(rec: dict[str, Any], names: Sequence[str], where: str, field: str) -> str:
    for name in names:
        if name in rec and rec[name] is not None:
            value = rec[name]
            if not isinstance(value, str):
                raise UserError(f"field '{name}' must be a string, got {type(value).__name__}", where)
            return value
    alias = f" (or '{names[1]}')" if len(names) > 1 else ""
    raise UserError(f"missing required field '{field}'{alias}", where)


def load_sft_records(source: Any) -> list[dict[str, Any]]:
    """Prompt/completion dicts from a JSONL path or a list; extra fields `bucket`/`order` are kept."""
    rows = []
    for where, rec in _numbered(source):
        prompt = _text(rec, SFT_ALIASES["prompt"], where, "prompt")
        completion = _text(rec, SFT_ALIASES["completion"], where, "completion")
        if not completion.strip():
            raise UserError("field 'completion' is empty: there is nothing to learn", where)
        row = {"prompt": prompt, "completion": completion}
        for key in ("bucket", "order"):
            if rec.get(key) is not None:
                row[key] = _number(rec[key], where, key)
        rows.append(row)
    if not rows:
        raise UserError("no training records", str(source) if isinstance(source, (str, os.PathLike)) else None)
    return rows


def load_dpo_pairs(source: Any) -> list[dict[str, Any]]:
    """Prompt/chosen/rejected dicts from a JSONL path or a list of dicts/`Pair` records."""
    rows = []
    for where, rec in _numbered(source):
        row = {name: _text(rec, (name,), where, name) for name in DPO_FIELDS}
        if row["chosen"] == row["rejected"]:
            raise UserError("'chosen' and 'rejected' are identical: the pair carries no preference", where)
        for key in DPO_OPTIONAL:
            if rec.get(key) is not None:
                row[key] = _number(rec[key], where, key)
        rows.append(row)
    if not rows:
        raise UserError("no preference pairs", str(source) if isinstance(source, (str, os.PathLike)) else None)
    has_ref = ["ref_chosen_logps" in r and "ref_rejected_logps" in r for r in rows]
    if any(has_ref) and not all(has_ref):
        first = has_ref.index(False)
        raise UserError("some pairs carry 'ref_chosen_logps'/'ref_rejected_logps' and this one does not: "
                        "give reference log-probs for every pair or for none", f"pair {first}")
    return rows


def _number(value: Any, where: str, key: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"field '{key}' must be a number, got {value!r}", where)
    return value


def fingerprint(rows: Iterable[dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Curriculum


def curriculum_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows sorted by their ``order``. Training never orders by ``bucket`` itself: which bucket
    comes first (the direction) is the method's choice, made once where the order is written."""
    missing = [i for i, r in enumerate(rows) if r.get("order") is None]
    if missing:
        hint = ("they have 'bucket' but no 'order': run the curriculum step (`codeloop curriculum PAIRS "
                "--out ORDERED`, or a `curriculum` stage in a recipe) to order them"
                if any(rows[i].get("bucket") is not None for i in missing) else "it comes from the curriculum step")
        raise UserError(f"curriculum training needs 'order' on every record ({len(missing)} of {len(rows)} lack it); "
                        + hint, f"record {missing[0]}")
    return sorted(rows, key=lambda r: r["order"])
