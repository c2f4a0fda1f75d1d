"""The acceptance record (Biên bản nghiệm thu): JSON in the history store and files, a printable HTML page.

One run of kind ``rollout`` per rollout in the history store (scope: the sites), one result per step
with its evidence as figures, the whole record as the run's summary; the same JSON and the HTML page
under ``$PROVNET_HOME/rollouts/``.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from provnet import history, secrets, siteops
from provnet.model import Model
from provnet.rollout.steps import StepResult

KIND = "rollout"
STEP_VI = {1: "Kế hoạch thay đổi", 2: "Đưa nút vào phòng lab", 3: "Đẩy cấu hình", 4: "Kiểm tra (verify)",
           5: "Cuộc gọi thử", 6: "Biên bản nghiệm thu"}
STATUS_VI = {"passed": "Đạt", "failed": "Không đạt", "skipped": "Bỏ qua"}


def rollouts_dir() -> Path:
    return secrets.home() / "rollouts"


def build(m: Model, shown: str, slugs: tuple[str, ...], started_at: str, results: list[StepResult],
          revert: dict[str, Any] | None) -> dict[str, Any]:
    """The record as data: the sites, every step with its evidence, the outcome."""
    failed = next((r for r in results if r.status == "failed"), None)
    outcome = (f"rollout failed at step {failed.number}: {failed.reason}" if failed else "rollout completed")
    return {"kind": KIND, "inventory": shown, "province": m.name,
            "sites": [siteops.site_addresses(m, s) for s in slugs], "slugs": list(slugs),
            "started_at": started_at, "finished_at": history.utc_now(),
            "ok": failed is None, "failed_step": failed.number if failed else None, "outcome": outcome,
            "seconds": round(sum(r.seconds for r in results), 1),
            "steps": [r.as_dict() for r in results], "put_back": revert}


def save(rec: dict[str, Any], store_path: Path | None = None) -> dict[str, Any]:
    """Keep the record: the history store (a run of kind rollout, one result per step) and the files."""
    scope = ",".join(rec["slugs"])
    with history.open_store(store_path) as store:
        run_id = store.start_run(KIND, scope, rec["inventory"], started_at=rec["started_at"])
        rec["run_id"] = run_id
        stem = f"{scope}-{rec['started_at'].replace(':', '').replace('-', '')}"
        out = rollouts_dir()
        out.mkdir(parents=True, exist_ok=True)
        rec["files"] = {"json": str(out / f"{stem}.json"), "html": str(out / f"{stem}.html")}
        for step in rec["steps"]:
            if step["name"] == "record":
                step["evidence"] = {**rec["files"], "history_run": run_id}
        for step in rec["steps"]:
            store.add_result(run_id, f"{step['number']}-{step['name']}", step["status"], step["name"],
                             step["reason"], {"seconds": step["seconds"], **step["evidence"]})
        Path(rec["files"]["json"]).write_text(json.dumps(rec, ensure_ascii=False, indent=2, default=str) + "\n")
        Path(rec["files"]["html"]).write_text(html(rec), encoding="utf-8")
        store.finish_run(run_id, rec, finished_at=rec["finished_at"])
    return rec


def save_waves(summary: dict[str, Any], store_path: Path | None = None) -> dict[str, Any]:
    """Keep a waved rollout's summary: a run of kind ``rollout-waves`` (one result per wave) and its JSON."""
    with history.open_store(store_path) as store:
        run_id = store.start_run(summary["kind"], ",".join(summary["sites"]), summary["inventory"],
                                 started_at=summary["started_at"])
        summary["run_id"] = run_id
        for w in summary["waves"]:
            store.add_result(run_id, f"wave-{w['number']}", "passed" if w["ok"] else "failed", "wave",
                             w["outcome"], {"seconds": w["seconds"], "sites": w["sites"], "record_run": w["run_id"]})
        out = rollouts_dir()
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"waves-{run_id}-{summary['started_at'].replace(':', '').replace('-', '')}.json"
        summary["files"] = {"json": str(path)}
        path.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str) + "\n")
        store.finish_run(run_id, summary, finished_at=summary["finished_at"])
    return summary


def last(slugs: list[str] | str, inventory: str | None = None, store_path: Path | None = None) -> dict[str, Any] | None:
    """The last record of these sites (None: never rolled out): a record of exactly them, else the newest
    record that holds them all — a site rolled out in a wave is in its wave's record."""
    names = slugs.split(",") if isinstance(slugs, str) else list(slugs)
    with history.open_store(store_path) as store:
        runs = store.last_runs(KIND, ",".join(names), n=1, inventory=inventory)
        run = runs[0] if runs else store.last_run_covering(KIND, names, inventory=inventory)
        return run.summary if run else None


# ---------------------------------------------------------------- the printable page

_CSS = """
@page { size: A4; margin: 11mm 12mm 12mm 12mm; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 8.5pt; color: #111; margin: 0; }
h1 { font-size: 14pt; text-align: center; margin: 2mm 0 1mm; text-transform: uppercase; }
.head { display: flex; justify-content: space-between; font-size: 9pt; }
.head div { text-align: center; width: 48%; }
.sub { text-align: center; margin: 0 0 3mm; }
h2 { font-size: 10.5pt; margin: 3mm 0 1mm; border-bottom: 0.3mm solid #444; }
table { border-collapse: collapse; width: 100%; }
td, th { border: 0.2mm solid #888; padding: 0.6mm 1.5mm; vertical-align: top; text-align: left; }
th { background: #eee; }
.kv td:first-child { width: 32%; font-weight: bold; }
.ok { color: #0a6a0a; font-weight: bold; } .bad { color: #b00; font-weight: bold; }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; word-break: break-all; }
.sign { display: flex; justify-content: space-between; margin-top: 5mm; page-break-inside: avoid; }
.sign div { width: 45%; text-align: center; height: 26mm; }
.outcome { margin: 2mm 0; padding: 1.5mm; border: 0.4mm solid #444; }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _uplink(site: dict[str, Any]) -> str:
    """The circuit rows: a district's or commune's carrier circuit, or a province-level hall's DC uplink."""
    if site.get("wan") is None:
        return (f"<tr><td>Kênh truyền</td><td>điểm cầu cấp tỉnh, nối trực tiếp về Trung tâm dữ liệu "
                f"(định tuyến tại {_e(site.get('router'))}, không qua kênh nhà mạng)</td></tr>")
    return f"""<tr><td>Kênh truyền (mã mạch)</td><td>{_e(site['circuit_id'])}</td></tr>
<tr><td>ASN / loopback</td><td>{_e(site['asn'])} / {_e(site['loopback'])}</td></tr>
<tr><td>WAN /31</td><td>{_e(site['wan'])} (PE {_e(site['pe'])}, CE {_e(site['ce'])})</td></tr>"""


def _evidence(step: dict[str, Any]) -> str:
    ev, n = step.get("evidence") or {}, step["number"]
    parts: list[str] = []
    if n == 1:
        parts.append("; ".join(f"{d['hostname']} ({d['status']}: {', '.join(d['changes'])})" for d in ev.get("devices", [])))
        if ev.get("carrier"):
            parts.append(f"PE nhà mạng: {', '.join(ev['carrier'])}")
    elif n == 2:
        kept = ev.get("pe_neighbours_kept", [])
        parts.append(f"nút mới: {', '.join(ev.get('joined', [])) or 'không (đã chạy)'}")
        parts.append(f"phiên BGP khác giữ nguyên: {sum(1 for k in kept if k['kept'])}/{len(kept)} "
                     f"(uptime trước/sau trên PE: "
                     + ", ".join(f"{k['hostname']} {k['uptime_before_s']}→{k['uptime_after_s']} s" for k in kept) + ")")
    elif n == 3:
        hosts = ev.get("hosts", {})
        parts.append("ansible site.yml --limit: " + ", ".join(f"{h} changed={r['changed']} failed={r['failed']}"
                                                              for h, r in hosts.items()))
    elif n == 4:
        for s in ev.get("sites", []):
            parts.append(f"verify {s['site']}: {s['passed']}/{s['checks']} kiểm tra đạt; đăng ký: "
                         f"{', '.join(s.get('registration', [])) or '—'}")
        for b in ev.get("bgp", []):
            parts.append(f"BGP CE {b['peer']} (AS {b['asn']}): {b['state']}, nhận {b['prefixes_received']} prefix; "
                         f"CE quảng bá {', '.join(b['prefixes_announced'])}")
    elif n == 5:
        for e in ev.get("endpoints", []):
            med, reg = e.get("media", {}), e.get("registration", {})
            parts.append(f"{e['endpoint']} ({e['aor']}): {e['verdict']}; đăng ký {reg.get('user_agent', '—')}, "
                         f"expires {reg.get('expires_s', '—')} s; cuộc gọi thử {med.get('duration_s')} s: "
                         f"mất gói {med.get('loss_pct')} %, jitter {med.get('jitter_ms')} ms, RTT {med.get('rtt_ms')} ms, "
                         f"thiết lập {med.get('setup_ms')} ms; codec {e.get('codecs', {})}")
        for c in ev.get("conference", []):
            parts.append(f"hội nghị thử trên MCU (cuộc họp #{c['meeting_id']}): {c['site']} {c['state']}, "
                         f"MCU {'nhận được' if c['receiving'] else 'không nhận được'} âm thanh sau {c['listened_s']} s"
                         f" — {'nghe được điểm cầu' if c['heard'] else 'KHÔNG nghe được điểm cầu'}")
    if step.get("reason"):
        parts.append(f"Lý do: {step['reason']}")
    return "<br>".join(_e(p) for p in parts if p)


def html(rec: dict[str, Any]) -> str:
    """One printable A4 page in Vietnamese: every value escaped, no external asset."""
    rows = []
    for site in rec["sites"]:
        lans = ", ".join(f"VLAN {l['vlan']} {n}: {l['subnet']} (gw {l['gateway']})" for n, l in site["lans"].items())
        rows.append(f"""<table class="kv">
<tr><td>Tên điểm cầu</td><td>{_e(site['name'])} ({_e(site['slug'])})</td></tr>
<tr><td>Mã đơn vị hành chính / mã site</td><td>{_e(site['code'])} / {_e(site['id'])}</td></tr>
<tr><td>Đơn vị cấp trên</td><td>{_e(site['district'])}</td></tr>
{_uplink(site)}
<tr><td>Người liên hệ</td><td>{_e(site['contact']['name'])} — {_e(site['contact']['phone'])}</td></tr>
<tr><td>VLAN</td><td>{_e(lans)}</td></tr>
<tr><td>Thiết bị</td><td>{_e('; '.join(f"{d['hostname']} ({d['role']}) quản lý {d['management']}" for d in site['devices']))}</td></tr>
<tr><td>Tài khoản SIP</td><td>{_e(', '.join(f"{a['aor']} (số nội bộ {a['extension']})" for a in site['sip_accounts']))}</td></tr>
</table>""")
    steps = []
    for st in rec["steps"]:
        cls = "ok" if st["status"] == "passed" else "bad" if st["status"] == "failed" else ""
        steps.append(f"<tr><td>{st['number']}</td><td>{_e(STEP_VI.get(st['number'], st['name']))}</td>"
                     f"<td class=\"{cls}\">{_e(STATUS_VI.get(st['status'], st['status']))}</td>"
                     f"<td>{st['seconds']:.1f} s</td><td>{_evidence(st)}</td></tr>")
    push = next((s for s in rec["steps"] if s["number"] == 3), None)
    digests = (push or {}).get("evidence", {}).get("digests", {})
    dig = "".join(f"<tr><td>{_e(h)}</td><td class=\"mono\">{_e(d)}</td></tr>" for h, d in digests.items())
    outcome_vi = ("Kết quả: ĐẠT — điểm cầu đã được đưa vào vận hành." if rec["ok"] else
                  f"Kết quả: KHÔNG ĐẠT — {rec['outcome']}"
                  + (" Cấu hình trung tâm dữ liệu đã được khôi phục." if (rec.get("put_back") or {}).get("ok") else ""))
    names = ", ".join(s["name"] for s in rec["sites"])
    return f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8"><title>Biên bản nghiệm thu — {_e(names)}</title>
<style>{_CSS}</style></head><body>
<div class="head"><div>UBND TỈNH {_e((rec.get("province") or "").upper())}<br><b>SỞ KHOA HỌC VÀ CÔNG NGHỆ</b></div>
<div><b>CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM</b><br>Độc lập - Tự do - Hạnh phúc</div></div>
<h1>Biên bản nghiệm thu điểm cầu truyền hình trực tuyến</h1>
<p class="sub">{_e(names)} — bắt đầu {_e(history.local_time(rec['started_at']))}, kết thúc
{_e(history.local_time(rec['finished_at']))} (giờ VN); tổng thời gian {rec['seconds']:.1f} s; lần chạy #{_e(rec.get('run_id'))};
kho cấu hình {_e(rec['inventory'])}</p>
<h2>1. Thông tin điểm cầu</h2>{''.join(rows)}
<h2>2. Các bước thực hiện và bằng chứng</h2>
<table><tr><th>#</th><th>Bước</th><th>Kết quả</th><th>Thời gian</th><th>Bằng chứng</th></tr>{''.join(steps)}</table>
<h2>3. Mã băm cấu hình dự kiến (sha256)</h2>
<table><tr><th>Thiết bị</th><th>sha256</th></tr>{dig or '<tr><td colspan="2">—</td></tr>'}</table>
<div class="outcome"><b>{_e(outcome_vi)}</b></div>
<div class="sign"><div><b>ĐẠI DIỆN SỞ (KỸ SƯ PHỤ TRÁCH)</b><br><i>(Ký, ghi rõ họ tên)</i></div>
<div><b>ĐẠI DIỆN NHÀ MẠNG</b><br><i>(Ký, ghi rõ họ tên)</i></div></div>
</body></html>
"""


def pdf(rec: dict[str, Any], path: Path) -> None:
    """The page as PDF (WeasyPrint)."""
    from weasyprint import HTML  # imported lazily: only --pdf needs it

    HTML(string=html(rec)).write_pdf(str(path))
