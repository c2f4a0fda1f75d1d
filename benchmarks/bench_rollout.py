"""Benchmark (issue 21): new communes rolled out into the full-scale lab (Thanh Hóa re-addressed, 166 sites running).

The target: on the full-scale lab, one new commune end to end ≤ 2 min and a wave of 10 ≤ 5 min on this
2-core machine; in the same run the plain alternative (write the site file, `lab up`, `site.yml --limit`
over the DC and the site) and the ratio; the median of 3 and the machine recorded.

**The inventory.** Never inventory/thanhhoa-lab itself: an overlay of it at BENCH_OVERLAY (default
/tmp/provnet-bench/rollout/inventory), built by `provnet.rollout.overlay.build` and then *flattened* —
its province.yml is thanhhoa-lab's merged onto inventory/thanhhoa's (what `sot.read` compiles), without
`base:` — with the lab's vault (`overlay.env`: PROVNET_VAULT_DIR). It compiles to exactly thanhhoa-lab's
model (the same 339 devices, addresses and hostvars: tests/unit/test_bench_scripts.py), rebuilt at every
start (bench sites left by an interrupted run are retired first). Why flattened and why the lab runs
from it: a rollout joins the running lab only when that lab is its inventory's or its `base:`'s
(`province.family`), `site retire` takes a site's nodes out only of its own inventory's lab
(`province.prune`), and `--wave` rolls every wave but the last out against an overlay of the given
inventory — whose `base:` is flattened one level. With an unflattened overlay (base: inventory/thanhhoa)
no lab of thanhhoa-lab would take its rollouts, and the waves' overlays would not be family of a lab of
the overlay either; flattened, the overlay is an ordinary inventory, its waves' overlays name it as
`base:`, and its retires prune its lab.

**The communes.** Units of the province's official data (vietnam-provinces, the importer's) that are not
in inventory/thanhhoa/sites, by official code, then — since the 2025 data lists exactly the 166 units
already imported — communes given by hand, `Xã Thử Nghiệm NN` (kind xa, codes 99001… outside every
official code), each with a circuit id and a contact so the rollout accepts it. Each run takes other
communes; each is retired afterwards (`provnet site retire`, timed too) so the lab returns to 166 sites.

Phases (BENCH_PHASES, comma-separated, default `up,converge,provnet,plain,wave`, in this order; each
phase's result is merged into the existing JSON, so one phase can be rerun):

- `up`: `provnet lab up -i OVERLAY`; a lab of another inventory (thanhhoa-lab's included) is taken down
  first (`provnet lab down --force`), as bench_province does.
- `converge`: `ansible-playbook -i OVERLAY playbooks/site.yml` once (a fresh lab: ≈ 23–27 min at full
  scale, benchmarks/results/province-166.md). Skip `up,converge` when the lab already runs converged from
  OVERLAY (a previous run of this benchmark).
- `provnet`: BENCH_RUNS times (default 3), each with another commune: `provnet site add -i OVERLAY …`,
  `provnet rollout SLUG -i OVERLAY --json --wait 600`, `provnet site retire SLUG -i OVERLAY --json --wait
  600`: each wall time, the rollout's own steps, medians; end to end = add + rollout.
- `plain`: BENCH_RUNS times, each with another commune: `provnet site add` (the site file and the ledger),
  `provnet lab up -i OVERLAY` (the nodes boot, the PE gets its neighbour), `ansible-playbook -i OVERLAY
  playbooks/site.yml --limit 'dc,site_<slug>'` (every DC device and the site's: what an engineer would
  limit to without the rollout's plan; no verify, no test call, no record), then the same retire. The
  ratio: median plain (add + up + playbook) ÷ median provnet (add + rollout), both sides in this run.
- `wave`: BENCH_WAVE_RUNS times (default 1): BENCH_WAVE + 1 communes (default 10 + 1) added, then
  `provnet rollout --wave 10 S1 … S11 -i OVERLAY --json --wait 600` (the canary, then one wave of 10),
  then each retired; the whole command, the canary and the wave of 10 from its summary.

`--dry-run` (or BENCH_DRY=1) prints every command in order (`# …` lines are what the benchmark does in
Python or skips) and exits 0 without running anything, needing neither root nor a lab.

Writes benchmarks/results/rollout-<sites>.json and .md; logs of every command go to
/tmp/provnet-bench/logs/ (`<label>.log` stderr, `<label>.out` stdout). Needs root; leaves the lab up,
running from OVERLAY at 166 sites (bench_compliance with BENCH_PHASES=provnet,plain measures it as it is;
`provnet lab up -i inventory/thanhhoa-lab` needs `provnet lab down --force` first).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compliance import Ran, Runner, dry_requested  # noqa: E402
from bench_province import med, recap  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import importer, model, secrets, sot  # noqa: E402
from provnet.lab import province  # noqa: E402
from provnet.rollout import overlay  # noqa: E402
from provnet.selection import group_name  # noqa: E402
from provnet.slug import site_slug  # noqa: E402


BIN = Path(sys.executable).parent
INV = REPO / "inventory" / "thanhhoa-lab"
WORK = Path("/tmp/provnet-bench")
OVERLAY = Path(os.environ.get("BENCH_OVERLAY", WORK / "rollout" / "inventory"))  # rebuilt at every start
OUT = REPO / "benchmarks" / "results"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WAVE = int(os.environ.get("BENCH_WAVE", "10"))
WAVE_RUNS = int(os.environ.get("BENCH_WAVE_RUNS", "1"))
PHASES = os.environ.get("BENCH_PHASES", "up,converge,provnet,plain,wave").split(",")
TARGET_ONE_S, TARGET_WAVE_S = 120.0, 300.0  # issue 21: one commune ≤ 2 min, a wave of 10 ≤ 5 min
HAND_CODE = 99001  # communes given by hand: codes from here up, skipping every official code
WAIT = ["--json", "--wait", "600"]


@dataclass(frozen=True)
class Commune:
    slug: str
    args: tuple[str, ...]  # `provnet site add` options naming it, its circuit id and contact


def communes(m: model.Model, n: int) -> list[Commune]:
    """n communes of the inventory's province that it does not hold, deterministically: the official units
    missing from it by code, then communes by hand (`Xã Thử Nghiệm NN`, codes from HAND_CODE)."""
    prov = importer.find_province(str(m.code))
    held_codes = {s.code for s in m.sites.values()}
    held_slugs = set(m.sites)
    official_codes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "code" in node:
                official_codes.add(importer.unit_code(node["code"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(importer.load_divisions())
    out: list[Commune] = []
    for unit in sorted(prov.get("wards", []), key=lambda u: int(u["code"])):
        code = importer.unit_code(unit["code"])
        slug = site_slug(unit["name"], unit.get("division_type", ""))
        if code not in held_codes and slug not in held_slugs and len(out) < n:
            out.append(Commune(slug, ("--official", code)))
    code, k = HAND_CODE, 1
    while len(out) < n:
        name = f"Xã Thử Nghiệm {k:02d}"
        slug = site_slug(name, "xã")
        if str(code) not in official_codes and str(code) not in held_codes and slug not in held_slugs:
            out.append(Commune(slug, ("--name", name, "--kind", "xa", "--code", str(code))))
            k += 1
        code += 1
    return [Commune(c.slug, (*c.args, "--circuit", f"LAB-BENCH-{c.slug.upper()}", "--contact-name",
                             "Kỹ sư trực ban", "--contact-phone", f"0900 000 {i + 1:03d}"))
            for i, c in enumerate(out)]


def build_overlay(dest: Path | None = None) -> Path:
    """overlay.build(thanhhoa-lab) flattened (at OVERLAY): province.yml merged as sot.read merges it, without base:."""
    dest = dest if dest is not None else OVERLAY
    overlay.build(INV, dest)
    raw = yaml.safe_load((dest / sot.PROVINCE_FILE).read_text(encoding="utf-8"))
    base_root = Path(raw.pop("base"))
    base = yaml.safe_load((base_root / sot.PROVINCE_FILE).read_text(encoding="utf-8")) or {}
    base.pop("base", None)
    text = (f"# bench_rollout: overlay.build({INV.relative_to(REPO)}) flattened onto {base_root} — rebuilt at "
            "every start of benchmarks/bench_rollout.py; do not edit.\n"
            + yaml.safe_dump(sot._deep_merge(base, raw), allow_unicode=True, sort_keys=False))
    (dest / sot.PROVINCE_FILE).write_text(text, encoding="utf-8")
    return dest


class Bench:
    def __init__(self, r: Runner, base: model.Model, env: dict[str, str]) -> None:
        self.r, self.base, self.env = r, base, env
        self.provnet = str(BIN / "provnet")

    def cmd(self, label: str, *args: Any, timeout: float = 3600) -> Ran:
        return self.r.run(label, [self.provnet, *args], self.env, timeout=timeout)

    def add(self, c: Commune, label: str) -> Ran:
        ran = self.cmd(f"{label}-add-{c.slug}", "site", "add", "-i", OVERLAY, *c.args, "--json", timeout=600)
        if ran.rc != 0 and not self.r.dry:
            raise SystemExit(f"site add {c.slug} exited {ran.rc}: {(ran.out + ran.err)[-1500:]}")
        return ran

    def retire(self, slug: str, label: str) -> dict[str, Any]:
        ran = self.cmd(f"{label}-retire-{slug}", "site", "retire", slug, "-i", OVERLAY, *WAIT)
        data = ran.json()
        out = {"s": round(ran.s, 1), "exit": ran.rc, "dc_hosts": data.get("dc_hosts"),
               "removed": (data.get("lab") or {}).get("removed")}
        if ran.rc != 0 and not self.r.dry:
            raise SystemExit(f"site retire {slug} exited {ran.rc}: the lab is not back at {len(self.base.sites)} "
                             f"sites; {(ran.out + ran.err)[-1500:]}")
        return out


def steps_of(rec: dict[str, Any]) -> dict[str, float]:
    return {s["name"]: s["seconds"] for s in rec.get("steps", [])}


def provnet_phase(b: Bench, chosen: list[Commune]) -> dict[str, Any]:
    runs = []
    for c in chosen:
        add = b.add(c, "rollout-provnet")
        ran = b.cmd(f"rollout-provnet-{c.slug}", "rollout", c.slug, "-i", OVERLAY, *WAIT)
        rec = ran.json()
        runs.append({"slug": c.slug, "add_s": round(add.s, 1), "rollout_s": round(ran.s, 1),
                     "end_to_end_s": round(add.s + ran.s, 1), "exit": ran.rc, "ok": rec.get("ok"),
                     "outcome": rec.get("outcome"), "steps_s": steps_of(rec),
                     "record": (rec.get("files") or {}).get("json"),
                     "retire": b.retire(c.slug, "rollout-provnet")})
    return summarise(runs, "end_to_end_s", TARGET_ONE_S, b.r.dry)


def plain_phase(b: Bench, chosen: list[Commune]) -> dict[str, Any]:
    runs = []
    for c in chosen:
        add = b.add(c, "rollout-plain")
        up = b.cmd(f"rollout-plain-up-{c.slug}", "lab", "up", "-i", OVERLAY)
        limit = f"dc,{group_name('site_' + c.slug)}"
        play = b.r.run(f"rollout-plain-site-yml-{c.slug}", [BIN / "ansible-playbook", "-i", OVERLAY,
                                                           "playbooks/site.yml", "--limit", limit], b.env)
        runs.append({"slug": c.slug, "limit": limit, "add_s": round(add.s, 1), "lab_up_s": round(up.s, 1),
                     "lab_up_exit": up.rc, "site_yml_s": round(play.s, 1), "exit": play.rc, **recap(play.out),
                     "end_to_end_s": round(add.s + up.s + play.s, 1), "retire": b.retire(c.slug, "rollout-plain")})
    return summarise(runs, "end_to_end_s", None, b.r.dry)


def wave_phase(b: Bench, chosen: list[Commune]) -> dict[str, Any]:
    runs = []
    for i in range(WAVE_RUNS):
        group = chosen[i * (WAVE + 1):(i + 1) * (WAVE + 1)]
        adds = [b.add(c, f"rollout-wave-{i}") for c in group]
        ran = b.cmd(f"rollout-wave-{i}", "rollout", "--wave", str(WAVE), *(c.slug for c in group), "-i", OVERLAY,
                    *WAIT, timeout=7200)
        summary = ran.json()
        waves = summary.get("waves", [])
        runs.append({"sites": [c.slug for c in group], "add_s": round(sum(a.s for a in adds), 1),
                     "wave_command_s": round(ran.s, 1), "exit": ran.rc, "ok": summary.get("ok"),
                     "outcome": summary.get("outcome"), "reported_s": summary.get("seconds"),
                     "canary_s": waves[0]["seconds"] if waves else None,
                     "wave_of_n_s": waves[1]["seconds"] if len(waves) > 1 else None,
                     "waves": [{k: w.get(k) for k in ("number", "sites", "ok", "seconds", "outcome")} for w in waves],
                     "retire": [b.retire(c.slug, f"rollout-wave-{i}") for c in group]})
    out = summarise(runs, "wave_command_s", None, b.r.dry)
    of_n = [x["wave_of_n_s"] for x in runs if x["wave_of_n_s"] is not None]
    out["wave_size"] = WAVE
    if of_n:
        out["wave_of_n"] = {**med(of_n), "target_s": TARGET_WAVE_S,
                            "target_met": statistics.median(of_n) <= TARGET_WAVE_S}
    return out


def summarise(runs: list[dict[str, Any]], key: str, target: float | None, dry: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    if runs and not dry:
        out[key] = med([x[key] for x in runs])
        retires = [x["retire"]["s"] for x in runs if isinstance(x.get("retire"), dict)]
        if retires:
            out["retire_s"] = med(retires)
        if target is not None:
            out["target_s"], out["target_met"] = target, statistics.median(x[key] for x in runs) <= target
    return out


def preflight(r: Runner, m: model.Model) -> None:
    """The rollout phases need the lab running from OVERLAY with exactly its nodes (166 sites)."""
    running = province.running_inventory()
    if r.dry:
        if running != str(OVERLAY):
            r.note(f"the lab runs from {running or 'nothing'}: the rollout phases need it from {OVERLAY} "
                   "(phases up,converge)")
        return
    if running != str(OVERLAY):
        raise SystemExit(f"the running lab is {running or 'none'}'s, not {OVERLAY}'s: run the phases up,converge "
                         "first (BENCH_PHASES=up,converge,…; see the docstring: why the lab runs from the overlay)")
    extra = sorted({row.name for row in province.status()} - {d.hostname for d in m.nodes()})
    if extra:
        raise SystemExit(f"the lab runs nodes {OVERLAY} does not have: {', '.join(extra)} — "
                         f"`provnet lab prune -i {OVERLAY}` first")


def prepare(r: Runner, env: dict[str, str]) -> None:
    """Retire what an interrupted run left in OVERLAY, then rebuild it (the lab returns to 166 sites)."""
    sites = OVERLAY / sot.SITES_DIR
    left = sorted(p.stem for p in sites.glob("*.yml") if not p.is_symlink()) if sites.is_dir() else []
    for slug in left:
        r.note(f"{slug}: left in {OVERLAY} by an interrupted run: retired first")
        ran = r.run(f"rollout-cleanup-retire-{slug}", [BIN / "provnet", "site", "retire", slug, "-i", OVERLAY, *WAIT],
                    env)
        if ran.rc != 0 and not r.dry:
            raise SystemExit(f"retire of the leftover {slug} exited {ran.rc}: {(ran.out + ran.err)[-1500:]}")
    r.note(f"python: build_overlay() — overlay.build({INV.relative_to(REPO)}, {OVERLAY}), province.yml flattened")
    if not r.dry:
        build_overlay()


def markdown(report: dict[str, Any]) -> str:
    r = report["results"]
    lines = [f"# Rollout benchmark — new communes into {r.get('sites')} sites of Thanh Hóa (lab re-addressed)", "",
             f"Machine: {report['machine']}", "",
             f"The lab: {r.get('sites')} sites, {r.get('devices')} devices, running from the flattened overlay of "
             f"inventory/thanhhoa-lab ({OVERLAY}). Issue 21's targets: one new commune end to end ≤ "
             f"{TARGET_ONE_S:.0f} s, a wave of 10 ≤ {TARGET_WAVE_S:.0f} s.", "",
             "| what | runs | median (s) | runs (s) | exit | notes |", "|---|---|---|---|---|---|"]
    p = r.get("provnet")
    if p and p.get("runs"):
        steps = {k: round(statistics.median(x["steps_s"].get(k, 0) for x in p["runs"]), 1)
                 for k in p["runs"][0]["steps_s"]}
        lines.append(f"| provnet: `site add` + `provnet rollout SLUG` | {len(p['runs'])} | "
                     f"{p['end_to_end_s']['median_s']} | {p['end_to_end_s']['runs_s']} | "
                     f"{[x['exit'] for x in p['runs']]} | rollout alone "
                     f"{[x['rollout_s'] for x in p['runs']]}; median steps {steps}; target "
                     f"{'met' if p.get('target_met') else 'not met'} |")
    pl = r.get("plain")
    if pl and pl.get("runs"):
        lines.append(f"| plain: `site add` + `lab up` + `site.yml --limit dc,site_<slug>` | {len(pl['runs'])} | "
                     f"{pl['end_to_end_s']['median_s']} | {pl['end_to_end_s']['runs_s']} | "
                     f"{[x['exit'] for x in pl['runs']]} | lab up {[x['lab_up_s'] for x in pl['runs']]}, site.yml "
                     f"{[x['site_yml_s'] for x in pl['runs']]}, hosts {pl['runs'][-1]['hosts']}, changed "
                     f"{[x['changed'] for x in pl['runs']]}; no verify, no test call, no record |")
    for key, name in (("provnet", "provnet"), ("plain", "plain")):
        x = r.get(key)
        if x and "retire_s" in x:
            lines.append(f"| `provnet site retire` after {name} | {len(x['retire_s']['runs_s'])} | "
                         f"{x['retire_s']['median_s']} | {x['retire_s']['runs_s']} | | the lab back to "
                         f"{r.get('sites')} sites |")
    w = r.get("wave")
    if w and w.get("runs"):
        n = w.get("wave_of_n", {})
        lines.append(f"| `provnet rollout --wave {w['wave_size']}` ({w['wave_size'] + 1} sites: canary + one wave) | "
                     f"{len(w['runs'])} | {w['wave_command_s']['median_s']} | {w['wave_command_s']['runs_s']} | "
                     f"{[x['exit'] for x in w['runs']]} | canary {[x['canary_s'] for x in w['runs']]}, wave of "
                     f"{w['wave_size']} {[x['wave_of_n_s'] for x in w['runs']]} (median {n.get('median_s')}, "
                     f"target {'met' if n.get('target_met') else 'not met'}); adds "
                     f"{[x['add_s'] for x in w['runs']]} |")
    lines.append("")
    if "ratio_plain_over_provnet" in r:
        lines += [f"**Plain ÷ provnet, one commune end to end: {r['ratio_plain_over_provnet']}×** (medians, same "
                  "benchmark run; the plain side stops at the playbook: it neither verifies nor test-calls).", ""]
    notes = report.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"- {x}" for x in notes] + [""]
    lines += ["## Raw results", "", "```json", json.dumps(r, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def main() -> None:
    dry = dry_requested()
    r = Runner(dry)
    base = model.load(INV)
    sites = len(base.sites)
    needed = 2 * RUNS + WAVE_RUNS * (WAVE + 1)
    if dry:
        r.note(f"dry run: bench_rollout, {sites} sites, phases {','.join(PHASES)}, {needed} new communes")
    elif os.geteuid() != 0:
        sys.exit("needs root")
    env = {"PROVNET_VAULT_DIR": str(secrets.vault_paths(base).directory)}  # overlay.env: the lab's own vault
    chosen = communes(base, needed)
    path = OUT / f"rollout-{sites}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"benchmark": "rollout"}
    report["machine"] = describe() if not dry else {"commit": None}
    if os.environ.get("BENCH_COMMIT"):  # a snapshot (git archive) of that commit, run outside the work tree
        report["machine"]["commit"] = os.environ["BENCH_COMMIT"]
    results = report.setdefault("results", {})
    results.update(sites=sites, devices=len(base.devices), inventory=str(OVERLAY),
                   overlay_of="inventory/thanhhoa-lab (flattened)")

    def save() -> None:
        if dry:
            return
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (OUT / f"rollout-{sites}.md").write_text(markdown(report))

    stamp = {"commit": report["machine"]["commit"], "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    b = Bench(r, base, env)
    prepare(r, env)
    if "up" in PHASES:
        running = province.running_inventory()
        if running is not None and running != str(OVERLAY):
            r.note(f"a lab of {running} is running: taken down first (the rollout needs the lab of {OVERLAY})")
            r.run("rollout-lab-down", [BIN / "provnet", "lab", "down", "--force"], timeout=1800)
        ran = b.cmd("rollout-lab-up", "lab", "up", "-i", OVERLAY)
        if ran.rc != 0 and not dry:
            raise SystemExit(f"provnet lab up exited {ran.rc}: {ran.err[-1500:]}")
        results["lab_up"] = {"s": round(ran.s, 1), "exit": ran.rc, **stamp}
        save()
    if "converge" in PHASES:
        ran = r.run("rollout-site-yml", [BIN / "ansible-playbook", "-i", OVERLAY, "playbooks/site.yml"], env)
        results["converge"] = {"s": round(ran.s, 1), "exit": ran.rc, **recap(ran.out), **stamp}
        save()
        if ran.rc != 0 and not dry:
            raise SystemExit(f"site.yml exited {ran.rc}: {ran.out[-1500:]}")
    if {"provnet", "plain", "wave"} & set(PHASES):
        preflight(r, base)
    if "provnet" in PHASES:
        results["provnet"] = {**provnet_phase(b, chosen[:RUNS]), **stamp}
        save()
    if "plain" in PHASES:
        results["plain"] = {**plain_phase(b, chosen[RUNS:2 * RUNS]), **stamp}
        save()
    if "wave" in PHASES:
        results["wave"] = {**wave_phase(b, chosen[2 * RUNS:]), **stamp}
        save()
    if "provnet" in PHASES or "plain" in PHASES:  # a ratio only from both sides of one run
        results.pop("ratio_plain_over_provnet", None)
    p, pl = results.get("provnet", {}), results.get("plain", {})
    if not dry and "provnet" in PHASES and "plain" in PHASES and "end_to_end_s" in p and "end_to_end_s" in pl:
        results["ratio_plain_over_provnet"] = round(pl["end_to_end_s"]["median_s"] / p["end_to_end_s"]["median_s"], 1)
    save()
    if not dry:
        print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
