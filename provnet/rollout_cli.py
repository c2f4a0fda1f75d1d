"""`provnet rollout SLUG…`: take new sites from the source of truth to the network (registered by provnet.cli).

Plan (``--check``), then under the inventory's lock: lab, push, verify, test call and the acceptance
record (docs/rollout.md; the steps are provnet.rollout.steps, the record provnet.rollout.record).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from provnet.cli_common import (InventoryOpt, JsonOpt, emit_json, err, error_object, fail, inventory_failed,
                                inventory_path, out)
from provnet.errors import InventoryError

if TYPE_CHECKING:
    from provnet.rollout.plan import Plan



def _report(slugs: list[str], inventory: Optional[Path], fmt: str, pdf: Optional[Path]) -> None:
    """`provnet rollout report SLUG`: the last acceptance record again."""
    from provnet.rollout import record

    if not slugs:
        fail("rollout report: name the site (provnet rollout report SLUG)")
    rec = record.last(slugs)
    if rec is None:
        fail(f"no rollout of {', '.join(slugs)} in the history store")
    if pdf is not None:
        record.pdf(rec, pdf)
    if fmt == "json":
        emit_json(rec)
    else:
        out.print(record.html(rec), markup=False, highlight=False, end="", soft_wrap=True)


def rollout(
    slugs: list[str] = typer.Argument(..., metavar="SLUG... | report SLUG",
                                      help="Sites (already in sites/) to roll out; `report SLUG` prints the last record."),
    inventory: Optional[Path] = InventoryOpt,
    check: bool = typer.Option(False, "--check", help="Print the plan and stop: touches nothing."),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show each change's unified diff."),
    wait: float = typer.Option(0.0, "--wait", metavar="SECONDS",
                               help="Wait this long for the inventory's lock (default: fail at once)."),
    report: Optional[Path] = typer.Option(None, "--report", metavar="FILE", help="Also write the record's HTML here."),
    pdf: Optional[Path] = typer.Option(None, "--pdf", metavar="FILE", help="Also write the record as PDF (WeasyPrint)."),
    fmt: str = typer.Option("html", "--format", help="rollout report: html or json."),
    as_json: bool = JsonOpt,
) -> None:
    """Roll out new sites: plan → lab nodes join → push (site.yml --limit) → verify → test call → acceptance record.

    Each step prints a progress line with its time; the first failure stops the rollout, re-converges the
    plan's DC devices without the sites and exits 1. Exit 0 with --check; 2 when a site is not ready (a
    placeholder circuit id or contact) or the inventory is locked by another run.
    """
    from provnet import lock
    from provnet.rollout.plan import PlanError, plan

    if slugs and slugs[0] == "report":
        if fmt not in ("html", "json"):
            fail("--format: html or json")
        _report(slugs[1:], inventory, "json" if as_json else fmt, pdf)
        return
    shown = str(inventory) if inventory is not None else "inventory/lab"
    rec = None
    try:
        root = inventory_path(inventory)
        shown = str(root)
        if check:
            p = plan(root, add=slugs, shown=shown)
        else:
            with lock.hold(root, wait=wait, shown=shown):
                t = time.monotonic()
                p = plan(root, add=slugs, shown=shown)
                if not p.problems:
                    rec = _execute(root, shown, p, time.monotonic() - t, as_json)
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
    if rec is not None:
        from provnet.rollout import record

        if report is not None:
            report.write_text(record.html(rec), encoding="utf-8")
        if pdf is not None:
            record.pdf(rec, pdf)
        if as_json:
            emit_json(rec)
        else:
            out.print(f"{rec['outcome']} in {rec['seconds']:.1f} s — record: {rec['files']['html']} "
                      f"(provnet rollout report {' '.join(p.sites)})", markup=False, highlight=False)
        if not rec["ok"]:
            raise typer.Exit(1)
        return
    if as_json:
        emit_json(p.as_dict())
    else:
        out.print(p.text(diffs=diff), markup=False, highlight=False, end="")
    if p.problems:
        raise typer.Exit(2)


def _execute(root: Path, shown: str, p: "Plan", plan_seconds: float, as_json: bool) -> dict:
    """Steps 2–5 under the lock, then the record (kept in the history store and $PROVNET_HOME/rollouts/)."""
    from provnet import history, model
    from provnet.rollout import record, steps

    started = history.utc_now()
    m = model.load(root, shown)
    log_dir = record.rollouts_dir() / f"{'-'.join(p.sites)}-{started.replace(':', '').replace('-', '')}.logs"
    ctx = steps.Context(root, shown, m, p, log_dir)
    say = (lambda line: err.print(line, markup=False, highlight=False)) if as_json else \
        (lambda line: out.print(line, markup=False, highlight=False))
    results, revert = steps.run(ctx, say, plan_seconds)
    t = time.monotonic()
    rec = record.build(m, shown, p.sites, started, results, revert)
    rec["steps"].append({"number": 6, "name": "record", "status": "passed", "seconds": 0.0, "reason": "",
                         "evidence": {}})
    rec = record.save(rec)
    say(f"[6/6] record     passed  {time.monotonic() - t:6.1f} s  {rec['files']['html']}")
    return rec
