"""Benchmark: converge, verify and readiness on the lab re-addressed Thanh Hóa (BENCH_SITES sites).

What it measures, on one lab of the first BENCH_SITES sites of inventory/thanhhoa-lab
(`bench_lab.subset`), phase by phase (BENCH_PHASES, comma-separated, default all, run in
this order; each phase's result is merged into the existing JSON, so one phase can be rerun):

- `defaults`, `mitogen`, `tuned`: `ansible-playbook playbooks/site.yml` from factory default
  (a fresh `lab up`), then the idempotent second run (must report changed=0), with
  * `defaults`: Ansible's defaults (forks 5, no pipelining, no ControlPersist path,
    implicit fact gathering, no fact cache) — only the plugin paths set;
  * `mitogen`: provnet's ansible.cfg plus `strategy = mitogen_linear` (pip `mitogen`);
  * `tuned`: provnet's ansible.cfg as committed (runs last: the lab stays converged).
  Each run's wall time, PLAY RECAP totals (ok/changed/failed/unreachable) and exit code.
- `compare`: at full scale Ansible's defaults (forks 5) would take hours, so this phase runs
  `defaults` and `tuned` on a fresh lab of the first BENCH_DEFAULTS_SITES sites (default 20)
  and reports their ratio at that size (`site_yml_compare_<n>`); run it before `tuned`, which
  leaves the full-scale lab converged for the phases after it.
- `verify`: `provnet verify --all` (pytest-xdist, default 4 workers) over BENCH_SITES, median
  of BENCH_RUNS; then on the first BENCH_COMPARE_SITES sites (a subset inventory against the
  same lab) both `provnet verify` and (BENCH_PLAIN_RUNS times) the plain alternative — `pytest tests/sites` serial with
  testinfra/Ansible defaults (no ControlPath: one SSH connection per command).
- `readiness`: `provnet vc readiness --workers 1` (one endpoint at a time), layers 1–5
  (`--until signalling`) and the full ladder, over BENCH_SITES; and the default 32 workers
  for comparison; the serial runs may cover only the first BENCH_SERIAL_LAYERS_SITES /
  BENCH_SERIAL_LADDER_SITES sites (then compared per endpoint).

Writes benchmarks/results/province-<sites>.json and .md; logs of every command go to
/tmp/provnet-bench/logs/ (tail them while a phase runs). Needs root; leaves the lab up
(tear it down with `provnet lab down --force`).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lab import subset as inventory  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.lab import province  # noqa: E402

BIN = Path(sys.executable).parent
SITES = int(os.environ.get("BENCH_SITES", "20"))
COMPARE_SITES = int(os.environ.get("BENCH_COMPARE_SITES", "5"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))  # repeats of provnet verify (the fast ones)
PLAIN_RUNS = int(os.environ.get("BENCH_PLAIN_RUNS", "1"))  # repeats of the plain serial pytest
PHASES = os.environ.get("BENCH_PHASES", "defaults,mitogen,tuned,verify,readiness").split(",")
LOGS = Path("/tmp/provnet-bench/logs")
OUT = REPO / "benchmarks" / "results"

# Ansible's defaults: only what is needed to find provnet's plugins and roles.
DEFAULT_CFG = """[defaults]
inventory_plugins = {repo}/plugins/inventory
action_plugins = {repo}/plugins/action
filter_plugins = {repo}/plugins/filter
library = {repo}/plugins/modules
roles_path = {repo}/roles
host_key_checking = False
interpreter_python = /usr/bin/python3
[inventory]
enable_plugins = provnet
ignore_patterns = ^(province|ids|districts)\\.ya?ml$, ^sites$, ^retired$
"""


PLAIN_SSH_ARGS = "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR"


def tuned_cfg_text(extra_defaults: str = "") -> str:
    """provnet's ansible.cfg with absolute plugin paths (so it works from a temporary file), plus extra [defaults]."""
    text = (REPO / "ansible.cfg").read_text()
    text = re.sub(r"^((?!enable)\w+_plugins|library|roles_path) = (?!/)(\S+)$", lambda mo: f"{mo[1]} = {REPO / mo[2]}",
                  text, flags=re.M)
    for key in re.findall(r"^(\w+) =", extra_defaults, re.M):  # an override replaces the committed line
        text = re.sub(rf"^{key} = .*\n", "", text, flags=re.M)
    return text.replace("[defaults]\n", f"[defaults]\n{extra_defaults}", 1)


def write_cfg(name: str, text: str) -> str:
    path = Path(tempfile.gettempdir()) / f"provnet-bench-{name}.cfg"
    path.write_text(text)
    return str(path)


def timed(label: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run argv from the repo, output to LOGS/<label>.log; (seconds, exit code, output)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{label}.log"
    print(f"{time.strftime('%H:%M:%S')} {label}: {' '.join(argv[:4])} … (tail -f {log})", flush=True)
    t = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(argv, cwd=REPO, env={**os.environ, **(env or {})}, stdout=fh,
                            stderr=subprocess.STDOUT).returncode
    took = time.perf_counter() - t
    print(f"{time.strftime('%H:%M:%S')} {label}: {took:.1f} s, exit {rc}", flush=True)
    return took, rc, log.read_text(errors="replace")


def recap(stdout: str) -> dict[str, int]:
    """Totals of the PLAY RECAP lines (and how many hosts it lists)."""
    totals = {"hosts": 0, "ok": 0, "changed": 0, "failed": 0, "unreachable": 0}
    for line in stdout.splitlines():
        if re.match(r"^\S+\s+: ok=\d+", line):
            totals["hosts"] += 1
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                if key in totals:
                    totals[key] += int(value)
    return totals


def converge(label: str, inv: Path, cfg: str) -> dict[str, Any]:
    """Fresh lab (factory default), site.yml twice."""
    province.down(force=True)
    t = time.perf_counter()
    province.up(model.load(inv), workers=8)
    up_s = time.perf_counter() - t
    result: dict[str, Any] = {"lab_up_s": round(up_s, 1)}
    again = int(os.environ.get("BENCH_AGAIN", "0"))  # extra idempotent runs: the second run's median
    for run in ("first", "second", *(f"again-{i}" for i in range(again))):
        took, rc, out = timed(f"site-{label}-{run}", [str(BIN / "ansible-playbook"), "-i", str(inv),
                                                    "playbooks/site.yml"], {"ANSIBLE_CONFIG": cfg})
        result[run] = {"s": round(took, 1), "exit": rc, **recap(out)}
        if rc != 0:
            result[run]["error_tail"] = out[-1500:]
            break
    idempotent = [result[k]["s"] for k in result if (k == "second" or k.startswith("again-")) and
                  result[k]["exit"] == 0]
    if len(idempotent) > 1:
        result["idempotent_runs"] = med(idempotent)
    return result


def med(values: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(values), 1), "runs_s": [round(v, 1) for v in values]}


def verify_phase(inv: Path, small: Path) -> dict[str, Any]:
    def provnet_verify(label: str, path: Path, runs: int) -> tuple[list[float], list[int]]:
        got = [timed(f"{label}-{i}", [str(BIN / "provnet"), "verify", "--all", "-i", str(path), "--json"])
               for i in range(runs)]
        return [g[0] for g in got], [g[1] for g in got]

    full_s, full_rc = provnet_verify(f"verify-{SITES}", inv, RUNS)
    if COMPARE_SITES >= SITES:  # the comparison is at full scale: the runs above are provnet's side
        small_s, small_rc = full_s, full_rc
    else:
        small_s, small_rc = provnet_verify(f"verify-{COMPARE_SITES}", small, RUNS)
    cfg = write_cfg("defaults", DEFAULT_CFG.format(repo=REPO))
    # --confcutdir: tests/conftest.py (the test suite's home) sets ANSIBLE_CONFIG to provnet's ansible.cfg,
    # whose ControlPath would give the plain run provnet's multiplexed SSH (up to commit 2d23063 it did).
    plain = [timed(f"verify-plain-{COMPARE_SITES}-{i}",
                   [sys.executable, "-m", "pytest", "tests/sites", "--confcutdir", "tests/sites",
                    "-p", "provnet.verify.plugin", "-q", "-p", "no:cacheprovider", "--provnet-inventory", str(small)],
                   {"ANSIBLE_CONFIG": cfg, "PATH": f"{BIN}:{os.environ['PATH']}",
                    # lab nodes get a new host key at every boot: the one setting plain testinfra needs here
                    "ANSIBLE_SSH_COMMON_ARGS": PLAIN_SSH_ARGS}) for i in range(PLAIN_RUNS)]
    plain_s = [p[0] for p in plain]
    passed = re.findall(r"(\d+) (passed|failed|error|skipped)", plain[-1][2])
    return {
        "provnet_verify_all": {"sites": SITES, **med(full_s), "exit": full_rc},
        "compare": {"sites": COMPARE_SITES,
                    "provnet_verify": {**med(small_s), "exit": small_rc},
                    "plain_pytest_serial_testinfra_defaults": {**med(plain_s), "exit": [p[1] for p in plain],
                                                               "outcome": {k: int(v) for v, k in passed}},
                    "ratio": round(statistics.median(plain_s) / statistics.median(small_s), 1)},
    }


def readiness_phase(inv: Path) -> dict[str, Any]:
    """32 workers over BENCH_SITES, then one endpoint at a time over the first N sites
    (BENCH_SERIAL_LAYERS_SITES, BENCH_SERIAL_LADDER_SITES; default all): the serial full ladder
    at 166 sites would take ≈ 30 min, so it may run on a subset and be compared per endpoint."""
    ready: dict[str, Any] = {}
    for label, extra, env in (("layers_1_5", ["--until", "signalling"], "BENCH_SERIAL_LAYERS_SITES"),
                              ("full_ladder", [], "BENCH_SERIAL_LADDER_SITES")):
        serial_sites = min(SITES, int(os.environ.get(env, SITES)))
        serial_inv = inv if serial_sites == SITES else inventory(serial_sites)
        entry: dict[str, Any] = {}
        for workers, path, sites in ((32, inv, SITES), (1, serial_inv, serial_sites)):
            took, rc, out = timed(f"readiness-{label}-{sites}-w{workers}",
                                  [str(BIN / "provnet"), "vc", "readiness", "-i", str(path), "--json",
                                   "--workers", str(workers), *extra])
            try:
                doc = json.loads(out[out.index("{"):])
            except ValueError:
                doc = {}
            summary = doc.get("summary", {})
            entry[f"workers_{workers}"] = {"sites": sites, "s": round(took, 1), "exit": rc,
                                           "ready": summary.get("ready"), "endpoints": summary.get("endpoints"),
                                           "summary": summary}
        w1, w32 = entry["workers_1"], entry["workers_32"]
        if serial_sites == SITES:
            entry["ratio_serial_over_32"] = round(w1["s"] / w32["s"], 1)
        else:  # same ladder, fewer endpoints: compare seconds per endpoint
            entry["ratio_serial_over_32_per_endpoint"] = round((w1["s"] / serial_sites) / (w32["s"] / SITES), 1)
        ready[label] = entry
    return ready


def _run(r: dict[str, Any], key: str) -> str:
    c = r.get(key)
    if not c:
        return "not measured"
    parts = []
    for run in ("first", "second"):
        if run in c:
            x = c[run]
            parts.append(f"{run} run {x['s']} s (exit {x['exit']}, {x['hosts']} hosts, changed={x['changed']}, "
                         f"failed={x['failed']}, unreachable={x['unreachable']})")
    if "idempotent_runs" in c:
        parts.append(f"idempotent runs: median {c['idempotent_runs']['median_s']} s of {c['idempotent_runs']['runs_s']}")
    return "; ".join(parts)


def prose(r: dict[str, Any]) -> list[str]:
    """One short paragraph per figure, from the numbers."""
    strategy = re.search(r"^strategy = (\S+)", (REPO / "ansible.cfg").read_text(), re.M)
    out = [f"**site.yml, provnet's ansible.cfg as committed** (forks 50, pipelining, ControlPersist, explicit "
           f"facts, strategy {strategy[1] if strategy else 'linear'}), "
           f"from factory default then again: {_run(r, 'site_yml_tuned')}.",
           f"**site.yml, Ansible's defaults** (forks 5, no pipelining, no ControlPersist path, implicit fact "
           f"gathering): {_run(r, 'site_yml_ansible_defaults')}."]
    ratio = r.get("site_yml_ratio_defaults_over_tuned")
    if ratio:
        out.append(f"Defaults ÷ tuned: **{ratio['first']}×** on the first run, **{ratio['second']}×** on the "
                   "idempotent second run (same lab size, same benchmark run, fresh lab for each).")
    for key, c in sorted(r.items()):
        if key.startswith("site_yml_compare_") and "ratio_defaults_over_tuned" in c:
            d, t, q = c["ansible_defaults"], c["tuned"], c["ratio_defaults_over_tuned"]
            out.append(f"**Defaults against tuned on the first {c['sites']} sites** ({c['devices']} containers, a "
                       f"fresh lab for each, same benchmark run): defaults first run {d['first']['s']} s, second "
                       f"{d['second']['s']} s (changed={d['second']['changed']}); tuned first run {t['first']['s']} s, "
                       f"second {t['second']['s']} s (changed={t['second']['changed']}): defaults ÷ tuned "
                       f"**{q['first']}×** first run, **{q['second']}×** second run.")
    out.append(f"**site.yml under Mitogen** (`strategy = mitogen_linear`, otherwise provnet's ansible.cfg): "
               f"{_run(r, 'site_yml_mitogen')}.")
    ratio = r.get("site_yml_ratio_tuned_over_mitogen")
    if ratio:
        out.append(f"Tuned ÷ Mitogen: {ratio['first']}× first run, {ratio['second']}× second run.")
    v = r.get("verify")
    if v:
        full = v["provnet_verify_all"]
        text = (f"**provnet verify --all** (pytest-xdist, 4 workers, one SSH connection per host) over "
                f"{full['sites']} sites: median {full['median_s']} s (runs {full['runs_s']}, exit {full['exit']}). ")
        cmp_ = v.get("compare")
        if cmp_:
            plain = cmp_["plain_pytest_serial_testinfra_defaults"]
            where = (f"Over the same {cmp_['sites']} sites in the same run" if cmp_["sites"] >= full["sites"] else
                     f"On the first {cmp_['sites']} sites (a subset inventory against the same lab)")
            text += (f"{where}, provnet verify "
                     f"took {cmp_['provnet_verify']['median_s']} s and the plain alternative — `pytest tests/sites`, "
                     f"serial, testinfra/Ansible defaults, one SSH connection per command — "
                     f"{plain['median_s']} s (outcome {plain.get('outcome')}): **{cmp_['ratio']}×**.")
        else:
            text += "No comparison with the plain alternative in this run (see the notes)."
        out.append(text)
    rd = r.get("readiness")
    if rd:
        for label, name in (("layers_1_5", "layers 1–5 (`--until signalling`)"), ("full_ladder", "full ladder")):
            e = rd.get(label)
            if not e:
                continue
            w32, w1 = e["workers_32"], e["workers_1"]
            text = (f"**provnet vc readiness, {name}**: one endpoint at a time (`--workers 1`) over {w1['sites']} "
                    f"sites {w1['s']} s (exit {w1['exit']}, ready {w1['ready']}); default 32 workers over "
                    f"{w32['sites']} sites {w32['s']} s (exit {w32['exit']}, ready {w32['ready']})")
            if "ratio_serial_over_32" in e:
                text += f": serial ÷ parallel **{e['ratio_serial_over_32']}×**"
            elif "ratio_serial_over_32_per_endpoint" in e:
                text += (f": per endpoint, serial ÷ parallel **{e['ratio_serial_over_32_per_endpoint']}×** "
                         f"(the serial run covers the first {w1['sites']} sites only)")
            timings = w32["summary"].get("layer_timings") or {}
            if timings:
                text += "; per layer at 32 workers (median s per endpoint): " + ", ".join(
                    f"{k} {v['median_s']}" for k, v in timings.items())
            out.append(text + ".")
    return out


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    lines = [f"# Province benchmark — {SITES} sites of Thanh Hóa (lab re-addressed)", "",
             f"Machine: {report['machine']}", "",
             f"{r.get('sites')} sites, {r.get('devices')} devices (containers), {r.get('endpoints')} endpoints.", "",
             "## What the figures say", ""]
    for para in prose(r):
        lines += [para, ""]
    notes = report.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Raw results", "", "```json", json.dumps(r, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    inv, small = inventory(SITES), inventory(COMPARE_SITES)
    m = model.load(inv)
    path = OUT / f"province-{SITES}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"benchmark": "province"}
    report["machine"] = describe()
    if os.environ.get("BENCH_COMMIT"):  # a snapshot (git archive) of that commit, run outside the work tree
        report["machine"]["commit"] = os.environ["BENCH_COMMIT"]
    results = report.setdefault("results", {})
    results.update(sites=SITES, devices=len(m.devices),
                   endpoints=sum(1 for d in m.devices.values() if d.role == "endpoint"))

    def save() -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (OUT / f"province-{SITES}.md").write_text(markdown(report))

    if "defaults" in PHASES:
        results["site_yml_ansible_defaults"] = converge("defaults", inv, write_cfg("defaults", DEFAULT_CFG.format(
            repo=REPO)))
        save()
    if "compare" in PHASES:
        n = int(os.environ.get("BENCH_DEFAULTS_SITES", "20"))
        sub = inventory(n)
        cmp_: dict[str, Any] = {"sites": n, "devices": len(model.load(sub).devices)}
        cmp_["ansible_defaults"] = converge(f"defaults-{n}", sub, write_cfg("defaults", DEFAULT_CFG.format(repo=REPO)))
        cmp_["tuned"] = converge(f"tuned-{n}", sub, str(REPO / "ansible.cfg"))
        if all("second" in cmp_[k] for k in ("ansible_defaults", "tuned")):
            cmp_["ratio_defaults_over_tuned"] = {
                run: round(cmp_["ansible_defaults"][run]["s"] / cmp_["tuned"][run]["s"], 2) for run in ("first", "second")}
        results[f"site_yml_compare_{n}"] = cmp_
        save()
    if "mitogen" in PHASES:
        import ansible_mitogen  # noqa: PLC0415 - only this phase needs it

        strategy = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
        results["site_yml_mitogen"] = converge("mitogen", inv, write_cfg("mitogen", tuned_cfg_text(
            f"strategy_plugins = {strategy}\nstrategy = mitogen_linear\n")))
        save()
    if "tuned" in PHASES:
        results["site_yml_tuned"] = converge("tuned", inv, str(REPO / "ansible.cfg"))
        save()
    tuned, default = results.get("site_yml_tuned"), results.get("site_yml_ansible_defaults")
    if tuned and default and "second" in tuned and "second" in default:
        results["site_yml_ratio_defaults_over_tuned"] = {
            run: round(default[run]["s"] / tuned[run]["s"], 2) for run in ("first", "second")}
    mitogen = results.get("site_yml_mitogen")
    if tuned and mitogen and "second" in tuned and "second" in mitogen:
        results["site_yml_ratio_tuned_over_mitogen"] = {
            run: round(tuned[run]["s"] / mitogen[run]["s"], 2) for run in ("first", "second")}
    if "verify" in PHASES:
        results["verify"] = verify_phase(inv, small)
        save()
    if "readiness" in PHASES:
        results["readiness"] = readiness_phase(inv)
    save()
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
