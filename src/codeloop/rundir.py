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

from codeloop.errors import UserError
from codeloop.records import JsonlAppender, atomic_write_text, cut_torn_tail, iter_jsonl

DONE_FILE = "_DONE"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
REUSABLE_FILE = "_MOVED_ASIDE"  # in STAGE.stale-N/: moved because the settings changed (may be reused)


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def content_hash(path: str | os.PathLike[str]) -> str | None:
    """What a step's input holds, for its config: a file's sha256, or a folder's (every file's path
    and sha256; a finished step folder by its `_DONE`, which names the config and finish time).
    None when it does not exist. A step rerun on a regenerated input file must not count as done."""
    p = Path(path)
    if p.is_file():
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:16]
    if p.is_dir():
        if (p / DONE_FILE).is_file():
            return config_hash({"done": (p / DONE_FILE).read_text()})
        return config_hash({str(q.relative_to(p)): content_hash(q) for q in sorted(p.rglob("*")) if q.is_file()})
    return None


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

    def open(self, config: dict[str, Any], reuse_stale: bool = True) -> StageState:
        """Prepare the folder for `config`; returns whether to skip, resume or start fresh.

        Work moved aside earlier (`STAGE.stale-N/`) whose config hash is this config's again (a
        setting changed and then changed back) is moved back and reused, not redone."""
        from codeloop.console import console, warn

        self.hash = config_hash(config)
        if self.path.exists():
            if self.done_hash() == self.hash:
                return StageState("done", sum(1 for _ in self.iter_records()))
        if reuse_stale and self._saved_hash() != self.hash:
            earlier = self._matching_stale()
            if earlier is not None:
                aside = self.move_aside(reusable=True) if self.path.exists() else None
                os.replace(earlier, self.path)
                (self.path / REUSABLE_FILE).unlink(missing_ok=True)
                console.print(f"{self.path.name}: reusing the earlier work with these settings from "
                              f"{earlier.name}/" + (f" (the other work is kept in {aside.name}/)" if aside else ""),
                              markup=False)
                if self.done_hash() == self.hash:
                    return StageState("done", sum(1 for _ in self.iter_records()))
        if self.path.exists():
            if self._saved_hash() not in (None, self.hash):
                aside = self.move_aside(reusable=True)
                warn(f"{self.path.name}: its settings are not those of the earlier run here (changed, or a "
                     f"step whose settings changed shape); that work is kept in {aside.name}/ and this runs anew")
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / CONFIG_FILE,
                          yaml.safe_dump({**config, "_config_hash": self.hash}, sort_keys=False))
        n = sum(1 for _ in self.iter_records())
        return StageState("resume" if n else "fresh", n)

    def _matching_stale(self) -> Path | None:
        """The `STAGE.stale-N/` folder whose config hash is this one's (a finished one first)."""
        found: list[tuple[bool, int, Path]] = []
        for p in self.path.parent.glob(f"{self.path.name}.stale-*"):
            n = p.name.rpartition(".stale-")[2]
            if not (p.is_dir() and n.isdigit()):
                continue
            other = StageDir(p, key=self.key)
            if not (p / REUSABLE_FILE).exists():  # moved by its stage (its inputs changed), or --overwrite
                continue
            try:
                if other._saved_hash() != self.hash:
                    continue
            except (OSError, yaml.YAMLError, AttributeError):
                continue
            found.append((other.done_hash() == self.hash, int(n), p))
        return max(found)[2] if found else None

    def move_aside(self, reusable: bool = False) -> Path:
        """Rename the folder to `STAGE.stale-N/` (never deleted); returns the new path. `reusable`:
        moved because the settings changed, so `open` may move it back when they change back (work
        moved aside because its inputs changed, or to start over, is never reused)."""
        i = 1
        while (aside := self.path.with_name(f"{self.path.name}.stale-{i}")).exists():
            i += 1
        if reusable:
            atomic_write_text(self.path / REUSABLE_FILE, json.dumps({"config_hash": self._saved_hash()}) + "\n")
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


# -------------------------------------------------------------------------------------------------
# Output folders and locks: checked before any work, so a mistake costs nothing

def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Refuse an output folder that cannot be one: an existing file, a path under a file, a
    folder that cannot be written. UserError naming `option` (the flag or recipe key)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p} exists and is not a folder (a folder is needed here)", option)
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{probe} is a file, so {p} cannot be a folder", option)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write in folder {probe}: permission denied", option)
    return p


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of an output (a folder or a file): a hidden `.NAME.lock` beside it."""
    p = Path(path)
    return p.parent / f".{p.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def locks_output(param: str = "out", option: str = "--out") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command whose keyword `param` is its output path: one process per output at a time."""
    import functools

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)  # typer reads the wrapped function's parameters
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with OutputLock(kwargs[param], option):
                return fn(*args, **kwargs)

        return wrapper

    return deco


class OutputLock:
    """One codeloop process per output at a time: `.NAME.lock` beside it holds the holder's pid.

    A second process gets a UserError naming the output and the holder's pid; a lock left by a
    process that is gone (killed with SIGKILL, a crashed machine) is taken over. Released on exit,
    Ctrl-C included. Re-entrant within one process (a recipe run locks its folder, its stages run
    inside)."""

    _held: dict[Path, int] = {}

    def __init__(self, path: str | os.PathLike[str], option: str = "--out"):
        self.target = Path(path)
        self.path = lock_path(path).absolute()
        self.option = option

    def acquire(self) -> "OutputLock":
        if self.path in OutputLock._held:
            OutputLock._held[self.path] += 1
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import socket

        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise UserError(f"{self.target} is in use by another codeloop process (pid {holder}); wait "
                                    f"for it to finish or stop it (lock file {self.path.name})",
                                    self.option) from None
                try:  # a stale lock (its process is gone): take it over
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            OutputLock._held[self.path] = 1
            return self
        raise UserError(f"could not take the lock {self.path}", self.option)

    def _holder(self) -> int | None:
        try:
            text = self.path.read_text().split()
            return int(text[0]) if text else None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        n = OutputLock._held.get(self.path, 0)
        if n > 1:
            OutputLock._held[self.path] = n - 1
            return
        OutputLock._held.pop(self.path, None)
        if self._holder() == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
