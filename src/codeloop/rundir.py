"""Run directories (bottom layer: every stage of every layer resumes the same way): `runs/NAME/STAGE/` with resolved config, JSONL shards, metrics, and resume.

A stage folder holds:

    config.yaml        the resolved stage config (what the hash is computed from)
    shard-00000.jsonl  output records, appended and flushed one by one
    shard-00001.jsonl  ... a resumed attempt appends to a new shard, never rewrites an old one
    metrics.json       written atomically when the stage finishes
    _DONE              written last, atomically; holds the config hash

Rules (see README.md, "Run directory and resume"; record files: docs/records.md):
- a stage whose `_DONE` carries the same config hash is skipped;
- a stage killed part-way (no `_DONE`, same hash) resumes: the records already in its shards are
  kept, their keys are reported to the stage so it does only the rest, and a torn last line (a kill
  mid-write) is cut, so nothing is lost or duplicated;
- a stage whose inputs changed under an unchanged config (execution finds that a sample's program
  is not the one its stored verdict judged) is moved aside the same way by the stage itself
  (`move_aside`), which rewrites the records that still hold into a fresh folder: each key is in a
  stage folder once, so every reader sees only current records;
- a stage whose config changed is moved aside to `STAGE.stale-N/` (never deleted) and starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from codeloop.records import JsonlAppender, atomic_write_text, cut_torn_tail, iter_jsonl

DONE_FILE = "_DONE"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StageState:
    status: str  # "done" (skip), "resume" (partial outputs kept), "fresh"
    records: int = 0


class StageDir:
    """One stage's folder. Use `open(config)` then `writer()` / `finish(metrics)`."""

    def __init__(self, path: Path, key: Callable[[dict[str, Any]], Any] | None = None):
        self.path = Path(path)
        self.key = key or (lambda r: (r.get("task_id"), r.get("sample_id")))
        self.hash: str | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return (self.path / DONE_FILE).exists()

    def done_hash(self) -> str | None:
        f = self.path / DONE_FILE
        if not f.exists():
            return None
        return json.loads(f.read_text()).get("config_hash")

    def _saved_hash(self) -> str | None:
        f = self.path / CONFIG_FILE
        if not f.exists():
            return None
        saved = yaml.safe_load(f.read_text()) or {}
        return saved.get("_config_hash")

    def open(self, config: dict[str, Any]) -> StageState:
        """Prepare the folder for `config`; returns whether to skip, resume or start fresh."""
        self.hash = config_hash(config)
        if self.path.exists():
            if self.done_hash() == self.hash:
                return StageState("done", sum(1 for _ in self.iter_records()))
            if self._saved_hash() not in (None, self.hash):
                from codeloop.console import warn

                aside = self.move_aside()
                warn(f"{self.path.name}: its settings are not those of the earlier run here (changed, or a "
                     f"step whose settings changed shape); that work is kept in {aside.name}/ and this runs anew")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG_FILE,
                          yaml.safe_dump({**config, "_config_hash": self.hash}, sort_keys=False))
        n = sum(1 for _ in self.iter_records())
        return StageState("resume" if n else "fresh", n)

    def move_aside(self) -> Path:
        """Rename the folder to `STAGE.stale-N/` (never deleted); returns the new path."""
        i = 1
        while (aside := self.path.with_name(f"{self.path.name}.stale-{i}")).exists():
            i += 1
        os.replace(self.path, aside)
        return aside

    # -- records -------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.path.glob("shard-*.jsonl"))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """All complete records in the shards, each key once (first occurrence wins)."""
        seen: set[Any] = set()
        for shard in self.shards():
            cut_torn_tail(shard)
            for _, rec in iter_jsonl(shard):
                k = self.key(rec)
                if k in seen:
                    continue
                seen.add(k)
                yield rec

    def records(self) -> list[dict[str, Any]]:
        return list(self.iter_records())

    def done_keys(self) -> set[Any]:
        return {self.key(r) for r in self.iter_records()}

    def writer(self) -> JsonlAppender:
        """An appender on a new shard (an earlier attempt's shards are never rewritten)."""
        idx = len(self.shards())
        return JsonlAppender(self.path / f"shard-{idx:05d}.jsonl")

    def reopen(self) -> None:
        """Mark a finished stage unfinished again (its records are kept) before it adds records."""
        (self.path / DONE_FILE).unlink(missing_ok=True)

    # -- finishing -----------------------------------------------------------------------------
    def finish(self, metrics: dict[str, Any] | None = None) -> None:
        """Write metrics.json then _DONE, each atomically; _DONE last marks the stage complete."""
        if metrics is not None:
            self.write_metrics(metrics)
        atomic_write_text(self.path / DONE_FILE,
                          json.dumps({"config_hash": self.hash, "finished_at": time.time()}) + "\n")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.path / METRICS_FILE, json.dumps(metrics, indent=2, default=str) + "\n")

    def metrics(self) -> dict[str, Any]:
        f = self.path / METRICS_FILE
        return json.loads(f.read_text()) if f.exists() else {}


class RunDir:
    """`runs/NAME/`: one folder per stage."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def stage(self, name: str, key: Callable[[dict[str, Any]], Any] | None = None) -> StageDir:
        return StageDir(self.root / name, key=key)

    def stages(self) -> list[StageDir]:
        if not self.root.exists():
            return []
        return [StageDir(p) for p in sorted(self.root.iterdir())
                if p.is_dir() and (p / CONFIG_FILE).exists() and ".stale-" not in p.name]
