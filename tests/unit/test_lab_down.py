"""`lab down`: every node stopped at once with one bounded wait, the host commands batched, a node
that will not stop killed by its PID and named; `lab down -i` takes down the lab `lab up -i` started.

Nothing here touches the host: processes, the clock, mounts and every command are a fake host's.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet.cli import app
from provnet.lab import node, province

REPO = Path(__file__).resolve().parents[2]
FULL_SCALE = 340  # inventory/thanhhoa-lab's containers
PID_BASE = 9_000_000  # above the kernel's PID_MAX_LIMIT: no real process ever has these PIDs


@dataclass
class Proc:
    start: int
    poweroff_s: float | None = 1.0  # seconds the node takes to power off; None: ignores the request
    dies_with: int | None = None  # nspawn: exits when its container's PID 1 does
    ignores_kill: bool = False  # a process stuck in the kernel
    exits_at: float = math.inf


@dataclass
class FakeHost:
    """Processes, clock, mounts, namespaces and links of a stubbed host; every command is recorded."""

    root: Path
    now: float = 0.0
    procs: dict[int, Proc] = field(default_factory=dict)
    kills: list[tuple[float, int, int]] = field(default_factory=list)
    commands: list[tuple[list[str], str | None]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    mounts: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    ns_links: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- clock
    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(self.now)
        self.now += seconds

    # --- processes
    def start_time(self, pid: int) -> int | None:
        p = self.procs.get(pid)
        if p is None or self.now >= p.exits_at:
            return None
        if p.dies_with is not None and self.start_time(p.dies_with) is None:
            return None
        return p.start

    def kill(self, pid: int, sig: int) -> None:
        assert pid >= PID_BASE, "a real PID"
        if self.start_time(pid) is None:
            raise ProcessLookupError(pid)
        self.kills.append((self.now, pid, sig))
        p = self.procs[pid]
        if sig == node.POWEROFF and p.poweroff_s is not None:
            p.exits_at = min(p.exits_at, self.now + p.poweroff_s)
        elif sig == signal.SIGKILL and not p.ignores_kill:
            p.exits_at = self.now

    # --- commands
    def run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        with self.lock:
            self.commands.append((list(argv), kw.get("input")))
            stdout = self._do(list(argv), kw.get("input"))
        return subprocess.CompletedProcess(argv, 0, stdout, "")

    def _do(self, argv: list[str], given: str | None) -> str:
        if argv[0] == "ip" and "-batch" in argv:
            ns = argv[argv.index("-n") + 1] if "-n" in argv else None
            for line in (given or "").splitlines():
                verb = line.split()
                if verb[:2] == ["netns", "delete"]:
                    (node.NETNS_DIR / verb[2]).unlink(missing_ok=True)
                elif verb[:2] == ["link", "del"]:
                    (self.ns_links.setdefault(ns, set()) if ns else self.links).discard(verb[2])
                else:
                    raise AssertionError(f"unexpected ip batch line {line!r}")
            return ""
        if argv[:4] == ["ip", "-o", "link", "show"]:
            return "".join(f"{i}: {name}@if2: <BROADCAST,UP> mtu 1500 state UP\\    link/ether 0:0:0:0:0:{i}\n"
                           for i, name in enumerate(sorted(self.links), 2))
        if argv[:2] == ["ip", "-n"] and argv[3:] == ["-j", "link", "show"]:
            return json.dumps([{"ifname": "lo", "link_type": "loopback"}, {"ifname": "oob0"},
                               *({"ifname": x} for x in sorted(self.ns_links.get(argv[2], set())))])
        if argv[0] == "umount":
            for path in argv[1:]:
                if not path.startswith("-"):
                    self.mounts.discard(path)
            return ""
        if argv[:4] == ["rm", "-rf", "--one-file-system", "--"]:
            for path in argv[4:]:
                assert Path(path).is_relative_to(self.root), path
                shutil.rmtree(path, ignore_errors=True)
            return ""
        raise AssertionError(f"unexpected command {argv}")

    # --- what teardown did
    def ran(self, *prefix: str) -> list[tuple[list[str], str | None]]:
        return [(a, i) for a, i in self.commands if a[:len(prefix)] == list(prefix)]


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    fake = FakeHost(tmp_path)
    monkeypatch.setenv("PROVNET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(node, "NETNS_DIR", tmp_path / "netns")
    monkeypatch.setattr(node, "NSPAWN_PROPAGATE", tmp_path / "propagate")
    monkeypatch.setattr(node, "systemd_hierarchies", lambda: [tmp_path / "cgroup"])
    monkeypatch.setattr(node, "mount_points", lambda: set(fake.mounts))
    monkeypatch.setattr(node, "_start_time", fake.start_time)
    monkeypatch.setattr(node, "time", fake)
    monkeypatch.setattr(province, "time", fake)
    monkeypatch.setattr(node.os, "kill", fake.kill)
    monkeypatch.setattr(province.os, "geteuid", lambda: 0)
    monkeypatch.setattr(subprocess, "run", fake.run)
    (tmp_path / "netns").mkdir()
    yield fake


def boot(host: FakeHost, names: list[str], **proc: Any) -> None:
    """A running lab of ``names``, as `lab up` leaves it on the host (nothing real)."""
    sd = province.lab_dir()
    for i, name in enumerate(names):
        n = node.node(name, sd)
        n.merged.mkdir(parents=True)
        (n.upper / "etc").mkdir(parents=True)
        nspawn, leader = PID_BASE + 2 * i, PID_BASE + 2 * i + 1
        host.procs[leader] = Proc(start=100 + i, **proc)
        host.procs[nspawn] = Proc(start=100 + i, poweroff_s=None, dies_with=leader)
        n.pid_file.write_text(f"{nspawn} {100 + i}\n")
        n.leader_file.write_text(f"{leader} {100 + i}\n")
        host.mounts.add(str(n.merged))
        n.netns_path.touch()
        (host.root / "cgroup" / node.CGROUP_PARENT / name / "payload" / "system.slice").mkdir(parents=True)
        host.links.add(province._host_if(name))
    host.links |= {province.OOB_BRIDGE, province.CONTROLLER_IF, "eth0"}
    province._save_state(sd, {"inventory": str(REPO / "inventory/thanhhoa-lab"), "nodes": names})


def names(count: int) -> list[str]:
    return [f"site-{i:03d}-ce" for i in range(count)]


def leader(i: int) -> int:
    """The recorded PID of the ``i``-th node's PID 1 (``boot`` gives nspawn the PID before it)."""
    return PID_BASE + 2 * i + 1


def assert_nothing_left(host: FakeHost, gone: list[str]) -> None:
    sd = province.lab_dir()
    assert not (sd / province.STATE_FILE).exists()
    assert list(node.NETNS_DIR.iterdir()) == []
    assert host.mounts == set()
    assert not any((sd / "nodes" / n).exists() for n in gone)
    assert not (host.root / "cgroup" / node.CGROUP_PARENT).exists()
    assert host.links == {"eth0"}  # the host's own link only
    assert not [p for p in host.procs if host.start_time(p) is not None]


def test_the_full_scale_lab_is_told_to_power_off_at_once_and_waited_for_once(host: FakeHost) -> None:
    lab = names(FULL_SCALE)
    boot(host, lab, poweroff_s=2.0)
    done = province.teardown()
    assert sorted(done.removed) == lab and done.killed == () and done.stuck == ()
    poweroffs = [(t, pid) for t, pid, sig in host.kills if sig == node.POWEROFF]
    assert sorted(pid for _t, pid in poweroffs) == [leader(i) for i in range(FULL_SCALE)]
    assert {t for t, _ in poweroffs} == {0.0}  # every node told before any wait (a wait moves the clock)
    assert len(host.kills) == FULL_SCALE  # no other signal: no SIGTERM, no SIGKILL
    assert done.seconds == pytest.approx(2.0, abs=0.2)  # the slowest node, not 340 of them one after another
    assert_nothing_left(host, lab)


def test_the_host_commands_are_batched_whatever_the_number_of_nodes(host: FakeHost) -> None:
    lab = names(FULL_SCALE)
    boot(host, lab)
    province.teardown()
    batches = host.ran("ip", "-force", "-batch", "-")
    assert len(batches) == 1
    lines = (batches[0][1] or "").splitlines()
    ns_lines = [f"netns delete {node.NETNS_PREFIX}{n}" for n in lab]
    link_lines = [f"link del {province._host_if(n)}" for n in lab] + [
        f"link del {province.OOB_BRIDGE}", f"link del {province.CONTROLLER_IF}"]
    assert sorted(lines) == sorted(ns_lines + link_lines)
    assert max(lines.index(x) for x in ns_lines) < min(lines.index(x) for x in link_lines)  # namespaces first
    umounts, rms = host.ran("umount"), host.ran("rm")
    assert 1 <= len(umounts) <= 8 and 1 <= len(rms) <= 8
    assert sorted(p for a, _ in umounts for p in a[1:]) == sorted(str(node.node(n, province.lab_dir()).merged)
                                                                    for n in lab)
    assert len(host.commands) == 1 + 1 + len(umounts) + len(rms)  # + the one listing of the host's links
    assert not host.ran("ip", "netns") and not host.ran("ip", "link")  # no command per node
    assert_nothing_left(host, lab)


def test_a_node_that_will_not_power_off_is_killed_by_its_pid_after_the_grace_and_named(host: FakeHost) -> None:
    lab = names(20)
    boot(host, lab)
    stubborn = lab[7]
    host.procs[leader(7)].poweroff_s = None  # e.g. a process that ignores SIGTERM
    done = province.teardown(grace=10.0)
    assert done.killed == (stubborn,) and done.stuck == () and sorted(done.removed) == lab
    kills = [(t, pid) for t, pid, sig in host.kills if sig == signal.SIGKILL]
    assert kills == [(pytest.approx(10.0, abs=0.11), leader(7))]  # its PID 1 only: nspawn exits by itself
    assert done.seconds <= 10.0 + 0.5  # bounded: the grace, not 20 + 5 + 5 s per node
    assert_nothing_left(host, lab)


def test_a_recycled_pid_is_never_signalled(host: FakeHost) -> None:
    lab = names(3)
    boot(host, lab)
    recycled = leader(1)
    host.procs[recycled - 1].exits_at = 0.0  # the node died (nspawn with it) ...
    host.procs[recycled] = Proc(start=999, poweroff_s=None)  # ... and its PID 1's PID is another process's now
    done = province.teardown()
    assert recycled not in {pid for _t, pid, _s in host.kills}
    assert done.killed == () and host.start_time(recycled) == 999  # left alone


def test_a_node_stuck_after_sigkill_is_reported_and_kept_for_the_next_down(host: FakeHost) -> None:
    lab = names(5)
    boot(host, lab, poweroff_s=None)
    stuck = lab[2]
    host.procs[leader(2)].ignores_kill = True
    done = province.teardown(grace=3.0)
    assert done.killed == tuple(lab) and done.stuck == (stuck,)
    assert stuck not in done.removed and len(done.removed) == 4
    nspawn = leader(2) - 1
    assert (pytest.approx(3.0 + node.KILL_WAIT, abs=0.11), nspawn, signal.SIGKILL) in host.kills
    assert done.seconds <= 3.0 + 2 * node.KILL_WAIT + 0.5
    sd = province.lab_dir()
    assert json.loads((sd / province.STATE_FILE).read_text())["nodes"] == [stuck]
    n = node.node(stuck, sd)
    assert n.netns_path.exists() and n.leader_file.exists() and str(n.merged) in host.mounts


def test_remove_takes_a_sites_nodes_out_in_one_stop(host: FakeHost) -> None:
    lab = names(4)
    boot(host, lab)
    for n in lab[:2]:
        host.ns_links[node.NETNS_PREFIX + n] = {"wan0", "vl20"}
    assert province.remove(lab[:2]) == lab[:2]
    per_node = host.ran("ip", "-n")
    batches = [(a[2], sorted((i or "").splitlines())) for a, i in per_node if "-batch" in a]
    assert batches == [(node.NETNS_PREFIX + n, ["link del vl20", "link del wan0"]) for n in lab[:2]]
    [(_argv, lines)] = host.ran("ip", "-force", "-batch", "-")
    assert sorted((lines or "").splitlines()) == sorted([f"netns delete {node.NETNS_PREFIX}{n}" for n in lab[:2]]
                                                        + [f"link del {province._host_if(n)}" for n in lab[:2]])
    assert json.loads((province.lab_dir() / province.STATE_FILE).read_text())["nodes"] == lab[2:]


def test_lab_down_names_the_nodes_it_killed_and_fails_on_what_is_left(host: FakeHost,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    lab = names(6)
    boot(host, lab)
    host.procs[leader(1)].poweroff_s = None
    host.procs[leader(4)].poweroff_s = None
    done = _invoke("lab", "down", "-i", "inventory/thanhhoa-lab", "--grace", "4")
    assert done.exit_code == 0, done.output
    assert f"killed by PID after 4 s: {lab[1]}, {lab[4]}" in done.output
    assert "lab down: 6 node(s) removed in 4." in done.output
    boot(host, lab, poweroff_s=None, ignores_kill=True)
    stuck = _invoke("lab", "down", "--grace", "1")
    assert stuck.exit_code == 1
    assert f"left behind: node {lab[0]} (still running after SIGKILL)" in stuck.output
    assert f"netns {node.NETNS_PREFIX}{lab[0]}" in stuck.output


# ---------------------------------------------------------------- lab down -i


def _untouchable(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the CLI test ran a command")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, object]]]:
    """`lab up` that stops right after recording its lab, and `lab down` that records what it would do."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("PROVNET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PROVNET_INVENTORY", raising=False)
    monkeypatch.setattr(subprocess, "run", _untouchable)
    monkeypatch.setattr(province, "check_host", lambda: None)
    monkeypatch.setattr(province.lab_image, "build_image", lambda: tmp_path / "image")
    monkeypatch.setattr(province.sysctl, "raise_limits", lambda sd: {})

    def stop_here() -> Path:
        raise province.LabError("stubbed: the lab is recorded, nothing booted")

    monkeypatch.setattr(province, "ensure_key", stop_here)
    calls: list[dict[str, object]] = []

    def teardown(force: bool = False, grace: float = node.STOP_GRACE) -> province.Teardown:
        calls.append({"force": force, "grace": grace})
        return province.Teardown(("a", "b"), (), (), 0.1)

    monkeypatch.setattr(province, "teardown", teardown)
    monkeypatch.setattr(province, "leftovers", lambda: [])
    yield calls


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_lab_down_i_takes_down_the_lab_lab_up_i_started(cli: list[dict[str, object]]) -> None:
    up = _invoke("lab", "up", "-i", "inventory/thanhhoa-lab")
    assert up.exit_code == 2 and "stubbed" in up.output, up.output  # stopped after recording the lab
    assert province.running_inventory() == str(REPO / "inventory/thanhhoa-lab")
    down = _invoke("lab", "down", "-i", "inventory/thanhhoa-lab")
    assert down.exit_code == 0, down.output
    assert cli == [{"force": False, "grace": node.STOP_GRACE}]
    assert "lab down: 2 node(s) removed" in down.output
    assert _invoke("lab", "down", "--inventory", str(REPO / "inventory/thanhhoa-lab/province.yml"),
                   "--grace", "3").exit_code == 0
    assert cli[-1] == {"force": False, "grace": 3.0}


def test_lab_down_i_of_another_inventory_stops_nothing(cli: list[dict[str, object]]) -> None:
    _invoke("lab", "up", "-i", "inventory/thanhhoa-lab")
    for other in ("inventory/lab", "inventory/thanhhoa"):  # the base is not the overlay's lab
        down = _invoke("lab", "down", "-i", other)
        assert down.exit_code == 2, down.output
        assert f"the lab running here is {REPO / 'inventory/thanhhoa-lab'}'s" in down.output
        assert "-i " + str(REPO / "inventory/thanhhoa-lab") in down.output
    assert cli == []


def test_lab_down_i_of_an_overlay_of_the_running_lab_takes_it_down(cli: list[dict[str, object]],
                                                                    tmp_path: Path) -> None:
    from provnet.rollout import overlay

    _invoke("lab", "up", "-i", "inventory/thanhhoa-lab")
    copy = overlay.build(REPO / "inventory/thanhhoa-lab", tmp_path / "rollout-copy")  # what a rollout runs on
    assert _invoke("lab", "down", "-i", str(copy)).exit_code == 0  # the lab `lab up -i` of it would join
    assert len(cli) == 1


def test_lab_down_without_i_or_without_a_lab(cli: list[dict[str, object]]) -> None:
    assert _invoke("lab", "down", "-i", "inventory/lab").exit_code == 0  # no lab runs: nothing to refuse
    _invoke("lab", "up", "-i", "inventory/thanhhoa-lab")
    assert _invoke("lab", "down").exit_code == 0  # whichever lab runs here
    assert len(cli) == 2


def test_lab_down_i_refuses_what_lab_up_i_refuses(cli: list[dict[str, object]], tmp_path: Path) -> None:
    _invoke("lab", "up", "-i", "inventory/thanhhoa-lab")
    broken = REPO / "tests/fixtures/bad-inventories/duplicate-id"
    for given in (broken, tmp_path):
        down, up = _invoke("lab", "down", "-i", str(given)), _invoke("lab", "up", "-i", str(given))
        assert down.exit_code == up.exit_code == 2 and down.output == up.output, down.output
    assert cli == []


def test_lab_down_help_reads_like_the_other_subcommands() -> None:
    text = _invoke("lab", "down", "--help").output
    for option in ("-i, --inventory", "--grace", "--force"):
        assert option in text
    assert "whichever lab runs here" in text and "killed by its PID" in text
