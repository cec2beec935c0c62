"""`codeloop` command line. Each area registers its commands from `codeloop.commands.<area>`.

Command modules import heavy libraries (torch, transformers, TRL) inside the command functions,
never at module level, so `codeloop --help` starts in well under a second.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import typer

from codeloop import __version__
from codeloop.errors import UserError

app = typer.Typer(
    name="codeloop",
    help="Make code LLMs better with data they generate and that execution verifies.\n\n"
    "Sample programs, run them against tests in a sandbox, select and reshape the data, "
    "fine-tune (SFT, DPO) and measure pass@k. The main job: `codeloop run RECIPE.yaml`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Order here is the order in `--help`.
COMMAND_MODULES = ("problems", "execute", "score", "eval", "steps", "lintseq", "select", "run", "report")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codeloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """codeloop: sample, execute, select, train, evaluate."""


for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"codeloop.commands.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name == f"codeloop.commands.{_name}":
            continue  # area not built yet
        raise
    _mod.register(app)


INTERRUPTED = ("interrupted (Ctrl-C): finished work is kept; rerun the same command to resume")


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes end in one clear line and exit code 2, never a traceback; Ctrl-C
    ends in one line and exit code 130 (what a shell reports for SIGINT), so a pipeline stops."""
    from codeloop.commands.steps import remember_argv
    from codeloop.console import error_line

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # codeloop draws its own progress bars; the libraries' per-file / per-map bars are noise here.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # Deprecation notices that libraries raise about each other's APIs are not the user's to act on.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    args = list(sys.argv[1:] if argv is None else argv)
    remember_argv(args)
    try:
        rv = app(args=args, standalone_mode=False)
    except UserError as exc:
        error_line(exc.message, exc.where)
        return 2
    except typer.Exit as exc:
        return _exit_code(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return _exit_code(130)
    except OSError as exc:
        # A path the user named cannot be written or read (permissions, a file where a folder is
        # needed, a full disk): one line naming the path, not a traceback.
        import errno

        if not (isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError))
                or exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT)):
            raise
        error_line(exc.strerror or str(exc), str(exc.filename) if exc.filename is not None else None)
        return 2
    except Exception as exc:  # click usage errors carry their own exit code (2)
        # typer parses with its own copy of click (typer._click): recognise both by class name.
        names = {c.__name__ for c in type(exc).__mro__}
        if "ClickException" in names:
            return _usage_error(exc)
        if "ValidationError" in names and type(exc).__module__.startswith("pydantic"):
            # typer checks `min=`/`max=` of an optional number through pydantic
            first = (exc.errors() or [{}])[0]  # type: ignore[attr-defined]
            error_line(f"{first.get('msg', 'invalid value')} (got {first.get('input')!r})")
            return 2
        raise
    # In non-standalone mode typer *returns* the exit code of a `typer.Exit` (and turns Ctrl-C
    # into Exit(130)); commands themselves return None.
    return _exit_code(rv) if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _exit_code(code: int) -> int:
    from codeloop.console import console

    if code == 130:
        console.print(f"[bold red]{INTERRUPTED}[/]", soft_wrap=True)
    return code


def _usage_error(exc: Exception) -> int:
    """A click usage error (unknown flag, bad value) as one line naming the flag; exit code 2."""
    from codeloop.console import error_line

    if type(exc).__name__ == "NoArgsIsHelpError" or "UsageError" not in {c.__name__ for c in type(exc).__mro__}:
        exc.show()  # type: ignore[attr-defined]  # `codeloop train`: the group's help, as before
        return int(getattr(exc, "exit_code", 2))
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None and ctx.command_path else ""
    error_line(exc.format_message() + hint)
    return int(getattr(exc, "exit_code", 2) or 2)


if __name__ == "__main__":
    sys.exit(main())
