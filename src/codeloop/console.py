"""Terminal output shared by every command: one rich console, progress bars, summary lines."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

# soft_wrap: log lines stay whole when output goes to a file or a pipe (no hard wraps at 80 columns)
# Progress, logs, warnings and the summary line go to stderr; tables (what a user may redirect into a
# file: `codeloop passk r.jsonl > t.txt`) go to stdout through `show`.
console = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)
T = TypeVar("T")


def _quiet() -> bool:
    return os.environ.get("CODELOOP_QUIET") == "1"


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator["_Advance"]:
    """A rich progress bar; yields a callable ``advance(n=1)``. Silent when CODELOOP_QUIET=1."""
    if _quiet():
        yield _Advance(None, None)
        return
    prog = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)
    with prog:
        task = prog.add_task(description, total=total)
        yield _Advance(prog, task)


class _Advance:
    def __init__(self, prog: Progress | None, task: object):
        self._prog, self._task = prog, task

    def __call__(self, n: int = 1) -> None:
        if self._prog is not None:
            self._prog.advance(self._task, n)  # type: ignore[arg-type]


@contextmanager
def nullbar() -> Iterator[Callable[..., None]]:
    """Stands in for `progress_bar` when a caller shows its own progress: advance(n=1) does nothing."""
    yield lambda n=1: None


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (only when there are more than a few items)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if total is not None and total <= 3:
        yield from items
        return
    with progress_bar(description, total) as advance:
        for item in items:
            yield item
            advance()


def show(renderable: object) -> None:
    """A table (or any result a user may capture) on stdout."""
    stdout.print(renderable)


def summary(text: str) -> None:
    """The one-line summary every command ends with (stderr). `text` is plain: `[vllm]` stays."""
    console.print(f"[bold green]✓[/] {escape(text)}")


def warn(text: str) -> None:
    console.print(f"[bold yellow]warning:[/] {escape(text)}")


def error_line(text: str, where: str | None = None) -> None:
    """The one line a failed command ends with (stderr); plain text, never markup."""
    head = f"[bold]{escape(where)}[/]: " if where else ""
    console.print(f"[bold red]error:[/] {head}{escape(text)}", soft_wrap=True)
