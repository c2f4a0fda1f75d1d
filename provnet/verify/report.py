"""Verify reports: a per-site table for people, JSON for machines, HTML for the morning mail."""

from __future__ import annotations

import html
from typing import Any

from rich.table import Table

from provnet.verify.findings import SiteVerdict


def table(verdicts: list[SiteVerdict]) -> Table:
    t = Table(title="provnet verify — per site, failures first")
    for col in ("site", "layer", "check", "result", "expected → observed", "circuit / contact"):
        t.add_column(col, overflow="fold")
    for v in verdicts:
        if v.ok:
            passed = sum(1 for f in v.findings if f.ok)
            t.add_row(f"{v.name} ({v.site})", "all", f"{passed} checks", "ok", "", "")
            continue
        for f in sorted((f for f in v.findings if not f.ok and not f.skipped), key=lambda f: (not f.root_cause, f.rank)):
            result = "ROOT CAUSE" if f.root_cause else f"blocked by {f.blocked_by}"
            detail = f"{f.expected} → {f.observed}" if f.expected or f.observed else f.message
            t.add_row(f"{v.name} ({v.site})", f.layer, f"{f.host}: {f.check}", result, detail,
                      f"{v.circuit_id} / {v.contact}" if f.root_cause else "")
    return t


def as_json(verdicts: list[SiteVerdict]) -> list[dict[str, Any]]:
    return [{"site": v.site, "name": v.name, "ok": v.ok, "circuit_id": v.circuit_id, "contact": v.contact,
             "root_cause": v.root_cause.as_dict() if v.root_cause else None,
             "findings": [f.as_dict() for f in v.findings]} for v in verdicts]


def as_html(verdicts: list[SiteVerdict], title: str) -> str:
    rows = []
    for v in verdicts:
        cause = v.root_cause
        cells = [f"{html.escape(v.name)}<br><small>{v.site}</small>", "ok" if v.ok else "FAILED",
                 "" if cause is None else html.escape(f"{cause.layer}: {cause.host} {cause.check}"),
                 "" if cause is None else html.escape(f"expected {cause.expected}, observed {cause.observed}"
                                                      if cause.expected else cause.message),
                 "" if v.ok else str(sum(1 for f in v.findings if f.blocked_by)),
                 html.escape(f"{v.circuit_id} — {v.contact}")]
        cls = "ok" if v.ok else "fail"
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"""<!doctype html><html lang="vi"><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
tr.fail td{{background:#fde2e2}}tr.ok td{{background:#e6f4e6}}</style>
<h1>{html.escape(title)}</h1>
<p>{sum(1 for v in verdicts if not v.ok)} of {len(verdicts)} sites failing.</p>
<table><tr><th>site</th><th>verdict</th><th>root cause</th><th>detail</th><th>blocked checks</th><th>circuit — contact</th></tr>
{chr(10).join(rows)}
</table></html>
"""
