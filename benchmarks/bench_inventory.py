"""Benchmark: compiling the full imported province (Thanh Hóa, 166 communes and wards).

Times, as whole processes (median of N runs):
- `provnet inventory validate -i inventory/thanhhoa`
- `ansible-inventory -i inventory/thanhhoa-lab --list` (the production copy is refused by the
  address guard by design; the lab overlay is the same 166 sites in 198.18/15)
- the plain alternative for comparison: `ansible-inventory --list` on a static YAML inventory
  holding the same hosts and hostvars (what a team would otherwise maintain by hand).
Writes benchmarks/results/inventory.json and .md.
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
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def timed(argv: list[str]) -> list[float]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_INVENTORY_ENABLED": "provnet,yaml"}
    subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)  # warm the page cache
    out = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    listing = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventory/thanhhoa-lab", "--list"],
                             cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        static = Path(tmp) / "static.yml"
        data = json.loads(listing)
        hostvars = data.pop("_meta")["hostvars"]
        static_inv = {"all": {"hosts": {h: v for h, v in hostvars.items()}}}
        static.write_text(json.dumps(static_inv))
        cases = {
            "provnet inventory validate (thanhhoa, 166 sites)":
                [str(BIN / "provnet"), "inventory", "validate", "-i", "inventory/thanhhoa"],
            "ansible-inventory --list (thanhhoa-lab via provnet plugin)":
                [str(BIN / "ansible-inventory"), "-i", "inventory/thanhhoa-lab", "--list"],
            "ansible-inventory --list (same hosts+vars, static YAML/JSON file)":
                [str(BIN / "ansible-inventory"), "-i", str(static), "--list"],
        }
        results = {}
        for name, argv in cases.items():
            samples = timed(argv)
            results[name] = {"median_s": round(statistics.median(samples), 3),
                             "min_s": round(min(samples), 3), "max_s": round(max(samples), 3), "runs": RUNS}
    plugin = results["ansible-inventory --list (thanhhoa-lab via provnet plugin)"]["median_s"]
    static_m = results["ansible-inventory --list (same hosts+vars, static YAML/JSON file)"]["median_s"]
    report = {"benchmark": "inventory", "hosts": len(hostvars), "machine": describe(), "results": results,
              "ratio_plugin_vs_static": round(plugin / static_m, 2)}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "inventory.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    lines = [f"# Inventory benchmark — {len(hostvars)} hosts (Thanh Hóa, 166 communes and wards)", "",
             f"Machine: {report['machine']}", "", "| case | median s | min | max | runs |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_s']} | {r['min_s']} | {r['max_s']} | {r['runs']} |")
    lines += ["", f"provnet plugin / static file: {report['ratio_plugin_vs_static']}×"]
    (out / "inventory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
