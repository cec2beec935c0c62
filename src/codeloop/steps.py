"""Steps: the one declaration of each unit of work.

A step is a config dataclass whose every field is declared once with `option(...)` (default, help,
choices, the CLI flags users know) plus one run function. The recipe loader, the CLI
(`codeloop <step> --field ...`, `--config FILE`) and the Python API are all built from that
declaration (see `codeloop.pipeline.registry`), so a default cannot differ between them and a
recipe stage and the same CLI command run the same function on the same config.

A step knows nothing of where it runs: it gets a `StepContext` (its own folder, how to find its
input, the run's model/seed defaults, the sandbox settings) and returns its metrics.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import types
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from codeloop.errors import UserError

# What a step reads from its `input` and writes into its folder: checked between stages at load time.
KINDS = {
    "samples": "Sample records (samples.jsonl)",
    "results": "Result records: samples with verdicts",
    "pairs": "DPO pairs (pairs.jsonl: prompt, chosen, rejected; distance, bucket, order)",
    "sft": "SFT records (sft.jsonl: prompt/completion or instruction/response)",
    "adapter": "a trained adapter or model (final/)",
    "eval": "an evaluation (per-problem results, pass@k)",
    "report": "a table or plot",
}


def option(default: Any = MISSING, *, help: str, choices: Iterable[Any] | None = None,  # noqa: A002
           flags: Iterable[str] = (), aliases: Iterable[str] = (), default_factory: Any = MISSING,
           cli: bool = True, min: float | None = None, gt: float | None = None,  # noqa: A002
           comma: bool = True, ref: bool = False) -> Any:
    """A config field declared once: its default, its help, its allowed values, the extra CLI flags
    (e.g. ``--lr``) and the other names a recipe or `--config` file may use for it. ``min`` (at
    least) and ``gt`` (greater than) bound a number: `build_config` refuses a value outside, so a
    recipe, a `--config` file and the command line get the same check (every item of a list). A list
    is given on the command line by repeating the flag, or comma-separated unless ``comma=False``
    (stop strings may hold commas). ``ref``: the value names earlier steps (a recipe's stage names, one
    or a list), which the recipe loader checks exist before anything runs."""
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "flags": tuple(flags), "aliases": tuple(aliases), "cli": cli, "min": min, "gt": gt, "comma": comma,
            "ref": ref}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Step:
    name: str  # recipe `type`, and the CLI command (`train_sft` -> `codeloop train-sft`)
    config: type
    run: Callable[["StepContext", Any], dict[str, Any]]
    help: str
    consumes: tuple[str, ...] = ()  # kinds its `input` must produce
    produces: tuple[str, ...] = ()
    requires: tuple[tuple[str, str], ...] = ()  # (module, pip install line) checked before a run
    sandbox: bool = False  # executes programs: takes the run's executor and isolation
    output: str = ""  # the file it writes that a later step's `input` reads (e.g. pairs.jsonl)
    plot: str = ""  # the picture it writes, if one (the command line can copy it elsewhere)
    summarize: Callable[[dict[str, Any]], str] | None = None  # the command's closing line, from the metrics
    # The command line's own way to run the step, where it has a long-standing form (e.g. `execute
    # --out FILE`, resuming from FILE.partial): (config, out, executor, isolation) -> metrics. The
    # command's options are still the config's fields; a recipe stage runs `run`.
    command_run: Callable[[Any, Path, str, str], dict[str, Any]] | None = None

    def check_requirements(self, where: str) -> None:
        for module, pip in self.requires:
            if importlib.util.find_spec(module) is None:
                raise UserError(f"step '{self.name}' needs the '{module}' package: pip install {pip}", where)


class StepContext:
    """Where a step runs: its folder, the run around it (other steps' folders), the defaults."""

    def __init__(self, run: Any, stage: Any, name: str, model: str = "default", seed: int = 0,
                 executor: str = "local", isolation: str = "auto", recipe: Any = None):
        self.run, self.stage, self.name = run, stage, name  # RunDir, StageDir
        self.default_model, self.default_seed = model, seed
        self.executor, self.isolation = executor, isolation
        self.recipe = recipe

    def model(self, override: str | None) -> str:
        return override or self.default_model

    def seed(self, override: int | None) -> int:
        return self.default_seed if override is None else override

    def stage_path(self, name: str) -> Path:
        """Another step's folder: a stage name in a recipe, or a path given on the command line."""
        if self.recipe is None:
            return Path(name)
        return self.run.root / name

    def output_file(self, ref: str, filename: str) -> Path:
        """The file `filename` of the step `ref` (a recipe stage, or on the CLI a folder or the file)."""
        base = self.stage_path(ref)
        path = base if base.is_file() else base / filename
        if not path.exists():
            raise UserError(f"'{ref}' has no {filename} (did that step finish?)", str(path))
        return path

    def sandbox(self, timeout_s: float, memory_mb: int) -> dict[str, Any]:
        """`ExecConfig` settings for this run: the step's limits, the run's executor and isolation."""
        return {"timeout_s": timeout_s, "memory_mb": memory_mb, "executor": self.executor,
                "isolation": self.isolation}


# -------------------------------------------------------------------------------------------------
# Configs from dicts (recipes, --config files, the CLI) with errors that name the key

def suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (not args or all(type_ok(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def field_names(cls: type) -> dict[str, str]:
    """Every name a config accepts -> its field (the field's own name and its aliases)."""
    names = {}
    for f in dataclasses.fields(cls):
        names[f.name] = f.name
        for alias in f.metadata.get("aliases", ()):
            names[alias] = f.name
    return names


def build_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Instantiate a step config from a dict, naming bad keys, wrong types and values by path."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = field_names(cls)
    kwargs: dict[str, Any] = {}
    written: dict[str, str] = {}  # field -> the name the user gave it (its own or an alias)
    for key, value in values.items():
        if key not in names:
            raise UserError(f"unknown key '{key}'{suggest(key, fields)}", f"{where}.{key}")
        name = names[key]
        if name in kwargs:
            raise UserError(f"'{key}' and '{name}' name the same setting: give one", f"{where}.{key}")
        if isinstance(value, int) and not isinstance(value, bool) and type_ok(float(value), hints[name]) \
                and not type_ok(value, hints[name]):
            value = float(value)
        if not type_ok(value, hints[name]):
            raise UserError(f"expected {type_name(hints[name])}, got {type(value).__name__} ({value!r})",
                            f"{where}.{key}")
        choices = fields[name].metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise UserError(f"must be one of {', '.join(map(str, choices))}, got {value!r}", f"{where}.{key}")
        check_bounds(fields[name], value, f"{where}.{key}")
        kwargs[name] = value
        written[name] = key
    missing = [n for n, f in fields.items() if f.default is MISSING and f.default_factory is MISSING  # type: ignore[misc]
               and n not in kwargs]
    if missing:
        raise UserError(f"missing required key '{missing[0]}'", f"{where}.{missing[0]}")
    cfg = cls(**kwargs)
    check = getattr(cfg, "check", None)
    if check is not None:
        try:
            check(where)
        except UserError as exc:  # name the key as the user wrote it (an alias), not the field
            head, dot, last = (exc.where or "").rpartition(".")
            if dot and head == where and last in written:
                raise UserError(exc.message, f"{where}.{written[last]}") from None
            raise
    return cfg


def check_bounds(f: Any, value: Any, where: str) -> None:
    """The field's declared `min` / `gt` (an int or float, or each item of a list of them)."""
    low, above = f.metadata.get("min"), f.metadata.get("gt")
    if low is None and above is None:
        return
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if low is not None and v < low:
            raise UserError(f"must be at least {low:g}, got {v!r}", where)
        if above is not None and v <= above:
            raise UserError(f"must be greater than {above:g}, got {v!r}", where)


def describe(cls: type) -> list[dict[str, Any]]:
    """The fields of a step config as `codeloop steps show` and the docs print them."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append({"name": f.name, "type": type_name(hints[f.name]), "default": default,
                     "help": f.metadata.get("help", ""), "choices": f.metadata.get("choices"),
                     "flags": f.metadata.get("flags", ()), "aliases": f.metadata.get("aliases", ())})
    return rows


# Settings many steps share, declared once here.
def problem_fields(split: str | None = "train") -> list[tuple[str, Any, Any]]:
    return [
        ("problems", str, option("easy", flags=("-p",), help="Problem set: easy, humaneval, mbpp:PATH, apps:PATH, "
                                                            "jsonl:PATH, ... (`codeloop problems list`).")),
        ("split", typing.Optional[str], option(split, help="Split of the problem set (null: all of it).")),
        ("limit", typing.Optional[int], option(None, min=1, help="Only the first N problems.")),
    ]


def run_fields(seed_help: str = "Seed") -> list[tuple[str, Any, Any]]:
    return [
        ("model", typing.Optional[str], option(None, flags=("-m",), help="Model: 'default', a hub id or a local "
                                                                        "path; default: the run's model.")),
        ("seed", typing.Optional[int], option(None, help=f"{seed_help}; default: the run's seed.")),
    ]


SANDBOX_FIELDS: list[tuple[str, Any, Any]] = [
    ("timeout_s", float, option(10.0, flags=("--timeout",), gt=0,
                                help="Seconds per execution (per test case for stdin/stdout problems).")),
    ("memory_mb", int, option(1024, min=64, help="Memory of one execution, all its processes together (MiB).")),
]
BATCH_FIELD = ("batch_size", int, option(8, min=1, help="Prompts per generation / scoring batch."))
# The shape a producer of SFT records or DPO pairs writes (docs/records.md).
OUTPUT_FORMATS = ("codeloop", "trl")
FORMAT_FIELD = ("format", str, option("codeloop", choices=OUTPUT_FORMATS,
                                      help="Record shape written: codeloop (every field: task_id, scores, "
                                           "distance...) or trl (the keys TRL's SFTTrainer / DPOTrainer take: "
                                           "prompt/completion, prompt/chosen/rejected; plus task_id)."))


# Where sampling runs, for every step that generates (eval, pairs, gift, self_training, ...).
BACKENDS = ("hf", "vllm", "openai")
_GENERATION_OPTIONS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "backend": (str, "hf", {"choices": BACKENDS, "help": "Where sampling runs: hf (transformers, here), vllm (GPU, "
                                                         "pip install vllm) or openai (any OpenAI-compatible "
                                                         "completions server at base_url, e.g. vllm serve)."}),
    "base_url": (typing.Optional[str], None, {"help": "openai backend: the server, e.g. http://127.0.0.1:8000/v1 "
                                                      "(default: $OPENAI_BASE_URL)."}),
    "api_key": (typing.Optional[str], None, {"help": "openai backend: its bearer token (default: $OPENAI_API_KEY, "
                                                     "which keeps the key out of recipes and run folders)."}),
}


def generation_option(name: str, local: str = "") -> Any:
    """The declared option for `name` (backend, base_url, api_key); `local` adds to the backend's
    help what of the step still runs on the local model (scoring: a server cannot score)."""
    _, default, kw = _GENERATION_OPTIONS[name]
    help_ = kw["help"] + (f" {local}" if local and name == "backend" else "")
    return option(default, **{**kw, "help": help_})


def generation_fields(local: str = "") -> list[tuple[str, Any, Any]]:
    """backend, base_url, api_key as step fields (see `generation_option`)."""
    return [(name, tp, generation_option(name, local)) for name, (tp, _, _) in _GENERATION_OPTIONS.items()]


def _copy_field(f: dataclasses.Field) -> Any:
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return dataclasses.field(default_factory=f.default_factory, metadata=f.metadata)  # type: ignore[misc]
    return dataclasses.field(default=f.default, metadata=f.metadata)


def same_as(cls: type, name: str) -> Any:
    """The field `cls` declares as `name` (default, help, choices, flags), for another config that
    carries the same setting: it stays declared once, in `cls`."""
    return _copy_field(next(f for f in dataclasses.fields(cls) if f.name == name))


def derive(name: str, base: type | None, *, extra: Iterable[tuple[str, Any, Any]] = (), drop: Iterable[str] = (),
           replace: dict[str, tuple[Any, Any]] | None = None, namespace: dict[str, Any] | None = None) -> type:
    """A step config made from a library's config: the library's fields (defaults, help, flags as
    declared there, so each is declared once), minus `drop`, with `replace`d fields (name ->
    (type, option)) and `extra` step fields (name, type, option) first. Without a base: just `extra`."""
    hints = typing.get_type_hints(base) if base else {}
    replace = replace or {}
    fields: list[tuple[str, Any, Any]] = list(extra)
    for f in dataclasses.fields(base) if base else ():
        if f.name in drop:
            continue
        if f.name in replace:
            fields.append((f.name, *replace[f.name]))
        else:
            fields.append((f.name, hints[f.name], _copy_field(f)))
    cls = dataclasses.make_dataclass(name, fields, namespace=namespace or {})
    cls.__doc__ = base.__doc__ if base else None
    cls.__module__ = (namespace or {}).get("__module__", base.__module__ if base else __name__)
    return cls


def library_kwargs(cfg: Any, base: type, **fixed: Any) -> dict[str, Any]:
    """The library config's arguments from a derived step config: shared fields by name, then `fixed`."""
    names = {f.name for f in dataclasses.fields(base)}
    return {**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name in names}, **fixed}


def validate_as(base: type, cfg: Any, where: str, **fixed: Any) -> None:
    """Check a derived step config by building the library config it comes from. The library names a
    mistake by its flag or its own class (`--k`, `SFTRunConfig.lora_r`): say it with the step's key."""
    try:
        base(**library_kwargs(cfg, base, **fixed)).validate()
    except UserError as exc:
        key = (exc.where or "").rpartition(".")[2].lstrip("-").replace("-", "_")
        raise UserError(exc.message, f"{where}.{field_names(type(cfg)).get(key, key)}") from None


def undocumented(cls: type) -> list[str]:
    """Fields declared without help (the registry test requires none)."""
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
