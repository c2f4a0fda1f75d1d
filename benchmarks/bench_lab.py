"""Benchmark: the full-scale lab (Thanh Hóa re-addressed into 198.18/15) at 20, 80 and 166 sites.

For each size: `lab up` from nothing to every node answering SSH, the host memory the
running lab takes (MemAvailable before/after, and the nodes' summed PSS), and `lab down`.
Median of BENCH_RUNS runs (default 3). Needs root. Writes benchmarks/results/lab.json and .md.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.lab import node, province  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "20,80,166").split(",")]
WORK = Path("/tmp/provnet-bench")


def subset(n: int) -> Path:
    """An inventory with the first n sites of thanhhoa-lab (same addresses: they derive from ids)."""
    overlay = yaml.safe_load((REPO / "inventory/thanhhoa-lab/province.yml").read_text())
    overlay["base"] = str((REPO / "inventory/thanhhoa").resolve())
    root = WORK / f"sites-{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "sites").mkdir(parents=True)
    (root / "province.yml").write_text(yaml.safe_dump(overlay, allow_unicode=True))
    for path in sorted((REPO / "inventory/thanhhoa/sites").glob("*.yml"),
                       key=lambda p: yaml.safe_load(p.read_text())["id"])[:n]:
        (root / "sites" / path.name).symlink_to(path)
    (root / "provnet.yml").write_text("plugin: provnet\n")  # the inventory plugin's entry file (ansible -i)
    return root


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable")


def run(n: int) -> dict[str, object]:
    m = model.load(subset(n))
    ups, downs, mems, psss = [], [], [], []
    for _ in range(RUNS):
        province.down(force=True)
        time.sleep(2)
        before = mem_available()
        t = time.perf_counter()
        province.up(m, workers=8)
        ups.append(time.perf_counter() - t)
        time.sleep(5)
        mems.append(before - mem_available())
        psss.append(sum(node.memory_pss(d.hostname, province.lab_dir()) for d in m.nodes()))
        t = time.perf_counter()
        province.down()
        downs.append(time.perf_counter() - t)
        assert province.leftovers() == []
    med = statistics.median
    return {"sites": n, "containers": len(m.nodes()), "links": len(m.links), "runs": RUNS,
            "up_to_all_ssh_s": round(med(ups), 1), "up_min_max_s": [round(min(ups), 1), round(max(ups), 1)],
            "down_s": round(med(downs), 1), "host_memory_gib": round(med(mems) / 2**30, 2),
            "nodes_pss_gib": round(med(psss) / 2**30, 2)}


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_lab needs root")
    results = [run(n) for n in SIZES]
    report = {"benchmark": "lab", "machine": describe(), "results": results,
              "target": "166 sites up in < 300 s within 16 GiB"}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "lab.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Lab benchmark — Thanh Hóa re-addressed into 198.18.0.0/15", "", f"Machine: {report['machine']}", "",
             "| sites | containers | links | up → all SSH (median s) | min–max | down (s) | host memory (GiB) | nodes PSS (GiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['sites']} | {r['containers']} | {r['links']} | {r['up_to_all_ssh_s']} | "
                     f"{r['up_min_max_s'][0]}–{r['up_min_max_s'][1]} | {r['down_s']} | {r['host_memory_gib']} | "
                     f"{r['nodes_pss_gib']} |")
    (out / "lab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
