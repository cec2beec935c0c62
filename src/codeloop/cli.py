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
from codeloop.console import console
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
COMMAND_MODULES = ("problems", "sample", "execute", "score", "eval", "steps", "lintseq", "select", "run", "report")


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


def main(argv: list[str] | None = None) -> int:
    """Entry point: user mistakes end in one clear message and exit code 2, never a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # codeloop draws its own progress bars; the libraries' per-file / per-map bars are noise here.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # Deprecation notices that libraries raise about each other's APIs are not the user's to act on.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        app(args=argv, standalone_mode=False)
    except UserError as exc:
        from rich.markup import escape  # user text (a task_id, a path) is not markup

        where = f"[bold]{escape(exc.where)}[/]: " if exc.where else ""
        console.print(f"[bold red]error:[/] {where}{escape(exc.message)}", markup=True, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("[bold red]aborted[/]")
        return 130
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    except Exception as exc:  # click usage errors carry their own exit code (2)
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
