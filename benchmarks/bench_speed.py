"""Benchmark (issue 23): how fast provnet is at full scale, each figure beside the plain alternative.

Always the full-scale province (`--inventory`, default inventory/thanhhoa-lab: 166 communes, 339 devices).
`--runs` runs (default 3) of every configuration in one benchmark run; the median of each. The figures,
in the order they run (`--only` picks some; the others of an existing JSON are kept as they are, each
with its own machine and commit):

- `lab_up`, `lab_down`: `provnet lab up -i INV` from nothing, then `provnet lab down`.
- `engine_deploy`, `engine_diff`: a fresh lab, `provnet net deploy --commit --json` over every device
  (the engine's default 20 workers, as benchmarks/bench_engine.py), then `provnet net diff --json`
  (nothing to change).
- `ansible_defaults_first`, `ansible_defaults_again`: a fresh lab, `ansible-playbook playbooks/site.yml`
  with Ansible's defaults (ANSIBLE_CONFIG: only the plugin, module and role paths — bench_province's
  DEFAULT_CFG), then the same playbook again.
- `site_yml_first`, `site_yml_again`: the same with provnet's ansible.cfg; `site_yml_again_changed` is the
  PLAY RECAP's changed= summed over the hosts (the largest of the runs; must be 0). This pair runs last of
  the converging figures: it leaves the lab converged by provnet's settings for the checks after it.
- `verify_all`: `provnet verify --all --json`; beside it `verify_plain_serial` (`pytest tests/sites`,
  serial, testinfra's own SSH backend under Ansible's defaults: one SSH connection per command, one
  command at a time — bench_province's plain run) and `verify_plain_parallel` (the same with pytest-xdist,
  as many workers as provnet verify's default, when pytest-xdist is in the venv).
- `readiness_full`: `provnet vc readiness --json` (the full ladder, every endpoint, default workers).

Derived: `ratio_defaults_over_provnet_first`/`_again` (median defaults ÷ median provnet) and
`ratio_plain_serial_over_verify`/`ratio_plain_parallel_over_verify`, only from both sides measured in the
same benchmark run (a ratio whose sides were since measured apart is dropped).

A fresh lab (`provnet lab down --force`, `provnet lab up`) comes before each *first* run (site.yml,
defaults, engine deploy). Per run: wall time, exit code, the load average before and after, and CPU
seconds of the controller (getrusage(RUSAGE_CHILDREN) delta: the commands and the descendants they
waited for) and of the nodes (the lab's cgroup2 `provnet-lab/cpu.stat` usage delta; without it
/proc/stat busy time minus the controller and this process) — the method per run in the JSON.

`--dry-run` prints every command in order (`# …` lines: what is done in Python or skipped) and exits 0,
needing neither root nor a lab. Writes benchmarks/results/speed-<sites>.json and .md (after each group of
figures); logs of each command in /tmp/provnet-bench/logs/speed-*.{out,log}. Needs root; leaves the lab up
(and converged when the site.yml figures ran). A whole run takes ≈ 8–9 h on the 2-vCPU machine of
province-166.md at today's figures there (the defaults pair ≈ 3 h, provnet's pair ≈ 2 h, verify with its plain
runs ≈ 3 h, the rest ≈ 30 min); `--runs 1` about a third of that.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compliance import Ran, Runner  # noqa: E402
from bench_province import DEFAULT_CFG, PLAIN_SSH_ARGS, recap  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from provnet import guard, model  # noqa: E402
from provnet.errors import AddressRefused  # noqa: E402
from provnet.lab import node  # noqa: E402

BIN = Path(sys.executable).parent
PROVNET = BIN / "provnet"
WORK = Path("/tmp/provnet-bench")
OUT = REPO / "benchmarks" / "results"
TIMEOUT = 4 * 3600.0  # one command; the defaults' first run takes ≈ 32 min at full scale

GROUPS: dict[str, tuple[str, ...]] = {
    "lab": ("lab_up", "lab_down"),
    "engine": ("engine_deploy", "engine_diff"),
    "defaults": ("ansible_defaults_first", "ansible_defaults_again"),
    "provnet": ("site_yml_first", "site_yml_again"),
    "verify": ("verify_all", "verify_plain_serial", "verify_plain_parallel"),
    "readiness": ("readiness_full",),
}
FIGURES: tuple[str, ...] = tuple(f for group in GROUPS.values() for f in group)
#: derived figure → (numerator, denominator)
RATIOS: dict[str, tuple[str, str]] = {
    "ratio_defaults_over_provnet_first": ("ansible_defaults_first", "site_yml_first"),
    "ratio_defaults_over_provnet_again": ("ansible_defaults_again", "site_yml_again"),
    "ratio_plain_serial_over_verify": ("verify_plain_serial", "verify_all"),
    "ratio_plain_parallel_over_verify": ("verify_plain_parallel", "verify_all"),
}
#: names --only also takes: a derived figure means the figures it comes from
ALIASES: dict[str, tuple[str, ...]] = {"site_yml_again_changed": ("site_yml_again",),
                                       **{k: v for k, v in RATIOS.items()}}


@dataclass(frozen=True)
class Goal:
    figure: str
    text: str
    check: Callable[[dict[str, Any]], bool]


def _at_most(limit: float) -> Callable[[dict[str, Any]], bool]:
    return lambda rec: bool(rec.get("ok")) and rec["median_s"] <= limit


GOALS: tuple[Goal, ...] = (
    Goal("site_yml_first", "≤ 300 s", _at_most(300)),
    Goal("ratio_defaults_over_provnet_first", "≥ 5× (Ansible's defaults ÷ provnet)", lambda r: r["value"] >= 5),
    Goal("site_yml_again", "≤ 90 s", _at_most(90)),
    Goal("site_yml_again_changed", "changed=0", lambda r: r["value"] == 0),
    Goal("verify_all", "≤ 120 s", _at_most(120)),
    Goal("readiness_full", "≤ 60 s", _at_most(60)),
    Goal("engine_deploy", "≤ 120 s", _at_most(120)),
    Goal("engine_diff", "≤ 25 s", _at_most(25)),
    Goal("lab_down", "≤ 30 s", _at_most(30)),
)

NODES_CGROUP = "cgroup2 provnet-lab/cpu.stat usage_usec delta (every node's processes)"
NODES_PROC_STAT = "/proc/stat busy (user+nice+system+irq+softirq+steal) delta − controller − benchmark process"


# ---------------------------------------------------------------- CPU and load


def lab_cgroup_usage() -> float | None:
    """CPU seconds used by the lab's nodes so far (their shared cgroup2 parent), None without one."""
    with open("/proc/self/mounts") as handle:
        mounts = [line.split()[1] for line in handle if line.split()[2:3] == ["cgroup2"]]
    for mount in mounts:
        stat = Path(mount) / node.CGROUP_PARENT / "cpu.stat"
        try:
            for line in stat.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        except OSError:
            continue
    return None


def proc_stat_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat, every CPU)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_counters() -> dict[str, float | None]:
    """Cumulative counters, read before and after each run."""
    children, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return {"controller": children.ru_utime + children.ru_stime, "self": me.ru_utime + me.ru_stime,
            "host_busy": proc_stat_busy(), "lab_cgroup": lab_cgroup_usage()}


def cpu_delta(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
    """Controller, nodes and whole-machine CPU seconds of one run, and how the nodes' were counted.

    The cgroup counts when it exists after the run and did not restart (a lab booted by the run starts it
    at 0); otherwise (the run took the lab down, or none runs) /proc/stat minus the controller."""
    controller = float(after["controller"] or 0) - float(before["controller"] or 0)
    own = float(after["self"] or 0) - float(before["self"] or 0)
    host = float(after["host_busy"] or 0) - float(before["host_busy"] or 0)
    b, a = before.get("lab_cgroup"), after.get("lab_cgroup")
    if a is not None and a >= (b or 0.0):
        nodes, method = a - (b or 0.0), "cgroup"
    else:
        nodes, method = max(0.0, host - controller - own), "proc_stat"
    return {"controller_cpu_s": round(controller, 1), "nodes_cpu_s": round(nodes, 1),
            "host_busy_cpu_s": round(host, 1), "nodes_cpu_method": method}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- parsing what the commands print


def changed_total(stdout: str) -> int:
    """The PLAY RECAP's changed= summed over its hosts."""
    return recap(stdout)["changed"]


def pytest_outcome(stdout: str) -> dict[str, int]:
    """pytest's last summary line: {'passed': n, 'failed': n, …}."""
    lines = [line for line in stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", lines[-1])} if lines else {}


def json_doc(text: str) -> Any:
    """The JSON document a --json command printed (None when there is none)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    try:
        return json.loads(text[min(starts):])
    except ValueError:
        return None


def statuses(doc: Any) -> dict[str, int]:
    """How many engine hosts ended in each status (`provnet net … --json`)."""
    counts: dict[str, int] = {}
    for row in doc if isinstance(doc, list) else []:
        if isinstance(row, dict):
            counts[str(row.get("status"))] = counts.get(str(row.get("status")), 0) + 1
    return dict(sorted(counts.items()))


def median_record(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """median_s and runs_s of the runs' wall times; ok when every run exited 0."""
    walls = [s["s"] for s in samples]
    return {"median_s": round(statistics.median(walls), 1), "runs_s": walls,
            "exit": [s["exit"] for s in samples], "ok": all(s["exit"] == 0 for s in samples)}


def ratio(num: dict[str, Any], den: dict[str, Any]) -> float:
    return round(num["median_s"] / den["median_s"], 2)


# ---------------------------------------------------------------- the benchmark


def xdist_present() -> bool:
    return importlib.util.find_spec("xdist") is not None


def verify_workers() -> int:
    """provnet verify's default number of pytest-xdist workers (the plain parallel run uses as many)."""
    import inspect

    from provnet import verify_cli

    return int(inspect.signature(verify_cli.verify).parameters["workers"].default.default)


class Speed:
    """Runs the chosen figures through a Runner; collects each run's sample per figure."""

    def __init__(self, runner: Runner, inv: Path, runs: int, figures: list[str]) -> None:
        self.r, self.inv, self.runs, self.figures = runner, inv, runs, figures
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.skipped: dict[str, str] = {}
        self.commands: dict[str, str] = {}

    def want(self, *figures: str) -> bool:
        return any(f in self.figures for f in figures)

    def measure(self, figure: str, i: int, argv: list[Any],
                env: dict[str, str] | None = None) -> tuple[Ran, dict[str, Any]]:
        """One timed run of one figure, with load average and CPU around it."""
        shown_env = {k: (f"{BIN}:$PATH" if k == "PATH" else v) for k, v in (env or {}).items()}
        line = shlex.join([f"{k}={v}" for k, v in shown_env.items()] + [str(a) for a in argv])
        self.commands.setdefault(figure, line.replace(f"{REPO}/", ""))
        if self.r.dry:
            return self.r.run(f"speed-{figure}-{i}", argv, env, TIMEOUT), {}
        load_before, before = load_average(), cpu_counters()
        ran = self.r.run(f"speed-{figure}-{i}", argv, env, TIMEOUT)
        sample = {"s": round(ran.s, 1), "exit": ran.rc, "load_before": load_before, "load_after": load_average(),
                  **cpu_delta(before, cpu_counters())}
        if ran.rc != 0:
            sample["error_tail"] = (ran.out + ran.err)[-1500:]
        self.samples.setdefault(figure, []).append(sample)
        return ran, sample

    def lab(self, what: str, argv: list[Any]) -> Ran:
        """An untimed lab step (not a figure); a failed `lab up` ends the benchmark."""
        ran = self.r.run(f"speed-{what}", argv, timeout=3600)
        if ran.rc != 0 and "up" in argv:
            raise SystemExit(f"provnet lab up exited {ran.rc}: {(ran.out + ran.err)[-1500:]}")
        return ran

    def fresh_lab(self, why: str) -> None:
        self.r.note(f"a fresh lab before {why}")
        self.lab("lab-down", [PROVNET, "lab", "down", "--force"])
        self.lab("lab-up", [PROVNET, "lab", "up", "-i", self.inv])

    # -- the groups, in the order they run

    def lab_group(self) -> None:
        for i in range(self.runs):
            self.r.note(f"lab run {i + 1}: from nothing (`lab down --force` first, untimed)")
            self.lab("lab-down", [PROVNET, "lab", "down", "--force"])
            up = [PROVNET, "lab", "up", "-i", self.inv]
            if self.want("lab_up"):
                self.measure("lab_up", i, up)
            else:
                self.lab("lab-up", up)
            if self.want("lab_down"):
                self.measure("lab_down", i, [PROVNET, "lab", "down"])

    def engine_group(self) -> None:
        if not self.want("engine_deploy"):
            self.r.note("engine_diff without engine_deploy: on the running lab (converged by the engine or site.yml)")
        for i in range(self.runs):
            if self.want("engine_deploy"):
                self.fresh_lab(f"engine_deploy run {i + 1}")
                ran, sample = self.measure("engine_deploy", i, [PROVNET, "net", "deploy", "-i", self.inv, "--commit",
                                                                "--json"])
                sample["hosts"] = statuses(json_doc(ran.out))
            if self.want("engine_diff"):
                ran, sample = self.measure("engine_diff", i, [PROVNET, "net", "diff", "-i", self.inv, "--json"])
                sample["hosts"] = statuses(json_doc(ran.out))

    def site_yml_group(self, first: str, again: str, cfg: Path) -> None:
        if not self.want(first):
            self.r.note(f"{again} without {first}: on the running lab (already converged)")
        argv = [BIN / "ansible-playbook", "-i", self.inv, "playbooks/site.yml"]
        env = {"ANSIBLE_CONFIG": str(cfg)}
        for i in range(self.runs):
            if self.want(first):
                self.fresh_lab(f"{first} run {i + 1}")
                ran, sample = self.measure(first, i, argv, env)
                sample["recap"] = recap(ran.out)
                if ran.rc != 0 and not self.r.dry:
                    self.r.note(f"{first} run {i + 1} exited {ran.rc}: no {again} after it")
                    continue
            if self.want(again):
                ran, sample = self.measure(again, i, argv, env)
                sample["recap"] = recap(ran.out)

    def verify_group(self) -> None:
        plain = [sys.executable, "-m", "pytest", "tests/sites", "--confcutdir", "tests/sites", "-p",
                 "provnet.verify.plugin", "-q", "-p", "no:cacheprovider", "--provnet-inventory", self.inv]
        # --confcutdir: tests/conftest.py would set ANSIBLE_CONFIG to provnet's ansible.cfg (its ControlPath)
        env = {"ANSIBLE_CONFIG": str(defaults_cfg()), "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
               "ANSIBLE_SSH_COMMON_ARGS": PLAIN_SSH_ARGS}
        parallel = self.want("verify_plain_parallel") and xdist_present()
        if self.want("verify_plain_parallel") and not parallel:
            self.skipped["verify_plain_parallel"] = "pytest-xdist is not in the venv: no parallel plain run"
            self.r.note(self.skipped["verify_plain_parallel"])
        if self.want("verify_all", "verify_plain_serial", "verify_plain_parallel"):
            self.r.note("verify figures check the running lab: converged (site_yml_first/again run before them)")
        for i in range(self.runs):  # interleaved: each run of each configuration under the same conditions
            if self.want("verify_all"):
                ran, sample = self.measure("verify_all", i, [PROVNET, "verify", "--all", "-i", self.inv, "--json"])
                doc = json_doc(ran.out)
                if isinstance(doc, list):
                    sample.update(sites=len(doc), healthy=sum(1 for v in doc if isinstance(v, dict) and v.get("ok")))
            if self.want("verify_plain_serial"):
                ran, sample = self.measure("verify_plain_serial", i, plain, env)
                sample["outcome"] = pytest_outcome(ran.out)
            if parallel:
                ran, sample = self.measure("verify_plain_parallel", i, [*plain, "-n", str(verify_workers())], env)
                sample["outcome"] = pytest_outcome(ran.out)

    def readiness_group(self) -> None:
        for i in range(self.runs):
            ran, sample = self.measure("readiness_full", i, [PROVNET, "vc", "readiness", "-i", self.inv, "--json"])
            doc = json_doc(ran.out)
            summary = doc.get("summary", {}) if isinstance(doc, dict) else {}
            sample.update(endpoints=summary.get("endpoints"), ready=summary.get("ready"))


def defaults_cfg() -> Path:
    """Where the Ansible-defaults config goes (bench_province's DEFAULT_CFG: only what finds the plugins)."""
    return WORK / "speed" / "ansible-defaults.cfg"


def check_addresses(m: model.Model) -> None:
    """Every device address through provnet's guard before anything connects (198.18.0.0/15 only)."""
    for dev in m.devices.values():
        try:
            guard.check(str(dev.ansible_host), purpose=f"benchmark {dev.hostname} at")
        except AddressRefused as exc:
            raise SystemExit(f"bench_speed: {exc}") from None


def commit() -> str:
    """The commit measured: BENCH_COMMIT (a snapshot run outside the work tree) or the repository's HEAD."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def merge(report: dict[str, Any], speed: Speed, stamp: dict[str, Any]) -> None:
    """Put this run's figures (each with this run's machine, commit and time) into report, keep the others;
    derive site_yml_again_changed and the ratios whose two sides come from one run."""
    for figure, samples in speed.samples.items():
        report[figure] = {**median_record(samples), **stamp, "runs": samples,
                          "command": speed.commands.get(figure, "")}
    for figure, why in speed.skipped.items():
        report[figure] = {"skipped": why, **stamp}
    again = report.get("site_yml_again")
    if again and "runs" in again:
        runs = [int(s.get("recap", {}).get("changed", 0)) for s in again["runs"]]
        report["site_yml_again_changed"] = {"value": max(runs), "runs": runs,
                                            **{k: again[k] for k in ("commit", "machine", "at")}}
    for key, (num, den) in RATIOS.items():
        a, b = report.get(num, {}), report.get(den, {})
        if num in speed.samples and den in speed.samples:
            report[key] = {"value": ratio(a, b), "numerator": num, "denominator": den, **stamp}
        elif key in report and not (a.get("at") == b.get("at") == report[key].get("at")):
            del report[key]  # one side was measured again alone: no longer one run's ratio


# ---------------------------------------------------------------- Markdown


def markdown(report: dict[str, Any]) -> str:
    about = report.get("about", {})
    machines: list[dict[str, Any]] = []

    def machine_ref(rec: dict[str, Any]) -> str:
        m = rec.get("machine")
        if not m:
            return ""
        if m not in machines:
            machines.append(m)
        return f"M{machines.index(m) + 1}"

    def goal_cell(figure: str) -> str:
        goals = [g for g in GOALS if g.figure == figure]
        rec = report.get(figure)
        if not goals:
            return ""
        if not rec or "skipped" in rec:
            return "; ".join(f"{g.text}: not measured" for g in goals)
        return "; ".join(f"{g.text}: **{'met' if g.check(rec) else 'not met'}**" for g in goals)

    lines = [f"# Speed benchmark — {about.get('sites')} sites, {about.get('devices')} devices "
             f"({about.get('inventory')})", "",
             "Each figure is the median of its runs in one benchmark run (benchmarks/bench_speed.py), measured "
             "beside its plain alternative in the same run; every figure carries its own commit and machine "
             "(a figure measured alone later keeps the others as they were).", "",
             "| figure | median (s) | runs (s) | exit | goal | commit | machine | measured |",
             "|---|---|---|---|---|---|---|---|"]
    for figure in FIGURES:
        rec = report.get(figure)
        if not rec:
            lines.append(f"| `{figure}` | not measured | | | {goal_cell(figure)} | | | |")
        elif "skipped" in rec:
            lines.append(f"| `{figure}` | skipped: {rec['skipped']} | | | | {rec.get('commit')} | "
                         f"{machine_ref(rec)} | {rec.get('at')} |")
        else:
            lines.append(f"| `{figure}` | {rec.get('median_s')} | {rec.get('runs_s')} | {rec.get('exit', '')} | "
                         f"{goal_cell(figure)} | "
                         f"{rec.get('commit')} | {machine_ref(rec)} | {rec.get('at')} |")
    changed = report.get("site_yml_again_changed")
    if changed:
        lines.append(f"| `site_yml_again_changed` | changed={changed['value']} (runs {changed['runs']}) | | | "
                     f"{goal_cell('site_yml_again_changed')} | {changed.get('commit')} | {machine_ref(changed)} | "
                     f"{changed.get('at')} |")
    lines += ["", "## Beside the plain alternative", ""]
    what = {"ratio_defaults_over_provnet_first": "site.yml from factory default, Ansible's defaults ÷ provnet's "
                                                 "ansible.cfg",
            "ratio_defaults_over_provnet_again": "site.yml again (nothing to change), Ansible's defaults ÷ provnet's "
                                                 "ansible.cfg",
            "ratio_plain_serial_over_verify": "plain `pytest tests/sites`, serial, one SSH connection per command ÷ "
                                              "`provnet verify --all`",
            "ratio_plain_parallel_over_verify": "plain `pytest tests/sites -n N` (pytest-xdist, testinfra's SSH "
                                                "defaults) ÷ `provnet verify --all`"}
    for key, (num, den) in RATIOS.items():
        rec = report.get(key)
        if rec:
            goal = goal_cell(key)
            lines.append(f"- `{key}`: **{rec['value']}×** — {what[key]} (`{num}` ÷ `{den}`, same run, commit "
                         f"{rec.get('commit')}){'; goal ' + goal if goal else ''}.")
        else:
            lines.append(f"- `{key}`: not measured in one run — {what[key]} (`--only {num},{den}`)"
                         f"{'; goal ' + goal_cell(key) if goal_cell(key) else ''}.")
    lines += ["- `readiness_full`, `engine_*`, `lab_*`: no plain alternative in this benchmark (serial "
              "readiness and the one-host-at-a-time engine are in province-166.md and engine.md).", "",
              "## CPU and load per run", "",
              "Controller: resource.getrusage(RUSAGE_CHILDREN) delta around the command (it and the descendants "
              "it waited for; SSH ControlPersist masters detach and are not in it). Nodes: "
              f"`{about.get('nodes_cpu', {}).get('cgroup', NODES_CGROUP)}` when the lab's cgroup exists after the "
              f"run, else `{NODES_PROC_STAT}` (which also counts any other load on the machine). Machine busy: "
              "/proc/stat delta, every CPU.", "",
              "| figure | wall (s) | controller CPU (s) | nodes CPU (s) | nodes method | machine busy (s) | "
              "1-min load before → after |", "|---|---|---|---|---|---|---|"]
    for figure in FIGURES:
        runs = (report.get(figure) or {}).get("runs", [])
        if runs:
            col = lambda key: [s.get(key) for s in runs]  # noqa: E731
            load = [f"{(s.get('load_before') or [None])[0]} → {(s.get('load_after') or [None])[0]}" for s in runs]
            lines.append(f"| `{figure}` | {col('s')} | {col('controller_cpu_s')} | {col('nodes_cpu_s')} | "
                         f"{', '.join(sorted(set(map(str, col('nodes_cpu_method')))))} | {col('host_busy_cpu_s')} | "
                         f"{'; '.join(load)} |")
    lines += ["", "Per run (the three load averages too): the JSON's `runs`."]
    lines += ["", "## Commands", ""]
    for figure in FIGURES:
        cmd = (report.get(figure) or {}).get("command")
        if cmd:
            lines.append(f"- `{figure}`: `{cmd}`")
    lines += ["", "A fresh lab (`provnet lab down --force`, `provnet lab up`) before each run of `site_yml_first`, "
              "`ansible_defaults_first` and `engine_deploy`; each `…_again` runs right after its first run.", "",
              "## Machines", ""]
    for i, m in enumerate(machines):
        lines.append(f"- M{i + 1}: {json.dumps(m, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--only", default="", help="figure[,figure]: run only these (others kept as they are)")
    parser.add_argument("--inventory", default="inventory/thanhhoa-lab", help="default inventory/thanhhoa-lab")
    parser.add_argument("--dry-run", action="store_true", help="print every command in order; run nothing")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    chosen: list[str] = []
    for name in (n.strip() for n in args.only.split(",") if n.strip()):
        if name not in FIGURES and name not in ALIASES:
            parser.error(f"--only {name}: expected some of {', '.join((*FIGURES, *ALIASES))}")
        chosen += [f for f in ALIASES.get(name, (name,)) if f not in chosen]
    args.figures = [f for f in FIGURES if f in chosen] if chosen else list(FIGURES)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    inv = Path(args.inventory)
    inv = inv if inv.is_absolute() else REPO / inv
    r = Runner(args.dry_run)
    m = model.load(inv)
    check_addresses(m)
    sites = len(m.sites)
    shown = str(inv.relative_to(REPO)) if inv.is_relative_to(REPO) else str(inv)
    if args.dry_run:
        r.note(f"dry run: bench_speed, {shown}: {sites} sites, {len(m.devices)} devices, {args.runs} run(s) of "
               f"{','.join(args.figures)}")
    elif os.geteuid() != 0:
        sys.exit("needs root")
    speed = Speed(r, inv, args.runs, args.figures)
    path = OUT / f"speed-{sites}.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    report["about"] = {"benchmark": "speed", "inventory": shown, "sites": sites, "devices": len(m.devices),
                       "nodes_cpu": {"cgroup": NODES_CGROUP, "proc_stat": NODES_PROC_STAT}}
    machine = {k: v for k, v in describe().items() if k != "commit"} if not args.dry_run else {}
    stamp = {"commit": commit(), "machine": machine, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def save() -> None:
        if args.dry_run:
            return
        merge(report, speed, stamp)
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        path.with_suffix(".md").write_text(markdown(report))

    if speed.want("ansible_defaults_first", "ansible_defaults_again", "verify_plain_serial", "verify_plain_parallel"):
        cfg = defaults_cfg()
        if args.dry_run:
            r.note(f"writes {cfg}: Ansible's defaults, only the plugin, module and role paths")
        else:
            cfg.parent.mkdir(parents=True, exist_ok=True)
            cfg.write_text(DEFAULT_CFG.format(repo=REPO))
    steps: list[tuple[str, Callable[[], None]]] = [
        ("lab", speed.lab_group), ("engine", speed.engine_group),
        ("defaults", lambda: speed.site_yml_group("ansible_defaults_first", "ansible_defaults_again", defaults_cfg())),
        ("provnet", lambda: speed.site_yml_group("site_yml_first", "site_yml_again", REPO / "ansible.cfg")),
        ("verify", speed.verify_group), ("readiness", speed.readiness_group)]
    for group, step in steps:
        if speed.want(*GROUPS[group]):
            try:
                step()
            finally:  # a failed `lab up` mid-group still keeps the runs measured so far
                save()
    if not args.dry_run:
        print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
