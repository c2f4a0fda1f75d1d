"""Readiness reports: a table for the engineer on duty, JSON for machines, HTML for the mail,
and the run kept in the history store so the next check can say what changed."""

from __future__ import annotations

import html
from typing import Any

from rich.table import Table

from provnet import history
from provnet.model import Model
from provnet.vc.readiness import (DEGRADED, KIND, LAYERS, NOT_READY, READY, DistrictSummary, EndpointResult,
                                  ScopeResult, district_summary)

#: The figures worth a glance, per layer, with their label and unit (the rest stay in JSON).
SHOWN = (
    ("wan", "bgp_state", "BGP", ""),
    ("router", "ssh_connect_ms", "mgmt", " ms"),
    ("endpoint-host", "ping_ms", "ping", " ms"),
    ("registration", "user_agent", "UA", ""),
    ("registration", "keepalive_rtt_ms", "keepalive", " ms"),
    ("signalling", "status", "OPTIONS", ""),
    ("signalling", "rtt_ms", "OPTIONS RTT", " ms"),
    ("media", "loss_pct", "loss", " %"),
    ("media", "jitter_ms", "jitter", " ms"),
    ("media", "rtt_ms", "RTT", " ms"),
)
STYLE = {READY: "green", DEGRADED: "yellow", NOT_READY: "bold red"}


def short_figures(r: EndpointResult) -> str:
    parts = []
    for layer, key, label, unit in SHOWN:
        value = r.figures.get(layer, {}).get(key)
        if value not in (None, ""):
            parts.append(f"{label} {value}{unit}")
    return ", ".join(parts)


def sort_rows(results: list[EndpointResult]) -> list[EndpointResult]:
    """Not ready first (lowest layer first), then degraded, then ready; by site within each."""
    order = {NOT_READY: 0, DEGRADED: 1, READY: 2}
    return sorted(results, key=lambda r: (order[r.verdict], LAYERS.index(r.layer) if r.verdict == NOT_READY else 0,
                                          r.endpoint.district or "", r.endpoint.site))


def table(result: ScopeResult, title: str) -> Table:
    t = Table(title=title)
    for col in ("điểm cầu (site)", "slug", "district", "layer", "verdict", "reason", "figures"):
        t.add_column(col, overflow="fold")
    for r in sort_rows(result.results):
        ep = r.endpoint
        t.add_row(ep.site_name, ep.site, ep.district or "", r.layer, f"[{STYLE[r.verdict]}]{r.verdict}[/]",
                  r.reason, short_figures(r))
    return t


def district_table(summaries: list[DistrictSummary]) -> Table:
    t = Table(title="per district")
    for col in ("district", "ready", "degraded", "not ready", "not ready at"):
        t.add_column(col, overflow="fold")
    for s in summaries:
        t.add_row(f"{s.name} ({s.district})" if s.district else s.name, str(s.ready), str(s.degraded),
                  str(s.not_ready), ", ".join(s.not_ready_sites[:8]) + (" …" if len(s.not_ready_sites) > 8 else ""))
    return t


def summary_line(result: ScopeResult) -> str:
    c = result.counts()
    return (f"{result.scope}: {c[READY]} ready, {c[DEGRADED]} degraded, {c[NOT_READY]} not ready of "
            f"{len(result.results)} endpoints in {result.elapsed:.1f} s (workers {result.workers}, "
            f"media slots {result.media_slots}{'' if result.until == 'media' else f', up to {result.until}'})")


def timings_line(result: ScopeResult) -> str:
    parts = [f"{layer} {t['median_s'] * 1000:.0f} ms" for layer, t in result.layer_timings().items()]
    return "median per layer: " + ", ".join(parts) if parts else ""


def as_json(m: Model | None, result: ScopeResult, *, run_id: int | None = None, started_at: str | None = None,
            changes: list[history.Change] | None = None, previous: history.Run | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "province": m.name if m is not None else None, "run_id": run_id, "started_at": started_at,
        "started_local": history.local_time(started_at) if started_at else None,
        "summary": result.summary(), "ready": result.ready,
        "districts": [s.as_dict() for s in district_summary(m, result.results)],
        "endpoints": [r.as_dict() for r in sort_rows(result.results)],
    }
    if changes is not None:
        data["compare"] = {"previous_run_id": previous.id if previous else None,
                           "previous_started_local": previous.started_local if previous else None,
                           "changes": [c.as_dict() for c in changes]}
    return data


def as_html(m: Model | None, result: ScopeResult, title: str, started_at: str | None = None) -> str:
    rows = []
    for r in sort_rows(result.results):
        ep = r.endpoint
        cls = {READY: "ok", DEGRADED: "warn", NOT_READY: "fail"}[r.verdict]
        cells = [f"{html.escape(ep.site_name)}<br><small>{html.escape(ep.site)}</small>", html.escape(ep.district or ""),
                 html.escape(r.layer), html.escape(r.verdict), html.escape(r.reason), html.escape(short_figures(r)),
                 html.escape(f"{ep.circuit_id} — {ep.contact}")]
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    drows = []
    for s in district_summary(m, result.results):
        drows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            f"{s.name} ({s.district})" if s.district else s.name, s.ready, s.degraded, s.not_ready)) + "</tr>")
    when = history.local_time(started_at) if started_at else ""
    return f"""<!doctype html><html lang="vi"><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}}table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:4px 8px}}
tr.fail td{{background:#fde2e2}}tr.warn td{{background:#fff4d6}}tr.ok td{{background:#e6f4e6}}</style>
<h1>{html.escape(title)}</h1>
<p>{html.escape(when)} — {html.escape(summary_line(result))}</p>
<table><tr><th>district</th><th>ready</th><th>degraded</th><th>not ready</th></tr>
{chr(10).join(drows)}
</table>
<table><tr><th>điểm cầu (site)</th><th>district</th><th>layer</th><th>verdict</th><th>reason</th><th>figures</th><th>circuit — contact</th></tr>
{chr(10).join(rows)}
</table></html>
"""


# ------------------------------------------------------------------ history


def record(store: history.Store, inventory: str, result: ScopeResult, started_at: str | None = None) -> int:
    """Keep one run: every endpoint's verdict, layer, reason and figures."""
    run_id = store.start_run(KIND, result.scope, inventory, started_at)
    for r in result.results:
        figures = {"site": r.endpoint.site, "district": r.endpoint.district, **r.flat_figures(),
                   "timings": {k: round(v, 4) for k, v in r.timings.items()}}
        store.add_result(run_id, r.endpoint.hostname, r.verdict, r.layer, r.reason, figures)
    store.finish_run(run_id, result.summary())
    return run_id


def compare_last(store: history.Store, scope: str, inventory: str, run_id: int
                 ) -> tuple[history.Run | None, list[history.Change]]:
    """The run before ``run_id`` over the same scope and inventory, and what changed since."""
    prev = next((r for r in store.last_runs(KIND, scope, n=5, inventory=inventory) if r.id < run_id), None)
    if prev is None:
        return None, []
    return prev, store.compare(prev.id, run_id)


def changes_table(prev: history.Run, changes: list[history.Change]) -> Table:
    t = Table(title=f"changes since run {prev.id} ({prev.started_local})")
    for col in ("endpoint", "before", "now", "reason now"):
        t.add_column(col, overflow="fold")
    for c in changes:
        before = "—" if c.before_verdict is None else f"{c.before_verdict} ({c.before_layer})"
        after = "—" if c.after_verdict is None else f"{c.after_verdict} ({c.after_layer})"
        t.add_row(c.subject, before, after, c.after_reason)
    return t
