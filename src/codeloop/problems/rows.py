"""Rows of a public dataset, from a local file (JSONL, JSON, Parquet) or a Hugging Face dataset id.

Every row comes with `where` (``file.jsonl:12``, ``file.json[3]``, ``file.parquet row 7``,
``hf:owner/name[split] row 7``) so that a loader's error names the exact place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from codeloop.errors import UserError
from codeloop.records import iter_jsonl

FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet")
_MISSING = object()


def is_file_source(source: str) -> bool:
    """A source is a local file when it exists or looks like one (has a data-file suffix or a
    path separator that is not an `owner/name` dataset id)."""
    if Path(source).exists():
        return True
    if source.lower().endswith(FILE_SUFFIXES):
        return True
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def iter_file_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each record of a JSONL(.gz), JSON (a list of objects) or Parquet file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError("file not found", str(p))
    if p.is_dir():
        raise UserError("is a folder; give a .jsonl, .json or .parquet file", str(p))
    name = p.name.lower()
    if name.endswith(".parquet"):
        yield from _parquet_rows(p)
        return
    if name.endswith((".json", ".json.gz")) or (not name.endswith((".jsonl", ".jsonl.gz"))
                                                and _first_char(p) == "["):
        yield from _json_rows(p)
        return
    for lineno, obj in iter_jsonl(p):
        yield f"{p}:{lineno}", obj


def _first_char(p: Path) -> str:
    try:
        with open(p, "rb") as fh:
            return fh.read(4096).decode("utf-8", "ignore").lstrip()[:1]
    except OSError as exc:
        raise UserError(f"cannot read file: {exc}", str(p)) from None


def _json_rows(p: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import gzip

    try:
        if p.name.lower().endswith(".gz"):
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        else:
            with open(p, encoding="utf-8") as fh:
                data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", str(p)) from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise UserError(f"cannot read file: {exc}", str(p)) from None
    if isinstance(data, dict):
        # One problem per file (APPS-style) or {split: [...]} / {"data": [...]}.
        lists = [v for v in data.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        data = lists[0] if len(lists) == 1 and len(data) == 1 else [data]
    if not isinstance(data, list):
        raise UserError(f"expected a JSON list of objects, got {type(data).__name__}", str(p))
    for i, obj in enumerate(data):
        where = f"{p}[{i}]"
        if not isinstance(obj, dict):
            raise UserError(f"expected a JSON object, got {type(obj).__name__}", where)
        yield where, obj


def _parquet_rows(p: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with `datasets`
        from codeloop.errors import MissingDependency

        raise MissingDependency("reading Parquet files", "pyarrow") from None
    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise UserError(f"cannot read Parquet file: {exc}", str(p)) from None
    i = 0
    for batch in pf.iter_batches(batch_size=256):
        for row in batch.to_pylist():
            yield f"{p} row {i}", row
            i += 1


def hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def iter_hub_rows(set_name: str, dataset_id: str, config: str | None,
                  splits: list[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(hub split, where, row) for each row of the named splits of a Hugging Face dataset."""
    if hub_offline():
        raise UserError(f"'{set_name}' loads the Hugging Face dataset '{dataset_id}', but the hub is offline "
                        f"(HF_HUB_OFFLINE is set). Download the data and pass a local file: "
                        f"{set_name}:PATH (.jsonl, .json or .parquet)", "--problems")
    try:
        import datasets
    except ImportError:  # pragma: no cover - a core dependency
        from codeloop.errors import MissingDependency

        raise MissingDependency("loading Hugging Face datasets", "datasets") from None
    for split in splits:
        try:
            ds = datasets.load_dataset(dataset_id, config, split=split)
        except Exception as exc:  # network, unknown id, unknown split: all user-facing
            raise UserError(f"could not load Hugging Face dataset '{dataset_id}' split '{split}': "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
                            f"Pass a local file instead: {set_name}:PATH", "--problems") from None
        for i, row in enumerate(ds):
            yield split, f"hf:{dataset_id}[{split}] row {i}", dict(row)


def need(row: dict[str, Any], name: str, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """row[name], or a UserError naming the place and the field."""
    value = row.get(name, _MISSING)
    if value is _MISSING or value is None:
        raise UserError(f"missing required field '{name}'", where)
    if kind is not None and not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"field '{name}' must be {want}, got {type(value).__name__}", where)
    return value


def json_field(row: dict[str, Any], name: str, where: str, default: Any = _MISSING) -> Any:
    """A field that the public format stores as a JSON string (APPS), decoded; lists/dicts pass."""
    value = row.get(name)
    if value is None or value == "":
        if default is not _MISSING:
            return default
        raise UserError(f"missing required field '{name}'", where)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"field '{name}' is not valid JSON ({exc.msg} at column {exc.colno})", where) from None
    return value


def split_from_filename(path: str) -> str | None:
    """The split a file holds according to its name (``test.jsonl``, ``valid-00000-of-00001.parquet``)."""
    import re

    stem = Path(path).name.lower()
    for token in re.split(r"[^a-z]+", stem):
        if token in ("train", "test"):
            return token
        if token in ("valid", "validation", "val", "dev"):
            return "valid"
    return None


def file_split(path: str, split: str | None, set_name: str) -> str | None:
    """The split that the rows of a local file belong to.

    A data file holds one split; its name says which (``test.jsonl``). Asking for another split
    is an error rather than a silently empty or mislabelled set; a file whose name says nothing
    takes the split the user asked for.
    """
    named = split_from_filename(path)
    if split is None or named is None:
        return split or named
    if ("valid" if split in ("valid", "validation") else split) != named:
        raise UserError(f"{set_name}: the file holds the '{named}' split (by its name); asked for split "
                        f"'{split}'. Pass the {split} file instead", path)
    return split
