"""Record types (Problem, Sample, Result, Pair) and JSON Lines I/O.

One schema everywhere (see ARCHITECTURE.md). Records are plain dataclasses; unknown keys in a
file are kept in ``meta`` / ``extra`` so that nothing a user added is lost on a round trip.
Reading never fails with a bare KeyError: a malformed line or a missing required field names
the file, the line and the field.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, TypeVar

from codeloop.errors import UserError

STATUSES = ("passed", "failed", "timeout", "memory", "error", "killed")


@dataclass
class Problem:
    task_id: str
    prompt: str  # completion-style: imports + signature + docstring
    entry_point: str = ""
    description: str = ""  # natural language statement of the task
    test: str = ""  # Python test code: HumanEval `check(candidate)` or MBPP asserts
    io_tests: list[dict[str, str]] = field(default_factory=list)  # [{input, output}] for stdin/stdout
    canonical_solution: str = ""  # completion that follows `prompt` (function problems) or full program
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("task_id", "prompt")

    @property
    def kind(self) -> str:
        """'stdio' for stdin/stdout problems, 'function' for problems judged by test code."""
        return "stdio" if self.io_tests and not self.test else "function"


@dataclass
class Sample:
    task_id: str
    sample_id: int = 0
    prompt: str = ""
    completion: str = ""
    code: str = ""  # the program that is executed (prompt + completion, sanitized)
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    logprob: float | None = None
    n_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("task_id",)


@dataclass
class Result(Sample):
    status: str = "error"
    passed_tests: int = 0
    total_tests: int = 0
    runtime_s: float = 0.0
    detail: str = ""

    REQUIRED = ("task_id", "status")

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Pair:
    task_id: str
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    chosen_status: str = ""
    rejected_status: str = ""
    distance: float | None = None
    bucket: int | None = None
    order: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED = ("task_id", "prompt", "chosen", "rejected")


R = TypeVar("R")


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def from_dict(cls: type[R], data: dict[str, Any], where: str = "") -> R:
    """Build a record of type `cls` from a dict; unknown keys go to `meta`/`extra`."""
    if not isinstance(data, dict):
        raise UserError(f"expected a JSON object, got {type(data).__name__}", where or None)
    for name in cls.REQUIRED:  # type: ignore[attr-defined]
        if name not in data or data[name] is None:
            raise UserError(f"missing required field '{name}'", where or None)
    names = _field_names(cls)
    known = {k: v for k, v in data.items() if k in names}
    unknown = {k: v for k, v in data.items() if k not in names}
    if "task_id" in known:
        known["task_id"] = str(known["task_id"])
    bag = "meta" if "meta" in names else "extra" if "extra" in names else None
    if unknown and bag:
        known[bag] = {**(known.get(bag) or {}), **unknown}
    try:
        rec = cls(**known)
    except TypeError as exc:  # pragma: no cover - defensive; fields are filtered above
        raise UserError(str(exc), where or None) from None
    if isinstance(rec, Result) and rec.status not in STATUSES:
        raise UserError(f"field 'status' must be one of {', '.join(STATUSES)}, got {rec.status!r}",
                        where or None)
    return rec


def to_dict(record: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(record):
        return dataclasses.asdict(record)
    if isinstance(record, dict):
        return record
    raise TypeError(f"cannot serialise {type(record).__name__}")


# ---------------------------------------------------------------------------------------------
# JSON Lines


def _open_text(path: Path, mode: str, gz: bool | None = None):
    if gz if gz is not None else str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, mode.replace("t", "") + "b"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; errors name file and line."""
    p = Path(path)
    if not p.exists():
        raise UserError("file not found", str(p))
    try:
        with _open_text(p, "rt") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"invalid JSON ({exc.msg} at column {exc.colno})",
                                    f"{p}:{lineno}") from None
                if not isinstance(obj, dict):
                    raise UserError(f"expected a JSON object, got {type(obj).__name__}", f"{p}:{lineno}")
                yield lineno, obj
    except (gzip.BadGzipFile, UnicodeDecodeError, EOFError) as exc:
        raise UserError(f"cannot read file: {exc}", str(p)) from None


def read_jsonl(path: str | os.PathLike[str], cls: type[R] | None = None) -> list[Any]:
    """Read a JSONL(.gz) file into dicts, or into records of type `cls`."""
    out = []
    for lineno, obj in iter_jsonl(path):
        out.append(from_dict(cls, obj, f"{path}:{lineno}") if cls is not None else obj)
    return out


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file atomically: temp file in the same folder, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps(record: Any) -> str:
    return json.dumps(to_dict(record), ensure_ascii=False)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) atomically; ``.gz`` compresses. Returns the count."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    n = 0
    try:
        with _open_text(Path(tmp), "wt", gz=p.suffix == ".gz") as fh:
            for rec in records:
                fh.write(dumps(rec) + "\n")
                n += 1
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n


def cut_torn_tail(path: str | os.PathLike[str]) -> None:
    """Cut a partly written last line (a kill mid-write) off a JSONL file, keeping whole records."""
    p = Path(path)
    if not p.exists():
        return
    data = p.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(p, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


class JsonlAppender:
    """Append records to a JSONL file one line at a time, flushed, for resumable stages.

    A partly written last line (a kill mid-write) is cut off on open, so a resumed stage never
    reads half a record.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: Any) -> None:
        self._fh.write(dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
