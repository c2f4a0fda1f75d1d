"""The compliance report: one printable HTML page, Markdown for mail, JSON for machines, JUnit for CI.

Same shape as the project's other reports (``provnet/vc/meeting_report.py``): plain functions
over one input, a ``RENDERERS`` map the CLI and the Ansible side share. Labels are Vietnamese
(the operators read them), rule ids and device names stay as they are. Everything from a
device or a rule is escaped; the HTML page carries its own CSS and nothing external.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from provnet import history
from provnet.compliance.trend import OPEN, STATUSES, FindingLike, Trend, attr, is_open, subject

if TYPE_CHECKING:
    from provnet.compliance.socview import Alert, SocView

STATUS_VI = {"pass": "Đạt", "fail": "Không đạt", "waived": "Được miễn trừ", "error": "Lỗi kiểm tra",
             "not_applicable": "Không áp dụng", "unreachable": "Không kết nối được"}
SEVERITY_VI = {"critical": "Nghiêm trọng", "high": "Cao", "medium": "Trung bình", "low": "Thấp", "info": "Thông tin"}
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
#: Reading order of the findings: what needs work first, what was accepted last.
STATUS_RANK = {"fail": 0, "unreachable": 1, "error": 2, "waived": 3, "not_applicable": 4, "pass": 5}
EVIDENCE_SHOWN = 4000
NO_SITE = "Trung tâm tích hợp dữ liệu"  # devices of no site are the data center's
RULE_ID = re.compile(r"^([a-z][a-z0-9_]*)-\d{3}$")  # as compliance/rules/*.yml name them


@dataclass
class Report:
    """One run's findings and what the report says around them."""

    findings: Sequence[FindingLike]
    run_id: int | None = None
    started_at: str = ""
    inventory: str = ""
    scope: str = "all"
    province: str = ""
    sites: Mapping[str, str] = field(default_factory=dict)  # slug → name with diacritics
    trend: Trend | None = None
    notes: list[str] = field(default_factory=list)  # e.g. an interrupted previous run, the backup commit
    soc: SocView | None = None  # the SOC's last 24 h (provnet.compliance.socview); None: not collected

    @property
    def title(self) -> str:
        where = f" — {self.province}" if self.province else ""
        return f"Báo cáo tuân thủ cấu hình và an toàn thông tin{where}"


def site_names(model: Any) -> dict[str, str]:
    """slug → the site's name with diacritics, from the compiled model."""
    return {slug: site.name for slug, site in model.sites.items()}


def exit_code(findings: Iterable[FindingLike]) -> int:
    """0 compliant, 1 any open finding (fail, error, unreachable); bad input (2) is the caller's."""
    return 1 if any(is_open(f.status) for f in findings) else 0


def family(f: FindingLike) -> str:
    """The rule family: the finding's own, else ``drift``, else the ``<family>-NNN`` of its rule id."""
    own = str(attr(f, "family"))
    if own:
        return own
    if attr(f, "kind", "rule") == "drift":
        return "drift"
    m = RULE_ID.match(f.rule_id)
    return m.group(1) if m else re.split(r"[.:/-]", f.rule_id, maxsplit=1)[0]


def title(f: FindingLike) -> str:
    """The Vietnamese title (a rule's title may be a ``{vi, en}`` pair or plain text)."""
    t = attr(f, "title")
    return str(getattr(t, "vi", None) or (t.get("vi") if isinstance(t, dict) else t) or "")


def _site_name(r: Report, slug: str) -> str:
    return r.sites.get(slug, slug) if slug else NO_SITE


def _ordered(findings: Iterable[FindingLike]) -> list[FindingLike]:
    return sorted(findings, key=lambda f: (STATUS_RANK.get(f.status, 9),
                                           SEVERITY_RANK.get(str(attr(f, "severity")), 9),
                                           str(attr(f, "site")), f.device, f.rule_id))


def _tally(r: Report, key: Any) -> list[dict[str, Any]]:
    groups: dict[str, Counter[str]] = {}
    devices: dict[str, set[str]] = {}
    for f in r.findings:
        k = key(f)
        groups.setdefault(k, Counter())[f.status] += 1
        devices.setdefault(k, set()).add(f.device)
    rows = [{"key": k, "devices": len(devices[k]), **{s: c[s] for s in STATUSES},
             "open": sum(c[s] for s in OPEN)} for k, c in groups.items()]
    return sorted(rows, key=lambda row: (-row["open"], row["key"]))


def by_site(r: Report) -> list[dict[str, Any]]:
    rows = _tally(r, lambda f: str(attr(f, "site")))
    for row in rows:
        row["site"] = row.pop("key")
        row["name"] = _site_name(r, row["site"])
    return rows


def by_family(r: Report) -> list[dict[str, Any]]:
    rows = _tally(r, family)
    for row in rows:
        row["family"] = row.pop("key")
    return rows


def _marks(r: Report) -> dict[str, str]:
    """subject → "mới" or "từ <local date>" for what is open."""
    if r.trend is None:
        return {}
    out = {i.subject: "mới" for i in r.trend.new}
    for i in r.trend.still_open:
        out[i.subject] = f"từ {i.open_since.started_local}" if i.open_since else "vẫn tồn tại"
    return out


def _record(r: Report, f: FindingLike) -> dict[str, Any]:
    return {"device": f.device, "rule_id": f.rule_id, "status": f.status, "kind": attr(f, "kind", "rule"),
            "family": family(f), "title": title(f),
            "clause": str(attr(f, "clause")), "remediation": str(attr(f, "remediation")), "severity": attr(f, "severity"),
            "site": attr(f, "site"), "site_name": _site_name(r, str(attr(f, "site"))),
            "reason": str(attr(f, "reason")), "evidence": attr(f, "evidence")}


#: Control characters a terminal config may carry; neither XML nor HTML may hold them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(value: object) -> str:
    return _CONTROL.sub("?", str(value))


# ---------------------------------------------------------------- JSON

def as_json(r: Report) -> dict[str, Any]:
    counts = Counter(f.status for f in r.findings)
    return {"report": {"title": r.title, "run": r.run_id, "started_at": r.started_at,
                       "started_local": history.local_time(r.started_at), "inventory": r.inventory,
                       "scope": r.scope, "province": r.province, "notes": list(r.notes)},
            "summary": {"devices": len({f.device for f in r.findings}), "checks": len(r.findings),
                        **{s: counts[s] for s in STATUSES}, "open": sum(counts[s] for s in OPEN),
                        "compliant": exit_code(r.findings) == 0},
            "by_site": by_site(r), "by_family": by_family(r),
            "findings": [_record(r, f) for f in _ordered(r.findings)],
            "trend": r.trend.as_dict() if r.trend else None, "exit_code": exit_code(r.findings)} \
        | ({"soc": r.soc.as_dict()} if r.soc is not None else {})  # only when collected: the rest is as before


def as_json_text(r: Report) -> str:
    return json.dumps(as_json(r), indent=2, ensure_ascii=False, default=str) + "\n"


# ---------------------------------------------------------------- HTML

CSS = """@page { size: A4; margin: 12mm 10mm; }
body { font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; font-size: 10pt; color: #111; margin: 0 auto;
       max-width: 190mm; }
h1 { font-size: 15pt; margin: 0 0 4pt; } h2 { font-size: 12pt; margin: 12pt 0 4pt; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; margin-bottom: 6pt; }
th, td { border: 1px solid #bbb; padding: 2pt 4pt; text-align: left; vertical-align: top; }
th { background: #eee; } td.n { text-align: right; }
thead { display: table-header-group; } tr, .finding { break-inside: avoid; page-break-inside: avoid; }
.fail, .unreachable, .error { color: #a00; font-weight: bold; } .pass { color: #060; } .waived { color: #850; }
.ok { background: #e6f4e6; padding: 4pt; } .bad { background: #fde2e2; padding: 4pt; }
.finding { border: 1px solid #bbb; margin: 4pt 0; padding: 3pt 5pt; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 8pt; background: #f6f6f6; margin: 2pt 0; padding: 3pt; }
.meta { color: #444; } small { color: #555; }
"""


def _e(value: object) -> str:
    return html.escape(_x(value), quote=True)


def _status(s: str) -> str:
    return f'<span class="{_e(s)}">{_e(STATUS_VI.get(s, s))}</span>'


def _summary_table(rows: list[dict[str, Any]], first: str, label: Any) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in (first, "Thiết bị", "Không đạt", "Không kết nối được",
                                                   "Lỗi kiểm tra", "Được miễn trừ", "Không áp dụng", "Đạt"))
    body = "".join(
        "<tr>" + f"<td>{label(row)}</td>" + "".join(
            f'<td class="n">{row[k]}</td>' for k in ("devices", "fail", "unreachable", "error", "waived",
                                                      "not_applicable", "pass")) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _trend_html(t: Trend | None) -> str:
    if t is None:
        return ""
    if t.previous is None:
        line = "Lần chạy đầu tiên của phạm vi này: chưa có lần trước để so sánh."
    else:
        line = (f"So với lần chạy {t.previous.id} ({_e(t.previous.started_local)}): "
                f"<b>{len(t.new)}</b> mới, <b>{len(t.fixed)}</b> đã khắc phục, "
                f"<b>{len(t.still_open)}</b> vẫn tồn tại, {len(t.gone)} không còn được kiểm tra.")
    parts = [f"<h2>Thay đổi kể từ lần chạy trước</h2><p>{line}</p>"]
    if t.fixed:
        parts.append("<p>Đã khắc phục: " + ", ".join(
            f"<code>{_e(i.device)}</code> {_e(i.rule_id)} ({_e(STATUS_VI.get(i.status or '', i.status))})"
            for i in t.fixed) + "</p>")
    for run in t.interrupted:
        parts.append(f'<p class="bad">Lần chạy {run.id} ({_e(run.started_local)}) chưa hoàn tất.</p>')
    return "".join(parts)


def _evidence(text: str) -> str:
    if len(text) > EVIDENCE_SHOWN:
        text = text[:EVIDENCE_SHOWN] + f"\n… (cắt bớt, {len(text)} ký tự; xem JSON)"
    return f"<pre>{_e(text)}</pre>" if text else ""


def as_html(r: Report) -> str:
    data = as_json(r)
    s = data["summary"]
    marks = _marks(r)
    verdict = (f'<p class="ok">Tuân thủ: {s["devices"]} thiết bị, {s["checks"]} kiểm tra, không có phát hiện mở.</p>'
               if s["compliant"] else
               f'<p class="bad">Chưa tuân thủ: {s["open"]} phát hiện mở trên {s["devices"]} thiết bị '
               f'({s["fail"]} không đạt, {s["unreachable"]} không kết nối được, {s["error"]} lỗi kiểm tra); '
               f'{s["waived"]} được miễn trừ.</p>')
    meta = " · ".join(_e(x) for x in (
        f"Lần chạy {r.run_id}" if r.run_id is not None else "", history.local_time(r.started_at),
        f"Kho kiểm kê {r.inventory}" if r.inventory else "", f"Phạm vi {r.scope}") if x)
    findings = []
    for f in _ordered(x for x in r.findings if x.status not in ("pass", "not_applicable")):
        mark = marks.get(subject(f), "")
        sev = str(attr(f, "severity"))
        kind = "Sai lệch cấu hình" if attr(f, "kind", "rule") == "drift" else "Quy tắc"
        findings.append(
            f'<div class="finding"><b>{_e(f.device)}</b> · {_e(_site_name(r, str(attr(f, "site"))))} · '
            f"{_status(f.status)} · Mức độ: {_e(SEVERITY_VI.get(sev, sev))}"
            + (f" · <i>{_e(mark)}</i>" if mark else "")
            + f"<br>{_e(kind)} <code>{_e(f.rule_id)}</code>: {_e(title(f))}"
            + (f"<br><small>{_e(attr(f, 'clause'))}</small>" if attr(f, "clause") else "")
            + (f"<br><i>{_e(attr(f, 'reason'))}</i>" if attr(f, "reason") else "")
            + _evidence(str(attr(f, "evidence")))
            + (f"<small>Khắc phục: {_e(attr(f, 'remediation'))}</small>"
               if attr(f, "remediation") and is_open(f.status) else "") + "</div>")
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    return (f'<!doctype html>\n<html lang="vi"><head><meta charset="utf-8"><title>{_e(r.title)}</title>'
            f"<style>{CSS}</style></head><body>"
            f"<h1>{_e(r.title)}</h1><p class=\"meta\">{meta}</p>{verdict}"
            + (f"<ul>{notes}</ul>" if notes else "")
            + _trend_html(r.trend)
            + "<h2>Tóm tắt theo đơn vị</h2>"
            + _summary_table(data["by_site"], "Đơn vị",
                             lambda row: f"{_e(row['name'])}" + (f"<br><small>{_e(row['site'])}</small>"
                                                                  if row["site"] else ""))
            + "<h2>Tóm tắt theo nhóm quy tắc</h2>"
            + _summary_table(data["by_family"], "Nhóm quy tắc", lambda row: f"<code>{_e(row['family'])}</code>")
            + _soc_html(r.soc)
            + f"<h2>Các phát hiện ({len(findings)})</h2>"
            + ("".join(findings) or "<p>Không có phát hiện nào.</p>")
            + "</body></html>\n")


# ---------------------------------------------------------------- Markdown

def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}\n{text.rstrip()}\n{ticks}"


def as_markdown(r: Report) -> str:
    data = as_json(r)
    s = data["summary"]
    marks = _marks(r)
    lines = [f"# {r.title}", "",
             f"- Lần chạy {r.run_id if r.run_id is not None else '—'}, {history.local_time(r.started_at) or '—'}, "
             f"kho kiểm kê `{r.inventory}`, phạm vi {r.scope}",
             f"- {'**Tuân thủ**' if s['compliant'] else '**Chưa tuân thủ**'}: {s['open']} phát hiện mở "
             f"({s['fail']} không đạt, {s['unreachable']} không kết nối được, {s['error']} lỗi kiểm tra), "
             f"{s['waived']} được miễn trừ, {s['pass']} đạt — {s['devices']} thiết bị"]
    lines += [f"- {n}" for n in r.notes]
    t = r.trend
    if t is not None and t.previous is not None:
        lines.append(f"- So với lần chạy {t.previous.id}: {len(t.new)} mới, {len(t.fixed)} đã khắc phục, "
                     f"{len(t.still_open)} vẫn tồn tại")
    if t is not None:
        lines += [f"- Lần chạy {run.id} ({run.started_local}) chưa hoàn tất" for run in t.interrupted]
    header = "| Thiết bị | Không đạt | Không kết nối | Lỗi | Miễn trừ | Đạt |\n|---|---|---|---|---|---|"
    lines += ["", "## Theo đơn vị", "", "| Đơn vị " + header.split("\n")[0], "|---" + header.split("\n")[1]]
    lines += [f"| {_cell(row['name'])} | {row['devices']} | {row['fail']} | {row['unreachable']} | {row['error']} "
              f"| {row['waived']} | {row['pass']} |" for row in data["by_site"]]
    lines += ["", "## Theo nhóm quy tắc", "", "| Nhóm " + header.split("\n")[0], "|---" + header.split("\n")[1]]
    lines += [f"| `{_cell(row['family'])}` | {row['devices']} | {row['fail']} | {row['unreachable']} "
              f"| {row['error']} | {row['waived']} | {row['pass']} |" for row in data["by_family"]]
    lines += _soc_markdown(r.soc)
    lines += ["", "## Các phát hiện", ""]
    shown = [f for f in _ordered(r.findings) if f.status not in ("pass", "not_applicable")]
    for f in shown:
        mark = marks.get(subject(f), "")
        sev = str(attr(f, "severity"))
        lines.append(f"- **{f.device}** ({_site_name(r, str(attr(f, 'site')))}) `{f.rule_id}` — "
                     f"{STATUS_VI.get(f.status, f.status)}, {SEVERITY_VI.get(sev, sev)}"
                     + (f", _{mark}_" if mark else "") + (f": {title(f)}" if title(f) else "")
                     + (f" — {_x(attr(f, 'reason'))}" if attr(f, "reason") else ""))
        evidence = _x(attr(f, "evidence"))[:EVIDENCE_SHOWN]
        if evidence:
            lines += ["", "  " + _fence(evidence).replace("\n", "\n  "), ""]
    if not shown:
        lines.append("- Không có phát hiện nào.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the SOC's view

SOC_TITLE = "Giám sát an toàn thông tin (24 giờ qua)"
SOC_COLUMNS = ("Đơn vị", "Nhật ký cuối cùng tại SOC", "Đăng nhập quản trị thất bại", "Gói tin bị chặn",
               "Thay đổi cấu hình", "Cảnh báo")
ALERTS_TITLE = "Cảnh báo tương quan của SOC trong 24 giờ qua"
ALERT_COLUMNS = ("Mức độ", "Cảnh báo", "Đơn vị", "Thiết bị", "Sự kiện đầu", "Sự kiện cuối", "Số sự kiện")
LEVEL_VI = {**SEVERITY_VI, "informational": "Thông tin"}
UNKNOWN_SITE = "Không rõ đơn vị"  # an alert the SOC labelled unknown (a host its site table does not list)


def _level(level: str) -> str:
    return LEVEL_VI.get(level, level or "—")


def _levels(counts: Mapping[str, int], only_seen: bool = False) -> str:
    """``Nghiêm trọng 1, Cao 2, …`` (``only_seen``: the levels with alerts only)."""
    return ", ".join(f"{_level(k)} {n}" for k, n in counts.items() if n or not only_seen)


def _alert_sites(v: SocView, a: Alert) -> str:
    names = [_soc_site(v, slug) for slug in a.sites]
    if a in v.unknown_alerts:
        names.append(f"{UNKNOWN_SITE} ({a.site or '-'})")
    return ", ".join(names)


def _site_alerts(alerts: list[Alert] | None) -> tuple[str, str]:
    """A site row's alerts cell: the count, and its levels ("—": the SOC's alerts were not read)."""
    if alerts is None:
        return "—", ""
    from provnet.compliance.socview import level_counts

    return str(len(alerts)), _levels(level_counts(alerts), only_seen=True)


def _when(t: Any) -> str:
    return history.local_time(t, "%Y-%m-%d %H:%M") if t is not None else "chưa nhận được"


def _sources(counts: Mapping[str, int], shown: int = 5) -> str:
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{a} ({n})" for a, n in top[:shown])
    return text + (f", … {len(top) - shown} địa chỉ khác" if len(top) > shown else "")


def _soc_intro(v: SocView) -> str:
    return (f"Nhật ký tại máy chủ SOC {v.soc} ({v.directory}) từ {history.local_time(v.since)} "
            f"đến {history.local_time(v.now)}.")


def _soc_html(v: SocView | None) -> str:
    if v is None:
        return ""
    parts = [f"<h2>{_e(SOC_TITLE)}</h2>"]
    if v.error:
        parts.append(f'<p class="bad">Không đọc được nhật ký từ SOC <code>{_e(v.soc)}</code>: {_e(v.error)}</p>')
        if not v.sites:
            return "".join(parts)
    parts.append(f'<p class="meta">{_e(_soc_intro(v))} Đơn vị im lặng (không nhận được nhật ký nào trong 24 giờ): '
                 f"<b>{len(v.silent_sites)}</b>/{len(v.sites)}.</p>")
    rows = []
    for s in v.sites:
        last = _e(_when(s.last_received))
        if s.silent:
            last += '<br><span class="fail">Im lặng</span>'
        elif s.silent_hosts:
            last += "<br><small>Im lặng: " + ", ".join(f"<code>{_e(h)}</code>" for h in s.silent_hosts) + "</small>"
        logins = f"{s.failed_logins}" + (f"<br><small>{_e(_sources(s.sources))}</small>" if s.sources else "")
        count, levels = _site_alerts(s.alerts)
        alerts = _e(count) + (f"<br><small>{_e(levels)}</small>" if levels else "")
        rows.append(f"<tr><td>{_e(s.name)}" + (f"<br><small>{_e(s.site)}</small>" if s.site else "") + "</td>"
                    f"<td>{last}</td><td class=\"n\">{logins}</td><td class=\"n\">{s.drops}</td>"
                    f"<td class=\"n\">{len(s.commits)}</td><td class=\"n\">{alerts}</td></tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in SOC_COLUMNS)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    parts.append(_alerts_html(v))
    commits = v.commits
    parts.append(f"<h2>Các lần thay đổi cấu hình trong 24 giờ qua ({len(commits)})</h2>")
    if commits:
        head = "".join(f"<th>{_e(h)}</th>" for h in ("Thời gian", "Thiết bị", "Đơn vị", "Nền tảng", "Nội dung"))
        body = "".join(
            f"<tr><td>{_e(history.local_time(c.time))}</td><td><code>{_e(c.host)}</code></td>"
            f"<td>{_e(_soc_site(v, c.site))}</td><td>{_e(c.platform)}</td>"
            f"<td>{_e('Hoàn tác tự động đã áp dụng' if c.kind == 'revert' else c.message)}</td></tr>"
            for c in commits)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    else:
        parts.append("<p>Không có lần thay đổi cấu hình nào.</p>")
    notes = v.notes()
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return "".join(parts)


def _alerts_html(v: SocView) -> str:
    """The SOC's alerts, most urgent first; nothing when they were not read (a note says why)."""
    if v.alerts is None:
        return ""
    parts = [f"<h2>{_e(ALERTS_TITLE)} ({len(v.alerts)})</h2>",
             f"<p>{_e(_levels(v.alert_levels or {}))}.</p>"]
    if not v.alerts:
        parts.append("<p>Không có cảnh báo nào.</p>")
        return "".join(parts)
    head = "".join(f"<th>{_e(h)}</th>" for h in ALERT_COLUMNS)
    body = "".join(
        f'<tr><td><span class="{"fail" if a.level in ("critical", "high") else "waived"}">{_e(_level(a.level))}'
        f"</span></td><td>{_e(a.title)}<br><small><code>{_e(a.rule_name)}</code></small></td>"
        f"<td>{_e(_alert_sites(v, a))}</td><td>{', '.join(f'<code>{_e(h)}</code>' for h in a.hosts)}</td>"
        f"<td>{_e(history.local_time(a.first_event))}</td><td>{_e(history.local_time(a.last_event))}</td>"
        f'<td class="n">{a.count}</td></tr>' for a in v.alerts)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts)


def _alerts_markdown(v: SocView) -> list[str]:
    if v.alerts is None:
        return []
    lines = ["", f"### {ALERTS_TITLE} ({len(v.alerts)})", "", f"- {_levels(v.alert_levels or {})}"]
    lines += [f"- **{_level(a.level)}** {_x(a.title)} — {_alert_sites(v, a)}"
              + (f" ({', '.join(f'`{h}`' for h in a.hosts)})" if a.hosts else "")
              + f": {history.local_time(a.first_event)} → {history.local_time(a.last_event)}, {a.count} sự kiện"
              for a in v.alerts]
    if not v.alerts:
        lines.append("- Không có cảnh báo nào.")
    return lines


def _soc_site(v: SocView, slug: str | None) -> str:
    return next((s.name for s in v.sites if s.site == slug), slug or NO_SITE)


def _soc_markdown(v: SocView | None) -> list[str]:
    if v is None:
        return []
    lines = ["", f"## {SOC_TITLE}", ""]
    if v.error:
        lines.append(f"- **Không đọc được nhật ký từ SOC `{v.soc}`**: {_cell(_x(v.error))}")
        if not v.sites:
            return lines
    lines += [f"- {_soc_intro(v)}",
              f"- Đơn vị im lặng (không nhận được nhật ký nào trong 24 giờ): {len(v.silent_sites)}/{len(v.sites)}",
              *(f"- {n}" for n in v.notes()), "",
              "| " + " | ".join(SOC_COLUMNS) + " |", "|---" * len(SOC_COLUMNS) + "|"]
    for s in v.sites:
        last = _when(s.last_received) + (" — **im lặng**" if s.silent else
                                         f" (im lặng: {', '.join(s.silent_hosts)})" if s.silent_hosts else "")
        logins = f"{s.failed_logins}" + (f" ({_sources(s.sources)})" if s.sources else "")
        count, levels = _site_alerts(s.alerts)
        alerts = count + (f" ({levels})" if levels else "")
        lines.append(f"| {_cell(s.name)} | {_cell(last)} | {_cell(logins)} | {s.drops} | {len(s.commits)} "
                     f"| {_cell(alerts)} |")
    lines += _alerts_markdown(v)
    commits = v.commits
    lines += ["", f"### Các lần thay đổi cấu hình trong 24 giờ qua ({len(commits)})", ""]
    lines += [f"- {history.local_time(c.time)} `{c.host}` ({_soc_site(v, c.site)}) {c.platform}: "
              + _x("hoàn tác tự động đã áp dụng" if c.kind == "revert" else c.message) for c in commits]
    if not commits:
        lines.append("- Không có lần thay đổi cấu hình nào.")
    return lines


# ---------------------------------------------------------------- JUnit

def as_junit(r: Report) -> str:
    """One testsuite per site, one testcase per device × rule: fail → failure, error and unreachable
    → error, waived and not applicable → skipped."""
    suites = ET.Element("testsuites", name="provnet compliance")
    by: dict[str, list[FindingLike]] = {}
    for f in r.findings:
        by.setdefault(str(attr(f, "site")) or "dc", []).append(f)
    totals = Counter[str]()
    for site in sorted(by):
        fs = sorted(by[site], key=lambda f: (f.device, f.rule_id))
        c = Counter(f.status for f in fs)
        counts = {"tests": len(fs), "failures": c["fail"], "errors": c["error"] + c["unreachable"],
                  "skipped": c["waived"] + c["not_applicable"]}
        totals.update(counts)
        suite = ET.SubElement(suites, "testsuite", name=_x(site), **{k: str(v) for k, v in counts.items()})
        for f in fs:
            case = ET.SubElement(suite, "testcase", name=_x(f.rule_id), classname=_x(f"{site}.{f.device}"))
            message = _x(f"{STATUS_VI.get(f.status, f.status)}: {title(f)}"
                         + (f" — {attr(f, 'reason')}" if attr(f, "reason") else ""))
            evidence = _x(attr(f, "evidence"))
            if f.status == "fail":
                ET.SubElement(case, "failure", message=message, type=_x(attr(f, "severity"))).text = evidence
            elif f.status in ("error", "unreachable"):
                ET.SubElement(case, "error", message=message, type=f.status).text = evidence
            elif f.status in ("waived", "not_applicable"):
                ET.SubElement(case, "skipped", message=message).text = evidence or None
    for k in ("tests", "failures", "errors", "skipped"):
        suites.set(k, str(totals[k]))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


#: ``--format`` → renderer (the CLI and the Ansible side share it)
RENDERERS = {"html": as_html, "md": as_markdown, "json": as_json_text, "junit": as_junit}


__all__ = ["Report", "exit_code", "family", "by_site", "by_family", "as_json", "as_json_text", "as_html",
           "as_markdown", "as_junit", "title", "RENDERERS", "site_names", "STATUS_VI", "SEVERITY_VI"]
