"""`provnet vc …`: video-conference checks (readiness now; meetings and roll-call later)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from provnet.cli import InventoryOpt, JsonOpt, app, emit_json, err, fail, load_model, out, progress_bar

vc_app = typer.Typer(help="Video conference: readiness of every endpoint before a meeting.", no_args_is_help=True)
app.add_typer(vc_app, name="vc")


@vc_app.command("readiness")
def vc_readiness(
    inventory: Optional[Path] = InventoryOpt,
    scope: str = typer.Option("province", "--scope", help="'province', 'district <slug>' or 'site <slug>' "
                              "(quote it: --scope 'district cao-loc')."),
    as_json: bool = JsonOpt,
    html_out: Optional[Path] = typer.Option(None, "--html", help="Also write an HTML report to this file."),
    compare_last: bool = typer.Option(False, "--compare-last", help="Show what changed since the previous run "
                                      "over the same scope."),
    workers: int = typer.Option(32, "--workers", help="Endpoints checked at once."),
    media_slots: Optional[int] = typer.Option(None, "--media-slots", help="Concurrent test calls "
                                              "[default: the probe's call slots]."),
    until: str = typer.Option("media", "--until", help="Stop the ladder after this layer: wan, router, "
                              "endpoint-host, registration, signalling, media."),
) -> None:
    """Will every endpoint (điểm cầu) in scope join the meeting, and if not, why?

    Climbs a ladder per endpoint and stops at the first failing layer: wan (site routes
    in the DC core, eBGP at the CE), router (CE management), endpoint-host (ping from the
    bridge), registration (Kamailio), signalling (SIP OPTIONS from the bridge), media
    (test call from the DC probe). Prints one row per endpoint and a summary per district;
    keeps the run in the history store ($PROVNET_HOME/history.sqlite).

    Exit 1 when any endpoint in scope is not ready (degraded ones will join: exit 0).
    """
    from provnet import history
    from provnet.errors import ProvnetError
    from provnet.vc import readiness, report

    m = load_model(inventory)
    try:
        kind, slug = readiness.parse_scope(scope)
        eps = readiness.endpoints(m, kind, slug)
    except readiness.ScopeError as exc:
        fail(str(exc))
        return
    if until not in readiness.LAYERS:
        fail(f"--until {until}: expected one of {', '.join(readiness.LAYERS)}")
    label = readiness.scope_label(kind, slug)
    if not eps:
        fail(f"no endpoint in {label} of {m.root}", code=1)
    from provnet.vc import probes as probes_mod

    try:
        probes = probes_mod.lab_probes(m)
    except NotImplementedError as exc:
        fail(f"readiness probes are not available: {exc}")
        return
    except ProvnetError as exc:
        fail(str(exc))
        return
    started = history.utc_now()
    with progress_bar(as_json) as progress:
        result = readiness.run_scope(m, eps, probes, workers=workers, media_slots=media_slots,
                                     progress=progress, until=until)
    result.scope = label
    run_id: Optional[int] = None
    prev, changes = None, None
    try:
        with history.open_store() as store:
            run_id = report.record(store, str(m.root), result, started)
            if compare_last:
                prev, changes = report.compare_last(store, label, str(m.root), run_id)
    except history.HistoryError as exc:
        err.print(f"provnet: warning: the run was not kept: {exc}", markup=False, highlight=False)
    title = f"provnet vc readiness — {m.name} — {label}"
    if html_out:
        html_out.write_text(report.as_html(m, result, title, started), encoding="utf-8")
    if as_json:
        emit_json(report.as_json(m, result, run_id=run_id, started_at=started,
                                 changes=changes if compare_last else None, previous=prev))
    else:
        out.print(report.table(result, f"{title} — {history.local_time(started)}"))
        out.print(report.district_table(readiness.district_summary(m, result.results)))
        out.print(report.summary_line(result), markup=False)
        line = report.timings_line(result)
        if line:
            out.print(line, markup=False)
        if compare_last:
            if prev is None:
                out.print(f"no earlier run over {label} to compare with", markup=False)
            elif not changes:
                out.print(f"nothing changed since run {prev.id} ({prev.started_local})", markup=False)
            else:
                out.print(report.changes_table(prev, changes))
    raise typer.Exit(readiness.exit_code(result))
