"""The problem-set registry: each loader module registers its ProblemSet when imported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from codeloop.records import Problem


@dataclass(frozen=True)
class ProblemSet:
    name: str
    summary: str
    load: Callable[..., list[Problem]]  # load(source: str | None, split: str | None) -> problems
    splits: tuple[str, ...] = ()
    needs_source: bool = False


_REGISTRY: dict[str, ProblemSet] = {}


def register(ps: ProblemSet) -> None:
    _REGISTRY[ps.name] = ps
