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
from codeloop.records import iter_records, records_format

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


# Where a data file a problem set knows by name may lie on this machine, in this order. `../shared/data`
# is the workplace's copy (provenance in its README); CODELOOP_DATA lets a user point anywhere.
DATA_FOLDERS_HELP = "$CODELOOP_DATA, ../shared/data or shared/data"


def local_data_file(filename: str) -> Path | None:
    """The first `filename` found in $CODELOOP_DATA, ../shared/data, shared/data; None when absent."""
    for folder in (os.environ.get("CODELOOP_DATA"), "../shared/data", "shared/data"):
        if folder and (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def iter_file_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) for each record of a JSONL(.gz), JSON (a list of objects), Parquet file or a
    `datasets` save_to_disk folder: codeloop's one records reader (`codeloop.records.iter_records`)."""
    p = Path(path).expanduser()
    json_list = records_format(p) == "json"
    for n, obj in iter_records(p):
        yield (f"{p}[{n - 1}]" if json_list else f"{p}:{n}"), obj


def hub_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def iter_hub_rows(set_name: str, dataset_id: str, config: str | None, splits: list[str],
                  local_file: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(hub split, where, row) for each row of the named splits of a Hugging Face dataset.
    `local_file`: the file name a local copy would have (`local_data_file`), for the offline message."""
    if hub_offline():
        local = f", or put a copy named {local_file} in {DATA_FOLDERS_HELP}" if local_file else ""
        raise UserError(f"'{set_name}' loads the Hugging Face dataset '{dataset_id}', but the hub is offline "
                        f"(HF_HUB_OFFLINE is set). Download the data and pass a local file: "
                        f"{set_name}:PATH (.jsonl, .json or .parquet){local}", "--problems")
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
