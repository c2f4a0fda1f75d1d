"""`provnet rollout SLUG…`: take new sites from the source of truth to the network (registered by provnet.cli).

Built so far: the plan (``--check``) and the per-inventory lock; push, verify, test call and
acceptance record follow (docs/rollout.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from provnet.cli_common import (InventoryOpt, JsonOpt, emit_json, err, error_object, fail, inventory_failed,
                                inventory_path, out)
from provnet.errors import InventoryError

NOT_BUILT = "the push step is not built yet: run with --check"


def rollout(
    slugs: list[str] = typer.Argument(..., metavar="SLUG...", help="Sites (already in sites/) to roll out."),
    inventory: Optional[Path] = InventoryOpt,
    check: bool = typer.Option(False, "--check", help="Print the plan and stop: touches nothing."),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show each change's unified diff."),
    wait: float = typer.Option(0.0, "--wait", metavar="SECONDS",
                               help="Wait this long for the inventory's lock (default: fail at once)."),
    as_json: bool = JsonOpt,
) -> None:
    """Roll out new sites: plan (every device that changes, with its diff; the carrier's work order) → push → verify.

    Exit 0 with --check; 2 when a site is not ready (a placeholder circuit id or contact) or the
    inventory is locked by another run.
    """
    from provnet import lock
    from provnet.rollout.plan import PlanError, plan

    shown = str(inventory) if inventory is not None else "inventory/lab"
    try:
        root = inventory_path(inventory)
        shown = str(root)
        if check:
            p = plan(root, add=slugs, shown=shown)
        else:
            with lock.hold(root, wait=wait, shown=shown):
                p = plan(root, add=slugs, shown=shown)
                # the push, verify, test-call and record steps go here, under the lock
    except InventoryError as exc:
        inventory_failed(exc, shown)
    except PlanError as exc:
        fail(str(exc))
    if p.problems and not check:
        if not as_json:
            for problem in p.problems:
                err.print(str(problem), markup=False, highlight=False)
        fail(f"{len(p.problems)} problem(s) before the rollout of {', '.join(p.sites)}; nothing was changed",
             problems=p.problems)
    if not check:
        if as_json:
            emit_json({**error_object(NOT_BUILT), "plan": p.as_dict()})
            raise typer.Exit(2)
        out.print(p.text(diffs=diff), markup=False, highlight=False, end="")
        fail(NOT_BUILT)
    if as_json:
        emit_json(p.as_dict())
    else:
        out.print(p.text(diffs=diff), markup=False, highlight=False, end="")
    if p.problems:
        raise typer.Exit(2)
