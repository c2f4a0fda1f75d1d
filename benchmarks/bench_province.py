"""Benchmark: converge, verify and readiness on the lab re-addressed Thanh Hóa (BENCH_SITES sites).

In one run, on one lab:
1. `ansible-playbook playbooks/site.yml` from factory default with provnet's tuned ansible.cfg,
   then the idempotent second run; with BENCH_DEFAULTS=1 the same two runs again on a fresh
   lab with Ansible's defaults (forks 5, no pipelining, no ControlPersist path, implicit facts);
2. `provnet verify --all` (xdist, one SSH connection per host, facts once per host) against the
   same checks with testinfra's defaults (no ControlPath: one SSH connection per command; no
   parallelism);
3. `provnet vc readiness` layers 1–5 and the full ladder, against one endpoint at a time.
Writes benchmarks/results/province-<sites>.json and .md. Needs root.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lab import subset  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.lab import province  # noqa: E402

BIN = Path(sys.executable).parent
SITES = int(os.environ.get("BENCH_SITES", "20"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))

DEFAULT_CFG = """[defaults]
inventory_plugins = {repo}/plugins/inventory
action_plugins = {repo}/plugins/action
library = {repo}/plugins/modules
roles_path = {repo}/roles
host_key_checking = False
interpreter_python = /usr/bin/python3
[inventory]
enable_plugins = provnet
ignore_patterns = ^(province|ids|districts)\\.ya?ml$, ^sites$, ^retired$
"""


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:3]} failed ({proc.returncode}): {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    return took, proc.stdout


def recap_changed(stdout: str) -> int:
    return sum(int(part.split("=")[1]) for line in stdout.splitlines() if "changed=" in line and ":" in line
               for part in line.split() if part.startswith("changed="))


def converge(inv: Path, env: dict[str, str]) -> dict[str, object]:
    province.down(force=True)
    province.up(model.load(inv))
    first, out1 = timed([str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/site.yml"], env)
    second, out2 = timed([str(BIN / "ansible-playbook"), "-i", str(inv), "playbooks/site.yml"], env)
    return {"first_s": round(first, 1), "second_s": round(second, 1), "second_changed": recap_changed(out2)}


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("needs root")
    inv = subset(SITES)
    m = model.load(inv)
    results: dict[str, object] = {"sites": SITES, "devices": len(m.devices), "endpoints": sum(
        1 for d in m.devices.values() if d.role == "endpoint")}
    if os.environ.get("BENCH_DEFAULTS") == "1":
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
            cfg.write(DEFAULT_CFG.format(repo=REPO))
        results["site_yml_ansible_defaults"] = converge(inv, {"ANSIBLE_CONFIG": cfg.name})
    results["site_yml_tuned"] = converge(inv, {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    tuned = results["site_yml_tuned"]
    if "site_yml_ansible_defaults" in results:
        d = results["site_yml_ansible_defaults"]
        results["site_yml_ratio_first"] = round(d["first_s"] / tuned["first_s"], 2)  # type: ignore[index]
        results["site_yml_ratio_second"] = round(d["second_s"] / tuned["second_s"], 2)  # type: ignore[index]

    verify_runs = [timed([str(BIN / "provnet"), "verify", "--all", "-i", str(inv), "--json"])[0] for _ in range(RUNS)]
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write(DEFAULT_CFG.format(repo=REPO))
    plain = [timed([sys.executable, "-m", "pytest", "tests/sites", "-p", "provnet.verify.plugin", "-q",
                    "-p", "no:cacheprovider", "--provnet-inventory", str(inv)],
                   {"ANSIBLE_CONFIG": cfg.name, "PATH": f"{BIN}:{os.environ['PATH']}"})[0] for _ in range(RUNS)]
    results["verify"] = {"provnet_verify_s": round(statistics.median(verify_runs), 1),
                         "testinfra_defaults_serial_s": round(statistics.median(plain), 1),
                         "ratio": round(statistics.median(plain) / statistics.median(verify_runs), 1)}

    ready: dict[str, object] = {}
    for label, extra in (("layers_1_5", ["--until", "signalling"]), ("full_ladder", [])):
        par, out = timed([str(BIN / "provnet"), "vc", "readiness", "-i", str(inv), "--json", "--workers", "32", *extra])
        ser, _ = timed([str(BIN / "provnet"), "vc", "readiness", "-i", str(inv), "--json", "--workers", "1", *extra])
        summary = json.loads(out).get("summary", {}) if out.strip().startswith("{") else {}
        ready[label] = {"parallel_s": round(par, 1), "one_at_a_time_s": round(ser, 1), "ratio": round(ser / par, 1),
                        "layer_timings": summary.get("layer_timings")}
    results["readiness"] = ready
    province.down(force=True)
    report = {"benchmark": "province", "machine": describe(), "results": results}
    out_dir = REPO / "benchmarks" / "results"
    (out_dir / f"province-{SITES}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"province-{SITES}.md").write_text(f"# Province benchmark — {SITES} sites\n\nMachine: {report['machine']}"
                                                  f"\n\n```json\n{json.dumps(results, indent=2)}\n```\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
