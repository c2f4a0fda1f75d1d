"""Verify reports: a per-site table for people, JSON for machines, HTML for the morning mail."""

from __future__ import annotations

import html
from typing import Any

from rich.table import Table

from provnet.verify.findings import Finding, SiteVerdict


def _says_more(f: Finding) -> bool:
    """The message is more than "<what>: expected …, observed …" (an SSH failure names the address)."""
    return bool(f.message) and not f.message.endswith(f"expected {f.expected}, observed {f.observed}")


def table(verdicts: list[SiteVerdict]) -> Table:
    t = Table(title="provnet verify — per site, failures first")
    for col in ("site", "layer", "check", "result", "expected → observed", "circuit / contact"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        site = f"{v.name} ({v.site})"
        for f in sorted((f for f in v.findings if not f.ok and not f.skipped), key=lambda f: (not f.root_cause, f.rank)):
            result = "ROOT CAUSE" if f.root_cause else f"blocked by {f.blocked_by}"
            detail = f"{f.expected} → {f.observed}" if (f.expected or f.observed) and not _says_more(f) else f.message
            t.add_row(site, f.layer, f"{f.host}: {f.check}", result, detail,
                      f"{v.circuit_id} / {v.contact}" if f.root_cause else "")
        for f in v.degraded_findings:
            t.add_row(site, f.layer, f"{f.host}: {f.check}", "DEGRADED", f.message, "")
        if v.ok:
            t.add_row(site, "all", f"{sum(1 for f in v.findings if f.ok)} checks", "ok", "", "")
    return t


def as_json(verdicts: list[SiteVerdict]) -> list[dict[str, Any]]:
    return [{"site": v.site, "name": v.name, "ok": v.ok, "status": v.status, "circuit_id": v.circuit_id,
             "contact": v.contact,
             "root_cause": v.root_cause.as_dict() if v.root_cause else None,
             "findings": [f.as_dict() for f in v.findings]} for v in verdicts]


def as_html(verdicts: list[SiteVerdict], title: str) -> str:
    rows = []
    for v in verdicts:
        cause = v.root_cause
        # a degraded site shows its (first) degraded check where a failing one shows its root cause
        shown = cause or next(iter(v.degraded_findings), None)
        cells = [f"{html.escape(v.name)}<br><small>{v.site}</small>", {"failed": "FAILED", "degraded": "DEGRADED"}
                 .get(v.status, "ok"),
                 "" if shown is None else html.escape(f"{shown.layer}: {shown.host} {shown.check}"),
                 "" if shown is None else html.escape(shown.message if _says_more(shown) or not shown.expected
                                                      else f"expected {shown.expected}, observed {shown.observed}"),
                 "" if v.ok else str(sum(1 for f in v.findings if f.blocked_by)),
                 html.escape(f"{v.circuit_id} — {v.contact}")]
        cls = {"failed": "fail", "degraded": "degraded"}.get(v.status, "ok")
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"""<!doctype html><html lang="vi"><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
tr.fail td{{background:#fde2e2}}tr.degraded td{{background:#fff4d6}}tr.ok td{{background:#e6f4e6}}</style>
<h1>{html.escape(title)}</h1>
<p>{sum(1 for v in verdicts if not v.ok)} of {len(verdicts)} sites failing, \
{sum(1 for v in verdicts if v.status == "degraded")} degraded.</p>
<table><tr><th>site</th><th>verdict</th><th>root cause</th><th>detail</th><th>blocked checks</th><th>circuit — contact</th></tr>
{chr(10).join(rows)}
</table></html>
"""
