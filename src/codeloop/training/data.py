"""Training records: read and check SFT records and DPO pairs, and put them in curriculum order.

SFT records, one shape per file (docs/records.md):
- ``{"prompt", "completion"}`` strings (``instruction``/``response`` accepted as aliases), loss on
  the completion; or TRL's conversational prompt-completion (prompt and completion message lists);
- ``{"messages": [{role, content}, ...]}`` (TRL's conversational language modelling): rendered with
  the tokenizer's chat template, loss on the assistant turns;
- ``{"text"}``: language modelling on the whole text.
DPO pairs: ``{"prompt", "chosen", "rejected"}``, strings or TRL's conversational shape (prompt a
message list, chosen/rejected assistant message lists), plus optional ``bucket``/``order``
(curriculum) and ``ref_chosen_logps``/``ref_rejected_logps`` (reference log-probs computed elsewhere).
Files: any format `codeloop.records.iter_records` reads (JSONL, Parquet, a datasets folder...).
Every mistake names the file and line (or the record index) and the field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable, Sequence

from codeloop.errors import UserError
from codeloop.records import iter_records

SFT_ALIASES = {"prompt": ("prompt", "instruction"), "completion": ("completion", "response")}
DPO_FIELDS = ("prompt", "chosen", "rejected")
DPO_OPTIONAL = ("bucket", "order", "ref_chosen_logps", "ref_rejected_logps")


def _numbered(source: Any) -> list[tuple[str, dict[str, Any]]]:
    """(where, dict) for each record of a path or an in-memory list (dicts or dataclasses)."""
    if isinstance(source, (str, os.PathLike)):
        return [(f"{source}:{n}", obj) for n, obj in iter_records(source)]
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


SFT_KINDS = ("prompt-completion", "conversational", "messages", "text")


def _messages(value: Any, where: str, field: str, roles: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """A conversational field: a non-empty list of {role, content} with string values."""
    if not isinstance(value, list) or not value:
        raise UserError(f"field '{field}' must be a non-empty list of {{role, content}} messages", where)
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise UserError(f"field '{field}' item {i} must be a {{role, content}} message with string values", where)
        if roles is not None and m["role"] not in roles:
            raise UserError(f"field '{field}' item {i} has role {m['role']!r}, expected {' or '.join(roles)}", where)
        out.append({"role": m["role"], "content": m["content"]})
    return out


def sft_kind(row: dict[str, Any]) -> str:
    """'messages', 'text' or 'prompt-completion' (conversational when the prompt is a message list)."""
    if "messages" in row:
        return "messages"
    if "text" in row:
        return "text"
    return "conversational" if isinstance(row["prompt"], list) else "prompt-completion"


def _sft_row(rec: dict[str, Any], where: str) -> dict[str, Any]:
    if isinstance(rec.get("edits"), list) and "messages" not in rec:
        raise UserError("a LintSeq record (it carries 'edits'): training on it would learn the original program, "
                        "not the edit sequence. Write SFT records of the edits with `codeloop lintseq --sft` (or "
                        "use the lintseq step's sft.jsonl)", where)
    if rec.get("messages") is not None:
        msgs = _messages(rec["messages"], where, "messages")
        if not any(m["role"] == "assistant" for m in msgs):
            raise UserError("field 'messages' has no assistant turn: there is nothing to learn", where)
        return {"messages": msgs}
    has_prompt = any(rec.get(k) is not None for k in SFT_ALIASES["prompt"])
    if not has_prompt and rec.get("text") is not None:
        text = _text(rec, ("text",), where, "text")
        if not text.strip():
            raise UserError("field 'text' is empty: there is nothing to learn", where)
        return {"text": text}
    if not has_prompt:
        raise UserError("missing required field 'prompt' (or 'instruction'); an SFT record is prompt/completion, "
                        "instruction/response, messages (a conversation) or text", where)
    name = next(k for k in SFT_ALIASES["prompt"] if rec.get(k) is not None)
    if isinstance(rec[name], list):  # TRL's conversational prompt-completion
        prompt = _messages(rec[name], where, name)
        cname = next((k for k in SFT_ALIASES["completion"] if rec.get(k) is not None), "completion")
        completion = _messages(rec.get(cname), where, cname, roles=("assistant",))
        return {"prompt": prompt, "completion": completion}
    prompt = _text(rec, SFT_ALIASES["prompt"], where, "prompt")
    completion = _text(rec, SFT_ALIASES["completion"], where, "completion")
    if not completion.strip():
        raise UserError("field 'completion' is empty: there is nothing to learn", where)
    return {"prompt": prompt, "completion": completion}


def load_sft_records(source: Any) -> list[dict[str, Any]]:
    """SFT rows from a records file or a list: prompt/completion (strings or conversational),
    messages or text, one shape per file; extra fields `bucket`/`order` are kept."""
    rows = []
    first_kind = first_where = None
    for where, rec in _numbered(source):
        row = _sft_row(rec, where)
        kind = sft_kind(row)
        if first_kind is None:
            first_kind, first_where = kind, where
        elif kind != first_kind:
            raise UserError(f"a {kind} record in a file of {first_kind} records (from {first_where}): "
                            "give one shape per file", where)
        for key in ("bucket", "order"):
            if rec.get(key) is not None:
                row[key] = _number(rec[key], where, key)
        rows.append(row)
    if not rows:
        raise UserError("no training records", str(source) if isinstance(source, (str, os.PathLike)) else None)
    return rows


def _pair_part(rec: dict[str, Any], name: str, where: str, conversational: bool) -> Any:
    if not conversational:
        return _text(rec, (name,), where, name)
    if rec.get(name) is None:
        raise UserError(f"missing required field '{name}'", where)
    return _messages(rec[name], where, name, roles=None if name == "prompt" else ("assistant",))


def load_dpo_pairs(source: Any) -> list[dict[str, Any]]:
    """Prompt/chosen/rejected rows from a records file or a list of dicts/`Pair` records: strings,
    or TRL's conversational shape (message lists); one shape per file."""
    rows = []
    first: tuple[bool, str] | None = None
    for where, rec in _numbered(source):
        conversational = isinstance(rec.get("prompt"), list)
        if first is None:
            first = (conversational, where)
        elif conversational != first[0]:
            shape = {True: "conversational (message lists)", False: "standard (strings)"}
            raise UserError(f"a {shape[conversational]} pair in a file of {shape[first[0]]} pairs (from "
                            f"{first[1]}): give one shape per file", where)
        row = {name: _pair_part(rec, name, where, conversational) for name in DPO_FIELDS}
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
        first_missing = has_ref.index(False)
        raise UserError("some pairs carry 'ref_chosen_logps'/'ref_rejected_logps' and this one does not: "
                        "give reference log-probs for every pair or for none", f"pair {first_missing}")
    return rows


def needs_chat_template(rows: list[dict[str, Any]]) -> bool:
    """Whether the rows are conversational (rendered with the tokenizer's chat template)."""
    if not rows:
        return False
    r = rows[0]
    return "messages" in r or isinstance(r.get("prompt"), list)


def check_chat_template(tokenizer: Any, model: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"the records are conversational (message lists), but the tokenizer of '{model}' has no "
                        "chat template to render them: use a model with one (an instruct/chat model), or give "
                        "prompt/completion strings", "model")


def tokenize_messages(tokenizer: Any, messages: list[dict[str, str]]) -> dict[str, list[int]]:
    """One conversation as `input_ids` and a `completion_mask` that is 1 on the assistant turns.

    The whole conversation is rendered with the chat template; an assistant turn's tokens are those
    between the rendering of the turns before it (with the generation prompt) and the rendering
    through it, so any chat template works (no `{% generation %}` markers needed)."""
    from trl.trainer.sft_trainer import common_prefix_length  # the boundary rule TRL uses for prompts

    def ids(msgs: list[dict[str, str]], gen: bool = False) -> list[int]:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    full = ids(messages)
    mask = [0] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = common_prefix_length(ids(messages[:i], gen=True), full) if i else 0
        end = common_prefix_length(ids(messages[: i + 1]), full)
        for t in range(start, end):
            mask[t] = 1
    return {"input_ids": full, "completion_mask": mask}


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


def bucket_ends(buckets: Sequence[Any], batch_size: int, grad_accum: int = 1, world_size: int = 1) -> list[dict[str, Any]]:
    """For records fed in this order (their buckets), the optimizer step after which each run of
    same-bucket records has been trained on: ``[{"step", "buckets", "pairs_seen"}]``, in step order.

    Step s (1-based) trains on the records of micro-batches (s-1)*grad_accum .. s*grad_accum-1, a
    micro-batch being `batch_size` records per process, consecutive records across processes (a
    sequential sampler sharded by accelerate). A batch that straddles two buckets ends the first at
    the step that holds it; buckets ending at the same step share one entry."""
    per_micro = batch_size * world_size
    out: list[dict[str, Any]] = []
    for i, b in enumerate(buckets):
        if i + 1 < len(buckets) and buckets[i + 1] == b:
            continue
        step = (i // per_micro) // grad_accum + 1
        if out and out[-1]["step"] == step:
            out[-1]["buckets"].append(b)
            out[-1]["pairs_seen"] = i + 1
        else:
            out.append({"step": step, "buckets": [b], "pairs_seen": i + 1})
    return out
