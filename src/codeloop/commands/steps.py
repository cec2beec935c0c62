"""Commands built from the step registry: `codeloop <step> --field ...`, and `codeloop steps list|show`.

Each command's options are the step config's fields: the same defaults, help, choices and flags
a recipe stage gets, so the command and the stage run the same function on the same config.
Every command also takes `--config FILE` (YAML or JSON with field values; flags given on the
command line win), `--out` (the step's folder; a `.jsonl` name writes the step's main file there
and keeps its folder beside it), and the input step's folder or file as an argument where the step
reads one.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from codeloop.console import console, summary
from codeloop.console import show as show_table
from codeloop.errors import UserError

# Steps whose command lives elsewhere (its own typer group or a command with more options than
# the step has): they are still listed by `codeloop steps` and run by recipes.
COMMAND_NAMES = {"train_sft": ("train", "sft"), "train_dpo": ("train", "dpo")}
HAND_WRITTEN = {"lintseq", "select"}
GROUP_CALLBACKS = {"eval"}  # the command of a group that has subcommands too (`eval compare`): see commands/eval.py
GROUP_HELP = {"train": "Fine-tune a model with SFT or DPO (TRL, PEFT, accelerate); rerun the same command to "
                       "resume."}


_ARGV: list[str] = []  # the command line as typed, to name a flag the way the user wrote it


def remember_argv(argv: list[str]) -> None:
    _ARGV[:] = list(argv)


def user_flag(cls: type | None, name: str) -> str:
    """The flag of field `name` (or an alias) the user typed: `--timeout` if they wrote that, not
    `--timeout-s`; the field's first flag when they typed none of them (e.g. from --config)."""
    flags = [_flag(name)]
    if cls is not None:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        from codeloop.steps import field_names

        field = fields.get(field_names(cls).get(name, name))
        if field is not None:
            flags = [_flag(field.name)]
            for fl in field.metadata.get("flags", ()):
                flags += [x for part in fl.split("/") for x in [part.strip()] if x and not x.startswith("--no-")]
    for arg in _ARGV:
        head = arg.split("=", 1)[0]
        for fl in flags:
            if head == fl or (not fl.startswith("--") and arg.startswith(fl) and len(arg) > len(fl)):
                return fl
    return flags[0]


def register(app: typer.Typer) -> None:
    from codeloop.pipeline.registry import STEPS, get_step

    steps_app = typer.Typer(help="The steps (units of work) a recipe or the command line can run.",
                            no_args_is_help=True)
    app.add_typer(steps_app, name="steps")

    @steps_app.command("list")
    def list_steps(markdown: bool = typer.Option(False, help="Print a Markdown table (the README's step list).")
                   ) -> None:
        """Every step: its name, what it reads and writes, what it does."""
        from rich.table import Table

        if markdown:
            typer.echo("| step (`type:` / command) | reads | writes | what it does |\n|---|---|---|---|")
            for name in STEPS:
                step = get_step(name)
                typer.echo(f"| `{name}` / `codeloop {' '.join(command_path(name))}` | "
                           f"{', '.join(step.consumes) or '-'} | {', '.join(step.produces) or '-'} | {step.help} |")
            summary(f"{len(STEPS)} steps")
            return

        table = Table(title="steps")
        table.add_column("step", no_wrap=True)
        for col in ("reads", "writes", "what it does"):
            table.add_column(col)
        for name in STEPS:
            step = get_step(name)
            table.add_row(name, ", ".join(step.consumes) or "-", ", ".join(step.produces) or "-", step.help)
        show_table(table)  # tables to stdout; progress and logs go to stderr
        summary(f"{len(STEPS)} steps; `codeloop steps show NAME` for a step's settings")

    @steps_app.command("show")
    def show(name: str = typer.Argument(..., help="A step name from `codeloop steps list`.")) -> None:
        """A step's settings: name, type, default, allowed values and help (the recipe keys and flags)."""
        from rich.table import Table

        from codeloop.steps import describe

        step = get_step(name, "NAME")
        table = Table(title=f"{name}: {step.help}")
        table.add_column("setting", no_wrap=True)
        for col in ("type", "default", "help"):
            table.add_column(col, overflow="fold")
        for row in describe(step.config):
            text = row["help"] + (f" One of: {', '.join(map(str, row['choices']))}." if row["choices"] else "")
            names = [row["name"], *row["aliases"]]
            table.add_row(" / ".join(names), row["type"], repr(row["default"]), text)
        show_table(table)
        summary(f"{name}: {len(describe(step.config))} settings; recipe `type: {name}`; command "
                f"`codeloop {' '.join(command_path(name))}`")

    groups: dict[str, typer.Typer] = {}
    for name in STEPS:
        if name in HAND_WRITTEN or name in GROUP_CALLBACKS:
            continue
        step = get_step(name)
        path = command_path(name)
        target = app
        if len(path) == 2:
            if path[0] not in groups:
                groups[path[0]] = typer.Typer(help=GROUP_HELP.get(path[0], ""), no_args_is_help=True)
                app.add_typer(groups[path[0]], name=path[0])
            target = groups[path[0]]
        target.command(path[-1], help=_command_help(step))(make_command(step))


def command_path(name: str) -> tuple[str, ...]:
    return COMMAND_NAMES.get(name, (name.replace("_", "-"),))


def _command_help(step: Any) -> str:
    return (f"{step.help}.\n\nThe same step as a recipe's `type: {step.name}` "
            "stage; `codeloop steps show " + step.name + "` lists its settings. Rerun the same command to "
            "resume; --config FILE reads settings from YAML/JSON.")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _cli_type(tp: Any) -> tuple[Any, bool]:
    """The type typer parses a field as, and whether the text is a comma-separated list."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if len(args) == 1:
            inner, is_list = _cli_type(args[0])
            return Optional[inner], is_list
        if any(typing.get_origin(a) is list for a in args) or set(args) == {bool, str}:
            return str, any(typing.get_origin(a) is list for a in args)
        return str, False
    if origin is list:
        return str, True
    if tp in (int, float, str, bool):
        return tp, False
    return str, False


def _parse_list(text: str, tp: Any, flag: str) -> Any:
    inner = [a for a in typing.get_args(tp) if a is not type(None)]
    item = typing.get_args(next((a for a in inner if typing.get_origin(a) is list), tp))
    conv = item[0] if item else str
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if any(typing.get_origin(a) is list for a in inner) and str in inner and len(parts) == 1:
        return parts[0]  # `list[str] | str`: one name stays a string
    try:
        return [conv(p) for p in parts]
    except ValueError:
        raise UserError(f"expected comma-separated {conv.__name__} values, got {text!r}", flag) from None


def make_command(step: Any, group: bool = False) -> Any:
    """A typer command whose parameters are the step config's fields (built from the declaration)."""
    hints = typing.get_type_hints(step.config)
    fields = [f for f in dataclasses.fields(step.config) if f.metadata.get("cli", True)]
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    lists: dict[str, Any] = {}
    optional = {f.name for f in fields if type(None) in typing.get_args(hints[f.name])}
    reads_input = any(f.name == "input" for f in fields)
    if reads_input:
        params.append(inspect.Parameter(
            "input_arg", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
            default=typer.Argument(None, metavar="INPUT", help="The input step's folder or file (or --input).")))
    for f in fields:
        tp, is_list = _cli_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        shown: Any = True
        if is_list:
            # A list flag repeats (`--stop A --stop B`), or takes commas (`--k 1,10`) where items hold none.
            lists[f.name] = hints[f.name]
            tp = Optional[typing.List[str]]
            shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
            default = None
        flags = list(f.metadata.get("flags", ()))
        if not any(fl.startswith(_flag(f.name)) for fl in flags):
            flags.insert(0, _flag(f.name))
        if tp in (bool, Optional[bool]) and not any("/" in fl for fl in flags):
            # a switch both ways: a default of true must be possible to turn off (--no-default-stops)
            flags = [f"{fl}/--no-{fl[2:]}" if fl == _flag(f.name) else fl for fl in flags]
        choices = f.metadata.get("choices")
        text = f.metadata.get("help", "") + (f" One of: {', '.join(map(str, choices))}." if choices else "")
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=tp,
                                        default=typer.Option(default, *flags, help=text, show_default=shown)))
    commas = {f.name for f in fields if f.metadata.get("comma", True)}
    out_help = ("The output file: .jsonl, .jsonl.gz or .parquet (a killed run resumes from OUT.partial)."
                if step.command_run else "The step's folder (resumable); a name ending in .jsonl gets the step's "
                                         "main file, with the folder beside it as NAME.steps/.")
    params.append(inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(None if group else ..., "--out", "-o", help=out_help)))
    params.append(inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, help="Start over: move OUT's earlier work aside "
                                                                     "(OUT.stale-N) instead of resuming it.")))
    params.append(inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                    default=typer.Option(None, "--config", help="YAML or JSON file of settings "
                                                                                "(flags given here win).")))
    if step.plot:
        params.append(inspect.Parameter("plot", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                        default=typer.Option(None, help="Also copy the step's plot here "
                                                                        "(default with a .jsonl --out: OUT.png).")))
    if step.sandbox:
        params.append(inspect.Parameter("executor", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                        default=typer.Option("local", help="Where programs run: local, ray or "
                                                                           "ray:ADDRESS (docs/ray.md).")))
        params.append(inspect.Parameter("isolation", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                                        default=typer.Option("auto", help="auto, or full: refuse to run with less "
                                                                          "than full sandbox isolation.")))

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        def given(name: str) -> bool:  # typer's click is its own copy: compare the source by name
            source = ctx.get_parameter_source(name)
            return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

        if group and ctx.invoked_subcommand is not None:
            return
        if kwargs.get("out") is None:
            raise UserError("an output folder is required", "--out")
        values: dict[str, Any] = {}
        config_file = kwargs.pop("config_file")
        file_values: dict[str, Any] = read_settings(config_file) if config_file is not None else {}
        values.update(file_values)
        input_arg = kwargs.pop("input_arg", None)
        out = kwargs.pop("out")
        executor, isolation = kwargs.pop("executor", "local"), kwargs.pop("isolation", "auto")
        plot = kwargs.pop("plot", None)
        overwrite = kwargs.pop("overwrite")
        for name, value in kwargs.items():
            if name in lists and not given(name):
                continue  # the declared default (or the --config file's value)
            if given(name) or name not in values:
                if value == "" and name in optional:
                    value = None  # `--split ''`: the command line's way to say null
                elif name in lists and name in commas:
                    value = _parse_list(",".join(value), lists[name], _flag(name))
                elif name in lists:
                    value = list(value)
                values[name] = value
        if input_arg is not None:
            if given("input"):
                raise UserError("give the input once: as the argument or as --input", "INPUT")
            values["input"] = input_arg
        run_on_command_line(step, values, Path(out), executor=executor, isolation=isolation, plot=plot,
                            overwrite=overwrite, from_file={k: str(config_file) for k in values
                                                            if config_file is not None and not given(k)
                                                            and k in file_values})

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = step.name
    command.__doc__ = _command_help(step)
    return command


def declared_option(cls: type, name: str, *flags: str) -> Any:
    """A typer option whose default and help are the config field's (for the few commands that are
    still written by hand: they must not declare a default a second time)."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    default = f.default if f.default is not dataclasses.MISSING else None
    choices = f.metadata.get("choices")
    text = f.metadata.get("help", "") + (f" One of: {', '.join(map(str, choices))}." if choices else "")
    low = f.metadata.get("min")
    if low is None and f.metadata.get("gt") is not None:
        low = f.metadata["gt"] + (1 if isinstance(f.metadata["gt"], int) and f.type in (int, "int") else 1e-9)
    bounds = {"min": low} if low is not None else {}
    return typer.Option(default, *(flags or (_flag(name),)), *f.metadata.get("flags", ()), help=text, **bounds)


def read_settings(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read settings: {exc.strerror}", str(path)) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"invalid {'JSON' if path.suffix == '.json' else 'YAML'}: {getattr(exc, 'problem', exc)}",
                        f"{path}:{mark.line + 1}" if mark else str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("a settings file is a mapping of setting: value", str(path))
    return data


def run_on_command_line(step: Any, values: dict[str, Any], out: Path, executor: str = "local",
                        isolation: str = "auto", plot: Path | None = None, overwrite: bool = False,
                        from_file: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one step outside a recipe: its folder is OUT (or OUT.steps/ when OUT names a .jsonl file).
    `from_file`: the settings that came from a --config file (an error names the file and key)."""
    from codeloop.records import check_output_file
    from codeloop.rundir import OutputLock, check_output_dir
    from codeloop.steps import build_config

    try:
        cfg = build_config(step.config, values, "option")
    except UserError as exc:
        where = exc.where or ""
        if where.startswith("option."):
            key = where.partition(".")[2].split(".")[0]
            where = f"{from_file[key]}: {key}" if key in (from_file or {}) else user_flag(step.config, key)
        raise UserError(exc.message, where) from None
    if step.sandbox:
        from codeloop.pipeline.recipe import check_executor

        check_executor(executor, "--executor")
    step.check_requirements(step.name)
    from codeloop.records import is_records_name

    if step.command_run is not None:
        from codeloop.records import check_records_output

        check_records_output(out, "--out")
        with OutputLock(out, "--out"):
            partial = out.with_name(out.name + ".partial")
            if overwrite and partial.is_file():
                aside = partial.with_name(partial.name + ".old")
                partial.replace(aside)
                console.print(f"earlier work moved aside to {aside}", markup=False)
            metrics = step.command_run(cfg, out, executor, isolation)
        summary(f"{step.name}: " + (step.summarize(metrics) if step.summarize else str(out)))
        return metrics
    file_out = is_records_name(out, "--out")  # .jsonl, .jsonl.gz, .parquet: the step's main file in that format
    folder = out.with_name(out.name + ".steps") / step.name if file_out else out
    if file_out:
        check_output_file(out, "--out")
        check_output_dir(folder, "--out")
    else:
        check_output_dir(out, "--out")
    if plot is not None:
        check_output_file(plot, "--plot")
    with OutputLock(out, "--out"):
        return _run_step(step, cfg, values, out, folder, file_out, executor, isolation, plot, overwrite)


def _run_step(step: Any, cfg: Any, values: dict[str, Any], out: Path, folder: Path, file_out: bool, executor: str,
              isolation: str, plot: Path | None, overwrite: bool) -> dict[str, Any]:
    from codeloop.pipeline.runner import one_line
    from codeloop.rundir import RunDir
    from codeloop.steps import StepContext

    run = RunDir(folder.parent)
    stage = run.stage(folder.name)
    if overwrite and folder.exists():
        console.print(f"earlier work moved aside to {stage.move_aside()}", markup=False)
    from codeloop.rundir import content_hash

    # The input's content is part of the config: a regenerated input file is not "the same settings".
    inputs = {k: content_hash(v) for k, v in values.items() if k == "input" and isinstance(v, str)}
    from codeloop.pipeline.runner import resolved_settings

    state = stage.open({"type": step.name, "settings": resolved_settings(cfg), **({"inputs": inputs} if inputs else {})},
                       reuse_stale=not overwrite)
    if state.status == "done":
        metrics = stage.metrics()
        console.print(f"[dim]{step.name}: done earlier with the same settings — reused[/]")
    else:
        ctx = StepContext(run, stage, folder.name, executor=executor, isolation=isolation)
        metrics = step.run(ctx, cfg)
        stage.finish(metrics)
    if file_out:
        if not step.output:
            raise UserError(f"step '{step.name}' writes a folder, not one file: give --out a folder name", "--out")
        from codeloop.records import atomic_write_text, read_records, write_records

        if out.name.endswith(".jsonl"):
            atomic_write_text(out, (folder / step.output).read_text(encoding="utf-8"))
        else:  # .jsonl.gz, .parquet: the same records in the format the name says
            write_records(out, read_records(folder / step.output))
    plot = plot or (out.with_suffix(".png") if file_out and step.plot else None)
    if plot is not None and (folder / step.plot).exists():
        import shutil

        shutil.copyfile(folder / step.plot, plot)
    summary(f"{step.name}: " + (step.summarize(metrics) if step.summarize else f"{one_line(metrics)} -> {out}"))
    return metrics
