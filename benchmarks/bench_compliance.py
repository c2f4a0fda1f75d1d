"""Benchmark (issue 22): `provnet compliance run` over the whole lab re-addressed Thanh Hóa, beside the plain alternative.

The target: a whole-province run ≤ 3 min on this 2-core machine, compared in the same run with what an
engineer would use today — `ansible-playbook site.yml --check --diff` plus a serial per-host baseline
script (benchmarks/plain_baseline.sh) — as a ratio; the median of 3 and the machine recorded.

Always inventory/thanhhoa-lab (166 sites, 339 devices). Phases (BENCH_PHASES, comma-separated, default
`up,converge,provnet,plain`, run in this order; each phase's result is merged into the existing JSON, so
one phase can be rerun; skip `up,converge` when the lab is already converged):

- `up`: `provnet lab up -i inventory/thanhhoa-lab` (a lab of another inventory is taken down first, as
  bench_province does; the lab of bench_rollout's inventory — the same model — is left as it runs).
- `converge`: `ansible-playbook -i inventory/thanhhoa-lab playbooks/site.yml` once (a fresh lab: ≈ 23–27
  min at full scale, benchmarks/results/province-166.md).
- `provnet`: `provnet compliance run -i inventory/thanhhoa-lab --json --html …` BENCH_RUNS times (default
  3): each run's wall time, its own summary (devices, checks, pass/fail/waived/error/unreachable, the
  seconds it reports) and exit code; the median.
- `plain`: (a) `ansible-playbook -i inventory/thanhhoa-lab playbooks/site.yml --check --diff`,
  BENCH_PLAIN_RUNS times (default 1: an idempotent site.yml takes ≈ 16–19 min at full scale —
  1119.7 s in province-166.md — and check mode is no faster); (b) `benchmarks/plain_baseline.sh`
  (serial, one ssh per check per host), BENCH_BASELINE_RUNS times (default 1). The ratio:
  (median (a) + median (b)) ÷ median provnet, only when `provnet` and `plain` ran in the same invocation.

`--dry-run` (or BENCH_DRY=1) prints every command in order (`# …` lines are what the benchmark does in
Python or skips) and exits 0 without running anything, needing neither root nor a lab.

Writes benchmarks/results/compliance-<sites>.json and .md; logs of every command go to
/tmp/provnet-bench/logs/ (`<label>.log` stderr, `<label>.out` stdout; tail them while a phase runs).
Needs root; leaves the lab up (tear it down with `provnet lab down --force`).
Run it before bench_rollout (which brings the lab up from its own inventory), or after it with
BENCH_PHASES=provnet,plain.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_province import med, recap  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.lab import province  # noqa: E402

BIN = Path(sys.executable).parent
INV = REPO / "inventory" / "thanhhoa-lab"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PLAIN_RUNS = int(os.environ.get("BENCH_PLAIN_RUNS", "1"))  # site.yml --check --diff: ≈ 16–19 min each
BASELINE_RUNS = int(os.environ.get("BENCH_BASELINE_RUNS", "1"))
PHASES = os.environ.get("BENCH_PHASES", "up,converge,provnet,plain").split(",")
TARGET_S = 180.0  # issue 22: a whole-province run ≤ 3 min on this 2-core machine
WORK = Path("/tmp/provnet-bench")
LOGS = WORK / "logs"
OUT = REPO / "benchmarks" / "results"
BASELINE = REPO / "benchmarks" / "plain_baseline.sh"
#: bench_rollout's inventory (the same province flattened): a lab brought up from it is this model's lab too
ROLLOUT_INV = Path(os.environ.get("BENCH_OVERLAY", WORK / "rollout" / "inventory"))


@dataclass
class Ran:
    s: float
    rc: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        """stdout as one JSON object ({} when it is not one)."""
        text = self.out.strip()
        try:
            return json.loads(text) if text.startswith("{") else {}
        except ValueError:
            return {}


class Runner:
    """Runs each command from the repo (stdout → LOGS/<label>.out, stderr → LOGS/<label>.log), or, dry,
    prints it as a shell line (the environment it adds first) and runs nothing."""

    def __init__(self, dry: bool) -> None:
        self.dry = dry

    def note(self, text: str) -> None:
        print(f"# {text}" if self.dry else f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    def run(self, label: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 7200) -> Ran:
        env = env or {}
        if self.dry:
            print(shlex.join([f"{k}={v}" for k, v in env.items()] + [str(a) for a in argv]), flush=True)
            return Ran(0.0, 0, "", "")
        LOGS.mkdir(parents=True, exist_ok=True)
        log, out = LOGS / f"{label}.log", LOGS / f"{label}.out"
        print(f"{time.strftime('%H:%M:%S')} {label}: {shlex.join(str(a) for a in argv[:6])} … (tail -f {log})",
              flush=True)
        t = time.perf_counter()
        with log.open("w") as fe, out.open("w") as fo:
            try:
                rc = subprocess.run([str(a) for a in argv], cwd=REPO, env={**os.environ, **env}, stdout=fo,
                                    stderr=fe, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -9
        took = time.perf_counter() - t
        print(f"{time.strftime('%H:%M:%S')} {label}: {took:.1f} s, exit {rc}", flush=True)
        return Ran(took, rc, out.read_text(errors="replace"), log.read_text(errors="replace"))


def dry_requested(argv: list[str] | None = None) -> bool:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--dry-run", action="store_true", help="print every command in order; run nothing")
    return parser.parse_args(argv).dry_run or os.environ.get("BENCH_DRY") == "1"


def up_phase(r: Runner, m: model.Model) -> dict[str, Any]:
    running = province.running_inventory()
    if running == str(ROLLOUT_INV):
        r.note(f"the running lab is bench_rollout's ({running}: the same model): left as it runs, no lab up")
        return {"skipped": f"lab of {running} running"}
    if running is not None and running not in province.family(m):
        r.note(f"a lab of {running} is running: taken down first")
        r.run("compliance-lab-down", [BIN / "provnet", "lab", "down", "--force"], timeout=1800)
    ran = r.run("compliance-lab-up", [BIN / "provnet", "lab", "up", "-i", INV], timeout=3600)
    if ran.rc != 0:
        raise SystemExit(f"provnet lab up exited {ran.rc}: {ran.err[-1500:]}")
    return {"s": round(ran.s, 1), "exit": ran.rc}


def converge_phase(r: Runner) -> dict[str, Any]:
    ran = r.run("compliance-site-yml", [BIN / "ansible-playbook", "-i", INV, "playbooks/site.yml"])
    out = {"s": round(ran.s, 1), "exit": ran.rc, **recap(ran.out)}
    if ran.rc != 0:
        out["error_tail"] = ran.out[-1500:]
    return out


SUMMARY_KEYS = ("devices", "checks", "pass", "fail", "waived", "error", "not_applicable", "unreachable", "open",
                "compliant")


def provnet_phase(r: Runner) -> dict[str, Any]:
    runs = []
    for i in range(RUNS):
        html = WORK / "compliance" / f"report-{i}.html"
        if not r.dry:
            html.parent.mkdir(parents=True, exist_ok=True)
        ran = r.run(f"compliance-run-{i}", [BIN / "provnet", "compliance", "run", "-i", INV, "--json", "--html", html],
                    timeout=3600)
        doc = ran.json()
        summary = doc.get("summary", {})
        runs.append({"s": round(ran.s, 1), "exit": ran.rc, "reported_s": doc.get("seconds"),
                     **{k: summary.get(k) for k in SUMMARY_KEYS}})
        if not doc and not r.dry:
            runs[-1]["error_tail"] = ran.err[-1500:]
    wall = [x["s"] for x in runs]
    out: dict[str, Any] = {"runs": runs, **(med(wall) if wall else {}), "target_s": TARGET_S}
    if wall and not r.dry:
        out["target_met"] = statistics.median(wall) <= TARGET_S
    return out


BASELINE_LINE = re.compile(r"^baseline: (\d+) hosts, (\d+) checks, (\d+) ssh failures, (\d+) non-zero", re.M)


def plain_phase(r: Runner) -> dict[str, Any]:
    r.note(f"(a) site.yml --check --diff, {PLAIN_RUNS} run(s): ≈ 16–19 min each at full scale")
    check = []
    for i in range(PLAIN_RUNS):
        ran = r.run(f"compliance-plain-check-{i}",
                    [BIN / "ansible-playbook", "-i", INV, "playbooks/site.yml", "--check", "--diff"])
        check.append({"s": round(ran.s, 1), "exit": ran.rc, **recap(ran.out)})
    r.note(f"(b) {BASELINE.relative_to(REPO)}: serial, one ssh per check per host, {BASELINE_RUNS} run(s)")
    base = []
    for i in range(BASELINE_RUNS):
        ran = r.run(f"compliance-plain-baseline-{i}",
                    ["bash", BASELINE, "-i", INV, "-o", WORK / "compliance" / f"baseline-{i}"],
                    {"PATH": f"{BIN}:{os.environ.get('PATH', '')}", "PYTHON": sys.executable})
        mo = BASELINE_LINE.search(ran.out)
        base.append({"s": round(ran.s, 1), "exit": ran.rc,
                     **(dict(zip(("hosts", "checks", "ssh_failures", "nonzero"), map(int, mo.groups()))) if mo else {})})
    out: dict[str, Any] = {"site_yml_check_diff": {"runs": check, **(med([x["s"] for x in check]) if check else {})},
                           "baseline_script": {"runs": base, **(med([x["s"] for x in base]) if base else {})}}
    if check and base:
        out["total_median_s"] = round(out["site_yml_check_diff"]["median_s"] + out["baseline_script"]["median_s"], 1)
    return out


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    lines = [f"# Compliance benchmark — {r.get('sites')} sites of Thanh Hóa (lab re-addressed)", "",
             f"Machine: {report['machine']}", "",
             f"{r.get('sites')} sites, {r.get('devices')} devices, inventory/thanhhoa-lab. Issue 22's target: a "
             f"whole-province `provnet compliance run` ≤ {TARGET_S:.0f} s on this 2-core machine.", "",
             "| what | runs | median (s) | runs (s) | exit | result |", "|---|---|---|---|---|---|"]
    p = r.get("provnet")
    if p and p.get("runs"):
        last = p["runs"][-1]
        lines.append(f"| `provnet compliance run --json --html` | {len(p['runs'])} | {p.get('median_s')} | "
                     f"{p.get('runs_s')} | {[x['exit'] for x in p['runs']]} | {last.get('devices')} devices, "
                     f"{last.get('checks')} checks: pass {last.get('pass')}, fail {last.get('fail')}, waived "
                     f"{last.get('waived')}, error {last.get('error')}, unreachable {last.get('unreachable')}; the run "
                     f"reports {[x.get('reported_s') for x in p['runs']]} s |")
    pl = r.get("plain")
    if pl:
        c, b = pl["site_yml_check_diff"], pl["baseline_script"]
        if c.get("runs"):
            x = c["runs"][-1]
            lines.append(f"| plain (a): `ansible-playbook site.yml --check --diff` | {len(c['runs'])} | "
                         f"{c.get('median_s')} | {c.get('runs_s')} | {[y['exit'] for y in c['runs']]} | {x['hosts']} "
                         f"hosts, changed={x['changed']}, failed={x['failed']}, unreachable={x['unreachable']} |")
        if b.get("runs"):
            x = b["runs"][-1]
            lines.append(f"| plain (b): `benchmarks/plain_baseline.sh` (serial, one ssh per check) | {len(b['runs'])} "
                         f"| {b.get('median_s')} | {b.get('runs_s')} | {[y['exit'] for y in b['runs']]} | "
                         f"{x.get('hosts')} hosts, {x.get('checks')} checks, {x.get('ssh_failures')} ssh failures, "
                         f"{x.get('nonzero')} non-zero |")
        if "total_median_s" in pl:
            lines.append(f"| plain (a) + (b) | | {pl['total_median_s']} | | | |")
    lines.append("")
    if "ratio_plain_over_provnet" in r:
        lines += [f"**Plain ÷ provnet: {r['ratio_plain_over_provnet']}×** (the medians, same benchmark run); "
                  f"(a) alone {r.get('ratio_check_diff_over_provnet')}×, (b) alone "
                  f"{r.get('ratio_baseline_over_provnet')}×.", ""]
    if p and "target_met" in p:
        lines += [f"Target ≤ {TARGET_S:.0f} s: **{'met' if p['target_met'] else 'not met'}** "
                  f"(median {p.get('median_s')} s).", ""]
    notes = report.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Raw results", "", "```json", json.dumps(r, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def main() -> None:
    dry = dry_requested()
    r = Runner(dry)
    m = model.load(INV)
    sites = len(m.sites)
    if dry:
        r.note(f"dry run: bench_compliance, {sites} sites, {len(m.devices)} devices, phases {','.join(PHASES)}")
    elif os.geteuid() != 0:
        sys.exit("needs root")
    path = OUT / f"compliance-{sites}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"benchmark": "compliance"}
    report["machine"] = describe() if not dry else {"commit": None}
    if os.environ.get("BENCH_COMMIT"):  # a snapshot (git archive) of that commit, run outside the work tree
        report["machine"]["commit"] = os.environ["BENCH_COMMIT"]
    results = report.setdefault("results", {})
    results.update(sites=sites, devices=len(m.devices), inventory="inventory/thanhhoa-lab")

    def save() -> None:
        if dry:
            return
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (OUT / f"compliance-{sites}.md").write_text(markdown(report))

    stamp = {"commit": report["machine"]["commit"], "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if "up" in PHASES:
        results["lab_up"] = {**up_phase(r, m), **stamp}
        save()
    if "converge" in PHASES:
        results["converge"] = {**converge_phase(r), **stamp}
        save()
    if "provnet" in PHASES:
        results["provnet"] = {**provnet_phase(r), **stamp}
        save()
    if "plain" in PHASES:
        results["plain"] = {**plain_phase(r), **stamp}
        save()
    for key in ("ratio_plain_over_provnet", "ratio_check_diff_over_provnet", "ratio_baseline_over_provnet"):
        if "provnet" in PHASES or "plain" in PHASES:  # a ratio only from both sides of one run
            results.pop(key, None)
    p, pl = results.get("provnet", {}), results.get("plain", {})
    if not dry and "provnet" in PHASES and "plain" in PHASES and p.get("median_s") and "total_median_s" in pl:
        results["ratio_plain_over_provnet"] = round(pl["total_median_s"] / p["median_s"], 1)
        results["ratio_check_diff_over_provnet"] = round(pl["site_yml_check_diff"]["median_s"] / p["median_s"], 1)
        results["ratio_baseline_over_provnet"] = round(pl["baseline_script"]["median_s"] / p["median_s"], 1)
    save()
    if not dry:
        print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
