"""`provnet soc alerts | events | verify-archive` (registered by provnet.cli; issue 24, docs/soc.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.table import Table
from rich.text import Text

from provnet.cli_common import InventoryOpt, JsonOpt, emit_json, error_object, fail, json_mode, load_model, out
from provnet.errors import AddressRefused

soc_app = typer.Typer(
    help="Security monitoring centre: the SOC node's alerts, a site's events and the archive chain check, "
         "each read by one SSH command on the SOC host (services.syslog).",
    no_args_is_help=True)

SinceOpt = typer.Option("24h", "--since", metavar="SPAN|TIME",
                        help="From when: a span back from now (30m, 24h, 7d) or an ISO 8601 time; a time "
                             "without an offset is giờ VN (2026-12-05T08:00).")
LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def _local(ts: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC ``…Z`` time in giờ VN, without the suffix (the column header says it)."""
    from provnet import history

    if not ts:
        return ""
    try:
        return history.local_time(str(ts), fmt).removesuffix(" (giờ VN)")
    except ValueError:
        return str(ts)


def _failed(exc: Exception) -> NoReturn:
    from provnet.soc.remote import SocError

    fail(str(exc), exc.code if isinstance(exc, SocError) else 2)


def _query(inventory: Optional[Path], site: Optional[str], since: Optional[str], what: Any) -> tuple[Any, Any, Any]:
    """Model, SOC and the answer of ``what(run, since)``: input checked first, then one SSH command."""
    from provnet.soc import remote

    m = load_model(inventory)
    try:
        soc = remote.soc_of(m)
        if site is not None:
            remote.check_site(m, site)
        when = remote.check_since(since) if since is not None else None
        with remote.connect(m, soc) as run:
            return m, soc, what(run, when)
    except (remote.SocError, AddressRefused) as exc:
        _failed(exc)


@soc_app.command("alerts")
def alerts_cmd(
    inventory: Optional[Path] = InventoryOpt,
    since: str = SinceOpt,
    site: Optional[str] = typer.Option(None, "--site", metavar="SLUG",
                                       help="Only alerts with an event of this site (a site slug, dc or unknown)."),
    as_json: bool = JsonOpt,
) -> None:
    """List the SOC's alerts whose last event is at or after --since (default: the last 24 h).

    Runs `provnet-soc alerts` on the SOC host over one SSH command. One row per alert, oldest first:
    when its first and last events happened (giờ VN), its level (critical, high, medium), the site(s)
    and hosts of its events, how many events, the rule's title and the alert's id. The detections and
    what raises them: docs/soc.md.

    --site is checked against the inventory before anything is contacted.

    Exit status: 0 the query ran, with or without alerts (an alert is not a failure of this command:
    read the table, or count `.alerts` in the JSON); 1 the SOC could not be reached or did not answer;
    2 bad input (an unknown site, a malformed --since).

    Example: provnet soc alerts --since 7d --site dong-dang
    """
    from provnet.soc import remote

    m, soc, data = _query(inventory, site, since, lambda run, when: remote.alerts(run, when, site))
    rows = data["alerts"]
    for a in rows:
        a["first_local"], a["last_local"] = _local(a.get("first_event")), _local(a.get("last_event"))
    if as_json:
        emit_json({"ok": True, "soc": soc.host, "address": soc.address, "site": site, "since": data.get("since"),
                   "since_local": _local(data.get("since")), "alerts": rows})
        return
    where = f" at {site}" if site else ""
    if not rows:
        out.print(f"no alerts{where} since {_local(data.get('since'))} (giờ VN) — SOC {soc.host}",
                  markup=False, highlight=False)
        return
    table = Table(title=f"SOC alerts{where} since {_local(data.get('since'))} (giờ VN) — {soc.host}")
    for col in ("first (giờ VN)", "last (giờ VN)", "level", "site", "hosts", "events", "alert", "title"):
        table.add_column(col, justify="right" if col == "events" else "left")
    for a in rows:
        level = str(a.get("level") or "")
        table.add_row(a["first_local"], a["last_local"], Text(level, style=LEVEL_STYLE.get(level, "")),
                      str(a.get("site") or "-"), ", ".join(a.get("hosts") or []) or "-", str(a.get("count", "")),
                      str(a.get("alert_id", "")), Text(str(a.get("title", ""))))
    out.print(table)
    out.print(f"{len(rows)} alert(s){where}", markup=False, highlight=False)


@soc_app.command("events")
def events_cmd(
    inventory: Optional[Path] = InventoryOpt,
    site: str = typer.Option(..., "--site", metavar="SLUG", help="The site (a site slug, dc or unknown)."),
    category: Optional[str] = typer.Option(None, "--category", metavar="C",
                                           help="Only this event.category: authentication (auth), network "
                                                "(net), configuration (config), host, process, session."),
    since: str = SinceOpt,
    limit: int = typer.Option(1000, "--limit", min=1, metavar="N", help="At most the newest N events."),
    as_json: bool = JsonOpt,
) -> None:
    """List one site's normalised events at the SOC since --since (default: the last 24 h).

    Runs `provnet-soc events` on the SOC host over one SSH command. One row per event, oldest first:
    its time (giờ VN), host, source (event.dataset), action and outcome, source address and message.
    When there are more than --limit, the newest N are shown and the summary says so. The fields:
    provnet/soc/fields.py and docs/soc.md.

    --site is checked against the inventory before anything is contacted.

    Exit status: 0 the query ran; 1 the SOC could not be reached or did not answer; 2 bad input.

    Example: provnet soc events --site dong-dang --category auth --since 2h
    """
    from provnet.soc import remote

    if category is not None:
        try:
            category = remote.check_category(category)
        except remote.SocError as exc:
            _failed(exc)
    m, soc, data = _query(inventory, site, since,
                          lambda run, when: remote.events(run, site, category, when, limit))
    rows = data["events"]
    if as_json:
        emit_json({"ok": True, "soc": soc.host, "address": soc.address, "site": site, "category": category,
                   "since": data.get("since"), "since_local": _local(data.get("since")), "limit": limit,
                   "truncated": bool(data.get("truncated")), "events": rows})
        return
    what = f"{category} events" if category else "events"
    title = f"{what.capitalize()} at {site} since {_local(data.get('since'))} (giờ VN) — {soc.host}"
    if rows:
        table = Table(title=title)
        for col in ("time (giờ VN)", "host", "source", "action", "outcome", "from", "message"):
            table.add_column(col)
        for e in rows:
            table.add_row(_local(e.get("@timestamp")), str(e.get("host.name", "-")), str(e.get("event.dataset", "-")),
                          str(e.get("event.action", "-")), str(e.get("event.outcome", "-")),
                          str(e.get("source.ip", "")), Text(str(e.get("message", ""))))
        out.print(table)
    more = f" (the newest {limit}; there are more: raise --limit or narrow --since)" if data.get("truncated") else ""
    out.print(f"{len(rows)} {what} at {site} since {_local(data.get('since'))} (giờ VN){more}",
              markup=False, highlight=False)


@soc_app.command("verify-archive")
def verify_archive_cmd(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Recompute the SOC's archive chain: has any archived day changed since it was archived?

    Runs `provnet-soc verify-archive` on the SOC host over one SSH command. Each closed day's database
    and raw events file were hashed (SHA-256) into a chain, each entry holding the previous one's hash;
    this recomputes it from the first entry and stops at the first broken one: a changed or missing
    file, an edited entry, a removed or reordered one. Days removed by a recorded prune are not
    expected on disk. Nothing on the SOC is changed. Format: docs/soc.md, "Archive check".

    Exit status: 0 the chain holds; 1 it is broken (the first broken day is named) or the SOC could
    not be reached; 2 bad input.

    Example: provnet soc verify-archive --json
    """
    from provnet.soc import remote

    m, soc, check = _query(inventory, None, None, lambda run, _when: remote.verify_archive(run))
    where = {"soc": soc.host, "address": soc.address}
    if check.ok:
        if as_json:
            emit_json({"ok": True, **where, "days": check.days, "head": check.head})
        else:
            head = f", chain head {check.head}" if check.head else " (the chain is empty: no day archived yet)"
            out.print(f"archive chain on {soc.host}: {check.days} days verified{head}", markup=False, highlight=False)
        return
    message = f"archive chain on {soc.host} broken at {check.broken}: {check.reason}"
    if json_mode():
        emit_json({**error_object(message), **where, "broken": check.broken, "reason": check.reason})
    else:
        out.print(message, markup=False, highlight=False)
    raise typer.Exit(1)
