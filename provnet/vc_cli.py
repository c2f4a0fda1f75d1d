"""`provnet vc …`: video-conference checks (readiness now; meetings and roll-call later); registered by provnet.cli."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from provnet.cli_common import InventoryOpt, JsonOpt, emit_json, err, fail, load_model, out, progress_bar

vc_app = typer.Typer(help="Video conference: readiness of every endpoint before a meeting.", no_args_is_help=True)


@vc_app.command("readiness")
def vc_readiness(
    inventory: Optional[Path] = InventoryOpt,
    scope: str = typer.Option("province", "--scope", help="'province', 'district <slug>' or 'site <slug>[,<slug>…]' "
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


meeting_app = typer.Typer(help="Meetings: dial out by scope on the conference bridge, live roll-call, reports.",
                          no_args_is_help=True)
vc_app.add_typer(meeting_app, name="meeting")

MeetingIdOpt = typer.Option(None, "--id", help="Meeting id [default: the meeting in progress].")


def _meeting_env(inventory: Optional[Path]):  # type: ignore[no-untyped-def]
    """Model, bridge and history store, or exit 2 naming what is missing."""
    from provnet import history
    from provnet.errors import ProvnetError
    from provnet.vc import bridge as bridge_mod

    m = load_model(inventory)
    try:
        return m, bridge_mod.lab_bridge(m), history.open_store()
    except (ProvnetError, KeyError) as exc:
        fail(str(exc))
        raise  # unreachable: fail exits


def _load(inventory: Optional[Path], meeting_id: Optional[int]):  # type: ignore[no-untyped-def]
    from provnet.errors import ProvnetError
    from provnet.vc.meeting import Meeting

    m, bridge, store = _meeting_env(inventory)
    try:
        mt = Meeting.load(m, bridge, store, meeting_id)
        if not mt.finished:
            mt.refresh()
            mt.save()
        return mt
    except ProvnetError as exc:
        fail(str(exc))
        raise


def _show(mt, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    from provnet.vc import meeting_report

    if as_json:
        emit_json(meeting_report.as_json(mt))
    else:
        out.print(meeting_report.table(mt))
        out.print(meeting_report.summary_line(mt), markup=False)


@meeting_app.command("start")
def meeting_start(
    template: str = typer.Argument(..., help="toan-tinh, huyen-<district>, or an ad hoc meeting of vc.meetings."),
    inventory: Optional[Path] = InventoryOpt,
    at: Optional[str] = typer.Option(None, "--at", help="Dial at this time: HH:MM (giờ VN) or ISO 8601. "
                                     "Readiness runs at once."),
    until: str = typer.Option("media", "--readiness-until", help="Readiness ladder depth before dialling."),
    skip_readiness: bool = typer.Option(False, "--skip-readiness", help="Dial every site without readiness."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Calls in flight [vc.dial_concurrency]."),
    retries: Optional[int] = typer.Option(None, "--retries", help="Redials of a failed leg [vc.dial_retries]."),
    as_json: bool = JsonOpt,
) -> None:
    """Start a meeting: readiness on its sites, then dial everyone in tiers.

    Tiers: the chair, then districts, then communes; within a tier at most --concurrency
    calls are in flight and a failed leg is redialled --retries times. Sites that readiness
    finds not ready are not dialled: the roll-call names the failing layer. The roll-call
    updates live; the meeting keeps going when some sites fail. Prints the meeting id
    (history run id) used by status, mute, drop, redial, end and report.

    Exit 0 when every reachable site joined, 1 when some did not, 2 on bad input.
    """
    from rich.live import Live

    from provnet.errors import ProvnetError
    from provnet.vc import meeting, meeting_report, probes as probes_mod, readiness

    m, bridge, store = _meeting_env(inventory)
    try:
        tpl = meeting.template(m, template)
        when = meeting.parse_at(at) if at else None
    except ProvnetError as exc:
        fail(str(exc))
        return
    if until not in readiness.LAYERS:
        fail(f"--readiness-until {until}: expected one of {', '.join(readiness.LAYERS)}")
    try:
        probes = None if skip_readiness else probes_mod.lab_probes(m)
        bridge.health()
    except (ProvnetError, NotImplementedError) as exc:
        fail(str(exc))
        return
    live = None if as_json else Live(console=err if not out.is_terminal else out, refresh_per_second=4)

    def update(mt: meeting.Meeting, phase: str) -> None:
        if live is not None:
            live.update(meeting_report.table(mt))

    try:
        if live is not None:
            live.start()
        mt = meeting.Meeting.start(m, tpl, bridge, store, probes, until=until, at=when, concurrency=concurrency,
                                   retries=retries, on_update=update)
    except ProvnetError as exc:
        fail(str(exc))
        return
    finally:
        if live is not None:
            live.stop()
    _show(mt, as_json)
    if not as_json:
        out.print(f"meeting {mt.id} is running — provnet vc meeting status | mute SITE | drop SITE | "
                  "redial SITE | end", markup=False)
    reachable = [r for r in mt.rows.values() if r.state not in ("not ready", "no endpoint")]
    raise typer.Exit(0 if all(r.state == "joined" for r in reachable) and len(reachable) == len(mt.rows) else 1)


@meeting_app.command("status")
def meeting_status(inventory: Optional[Path] = InventoryOpt, meeting_id: Optional[int] = MeetingIdOpt,
                   as_json: bool = JsonOpt) -> None:
    """The live roll-call of the meeting in progress (state, since when, audio, reason)."""
    _show(_load(inventory, meeting_id), as_json)


def _operate(action: str, site: str, inventory: Optional[Path], meeting_id: Optional[int], as_json: bool) -> None:
    from provnet.errors import ProvnetError

    mt = _load(inventory, meeting_id)
    if mt.finished:
        fail(f"meeting {mt.id} has ended")
    try:
        row = {"mute": lambda: mt.mute(site, True), "unmute": lambda: mt.mute(site, False),
               "drop": lambda: mt.drop(site), "redial": lambda: mt.redial(site)}[action]()
    except ProvnetError as exc:
        fail(str(exc), code=1)
        return
    if as_json:
        from provnet.vc import meeting_report

        emit_json(meeting_report.record(row))
    else:
        out.print(f"{row.site_name} ({row.site}): {row.state}{' (muted)' if row.muted else ''}"
                  f"{' — ' + row.reason if row.reason else ''}", markup=False)


SiteArg = typer.Argument(..., help="Site slug (ASCII), as in the roll-call.")


def _site_command(action: str, doc: str) -> None:
    """Register `provnet vc meeting ACTION SITE` (mute, unmute, drop, redial share everything else)."""

    def command(site: str = SiteArg, inventory: Optional[Path] = InventoryOpt,
                meeting_id: Optional[int] = MeetingIdOpt, as_json: bool = JsonOpt) -> None:
        _operate(action, site, inventory, meeting_id, as_json)

    command.__doc__ = doc
    meeting_app.command(action)(command)


_site_command("mute", "Mute a site's audio in the mix (it still hears the meeting).")
_site_command("unmute", "Unmute a site's audio.")
_site_command("drop", "Hang up one site (BYE); `redial` brings it back.")
_site_command("redial", "Dial one site again and wait until it joins or fails.")


@meeting_app.command("end")
def meeting_end(inventory: Optional[Path] = InventoryOpt, meeting_id: Optional[int] = MeetingIdOpt,
                as_json: bool = JsonOpt) -> None:
    """Hang up every site, remove the conference from the bridge, close the record."""
    mt = _load(inventory, meeting_id)
    if mt.finished:
        fail(f"meeting {mt.id} has already ended", code=1)
    mt.end()
    _show(mt, as_json)


@meeting_app.command("report")
def meeting_report_cmd(
    meeting_id: int = typer.Argument(..., help="Meeting id (from start, status or list)."),
    inventory: Optional[Path] = InventoryOpt,
    fmt: str = typer.Option("md", "--format", "-f", help="md, html, csv or json."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
) -> None:
    """The record of a meeting: who joined when and for how long, media, who never joined and why."""
    from provnet import history
    from provnet.errors import ProvnetError
    from provnet.vc import meeting, meeting_report
    from provnet.vc.bridge import lab_bridge

    m = load_model(inventory)
    renderers = meeting_report.RENDERERS
    if fmt not in renderers:
        fail(f"--format {fmt}: expected one of {', '.join(renderers)}")
    try:
        with history.open_store() as store:
            mt = meeting.Meeting.load(m, lab_bridge(m), store, meeting_id)
            text = renderers[fmt](mt)
    except ProvnetError as exc:
        fail(str(exc))
        return
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@meeting_app.command("list")
def meeting_list(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Meetings kept in the history store, newest first."""
    from provnet import history
    from provnet.vc.meeting import KIND, inventory_key

    m = load_model(inventory)
    with history.open_store() as store:
        rows = store.conn.execute("SELECT id FROM runs WHERE kind = ? AND inventory = ? ORDER BY id DESC LIMIT 50",
                                  (KIND, inventory_key(m))).fetchall()
        runs = [store.run(int(r[0])) for r in rows]
    data = [{"id": r.id, "template": r.summary.get("template"), "title": r.summary.get("title"),
             "state": r.summary.get("state"), "started": r.started_local, "counts": r.summary.get("counts")}
            for r in runs if r is not None]
    if as_json:
        emit_json(data)
        return
    for d in data:
        out.print(f"{d['id']:>5}  {d['started']}  {d['template']:<16} {d['state']:<10} {d['counts']}", markup=False)
