"""Decoders: what turns a sampled completion into the program to execute, looked up by name.

``none`` keeps the program `generate` built. A method whose model writes something other than code
(LintSeq's edit sequences) registers a decoder here under its own name; this layer never names a
method. A decoder not registered yet is found through the ``codeloop.decoders`` entry points
(pyproject.toml), so ``eval --decode NAME`` works without the caller importing the method first.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

from codeloop.errors import UserError
from codeloop.records import Sample

ENTRY_POINTS = "codeloop.decoders"
NONE = "none"


@dataclass(frozen=True)
class Decoder:
    name: str
    decode: Callable[[Sample], Sample]  # sets sample.code (and may note what it did in sample.extra)
    # The completion ends with the decoder's own terminator: it replaces the code stops, which
    # would never fire on a format whose lines do not look like code.
    stop: tuple[str, ...] = ()


_registry: dict[str, Decoder] = {}


def register_decoder(name: str, decode: Callable[[Sample], Sample], stop: tuple[str, ...] = ()) -> Decoder:
    decoder = _registry[name] = Decoder(name, decode, tuple(stop))
    return decoder


def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def decoder_names() -> tuple[str, ...]:
    """Every decoder name a user may ask for, ``none`` first."""
    return (NONE, *sorted(set(_registry) | set(_entry_points())))


def get_decoder(name: str, field: str = "--decode") -> Decoder | None:
    """The decoder called `name`; None for ``none``. Unknown names are a UserError on `field`."""
    if name == NONE:
        return None
    if name not in _registry:
        ep = _entry_points().get(name)
        if ep is None:
            raise UserError(f"must be one of {', '.join(decoder_names())}, got {name!r}", field)
        ep.load()  # the providing module registers its decoder when imported
        if name not in _registry:
            raise UserError(f"the entry point {ep.value} did not register a decoder named {name!r}", field)
    return _registry[name]
