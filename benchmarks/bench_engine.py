"""Benchmark: the engine at scale — render, diff and deploy — against one host at a time.

1. render of the full imported province (inventory/thanhhoa, vendor templates, 339 devices):
   one `provnet net render` process vs one process per device (the naive loop);
2. on the full-scale lab (thanhhoa-lab subset of BENCH_SITES sites, default 166):
   deploy --commit from factory default with Nornir (BENCH_WORKERS, default 20) and the
   same deploy with one worker; then diff (no change) both ways.
Writes benchmarks/results/engine.json and .md. Needs root for the lab part.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lab import subset  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import model  # noqa: E402
from provnet.engine import run  # noqa: E402
from provnet.lab import province  # noqa: E402

BIN = Path(sys.executable).parent
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SITES = int(os.environ.get("BENCH_SITES", "166"))
SERIAL_SITES = int(os.environ.get("BENCH_SERIAL_SITES", "20"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "20"))


def timed(fn, runs: int = RUNS) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def stats(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 2), "min_s": round(min(samples), 2),
            "max_s": round(max(samples), 2), "runs": len(samples)}


def bench_render(results: dict[str, object]) -> None:
    m = model.load(REPO / "inventory/thanhhoa")
    hosts = list(m.devices)
    out = Path("/tmp/provnet-bench/render")
    one = timed(lambda: subprocess.run([str(BIN / "provnet"), "net", "render", "-i", "inventory/thanhhoa", "-o",
                                        str(out)], cwd=REPO, check=True, capture_output=True))
    # the plain alternative: one process per device, every device (measured once: it is slow)
    per = timed(lambda: [subprocess.run([str(BIN / "provnet"), "net", "render", "-i", "inventory/thanhhoa", "-l", h,
                                         "-o", str(out)], cwd=REPO, check=True, capture_output=True)
                         for h in hosts], runs=1)
    results["render"] = {"devices": len(hosts), "one_process": stats(one),
                         "process_per_device": stats(per),
                         "ratio": round(per[0] / statistics.median(one), 1)}


def bench_lab(results: dict[str, object]) -> None:
    for label, sites, workers_list in (("full", SITES, [WORKERS]), ("serial-comparison", SERIAL_SITES, [WORKERS, 1])):
        m = model.load(subset(sites))
        entry: dict[str, object] = {"sites": sites, "devices": len(m.devices)}
        for workers in workers_list:
            deploys, diffs = [], []
            for _ in range(RUNS if label == "serial-comparison" or workers != 1 else 1):
                province.down(force=True)
                province.up(m)
                t = time.perf_counter()
                res = run.run(m, "deploy", commit=True, workers=workers)
                deploys.append(time.perf_counter() - t)
                failed = [r.host for r in res if r.status == "failed"]
                if failed:
                    raise SystemExit(f"deploy failed on {failed[:5]}")
                t = time.perf_counter()
                res = run.run(m, "diff", workers=workers)
                diffs.append(time.perf_counter() - t)
                assert all(r.status == "unchanged" for r in res), [r.host for r in res if r.status != "unchanged"]
            entry[f"workers_{workers}"] = {"deploy_from_factory": stats(deploys), "diff_no_change": stats(diffs)}
        if len(workers_list) == 2:
            a, b = (entry[f"workers_{w}"] for w in workers_list)
            entry["ratio_deploy"] = round(b["deploy_from_factory"]["median_s"] / a["deploy_from_factory"]["median_s"], 1)  # type: ignore[index]
            entry["ratio_diff"] = round(b["diff_no_change"]["median_s"] / a["diff_no_change"]["median_s"], 1)  # type: ignore[index]
        results[label] = entry
    province.down(force=True)


def summary(results: dict[str, Any]) -> list[str]:
    """The figures in a sentence each (medians; the plain alternative and the ratio beside them)."""
    out = []
    r = results.get("render")
    if r:
        out.append(f"- render of the full imported province ({r['devices']} devices): one process "
                   f"{r['one_process']['median_s']} s (median of {r['one_process']['runs']}), one process per device "
                   f"{r['process_per_device']['median_s']} s: ×{r['ratio']}")
    full = results.get("full")
    if full:
        w = full[f"workers_{WORKERS}"]
        out.append(f"- full-scale lab ({full['sites']} sites, {full['devices']} devices), {WORKERS} workers: deploy from "
                   f"factory default {w['deploy_from_factory']['median_s']} s, diff with nothing to change "
                   f"{w['diff_no_change']['median_s']} s (medians of {w['deploy_from_factory']['runs']})")
    cmp_ = results.get("serial-comparison")
    if cmp_:
        a, b = cmp_[f"workers_{WORKERS}"], cmp_["workers_1"]
        out.append(f"- {cmp_['sites']} sites ({cmp_['devices']} devices), {WORKERS} workers vs one host at a time: "
                   f"deploy {a['deploy_from_factory']['median_s']} s vs {b['deploy_from_factory']['median_s']} s "
                   f"(×{cmp_['ratio_deploy']}), diff {a['diff_no_change']['median_s']} s vs "
                   f"{b['diff_no_change']['median_s']} s (×{cmp_['ratio_diff']})")
    return out


def main() -> None:
    results: dict[str, object] = {}
    bench_render(results)
    if os.geteuid() == 0 and os.environ.get("BENCH_SKIP_LAB") != "1":
        bench_lab(results)
    report = {"benchmark": "engine", "machine": describe(), "results": results}
    out = REPO / "benchmarks" / "results"
    (out / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Engine benchmark", "", f"Machine: {report['machine']}", "", *summary(results), "", "```json",
             json.dumps(results, indent=2), "```"]
    (out / "engine.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
