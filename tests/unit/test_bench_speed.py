"""benchmarks/bench_speed.py without a lab: the command runner is canned (nothing runs, nothing connects), so
the plan, the per-figure machine and commit, the medians and ratios, the PLAY RECAP's changed= and the
Markdown goals are checked as after a real run."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
LAB_INV = str(REPO / "inventory" / "thanhhoa-lab")
sys.path.insert(0, str(BENCH))

import bench_speed  # noqa: E402

RECAP_AGAIN = """\
TASK [base : rsyslog forwards to the SOC] ***************************************
ok: [dc-sip]
changed: [an-nong-ce]

PLAY RECAP *********************************************************************
an-nong-ce                 : ok=52   changed=2    unreachable=0    failed=0    skipped=7    rescued=0    ignored=0
dc-sip                     : ok=40   changed=0    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
huyen-cao-loc-ce           : ok=51   changed=1    unreachable=0    failed=0    skipped=7    rescued=0    ignored=0
"""
RECAP_CLEAN = re.sub(r"changed=\d+", "changed=0", RECAP_AGAIN)

# wall seconds per figure and run: medians 110 / 1100 (ratio 10.0), 60 / 240 (4.0), …
TIMES: dict[str, list[float]] = {
    "lab_up": [100.0, 110.0, 105.0], "lab_down": [20.0, 40.0, 25.0],
    "engine_deploy": [130.0, 110.0, 115.0], "engine_diff": [20.0, 22.0, 24.0],
    "ansible_defaults_first": [1200.0, 1000.0, 1100.0], "ansible_defaults_again": [240.0, 250.0, 230.0],
    "site_yml_first": [110.0, 100.0, 120.0], "site_yml_again": [60.0, 50.0, 70.0],
    "verify_all": [100.0, 90.0, 130.0], "verify_plain_serial": [1800.0, 1900.0, 2000.0],
    "verify_plain_parallel": [500.0, 450.0, 400.0], "readiness_full": [50.0, 55.0, 70.0],
}


class Canned(bench_speed.Runner):
    """Runs nothing: each command answers what the real one prints."""

    calls: list[tuple[str, list[str], dict[str, str]]] = []
    again_recap = RECAP_CLEAN

    def __init__(self, dry: bool) -> None:
        super().__init__(False)

    def note(self, text: str) -> None:
        pass

    def run(self, label: str, argv: list[Any], env: dict[str, str] | None = None,
            timeout: float = 0) -> bench_speed.Ran:
        argv = [str(a) for a in argv]
        Canned.calls.append((label, argv, env or {}))
        mo = re.match(r"^speed-(\w+)-(\d+)$", label)
        if not mo:  # an untimed lab step
            return bench_speed.Ran(1.0, 0, "", "")
        figure, i = mo[1], int(mo[2])
        s = TIMES[figure][i]
        if figure.endswith("_first"):
            out = RECAP_AGAIN.replace("changed=2", "changed=2742")
        elif figure.endswith("_again"):
            out = Canned.again_recap if figure == "site_yml_again" else RECAP_CLEAN
        elif figure == "engine_deploy":
            out = json.dumps([{"host": "dc-sip", "status": "changed"}, {"host": "an-nong-ce", "status": "changed"}])
        elif figure == "engine_diff":
            out = json.dumps([{"host": "dc-sip", "status": "unchanged"}])
        elif figure == "verify_all":
            out = json.dumps([{"site": "dc", "ok": True}, {"site": "an-nong", "ok": True}])
        elif figure.startswith("verify_plain"):
            out = "........\n3696 passed, 5 skipped in 1887.20s\n"
        elif figure == "readiness_full":
            out = json.dumps({"summary": {"endpoints": 166, "ready": 166}})
        else:
            out = ""
        return bench_speed.Ran(s, 0, out, "")


@pytest.fixture
def canned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    Canned.calls = []
    Canned.again_recap = RECAP_CLEAN
    ticks = itertools.count()

    def counters() -> dict[str, float | None]:
        n = next(ticks)
        return {"controller": 5.0 * n, "self": 0.1 * n, "host_busy": 20.0 * n, "lab_cgroup": 10.0 * n}

    monkeypatch.setattr(bench_speed, "Runner", Canned)
    monkeypatch.setattr(bench_speed, "OUT", tmp_path / "results")
    monkeypatch.setattr(bench_speed, "WORK", tmp_path / "work")
    monkeypatch.setattr(bench_speed, "describe", lambda: {"cpu": "test cpu", "cores": 2, "commit": "ignored"})
    monkeypatch.setattr(bench_speed, "commit", lambda: "abc1234")
    monkeypatch.setattr(bench_speed, "cpu_counters", counters)
    monkeypatch.setattr(bench_speed, "load_average", lambda: [0.5, 0.4, 0.3])
    monkeypatch.setattr(bench_speed, "xdist_present", lambda: True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return tmp_path


def results(tmp: Path) -> dict[str, Any]:
    return json.loads((tmp / "results" / "speed-166.json").read_text())


def timed_labels() -> list[str]:
    return [label for label, _, _ in Canned.calls if re.match(r"^speed-\w+-\d+$", label)]


def test_whole_run_medians_ratios_machine_commit(canned: Path) -> None:
    bench_speed.main([])
    r = results(canned)
    assert set(bench_speed.FIGURES) <= set(r)
    for figure in bench_speed.FIGURES:
        rec = r[figure]
        assert rec["runs_s"] == TIMES[figure] and len(rec["runs"]) == 3, figure
        assert rec["median_s"] == sorted(TIMES[figure])[1], figure
        assert rec["commit"] == "abc1234" and rec["machine"] == {"cpu": "test cpu", "cores": 2}, figure
        assert rec["ok"] and rec["exit"] == [0, 0, 0]
        for run in rec["runs"]:
            assert run["controller_cpu_s"] == 5.0 and run["nodes_cpu_s"] == 10.0 and run["nodes_cpu_method"] == "cgroup"
            assert run["host_busy_cpu_s"] == 20.0 and run["load_before"] == [0.5, 0.4, 0.3]
    assert r["ratio_defaults_over_provnet_first"]["value"] == 10.0  # 1100 / 110
    assert r["ratio_defaults_over_provnet_again"]["value"] == 4.0  # 240 / 60
    assert r["ratio_plain_serial_over_verify"]["value"] == 19.0  # 1900 / 100
    assert r["ratio_plain_parallel_over_verify"]["value"] == 4.5  # 450 / 100
    assert all(r[k]["commit"] == "abc1234" and r[k]["machine"] for k in bench_speed.RATIOS)
    assert r["site_yml_again_changed"] == {**r["site_yml_again_changed"], "value": 0, "runs": [0, 0, 0]}
    assert r["site_yml_first"]["runs"][0]["recap"] == {"hosts": 3, "ok": 143, "changed": 2743, "failed": 0,
                                                      "unreachable": 0}
    assert r["engine_deploy"]["runs"][0]["hosts"] == {"changed": 2}
    assert r["verify_all"]["runs"][0]["healthy"] == 2
    assert r["verify_plain_serial"]["runs"][0]["outcome"] == {"passed": 3696, "skipped": 5}
    assert r["readiness_full"]["runs"][0]["ready"] == 166
    assert r["about"]["sites"] == 166 and r["about"]["devices"] == 339
    # the plain runs: Ansible's defaults, testinfra's own SSH (no provnet ansible.cfg), -n with provnet's workers
    plain = [(argv, env) for label, argv, env in Canned.calls if label.startswith("speed-verify_plain")]
    assert all(env["ANSIBLE_CONFIG"] == str(canned / "work" / "speed" / "ansible-defaults.cfg") for _, env in plain)
    assert "inventory_plugins" in (canned / "work" / "speed" / "ansible-defaults.cfg").read_text()
    assert [argv[-2:] for argv, _ in plain if "-n" in argv] == [["-n", str(bench_speed.verify_workers())]] * 3
    md = (canned / "results" / "speed-166.md").read_text()
    assert "abc1234" in md and "test cpu" in md
    for text in ("≤ 300 s: **met**", "≥ 5× (Ansible's defaults ÷ provnet): **met**", "≤ 90 s: **met**",
                 "changed=0: **met**", "≤ 120 s: **met**", "≤ 60 s: **met**", "≤ 25 s: **met**",
                 "≤ 30 s: **met**"):
        assert text in md, text
    assert "**10.0×**" in md and "cgroup" in md
    assert "| `verify_all` | [100.0, 90.0, 130.0] | [5.0, 5.0, 5.0] | [10.0, 10.0, 10.0] | cgroup |" in md
    assert "`site_yml_first`: `ANSIBLE_CONFIG=ansible.cfg .venv/bin/ansible-playbook -i inventory/thanhhoa-lab " \
           "playbooks/site.yml`" in md


def test_goals_not_met(canned: Path) -> None:
    """changed=3 on the idempotent run and slow figures are said so."""
    Canned.again_recap = RECAP_AGAIN
    TIMES_SLOW = {**TIMES, "verify_all": [200.0, 210.0, 190.0], "lab_down": [31.0, 35.0, 40.0]}  # noqa: N806
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys.modules[__name__], "TIMES", TIMES_SLOW)
        bench_speed.main([])
    r = results(canned)
    assert r["site_yml_again_changed"]["value"] == 3 and r["site_yml_again_changed"]["runs"] == [3, 3, 3]
    md = (canned / "results" / "speed-166.md").read_text()
    assert "changed=0: **not met**" in md
    row = lambda name: next(line for line in md.splitlines() if line.startswith(f"| `{name}` |"))  # noqa: E731
    assert "≤ 120 s: **not met**" in row("verify_all") and "≤ 30 s: **not met**" in row("lab_down")
    assert "≤ 60 s: **met**" in row("readiness_full")


def test_changed_parsed_from_a_recorded_play_recap() -> None:
    assert bench_speed.changed_total(RECAP_AGAIN) == 3  # 2 + 0 + 1; "changed: [an-nong-ce]" is no recap line
    assert bench_speed.changed_total(RECAP_CLEAN) == 0
    assert bench_speed.changed_total("") == 0


def test_only_runs_only_those(canned: Path) -> None:
    bench_speed.main(["--only", "verify_all,engine_diff", "--runs", "2"])
    assert timed_labels() == ["speed-engine_diff-0", "speed-engine_diff-1", "speed-verify_all-0", "speed-verify_all-1"]
    assert not [c for c in Canned.calls if "lab" in c[1]]  # no lab up or down: the running lab
    r = results(canned)
    assert {k for k in r if k != "about"} == {"engine_diff", "verify_all"}
    assert r["verify_all"]["runs_s"] == [100.0, 90.0] and r["verify_all"]["median_s"] == 95.0


def test_only_a_ratio_runs_both_sides(canned: Path) -> None:
    bench_speed.main(["--only", "ratio_defaults_over_provnet_first", "--runs", "1"])
    assert timed_labels() == ["speed-ansible_defaults_first-0", "speed-site_yml_first-0"]
    assert results(canned)["ratio_defaults_over_provnet_first"]["value"] == round(1200 / 110, 2)


def test_older_figures_kept_with_their_own_machine_and_commit(canned: Path) -> None:
    old_machine = {"cpu": "an older cpu", "cores": 8}
    old = {"commit": "0ld0000", "machine": old_machine, "at": "2026-11-30T10:00:00+0700"}
    earlier = {
        "about": {"benchmark": "speed"},
        "lab_up": {"median_s": 99.0, "runs_s": [99.0], **old},
        "ansible_defaults_first": {"median_s": 2000.0, "runs_s": [2000.0], **old},
        "site_yml_first": {"median_s": 400.0, "runs_s": [400.0], **old},
        "ratio_defaults_over_provnet_first": {"value": 5.0, **old},
        "verify_all": {"median_s": 100.0, "runs_s": [100.0], **old},
        "verify_plain_serial": {"median_s": 900.0, "runs_s": [900.0], **old},
        "ratio_plain_serial_over_verify": {"value": 9.0, **old},
    }
    (canned / "results").mkdir()
    (canned / "results" / "speed-166.json").write_text(json.dumps(earlier))
    bench_speed.main(["--only", "site_yml_first"])
    r = results(canned)
    assert r["site_yml_first"]["commit"] == "abc1234" and r["site_yml_first"]["machine"]["cpu"] == "test cpu"
    assert r["site_yml_first"]["median_s"] == 110.0
    for key in ("lab_up", "ansible_defaults_first", "verify_all", "verify_plain_serial",
                "ratio_plain_serial_over_verify"):
        assert r[key] == earlier[key], key  # untouched, its own machine and commit
    # its numerator is an older run's, its denominator this run's: no longer one run's ratio
    assert "ratio_defaults_over_provnet_first" not in r
    md = (canned / "results" / "speed-166.md").read_text()
    assert "0ld0000" in md and "an older cpu" in md and "abc1234" in md
    assert "`ratio_defaults_over_provnet_first`: not measured in one run" in md


def test_parallel_plain_without_xdist_says_so(canned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_speed, "xdist_present", lambda: False)
    bench_speed.main(["--only", "verify_all,verify_plain_parallel", "--runs", "1"])
    assert timed_labels() == ["speed-verify_all-0"]
    r = results(canned)
    assert "pytest-xdist is not in the venv" in r["verify_plain_parallel"]["skipped"]
    assert "ratio_plain_parallel_over_verify" not in r
    assert "skipped: pytest-xdist is not in the venv" in (canned / "results" / "speed-166.md").read_text()


def test_cpu_delta_methods() -> None:
    before = {"controller": 10.0, "self": 1.0, "host_busy": 100.0, "lab_cgroup": 50.0}
    after = {"controller": 15.0, "self": 1.5, "host_busy": 130.0, "lab_cgroup": 70.0}
    assert bench_speed.cpu_delta(before, after) == {"controller_cpu_s": 5.0, "nodes_cpu_s": 20.0,
                                                    "host_busy_cpu_s": 30.0, "nodes_cpu_method": "cgroup"}
    # lab up: no cgroup before, a new one (from 0) after
    assert bench_speed.cpu_delta({**before, "lab_cgroup": None}, after)["nodes_cpu_s"] == 70.0
    # lab down: the cgroup is gone after the run: the machine's busy time minus the controller and this process
    down = bench_speed.cpu_delta(before, {**after, "lab_cgroup": None})
    assert down["nodes_cpu_method"] == "proc_stat" and down["nodes_cpu_s"] == 24.5
    assert bench_speed.cpu_delta({**before, "lab_cgroup": 80.0}, after)["nodes_cpu_method"] == "proc_stat"  # restarted


def test_addresses_pass_the_guard_before_anything_runs(canned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(sites={}, devices={"x": SimpleNamespace(hostname="x", ansible_host="example.invalid")})
    monkeypatch.setattr(bench_speed.model, "load", lambda path: fake)
    with pytest.raises(SystemExit, match="address guard"):
        bench_speed.main([])
    assert Canned.calls == []


def test_bad_only_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench_speed.parse(["--only", "site_yml_third"])
    assert bench_speed.parse(["--only", "site_yml_again_changed"]).figures == ["site_yml_again"]


# ---------------------------------------------------------------- --dry-run, as a process


def dry_run(tmp_path: Path, *args: str) -> list[list[str]]:
    """The commands --dry-run prints (argv; the environment a line adds kept in front). Writes no result
    and touches no lab state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update(PROVNET_STATE_DIR=str(tmp_path / "state"), PROVNET_HOME=str(tmp_path / "home"))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (BENCH / "results").iterdir())
    proc = subprocess.run([sys.executable, str(BENCH / "bench_speed.py"), "--dry-run", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (BENCH / "results").iterdir()) == before
    assert not (tmp_path / "state").exists()
    return [shlex.split(line) for line in proc.stdout.splitlines() if line.strip() and not line.startswith("#")]


def kind(words: list[str]) -> str:
    """What a plan line does: 'down', 'up', 'defaults', 'provnet', 'deploy', 'diff', 'verify', …"""
    env = {w.split("=", 1)[0]: w.split("=", 1)[1] for w in words if re.match(r"^[A-Z_]+=", w)}
    argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    name, rest = Path(argv[0]).name, argv[1:]
    if name == "ansible-playbook":
        return "defaults" if "defaults" in env["ANSIBLE_CONFIG"] else "provnet"
    if name == "provnet":
        return {("lab", "down"): "down-force" if "--force" in rest else "down", ("lab", "up"): "up",
                ("net", "deploy"): "deploy", ("net", "diff"): "diff", ("verify", "--all"): "verify",
                ("vc", "readiness"): "readiness"}[tuple(rest[:2])]
    return "plain-parallel" if "-n" in rest else "plain-serial"


def test_dry_run_plan_fresh_lab_before_each_first_run(tmp_path: Path) -> None:
    plan = [kind(w) for w in dry_run(tmp_path)]
    fresh = ["down-force", "up"]
    assert plan[:9] == ["down-force", "up", "down"] * 3  # lab_up, lab_down
    assert plan[9:21] == [*fresh, "deploy", "diff"] * 3
    assert plan[21:33] == [*fresh, "defaults", "defaults"] * 3  # each first run on a fresh lab, then again
    assert plan[33:45] == [*fresh, "provnet", "provnet"] * 3
    assert plan[45:54] == ["verify", "plain-serial", "plain-parallel"] * 3  # interleaved, on the converged lab
    assert plan[54:] == ["readiness"] * 3
    for i, k in enumerate(plan):  # every first run right after a fresh lab
        if k in ("defaults", "provnet", "deploy") and plan[i - 1] != k:
            assert plan[i - 2:i] == fresh, (i, plan[i - 3:i + 1])
    lines = dry_run(tmp_path, "--runs", "1")
    assert all(LAB_INV in w for w in lines if kind(w) not in ("down", "down-force"))  # the full-scale province
    assert len(lines) == 19


def test_dry_run_only(tmp_path: Path) -> None:
    assert [kind(w) for w in dry_run(tmp_path, "--only", "site_yml_first", "--runs", "2")] == ["down-force", "up",
                                                                                            "provnet"] * 2
    assert [kind(w) for w in dry_run(tmp_path, "--only", "readiness_full,lab_down", "--runs", "1")] == [
        "down-force", "up", "down", "readiness"]


def test_literal_addresses_are_lab_addresses() -> None:
    """Every address written in the benchmark and in this test lies inside 198.18.0.0/15."""
    lab = ipaddress.ip_network("198.18.0.0/15")
    for path in (BENCH / "bench_speed.py", Path(__file__)):
        for literal in re.findall(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![\d.])", path.read_text()):
            assert ipaddress.ip_network(literal, strict=False).subnet_of(lab), (path.name, literal)
