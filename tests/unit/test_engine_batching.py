"""The engine's SSH traffic per device, counted: one connection per device, one command per
platform diff, one staged apply — and the batch scripts behind it, run for real with ``sh``.

A :class:`FakeSession` (the real :class:`~provnet.drivers.ssh.SSH` with its transport replaced)
answers like a lab CE and records every exec and connection; :class:`LocalSSH` runs the
generated scripts on this machine, against a temporary directory. No socket is opened.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from provnet import guard, model, render, secrets
from provnet.drivers import linux
from provnet.drivers import ssh as ssh_mod
from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.baresip import BaresipDriver
from provnet.drivers.frr import PATHS as FRR_PATHS
from provnet.drivers.frr import FrrDriver
from provnet.drivers.linux import STATE, LinuxDriver, make_bundle
from provnet.drivers.linux_switch import LinuxSwitchDriver
from provnet.drivers.ssh import EOF_MARK, SSH, ConnectError, Result, Step, parse_batch
from provnet.engine import device

REPO = Path(__file__).resolve().parents[2]
CE = "chi-lang-ce"          # frr, then nftables; managed out-of-band
INBAND_CE = "quan-son-ce"   # managed in-band, out-of-band as the lab's fallback
RULESET = "table inet provnet {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n"
NASTY = (f"it's \"quoted\" $HOME `uname` \\ back\n{EOF_MARK}\n>PV 0 0\n'{EOF_MARK}'\n\n"
         "Xã Quan Sơn — tiếng Việt\ttab\n   \nno newline at the end")


# ------------------------------------------------------------------ a simulated device

class Node:
    """One simulated Linux node: files, what it answers, and every exec and connection it saw."""

    def __init__(self, files: dict[str, str] | None = None, *, reload_test: str = "", ruleset: str = RULESET,
                 candidate_ruleset: str = RULESET, refuse: frozenset[str] = frozenset(),
                 fail: dict[str, Result] | None = None) -> None:
        self.files = dict(files or {})
        self.reload_test, self.ruleset, self.candidate_ruleset = reload_test, ruleset, candidate_ruleset
        self.refuse, self.fail = refuse, fail or {}
        self.execs: list[tuple[str, list[str]]] = []   # (method, its commands or written paths)
        self.connections: list[str] = []               # the address of every connection that opened
        self.attempts: list[str] = []                  # every address a connection was tried to
        self.closed = 0
        self.ran: list[str] = []                       # every command that ran (a batch stops at a failure)
        self.unexpected: list[str] = []

    def answer(self, command: str, data: str | None) -> Result:
        self.ran.append(command)
        for key, res in self.fail.items():
            if key in command:
                return res
        if command.startswith("cat -- "):
            text = self.files.get(shlex.split(command)[2])
            return Result(0, text, "") if text is not None else Result(1, "", "cat: No such file or directory")
        if "--test" in command and "diff-frr.conf" in command:
            assert data is not None, "the candidate travels on the command's stdin"
            self.files[f"{STATE}/candidate/frr/diff-frr.conf"] = data
            return Result(0, self.reload_test, "")
        if "unshare -n" in command:
            assert data is not None
            return Result(0, self.candidate_ruleset, "")
        if command == "nft -s list ruleset":
            return Result(0, self.ruleset, "")
        if command.startswith(("systemctl is-active -q frr", "vtysh -C -f", "nft -c -f")):
            return Result(0, "", "")
        if command.startswith("{ rm -rf /var/lib/provnet/rollback/"):
            platform = command.split("/")[5].split()[0]
            assert f"{STATE}/candidate/{platform}/revert.sh" in self.files, "revert.sh is staged before the snapshot"
            self.files[f"{STATE}/rollback/{platform}/revert.sh"] = self.files.pop(
                f"{STATE}/candidate/{platform}/revert.sh")
            return Result(0, "", "")
        if "--on-active=" in command or "systemd-run --wait" in command or command.startswith("test -e "):
            return Result(0, "", "")
        if "frr-reload.py --test /etc/frr/frr.conf" in command:
            return Result(0, "", "")  # converged
        if command.startswith("journalctl -u") or "revert.sh; systemctl stop" in command:
            return Result(0, "the unit's log", "")
        self.unexpected.append(command)
        return Result(1, "", f"unexpected command: {command}")


@dataclass
class FakeSession(SSH):
    """The real SSH class, its transport replaced by :attr:`node`; each run/run_many/write_many is one exec."""

    node: ClassVar[Node]

    def open(self) -> "FakeSession":
        guard.check(self.address, production=self.production, purpose="connect to")
        self.node.attempts.append(self.address)
        if self.address in self.node.refuse:
            raise ConnectError(f"{self.address}: unreachable over SSH (connection refused)")
        self.node.connections.append(self.address)
        self.user = self.usernames[0]
        self._client = True  # type: ignore[assignment]
        return self

    def alive(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        if self._client is not None:
            self.node.closed += 1
        self._client = None

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        assert self._client is not None, "a command on a closed session"
        self.node.execs.append(("run", [command]))
        return self.node.answer(command, input)

    def run_many(self, steps: Any, stop_on_error: bool = False, timeout: float = 60) -> list[Result]:
        assert self._client is not None, "a command on a closed session"
        pairs = [(s, None) if isinstance(s, str) else s for s in steps]
        self.node.execs.append(("run_many", [c for c, _ in pairs]))
        results = []
        for command, data in pairs:
            results.append(self.node.answer(command, data))
            if stop_on_error and results[-1].rc != 0:
                break
        return results

    def write_many(self, files: Any) -> None:
        assert self._client is not None, "a command on a closed session"
        self.node.execs.append(("write_many", [p for p, _, _ in files]))
        self.node.files.update({p: text for p, text, _ in files})


@pytest.fixture
def lab() -> model.Model:
    return model.load(REPO / "inventory" / "lab")


def _ctx(m: model.Model, tmp_path: Path) -> device.Context:
    return device.Context(m, {}, secrets.Masker({}), tmp_path / "backups", tmp_path / "audit.log",
                          ticket="CHG-1", user="tester")


def _node(monkeypatch: pytest.MonkeyPatch, node: Node) -> Node:
    cls = type("Session", (FakeSession,), {"node": node})
    monkeypatch.setattr(ssh_mod, "SSH", dataclass(cls))
    monkeypatch.setattr(ssh_mod, "lab_key", lambda: None)
    return node


def _deployed(m: model.Model, host: str) -> dict[str, str]:
    """A CE's files as a deploy leaves them (frr's daemons and sysctl; the rest is live state)."""
    (frr,) = [r for r in render.render_device(m, host) if r.platform == "frr"]
    return {FRR_PATHS[n]: text for n, text in frr.sections.items() if n != "frr.conf"}


# ------------------------------------------------------------------ per device: connections and commands

def test_a_ce_diff_is_two_commands_over_one_connection(lab: model.Model, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node(_deployed(lab, CE)))
    r = device.converge(_ctx(lab, tmp_path), CE)
    assert [(p.platform, p.status, p.error) for p in r.platforms] == [("frr", "unchanged", ""),
                                                                       ("nftables", "unchanged", "")]
    assert node.connections == [lab.devices[CE].ansible_host] and node.closed == 1
    assert len(node.execs) <= 3 and [kind for kind, _ in node.execs] == ["run_many", "run_many"]
    assert not node.unexpected


def test_a_ce_diff_shows_what_differs(lab: model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node(reload_test="Lines To Delete\n===============\n\nLines To Add\n============\n"
                                               "router bgp 65101\n", ruleset=""))
    r = device.converge(_ctx(lab, tmp_path), CE)
    frr, nft = r.platforms
    assert frr.status == nft.status == "would-change"
    assert "+++ intended/daemons" in frr.diff and "+router bgp 65101" in frr.diff
    assert "+table inet provnet {" in nft.diff
    assert len(node.execs) == 2 and len(node.connections) == 1


def test_a_deploy_stages_once_waits_without_polling_and_confirms_once(
        lab: model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node(reload_test="Lines To Add\n============\nrouter bgp 65101\n", ruleset=""))
    r = device.converge(_ctx(lab, tmp_path), CE, commit=True, revert_in=60)
    assert [(p.platform, p.status, p.error) for p in r.platforms] == [("frr", "changed", ""),
                                                                       ("nftables", "changed", "")]
    address = lab.devices[CE].ansible_host
    assert node.connections == [address, address]  # the device's session, then one fresh one to confirm
    assert node.closed == 2 and not node.unexpected
    kinds = [kind for kind, _ in node.execs]
    # diff 2, backup 2; per platform: stage (1 write), check + snapshot + arm (1), apply + its check (1),
    # and its confirm (1, over the one fresh connection)
    assert len(node.execs) == 12, node.execs
    writes = [paths for kind, paths in node.execs if kind == "write_many"]
    assert kinds.count("write_many") == 2
    for platform, paths in zip(("frr", "nftables"), writes):
        d = f"{STATE}/candidate/{platform}"
        assert {f"{d}/apply.sh", f"{d}/revert.sh"} <= set(paths) and len(paths) >= 3
    commands = node.ran
    assert not [c for c in commands if "systemctl show" in c or "is-active -q provnet-" in c]  # no polling
    applies = [c for c in commands if "systemd-run --wait" in c]
    assert len(applies) == 2 and all("--collect" in c and "Type=oneshot" in c for c in applies)
    confirms = [cs for kind, cs in node.execs if kind == "run" and cs[0].startswith("test -e ")]
    assert len(confirms) == 2  # frr's and nftables' pending flag, over the one fresh connection
    first_confirm = next(i for i, (k, cs) in enumerate(node.execs) if k == "run" and cs[0].startswith("test -e "))
    last_apply = max(i for i, (k, cs) in enumerate(node.execs) if any("systemd-run --wait" in c for c in cs))
    assert first_confirm > last_apply
    for p in r.platforms:
        assert Path(p.backup).exists()


def test_the_snapshot_and_the_arming_come_after_the_check_in_one_command(
        lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node())
    drv = FrrDriver(lab.devices[CE].ansible_host, "netops")
    drv.open()
    (frr,) = [x for x in render.render_device(lab, CE) if x.platform == "frr"]
    drv.load_replace_candidate(config=drv.build_candidate(frr.sections))
    drv.commit_config(message="m", revert_in=60)
    (chain,) = [cs for kind, cs in node.execs if kind == "run_many" and any("--on-active=60" in c for c in cs)]
    assert [c.split()[:2] for c in chain] == [["vtysh", "-C"], ["{", "rm"], ["systemctl", "stop"]]
    assert f"mv -f {STATE}/candidate/frr/revert.sh {STATE}/rollback/frr/revert.sh" in chain[1]
    assert f"{STATE}/rollback/frr/revert.sh" in node.files  # moved into the fresh snapshot
    (apply,) = [cs for kind, cs in node.execs if any("systemd-run --wait" in c for c in cs)]
    assert "frr-reload.py --test /etc/frr/frr.conf" in apply[1]  # FRR's second --test rides along
    assert "logger -t provnet 'frr commit: m'" in apply[0]


def test_an_in_band_device_falls_back_once_and_shares_the_out_of_band_session(
        lab: model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = lab.devices[INBAND_CE]
    oob = str(dev.oob_address.ip)
    node = _node(monkeypatch, Node(_deployed(lab, INBAND_CE), refuse=frozenset({dev.ansible_host})))
    r = device.converge(_ctx(lab, tmp_path), INBAND_CE)
    assert [p.status for p in r.platforms] == ["unchanged", "unchanged"] and "out-of-band" in r.note
    assert node.attempts == [dev.ansible_host, oob] and node.connections == [oob]


def test_rollback_and_backup_share_one_connection(lab: model.Model, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node({f"{STATE}/rollback/frr/revert.sh": "", f"{STATE}/rollback/nftables/revert.sh": ""},
                                   fail={"test -x": Result(0, "", "")}))
    ctx = _ctx(lab, tmp_path)
    assert device.take_backup(ctx, CE).status == "unchanged"
    assert len(node.connections) == 1 and node.closed == 1 and len(node.execs) == 2
    node.connections.clear()
    node.unexpected.clear()
    node.fail["revert.sh"] = Result(0, "", "")
    assert device.rollback(ctx, CE).status == "changed"
    assert len(node.connections) == 1 and node.closed == 2


def test_a_rejected_candidate_arms_and_applies_nothing(lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node(fail={"vtysh -C -f": Result(1, "line 3: % Unknown command", "")}))
    drv = FrrDriver(lab.devices[CE].ansible_host, "netops")
    drv.open()
    drv.load_replace_candidate(config=make_bundle({"frr.conf": "router bgp notanumber\n"}))
    with pytest.raises(CommitError, match=r"FRR rejects the candidate \(vtysh -C\): line 3.*nothing was applied"):
        drv.commit_config(revert_in=60)
    assert not [c for c in node.ran if "rm -rf" in c or "--on-active" in c or "systemd-run --wait" in c]


@pytest.mark.parametrize(("apply", "expected"), [
    (Result(1, "", ""), "applying frr failed and was rolled back: the unit's log"),
    (Result(124, "", ""), "did not finish within 120 s"),
])
def test_a_failed_apply_is_reported_and_reverted(lab: model.Model, monkeypatch: pytest.MonkeyPatch,
                                                  apply: Result, expected: str) -> None:
    node = _node(monkeypatch, Node(fail={"systemd-run --wait": apply}))
    drv = FrrDriver(lab.devices[CE].ansible_host, "netops")
    drv.open()
    drv.load_replace_candidate(config=make_bundle({"frr.conf": "hostname x\n"}))
    with pytest.raises(CommitError, match=expected):
        drv.commit_config(revert_in=60)
    reverted = any("revert.sh; systemctl stop" in c for c in node.ran)
    assert reverted == (apply.rc == 1)  # a unit still running is left to the armed revert


def test_a_session_cut_while_applying_keeps_its_message(lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node())
    answer = FakeSession.run_many

    def cut(self: FakeSession, steps: Any, stop_on_error: bool = False, timeout: float = 60) -> list[Result]:
        if any("systemd-run --wait" in (s if isinstance(s, str) else s[0]) for s in steps):
            raise ConnectError(f"{self.address}: connection lost during `sh -s` (EOF)")
        return answer(self, steps, stop_on_error, timeout)

    monkeypatch.setattr(FakeSession, "run_many", cut)
    drv = FrrDriver(lab.devices[CE].ansible_host, "netops")
    drv.open()
    drv.load_replace_candidate(config=make_bundle({"frr.conf": "hostname x\n"}))
    with pytest.raises(CommitError, match="connection lost while applying .*reverts by itself in 60 s"):
        drv.commit_config(revert_in=60)
    assert node.connections


def test_switch_and_endpoint_diffs_are_batched(lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node(fail={
        "ls /etc/systemd/network": Result(0, "10-eth0.network\n50-provnet-br10.netdev\n50-provnet-old.network\n", ""),
        "ip -j -d link show": Result(0, '[{"ifname": "br10", "linkinfo": {"info_kind": "bridge"}}]', ""),
        "bridge -j link show": Result(0, '[{"ifname": "eth1", "master": "br10"}]', ""),
        "getent group baresip": Result(0, "baresip\n", "")}))
    node.files["/etc/systemd/network/50-provnet-old.network"] = "[Match]\nName=eth9\n"
    sw = LinuxSwitchDriver("198.19.0.2", "netops")
    sw.open()
    sw.load_replace_candidate(config=make_bundle({
        "50-provnet-br10.netdev": "[NetDev]\nName=br10\nKind=bridge\n",
        "50-provnet-eth1.network": "[Match]\nName=eth1\n[Network]\nBridge=br10\n"}))
    diff = sw.compare_config()
    assert len(node.execs) == 2 and "+++ intended/50-provnet-eth1.network" in diff
    assert "--- running/50-provnet-old.network" in diff  # a stale file shows as removed
    assert "rm -f /etc/systemd/network/50-provnet-old.network" in sw.remove_stale()
    assert len(node.execs) == 2  # the listing is read once per candidate
    node.execs.clear()
    vc = BaresipDriver("198.19.0.3", "netops")
    vc.open()
    vc.load_replace_candidate(config=make_bundle({"config": "sip_listen 0.0.0.0:5060\n", "accounts": "<sip:x>\n"}))
    assert "+++ intended/accounts" in vc.compare_config() and len(node.execs) == 1
    assert not node.unexpected


def test_a_driver_closes_only_the_session_it_owns(lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(monkeypatch, Node())
    owner = FrrDriver("198.19.0.81", "netops")
    owner.open()
    guest = FrrDriver("198.19.0.81", "netops", optional_args={"session": owner.ssh})
    guest.open()
    assert guest.ssh is owner.ssh and len(node.connections) == 1
    guest.close()
    assert node.closed == 0 and owner.ssh is not None and owner.ssh.alive()
    session = owner.share()
    owner.close()
    assert node.closed == 0 and session.alive()
    other = FrrDriver("198.19.0.82", "netops", optional_args={"session": session})  # another address: its own
    other.open()
    assert other.ssh is not session and len(node.connections) == 2
    other.close()
    session.close()
    assert node.closed == 2


# ------------------------------------------------------------------ the batch scripts, run with sh

class LocalSSH(SSH):
    """The real SSH methods over a local ``sh`` instead of a channel; counts the execs."""

    def __init__(self) -> None:
        super().__init__("198.18.0.1", ("root",), user="root")
        self.execs = 0

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        self.execs += 1
        proc = subprocess.run(["sh", "-c", command], input=(input or "").encode(), capture_output=True,
                              timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def test_write_many_and_read_many_round_trip_anything(tmp_path: Path) -> None:
    local = LocalSSH()
    big = "x" * 199 + "\n"
    files = [(str(tmp_path / "new dir" / "it's nasty"), NASTY, "0640"),
             (str(tmp_path / "empty"), "", "0600"),
             (str(tmp_path / "big"), big * 5000, "0755")]  # 1 MB: no argument carries it
    local.write_many(files)
    assert local.execs == 1
    for path, text, mode in files:
        assert Path(path).read_text(encoding="utf-8") == text and oct(Path(path).stat().st_mode & 0o777)[2:] == mode[1:]
    assert not list(tmp_path.rglob("*.pvtmp"))
    (tmp_path / "a directory").mkdir()
    paths = [p for p, _, _ in files] + [str(tmp_path / "missing"), str(tmp_path / "a directory")]
    assert local.read_many(paths) == {**{p: t for p, t, _ in files}, paths[3]: None, paths[4]: None}
    assert local.execs == 2
    assert local.read(files[0][0]) == NASTY and local.read(paths[3]) is None


def test_run_many_keeps_each_commands_status_output_and_stdin_apart(tmp_path: Path) -> None:
    local = LocalSSH()
    steps: list[Step] = ["printf 'one\\n'; echo warn >&2", ("cat; exit 3", NASTY), "cat",  # the last: /dev/null
                         f"cd {shlex.quote(str(tmp_path))} && pwd", "exit 7 # a trailing comment", "echo after"]
    res = local.run_many(steps)
    assert local.execs == 1
    assert [(r.rc, r.out, r.err) for r in res] == [
        (0, "one\n", "warn\n"), (3, NASTY, ""), (0, "", ""), (0, f"{tmp_path}\n", ""), (7, "", ""), (0, "after\n", "")]
    stopped = local.run_many(steps, stop_on_error=True)
    assert [r.rc for r in stopped] == [0, 3]
    assert local.run_many([]) == [] and local.execs == 2


def test_run_many_reports_a_batch_cut_short() -> None:
    class Cut(LocalSSH):
        def __init__(self, rc: int) -> None:
            super().__init__()
            self.rc = rc

        def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
            full = super().run(command, input, timeout)
            return Result(self.rc, full.out[:full.out.index(">PV 1 ")], "killed")

    with pytest.raises(ConnectError, match="connection lost during a batch of 2 commands"):
        Cut(-1).run_many(["true", "true"])
    with pytest.raises(DriverError, match="ended after 1"):
        Cut(1).run_many(["true", "true"])
    assert parse_batch(">PV 0 0\nb25l\n") == []  # a frame without its stderr line is not a result


class Demo(LinuxDriver):
    """A platform whose files live under a temporary directory, for the staging and snapshot shell."""

    platform = "demo"

    def __init__(self, root: Path) -> None:
        super().__init__("198.18.0.1", "root")
        self.root = root

    def path_of(self, name: str) -> str:
        return str(self.root / "live" / name)

    def owned(self) -> list[str]:
        return sorted({"a.conf", "b.conf", *(self.candidate or {})})

    def snapshot_live(self, directory: str) -> list[str]:
        return [f"echo live > {directory}/b.conf.live && mv {directory}/b.conf.live {directory}/b.conf", "false"]

    def apply_script(self) -> str:
        return "true\n"


def test_the_staged_write_and_the_snapshot_shell_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linux, "STATE", str(tmp_path / "state"))
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "a.conf").write_text("old a\n")
    (tmp_path / "live" / "b.conf").write_text("old b\n")
    drv = Demo(tmp_path)
    drv.ssh = LocalSSH()
    drv.load_replace_candidate(config=make_bundle({"a.conf": NASTY + "\n", "c.conf": "new c\n"}))
    names = drv.diff_names()
    staged = drv._stage(names)
    assert drv.ssh.execs == 1
    cand, base = tmp_path / "state" / "candidate" / "demo", tmp_path / "state" / "rollback" / "demo"
    assert Path(staged["a.conf"]).read_text() == NASTY + "\n" and (cand / "apply.sh").stat().st_mode & 0o777 == 0o700
    assert "install -D -m 0644" in (cand / "apply.sh").read_text() and (cand / "revert.sh").exists()
    (res,) = drv.s.run_many([drv._snapshot_command(names)])
    assert res.rc == 0, res  # a live refinement that fails ("false") does not fail the snapshot
    assert (base / "files" / "a.conf").read_text() == "old a\n" and (base / "files" / "b.conf").read_text() == "live\n"
    assert not (base / "files" / "c.conf").exists() and (base / "revert.sh").exists() and not (cand / "revert.sh").exists()
    assert "else rm -f" in (base / "revert.sh").read_text()  # c.conf had no live file: a revert removes it
    (tmp_path / "live" / "a.conf").unlink()
    (tmp_path / "live" / "a.conf").mkdir()  # cp -p of a directory fails: the snapshot must say so
    drv._stage(names)
    (res,) = drv.s.run_many([drv._snapshot_command(names)])
    assert res.rc != 0 and (cand / "revert.sh").exists() and not (base / "revert.sh").exists()
