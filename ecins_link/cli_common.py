"""What every ``ecins-link`` command shares: the Typer app, the error console, the one-line error guard and
opening a project's store.  The commands live in :mod:`ecins_link.cli` (pipeline), :mod:`ecins_link.cli_governance`
(review, override, audit, export, purge) and :mod:`ecins_link.cli_panel` (rules, serve, users).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ecins_link.config import ProjectConfig
    from ecins_link.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Link partnership extracts into one person + location graph and flag toxic-cocktail risk.")
console = Console(stderr=True)
_state = {"debug": False}

ProjectArg = Annotated[Path, typer.Argument(help="The project file (TOML).")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Who is acting (audit log); default: the OS user.")]


def fail(err: BaseException) -> None:
    """Print ``err`` as one red line and exit 2 (re-raise it under ``--debug``)."""
    if _state["debug"]:
        raise err
    console.print(f"[red]error:[/red] {type(err).__name__}: {err}" if not str(err) else f"[red]error:[/red] {err}",
                  highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code=2)


def guard(fn):  # noqa: ANN001, ANN202 - decorator
    """Turn any error a command raises into one clear line and exit code 2 (130 on Ctrl+C)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]: the stage that was running was rolled back; run again to finish")
            raise typer.Exit(code=130) from None
        except Exception as err:  # noqa: BLE001 - every error becomes one line
            fail(err)

    return wrapper


def _print_version(value: bool) -> None:
    if value:
        from ecins_link import __version__

        print(f"ecins-link {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """ecins-link: risk-linkage analytics for multi-agency partnerships.

    Results go to standard output (JSON with --json); progress, tables and errors go to standard error.
    """
    _state["debug"] = debug


def project_store(project: Path, command: str, user: str | None = None, purpose: str | None = None,
                   read_only: bool = False) -> tuple[ProjectConfig, Store]:
    """The project's config and its store, opened for one CLI command (the caller closes it: ``with store:``)."""
    from ecins_link.config import load_config
    from ecins_link.pipeline import open_store

    config = load_config(project)
    return config, open_store(config, user=user, command=command, purpose=purpose, read_only=read_only)


def print_json(obj: object) -> None:
    """Print a result (a dataclass or plain data) as indented JSON on stdout."""
    import json

    print(json.dumps(jsonable(obj), indent=2, default=str))


def jsonable(obj: object) -> object:
    """A dataclass as a dict (for ``json.dumps``); anything else unchanged."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj
