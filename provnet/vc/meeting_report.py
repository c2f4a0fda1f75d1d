"""A meeting's roll-call and record: terminal table, JSON, CSV, Markdown and HTML."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime
from typing import Any

from rich.table import Table

from provnet import history
from provnet.vc.meeting import Meeting, Row

STYLE = {"joined": "green", "left": "cyan", "dialing": "yellow", "ringing": "yellow", "waiting": "dim",
         "failed": "red", "not ready": "red", "dropped": "magenta", "no endpoint": "red"}
COLUMNS = ("site", "site_name", "district", "tier", "verdict", "state", "joined_at", "left_at", "duration_s",
           "attempts", "muted", "receiving", "codec", "layer", "reason")


def _clock(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, history.LOCAL_TZ).strftime("%H:%M:%S")


def record(r: Row) -> dict[str, Any]:
    return {"site": r.site, "site_name": r.site_name, "district": r.district, "tier": r.tier,
            "endpoint": r.endpoint, "verdict": r.verdict(), "state": r.state,
            "joined_at": _clock(r.joined_at), "left_at": _clock(r.left_at), "duration_s": r.duration(),
            "attempts": r.attempts, "muted": r.muted, "receiving": r.media.get("receiving"),
            "codec": r.media.get("codec", ""), "layer": r.layer, "reason": r.reason, "media": r.media,
            "readiness": r.readiness}


def title(mt: Meeting) -> str:
    s = mt.summary
    return f"{s.get('title', s.get('template'))} — meeting {mt.id} ({s.get('template')}, {s.get('state')})"


def table(mt: Meeting) -> Table:
    t = Table(title=title(mt), title_justify="left")
    for col in ("Điểm cầu", "slug", "tier", "state", "since", "tries", "audio", "reason"):
        t.add_column(col, overflow="fold")
    for r in mt.rows.values():
        style = STYLE.get(r.state, "")
        audio = ""
        if r.state == "joined":
            audio = ("muted " if r.muted else "") + ("receiving" if r.media.get("receiving") else "no RTP yet")
        t.add_row(r.site_name, r.site, r.tier, f"[{style}]{r.state}[/]" if style else r.state,
                  _clock(r.joined_at), str(r.attempts or ""), audio, r.reason)
    return t


def summary_line(mt: Meeting) -> str:
    counts = mt.counts()
    reachable = sum(1 for r in mt.rows.values() if r.state not in ("not ready", "no endpoint"))
    joined = sum(1 for r in mt.rows.values() if r.joined_at)
    parts = [f"{n} {state}" for state, n in sorted(counts.items())]
    return f"{len(mt.rows)} sites: {', '.join(parts)} — {joined}/{reachable} reachable sites joined"


def as_json(mt: Meeting) -> dict[str, Any]:
    return {"id": mt.id, "summary": mt.summary, "participants": [record(r) for r in mt.rows.values()]}


def as_csv(mt: Meeting) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore")
    w.writeheader()
    for r in mt.rows.values():
        w.writerow(record(r))
    return buf.getvalue()


def _never(mt: Meeting) -> list[Row]:
    return [r for r in mt.rows.values() if not r.joined_at]


def as_markdown(mt: Meeting) -> str:
    s = mt.summary
    lines = [f"# {s.get('title')}", "",
             f"- meeting {mt.id}, template `{s.get('template')}`, chair `{s.get('chair')}`, bridge {s.get('bridge')}",
             f"- started {history.local_time(s['started_at']) if s.get('started_at') else '—'}, "
             f"ended {history.local_time(s['ended_at']) if s.get('ended_at') else '—'}",
             f"- {summary_line(mt)}", "", "## Roll-call", "",
             "| Điểm cầu | slug | tier | verdict | joined | left | minutes | tries | audio | reason |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in mt.rows.values():
        d = r.duration()
        audio = "receiving" if r.media.get("receiving") else ""
        lines.append(f"| {r.site_name} | {r.site} | {r.tier} | {r.verdict()} | {_clock(r.joined_at)} | "
                     f"{_clock(r.left_at)} | {'' if d is None else round(d / 60, 1)} | {r.attempts or ''} | "
                     f"{audio} | {r.reason.replace('|', '/')} |")
    never = _never(mt)
    lines += ["", "## Never joined", ""]
    lines += [f"- **{r.site_name}** (`{r.site}`): {r.verdict()}" + (f" at {r.layer}" if r.layer else "")
              + f" — {r.reason}" for r in never] or ["- every site joined"]
    return "\n".join(lines) + "\n"


def as_html(mt: Meeting) -> str:
    s = mt.summary
    e = html.escape
    rows = []
    for r in mt.rows.values():
        d = r.duration()
        rows.append(f"<tr class='{e(r.verdict().replace(' ', '-'))}'><td>{e(r.site_name)}</td><td>{e(r.site)}</td>"
                    f"<td>{e(r.tier)}</td><td>{e(r.verdict())}</td><td>{_clock(r.joined_at)}</td>"
                    f"<td>{_clock(r.left_at)}</td><td>{'' if d is None else round(d / 60, 1)}</td>"
                    f"<td>{r.attempts or ''}</td><td>{e(r.layer)}</td><td>{e(r.reason)}</td></tr>")
    return (f"<!doctype html><html lang='vi'><meta charset='utf-8'><title>{e(str(s.get('title')))}</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
            ".joined,.left{color:#070}.failed,.not-ready,.no-endpoint{color:#b00}</style>"
            f"<h1>{e(str(s.get('title')))}</h1><p>meeting {mt.id} · {e(str(s.get('template')))} · "
            f"{e(summary_line(mt))}</p><table><tr><th>Điểm cầu</th><th>slug</th><th>tier</th><th>verdict</th>"
            "<th>joined</th><th>left</th><th>minutes</th><th>tries</th><th>layer</th><th>reason</th></tr>"
            + "".join(rows) + "</table></html>\n")


def as_json_text(mt: Meeting) -> str:
    return json.dumps(as_json(mt), indent=2, ensure_ascii=False, default=str) + "\n"


#: ``report --format`` → renderer (the CLI and the Ansible action share it)
RENDERERS = {"md": as_markdown, "html": as_html, "csv": as_csv, "json": as_json_text}
