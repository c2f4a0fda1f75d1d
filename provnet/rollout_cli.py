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
    wave: int = typer.Option(0, "--wave", metavar="N", min=0,
                             help="Many sites: the first alone (the canary), then waves of N at once; stops at the "
                                  "first wave with a failure. One summary record."),
    as_json: bool = JsonOpt,
) -> None:
    """Roll out new sites: plan → lab nodes join → push (site.yml --limit) → verify → test call → acceptance record.

    Each step prints a progress line with its time; the first failure stops the rollout, re-converges the
    plan's DC devices without the sites and exits 1. Exit 0 with --check; 2 when a site is not ready (a
    placeholder circuit id or contact) or the inventory is locked by another run.

    --wave N: the whole plan is checked first; then the first site is rolled out alone, then the others
    N at a time, each wave against the inventory without the later waves' sites (so the DC never carries a
    site before its wave). The first wave that fails stops the rest; the summary lists every wave's record.
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
                if not p.problems and wave and len(p.sites) > 1:
                    rec = _waves(root, shown, p, wave, as_json)
                elif not p.problems:
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

        if report is not None and rec.get("kind") != "rollout-waves":
            report.write_text(record.html(rec), encoding="utf-8")
        if pdf is not None and rec.get("kind") != "rollout-waves":
            record.pdf(rec, pdf)
        if as_json:
            emit_json(rec)
        elif rec.get("kind") == "rollout-waves":
            for w in rec["waves"]:
                out.print(f"wave {w['number']}: {', '.join(w['sites'])} — {w['outcome']} in {w['seconds']:.1f} s "
                          f"({w['files'].get('html', '')})", markup=False, highlight=False)
            out.print(f"{rec['outcome']} in {rec['seconds']:.1f} s"
                      + (f"; not started: {', '.join(rec['not_started'])}" if rec["not_started"] else "")
                      + f" — summary: {rec['files']['json']}", markup=False, highlight=False)
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


def waves(slugs: tuple[str, ...] | list[str], size: int) -> list[tuple[str, ...]]:
    """The canary alone, then the rest ``size`` at a time, in the order given."""
    first, rest = tuple(slugs[:1]), tuple(slugs[1:])
    return [first] + [rest[i:i + size] for i in range(0, len(rest), size)] if first else []


def _waves(root: Path, shown: str, whole: "Plan", size: int, as_json: bool) -> dict:
    """Each wave a rollout of its own (same steps, same record) against an overlay without the later waves."""
    import tempfile

    from provnet import history, model, secrets
    from provnet.rollout import overlay, record
    from provnet.rollout.plan import plan

    say = (lambda line: err.print(line, markup=False, highlight=False)) if as_json else \
        (lambda line: out.print(line, markup=False, highlight=False))
    groups = waves(whole.sites, size)
    started, t0 = history.utc_now(), time.monotonic()
    vault = secrets.vault_paths(model.load(root, shown)).directory
    done: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="provnet-waves-") as tmp:
        for n, group in enumerate(groups, start=1):
            later = {s for g in groups[n:] for s in g}
            inv = overlay.build(root, Path(tmp) / f"wave-{n}", exclude=later) if later else root
            env = overlay.env(vault) if later else None
            say(f"== wave {n}/{len(groups)}{' (canary)' if n == 1 else ''}: {', '.join(group)}")
            t = time.monotonic()
            p = plan(inv, add=list(group), shown=shown)
            rec = _execute(inv, shown, p, time.monotonic() - t, as_json, env=env)
            done.append(rec)
            if not rec["ok"]:
                break
    summary = {"kind": "rollout-waves", "inventory": shown, "sites": list(whole.sites), "wave_size": size,
               "started_at": started, "finished_at": history.utc_now(),
               "seconds": round(time.monotonic() - t0, 1), "ok": all(r["ok"] for r in done) and len(done) == len(groups),
               "waves": [{"number": i, "sites": r["slugs"], "ok": r["ok"], "outcome": r["outcome"],
                          "seconds": r["seconds"], "run_id": r.get("run_id"), "files": r.get("files", {})}
                         for i, r in enumerate(done, start=1)],
               "not_started": [s for g in groups[len(done):] for s in g]}
    failed = next((w for w in summary["waves"] if not w["ok"]), None)
    summary["outcome"] = (f"wave {failed['number']} failed: {failed['outcome']}" if failed else
                          f"{len(whole.sites)} site(s) rolled out in {len(groups)} wave(s)")
    return record.save_waves(summary)


def _execute(root: Path, shown: str, p: "Plan", plan_seconds: float, as_json: bool,
             env: dict[str, str] | None = None) -> dict:
    """Steps 2–5 under the lock, then the record (kept in the history store and $PROVNET_HOME/rollouts/)."""
    import os

    from provnet import history, model
    from provnet.rollout import record, steps

    started = history.utc_now()
    m = model.load(root, shown)
    log_dir = record.rollouts_dir() / f"{'-'.join(p.sites)}-{started.replace(':', '').replace('-', '')}.logs"
    ctx = steps.Context(root, shown, m, p, log_dir, env=dict(env if env is not None else os.environ))
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
