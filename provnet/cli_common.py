"""What the ``provnet`` command and its sub-CLIs share: consoles, options, the model, output and errors.

The sub-CLIs (lab_cli, net_cli, verify_cli, vc_cli) import from here, never from
:mod:`provnet.cli`, which registers them.

Errors have one format for every command: without ``--json``, one line per problem on
stderr; with ``--json``, one object on stdout,
``{"ok": false, "error": "...", "problems": [{"file", "obj", "message", "fix"}, ...]}``
(an invalid inventory adds ``"valid": false`` and ``"inventory"``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from provnet.errors import InventoryError, Problem, ProvnetError

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

# Set by the --json option of the running command; errors raised far from the command's
# parameters (load_model, fail, the top-level handler) read it.
_json_mode: ContextVar[bool] = ContextVar("provnet_json_mode", default=False)


def _remember_json(value: bool) -> bool:
    _json_mode.set(bool(value))
    return value


InventoryOpt = typer.Option(
    None, "-i", "--inventory", help="Inventory folder [env PROVNET_INVENTORY; default inventory/lab]."
)
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.",
                       callback=_remember_json)


def json_mode() -> bool:
    """Whether the running command was given --json."""
    return _json_mode.get()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def error_object(message: str, problems: Sequence[Problem] = ()) -> dict[str, Any]:
    """The JSON every failing command prints with --json."""
    return {"ok": False, "error": message, "problems": [dataclasses.asdict(p) for p in problems]}


def fail(message: str, code: int = 2, problems: Sequence[Problem] = ()) -> NoReturn:
    """Report one error (JSON on stdout with --json, else a line on stderr) and exit."""
    if json_mode():
        emit_json(error_object(message, problems))
    else:
        err.print(f"provnet: {message}", markup=False, highlight=False)
    raise typer.Exit(code)


def inventory_failed(exc: InventoryError, shown: str, tail: str = "; nothing was changed.") -> NoReturn:
    """Report every problem of an invalid inventory and exit 2."""
    summary = f"{len(exc.problems)} problem(s) in {shown}{tail}"
    if json_mode():
        emit_json({"ok": False, "valid": False, "inventory": shown, **error_object(summary, exc.problems)})
    else:
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        err.print(summary, markup=False)
    raise typer.Exit(2)


def inventory_path(given: Optional[Path]) -> Path:
    """The inventory folder: -i, then $PROVNET_INVENTORY, then inventory/lab.

    A province file is taken for its folder; any other file is refused (InventoryError).
    """
    from provnet.sot import PROVINCE_FILE

    if given is None:
        env = os.environ.get("PROVNET_INVENTORY")
        if not env:
            here = Path("inventory/lab")
            return here if here.is_dir() else Path(__file__).resolve().parent.parent / "inventory" / "lab"
        given = Path(env)
    if given.is_file():
        if given.name == PROVINCE_FILE:
            return given.parent
        raise InventoryError([Problem(str(given), "inventory", "is a file, not an inventory folder",
                                      f"point -i at the folder that holds {PROVINCE_FILE}")])
    return given


def load_model(given: Optional[Path]):  # type: ignore[no-untyped-def]
    """Compile the model or exit 2 listing every problem."""
    from provnet import model

    shown = str(given)
    try:
        path = inventory_path(given)
        shown = str(path)
        return model.load(path, shown)
    except InventoryError as exc:
        inventory_failed(exc, shown)


class progress_bar:
    """A rich progress bar on stderr, one line per stage; silent for --json or without a terminal.

    Used as ``with progress_bar(as_json) as progress: work(progress)`` where work calls
    ``progress(stage, done, total)``.
    """

    def __init__(self, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err, disable=quiet or not sys.stderr.isatty())
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        self.bar.__enter__()
        return self.update

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done)


class ErrorHandlingGroup(TyperGroup):
    """The root command group: an error escaping a command becomes one reported error, never a traceback.

    A ProvnetError exits 2 (as the console entry point always did), anything unexpected exits 1.
    ``PROVNET_DEBUG=1`` lets the traceback through.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        token = _json_mode.set(False)  # CliRunner runs many commands in one process
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, EOFError):
            raise  # usage errors, exits and ^D keep typer's own handling
        except ProvnetError as exc:
            fail(str(exc), 2, getattr(exc, "problems", ()))
        except Exception as exc:
            if os.environ.get("PROVNET_DEBUG") == "1" or (isinstance(exc, OSError) and exc.errno == errno.EPIPE):
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            fail(f"unexpected error: {type(exc).__name__}{': ' + first if first else ''} "
                 "(PROVNET_DEBUG=1 shows the traceback)", 1)
        finally:
            _json_mode.reset(token)
