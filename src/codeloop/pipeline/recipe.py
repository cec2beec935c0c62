"""Recipes: YAML files that name the model, the stages and their parameters.

    name: demo                   # the run folder: runs/demo
    model: default               # every stage's model unless a stage says otherwise
    seed: 0
    executor: local              # local | ray | ray:ADDRESS   (sandbox executions)
    isolation: auto              # auto | full (refuse to run with less than full sandbox isolation)
    vars: {train_limit: 64}      # ${train_limit} anywhere in a string value
    stages:
      - {name: pairs, type: pairs, problems: easy, split: train, limit: "${train_limit}", n: 4}
      - {name: dpo, type: train_dpo, input: pairs, max_steps: 20}
      - {name: eval_after, type: eval, benchmark: easy, adapter_from: dpo}

Command-line overrides use dotted paths; a stage is addressed by its name:
``model=/path/to/model  stages.pairs.n=8  vars.train_limit=16``. Values are parsed as YAML
(``8`` is an int, ``[1,10]`` a list). Every mistake names its key path: unknown keys (with a
suggestion), wrong types, missing stages or files.
"""

from __future__ import annotations

import dataclasses

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from codeloop.errors import UserError
from codeloop.steps import build_config, suggest

TOP_LEVEL_KEYS = {"name", "model", "seed", "executor", "isolation", "vars", "stages", "description", "runs_dir",
                  "sweep", "note"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class StageSpec:
    name: str
    type: str
    config: Any  # the stage type's config dataclass, validated
    raw: dict[str, Any]  # as written (after overrides and variables), for the config hash


@dataclass
class Recipe:
    name: str
    model: str = "default"
    seed: int = 0
    executor: str = "local"
    isolation: str = "auto"  # auto | full: the sandbox refuses to run with less than every isolation feature
    description: str = ""
    note: str = ""  # said at the end of the run's summary line (e.g. "a smoke run: see recipe X")
    runs_dir: str = "runs"
    vars: dict[str, Any] = field(default_factory=dict)
    stages: list[StageSpec] = field(default_factory=list)
    source: Path | None = None
    resolved: dict[str, Any] = field(default_factory=dict)  # the whole recipe after overrides
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # key -> values: one run per combination

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UserError(f"expected KEY=VALUE (e.g. stages.pairs.n=8), got {text!r}", "override")
    key, _, value = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise UserError(f"empty key in {text!r}", "override")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    where = ".".join(path)
    if path[0] not in TOP_LEVEL_KEYS:
        raise UserError(f"unknown recipe key '{path[0]}'{suggest(path[0], TOP_LEVEL_KEYS)}", where)
    if path[0] == "vars" and len(path) == 2 and path[1] not in (data.get("vars") or {}):
        known = list(data.get("vars") or {})
        raise UserError(f"the recipe has no variable '{path[1]}'{suggest(path[1], known)}"
                        f" (its variables: {', '.join(known) or 'none'})", where)
    if path[0] == "stages" and len(path) >= 3:
        stages = data.get("stages") or []
        match = [s for s in stages if isinstance(s, dict) and s.get("name") == path[1]]
        if not match:
            names = [s.get("name") for s in stages if isinstance(s, dict)]
            raise UserError(f"no stage named '{path[1]}'{suggest(path[1], names)}", where)
        node: Any = match[0]
        rest = path[2:]
    else:
        node, rest = data, path
    for part in rest[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[rest[-1]] = value


def _interpolate(value: Any, variables: dict[str, Any], where: str) -> Any:
    if isinstance(value, str):
        full = _VAR.fullmatch(value)
        if full:  # "${n}" alone keeps the variable's type
            name = full.group(1)
            if name not in variables:
                raise UserError(f"undefined variable ${{{name}}}{suggest(name, variables)}", where)
            return variables[name]

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in variables:
                raise UserError(f"undefined variable ${{{m.group(1)}}}{suggest(m.group(1), variables)}", where)
            return str(variables[m.group(1)])

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_interpolate(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate(v, variables, f"{where}.{k}") for k, v in value.items()}
    return value


# -------------------------------------------------------------------------------------------------
# Checks that run at load time, so a mistake in the last stage fails before the first one moves

def check_executor(executor: str, where: str) -> None:
    if not (executor == "local" or executor == "ray" or (executor.startswith("ray:") and len(executor) > 4)):
        raise UserError(f"must be local, ray or ray:ADDRESS, got {executor!r}", where)


def check_problem_spec(spec: str, split: str | None, where: str, split_where: str | None = None) -> None:
    """A problem-set spec resolves: a known set, its source given where it needs one, a file that
    exists where the source is a path, a split the set has. Nothing is loaded."""
    from codeloop.problems import problem_sets
    from codeloop.problems.registry import _REGISTRY

    problem_sets()  # registers the loaders
    name, _, source = str(spec).partition(":")
    ps = _REGISTRY.get(name)
    if ps is None:
        raise UserError(f"unknown problem set '{name}'{suggest(name, _REGISTRY)} (known: "
                        f"{', '.join(sorted(_REGISTRY))}; or jsonl:PATH)", where)
    if ps.needs_source and not source:
        raise UserError(f"problem set '{name}' needs a source: {name}:PATH", where)
    if source:
        from codeloop.models import _looks_like_path

        looks_like_file = Path(source).suffix.lower() in (".json", ".jsonl", ".gz", ".parquet", ".csv")
        if (name == "jsonl" or looks_like_file or _looks_like_path(source)) and not Path(source).expanduser().exists():
            raise UserError(f"no such file: {source}", where)
    if split is not None and ps.splits and split not in ps.splits:
        raise UserError(f"problem set '{name}' has no split '{split}' (splits: {', '.join(ps.splits)})",
                        split_where or where)


def check_model(name: str | None, where: str, what: str = "model") -> None:
    """A model (or adapter) named by a local path exists; 'default', 'canonical' or a hub id is fine."""
    if not name or name == "canonical":
        return
    from codeloop.models import _looks_like_path, is_embedded

    if what == "model" and is_embedded(name):
        return
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise UserError(f"'{name}' is a file; give the {what}'s folder", where)
        return
    if _looks_like_path(name):
        raise UserError(f"no {what} folder at '{name}'", where)


def _check_stage(cfg: Any, recipe_model: str, where: str) -> None:
    if getattr(cfg, "problems", None):
        check_problem_spec(cfg.problems, getattr(cfg, "split", None), f"{where}.problems", f"{where}.split")
    if getattr(cfg, "benchmark", None):
        check_problem_spec(cfg.benchmark, getattr(cfg, "split", None), f"{where}.benchmark", f"{where}.split")
    if hasattr(cfg, "model") and getattr(cfg, "model", None):
        check_model(cfg.model, f"{where}.model")
    if getattr(cfg, "adapter", None):
        check_model(cfg.adapter, f"{where}.adapter", "adapter")


def _check_sweep(data: dict[str, Any], where: str) -> dict[str, list[Any]]:
    sweep = data.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise UserError("sweep is a mapping of KEY: [values], e.g. {seed: [0, 1, 2]}", where)
    out: dict[str, list[Any]] = {}
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise UserError("a sweep key takes a non-empty list of values", f"{where}.{key}")
        probe = {k: v for k, v in data.items() if k != "sweep"}
        import copy

        apply_override(copy.deepcopy(probe), [p for p in str(key).split(".") if p], values[0])
        out[str(key)] = list(values)
    return out


def load_recipe(path: str | Path, overrides: list[str] | None = None, sweep_run: bool = False) -> Recipe:
    """Read, override, interpolate and validate a recipe. `sweep_run`: one run of the recipe's
    sweep (an override may then set a key the sweep names)."""
    from codeloop.pipeline.registry import get_step

    p = Path(path)
    if not p.exists():
        raise UserError("recipe file not found", str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise UserError(f"invalid YAML: {getattr(exc, 'problem', exc)}", where) from None
    if not isinstance(data, dict):
        raise UserError("a recipe is a YAML mapping with 'name' and 'stages'", str(p))
    if sweep_run:
        data.pop("sweep", None)
    for o in overrides or []:
        apply_override(data, *parse_override(o))
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise UserError(f"unknown key '{key}'{suggest(key, TOP_LEVEL_KEYS)}", f"{p}: {key}")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise UserError("missing required key 'name' (the run folder name)", f"{p}: name")
    if str(data.get("isolation", "auto")) not in ("auto", "full"):
        raise UserError(f"must be auto or full, got {data['isolation']!r}", f"{p}: isolation")
    check_executor(str(data.get("executor", "local")), f"{p}: executor")
    check_model(str(data.get("model", "default")), f"{p}: model")
    try:
        int(data.get("seed", 0))
    except (TypeError, ValueError):
        raise UserError(f"expected an integer, got {data.get('seed')!r}", f"{p}: seed") from None
    sweep = _check_sweep(data, f"{p}: sweep")
    if not isinstance(data.get("stages"), list) or not data["stages"]:
        raise UserError("missing or empty 'stages' list", f"{p}: stages")
    variables = {**{k: data[k] for k in ("name", "model", "seed") if k in data}, **(data.get("vars") or {})}
    recipe = Recipe(name=data["name"], model=str(data.get("model", "default")), seed=int(data.get("seed", 0)),
                    executor=str(data.get("executor", "local")), isolation=str(data.get("isolation", "auto")),
                    description=str(data.get("description", "")), note=str(data.get("note") or ""),
                    runs_dir=str(data.get("runs_dir", "runs")), vars=dict(data.get("vars") or {}), source=p,
                    sweep=sweep)
    seen: set[str] = set()
    kinds: dict[str, str] = {}
    for i, raw in enumerate(data["stages"]):
        where = f"{p}: stages[{i}]"
        if not isinstance(raw, dict):
            raise UserError("each stage is a mapping with 'name' and 'type'", where)
        raw = _interpolate(dict(raw), variables, where)
        name, kind = raw.pop("name", None), raw.pop("type", None)
        if not isinstance(name, str) or not name:
            raise UserError("missing 'name'", where)
        where = f"{p}: stages.{name}"
        if name in seen:
            raise UserError("duplicate stage name", where)
        step = get_step(str(kind), f"{where}.type")
        step.check_requirements(f"{where}.type")  # a missing package fails now, not an hour in
        cfg = build_config(step.config, raw, where)
        _check_stage(cfg, recipe.model, where)
        ref_keys = {"input", "adapter_from", "baseline", "size_from", "budget_from"}
        ref_keys |= {f.name for f in dataclasses.fields(cfg) if f.metadata.get("ref")}
        for ref_key in sorted(ref_keys):
            value = getattr(cfg, ref_key, None)
            for ref in value if isinstance(value, (list, tuple)) else [value]:
                if ref and ref not in seen:
                    raise UserError(f"refers to stage '{ref}', which is not an earlier stage"
                                    f"{suggest(str(ref), seen)}", f"{where}.{ref_key}")
        nested = getattr(cfg, "stage_refs", None)  # names inside a step's lists of mappings (report rows)
        for key, ref in nested() if nested else []:
            if ref not in seen:
                raise UserError(f"refers to stage '{ref}', which is not an earlier stage{suggest(str(ref), seen)}",
                                f"{where}.{key}")
        ref = getattr(cfg, "input", None)
        if ref and step.consumes:
            made = get_step(kinds[ref]).produces
            if not set(step.consumes) & set(made):
                raise UserError(f"a {kind} step reads {' or '.join(step.consumes)}, but stage '{ref}' ({kinds[ref]}) "
                                f"writes {' and '.join(made) or 'nothing a step reads'}", f"{where}.input")
        recipe.stages.append(StageSpec(name, kind, cfg, {"type": kind, **raw}))
        seen.add(name)
        kinds[name] = str(kind)
    recipe.resolved = {**{k: v for k, v in data.items() if k not in ("stages", "sweep")},
                       "stages": [{"name": s.name, **s.raw} for s in recipe.stages]}
    return recipe


# -------------------------------------------------------------------------------------------------
# Sweeps: one run per value (`codeloop run RECIPE seed=0,1,2` or `sweep: {seed: [0, 1, 2]}`)

SWEEPABLE_ON_COMMAND_LINE = ("seed", "model")  # and vars.NAME: `KEY=a,b,c` is a sweep for these


def split_sweep_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[Any]]]:
    """Separate `KEY=a,b,c` sweeps (seed, model, vars.NAME) from plain overrides."""
    plain: list[str] = []
    sweep: dict[str, list[Any]] = {}
    for text in overrides:
        key, eq, value = text.partition("=")
        key = key.strip()
        if eq and "," in value and (key in SWEEPABLE_ON_COMMAND_LINE or key.startswith("vars.")) \
                and not value.strip().startswith(("[", "{", "'", '"')):
            parts = [p.strip() for p in value.split(",")]
            if any(not p for p in parts):
                raise UserError(f"empty value in the sweep {text!r}", key)
            values = []
            for part in parts:
                try:
                    values.append(yaml.safe_load(part))
                except yaml.YAMLError:
                    values.append(part)
            sweep[key] = values
        else:
            plain.append(text)
    return plain, sweep


def _tag(key: str, value: Any) -> str:
    text = Path(str(value)).name if isinstance(value, str) and "/" in value else str(value)
    return re.sub(r"[^A-Za-z0-9_.=+]+", "_", f"{key.rpartition('.')[2]}{text}")


def _as_override(key: str, value: Any) -> str:
    dumped = yaml.safe_dump(value, default_flow_style=True).strip()
    if dumped.endswith("\n..."):
        dumped = dumped[:-4].strip()
    return f"{key}={dumped.removesuffix('...').strip()}"


def expand_sweep(path: str | Path, overrides: list[str], sweep: dict[str, list[Any]]) -> list[tuple[str, Recipe]]:
    """Every run of a sweep, loaded and validated (all of them before any runs): (label, recipe),
    the recipe named NAME-LABEL (e.g. demo-seed0), so each run has its own folder and resume."""
    import itertools

    keys = list(sweep)
    runs: list[tuple[str, Recipe]] = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        label = "-".join(_tag(k, v) for k, v in zip(keys, combo))
        rec = load_recipe(path, overrides + [_as_override(k, v) for k, v in zip(keys, combo)], sweep_run=True)
        rec.name = f"{rec.name}-{label}"
        rec.resolved["name"] = rec.name
        rec.sweep = {}
        runs.append((label, rec))
    labels = [label for label, _ in runs]
    if len(set(labels)) != len(labels):
        raise UserError("two values of the sweep give the same run name; use distinct values", "sweep")
    return runs
