"""Benchmark: a province-wide meeting (`toan-tinh`) on the lab re-addressed Thanh Hóa.

Measures, over BENCH_RUNS meetings (default 3) on BENCH_SITES sites (default 166):
- time from `provnet vc meeting start toan-tinh` to every reachable endpoint joined
  (whole command, readiness layers 1–5 included), and the dial phase alone (conference created
  → every leg settled), with `vc.dial_concurrency` calls in flight (the plain alternative:
  one call at a time, `--concurrency 1`, measured once on the same lab);
- the bridge host's CPU (Janus + provnet-bridged, % of one core) and resident memory while
  every site is in the meeting, over BENCH_HOLD seconds (default 20).
With BENCH_REUSE=1 the lab must already be up and converged with site.yml; otherwise the
benchmark brings it up and converges it first. Writes benchmarks/results/meeting-<sites>.json/.md.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lab import subset  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.lab import province  # noqa: E402
from provnet.vc.readiness import DEGRADED, NOT_READY, READY  # noqa: E402

BIN = Path(sys.executable).parent
SITES = int(os.environ.get("BENCH_SITES", "166"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HOLD = float(os.environ.get("BENCH_HOLD", "20"))
SAMPLE = r"""
import os, time
def find(name):
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                cmd = open(f'/proc/{p}/cmdline', 'rb').read().split(b'\0')
            except OSError:
                continue
            if any(name in c for c in cmd[:2]):
                return p
pids = [find(b'/usr/bin/janus'), find(b'provnet-bridged')]
def ticks():
    t = 0
    for p in pids:
        f = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t
def rss():
    kb = 0
    for p in pids:
        for line in open(f'/proc/{p}/status'):
            if line.startswith('VmRSS:'):
                kb += int(line.split()[1])
    return kb
t0, w0 = ticks(), time.monotonic()
time.sleep(HOLD)
t1, w1 = ticks(), time.monotonic()
print(round(100 * (t1 - t0) / os.sysconf('SC_CLK_TCK') / (w1 - w0), 1), round(rss() / 1024, 1))
"""


def host_cpu() -> list[int]:
    """This machine's CPU ticks: user+nice, system, irq+softirq, idle+iowait (it also runs the lab)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return [f[0] + f[1], f[2], f[5] + f[6], f[3] + f[4]]


def run(argv: list[str], timeout: float = 3600) -> tuple[float, int, str]:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode not in (0, 1):
        sys.stderr.write(f"{' '.join(argv[:4])}: exit {proc.returncode}\n{proc.stderr[-3000:]}\n")
    return time.perf_counter() - t, proc.returncode, proc.stdout


def meeting(inv: Path, *args: str) -> tuple[float, int, dict[str, Any]]:
    took, rc, out = run([str(BIN / "provnet"), "vc", "meeting", *args, "-i", str(inv), "--json"])
    return took, rc, json.loads(out) if out.strip().startswith("{") else {}


def one(m: model.Model, inv: Path, extra: list[str], sample: bool) -> dict[str, Any]:
    took, rc, data = meeting(inv, "start", "toan-tinh", "--readiness-until", "signalling", *extra)
    if not data:
        raise SystemExit(f"meeting start failed (exit {rc})")
    s = data["summary"]
    dial = (datetime.fromisoformat(s["all_settled_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds()
    parts = data["participants"]
    out: dict[str, Any] = {"start_to_all_joined_s": round(took, 1), "dial_phase_s": round(dial, 1),
                           "joined": sum(p["state"] == "joined" for p in parts), "sites": len(parts),
                           "not_joined": {p["site"]: p["reason"][:120] for p in parts if p["state"] != "joined"}}
    if sample:
        bridge = m.services["bridge"]
        code = base64.b64encode(SAMPLE.replace("HOLD", str(HOLD)).encode()).decode()
        # base64: the script survives any quoting (sudo sh -c once the node runs as the admin)
        before = host_cpu()
        res = province.ssh_run(m, bridge, f"python3 -c 'import base64;exec(base64.b64decode(\"{code}\"))'",
                               timeout=HOLD + 30)
        spent = [b - a for a, b in zip(before, host_cpu())]
        out["host_during_hold"] = {"load_1min": float(Path("/proc/loadavg").read_text().split()[0]),
                                   **{k: round(100 * v / (sum(spent) or 1)) for k, v in
                                      zip(("user_pct", "system_pct", "irq_pct", "idle_pct"), spent)}}
        if res.returncode != 0 or len(res.stdout.split()) != 2:
            raise SystemExit(f"bridge sampler failed (exit {res.returncode}): {res.stderr[-500:]}")
        cpu, mem = res.stdout.split()
        out["bridge_cpu_pct_of_one_core"], out["bridge_rss_mib"] = float(cpu), float(mem)
    meeting(inv, "end", "--id", str(data["id"]))
    return out


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    inv = subset(SITES)
    m = model.load(inv)
    extra: dict[str, Any] = {}
    if os.environ.get("BENCH_REUSE") != "1":
        if os.environ.get("BENCH_SKIP_UP") != "1":  # BENCH_SKIP_UP=1: the lab is up, factory default
            province.down(force=True)
            t = time.perf_counter()
            province.up(m)
            extra["lab_up_s"] = round(time.perf_counter() - t, 1)
        took, rc, out = run([str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/site.yml"], timeout=7200)
        recap = [ln for ln in out.splitlines() if " : ok=" in ln]
        extra["site_yml_first_s"] = round(took, 1)
        extra["site_yml_first_failed_hosts"] = [ln.split()[0] for ln in recap if "failed=0" not in ln
                                                or "unreachable=0" not in ln]
        extra["site_yml_hosts"] = len(recap)
        if rc != 0:
            (REPO / "benchmarks" / "results" / f"meeting-{SITES}-site-yml.log").write_text(out[-20000:])
    # the province as the engineer on duty sees it before the meeting: readiness layers 1–5, then verify
    took, rc, out = run([str(BIN / "provnet"), "vc", "readiness", "-i", str(inv), "--until", "signalling", "--json"])
    extra["readiness_layers_1_5_s"] = round(took, 1)
    if out.strip().startswith("{"):
        summary = json.loads(out).get("summary", {})
        extra["readiness_counts"] = {k: summary.get(k) for k in (READY, DEGRADED, NOT_READY)}
    out_dir = REPO / "benchmarks" / "results"
    report: dict[str, Any] = {"benchmark": "meeting", "machine": describe()}
    results: dict[str, Any] = {"sites": SITES, "dial_concurrency": m.vc.dial_concurrency, "hold_s": HOLD,
                               "runs": [], **extra}
    report["results"] = results

    def save() -> None:  # after every meeting: a run that stops half-way still leaves its figures
        (out_dir / f"meeting-{SITES}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    for _ in range(RUNS):
        results["runs"].append(one(m, inv, [], sample=True))
        save()
    runs = results["runs"]
    med = {k: statistics.median(r[k] for r in runs) for k in
           ("start_to_all_joined_s", "dial_phase_s", "joined", "bridge_cpu_pct_of_one_core", "bridge_rss_mib")}
    holds = [r["host_during_hold"] for r in runs if "host_during_hold" in r]
    if holds:
        med["host_load_1min"] = statistics.median(h["load_1min"] for h in holds)
        med["host_idle_pct"] = statistics.median(h["idle_pct"] for h in holds)
    results["median"] = med
    save()
    serial = results["one_call_at_a_time"] = one(m, inv, ["--concurrency", "1"], sample=False)
    results["dial_ratio"] = round(serial["dial_phase_s"] / med["dial_phase_s"], 1) if med["dial_phase_s"] else None
    save()
    (out_dir / f"meeting-{SITES}.md").write_text(
        f"# Meeting benchmark — toan-tinh, {SITES} sites\n\nMachine: {report['machine']}\n\n"
        f"Median of {RUNS} meetings: `meeting start` (readiness layers 1–5 + dial-out, "
        f"{m.vc.dial_concurrency} calls in flight) to every reachable site joined "
        f"**{med['start_to_all_joined_s']} s** ({med['joined']} of {SITES} joined), dial phase "
        f"{med['dial_phase_s']} s; one call at a time: {serial['dial_phase_s']} s (×{results['dial_ratio']}). "
        f"Bridge host (Janus + provnet-bridged) with everyone in the room: "
        f"{med['bridge_cpu_pct_of_one_core']} % of one core, {med['bridge_rss_mib']} MiB resident; this "
        f"machine (controller and every lab node) meanwhile: load {med.get('host_load_1min')}, "
        f"{med.get('host_idle_pct')} % idle.\n\n"
        f"```json\n{json.dumps(results, indent=2, ensure_ascii=False)}\n```\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
