"""`provnet soc alerts | events | verify-archive` against the real SOC program, without SSH or a lab.

The SSH class is replaced by one that runs each command through ``/bin/sh -c`` on this machine, with
the program's path swapped for the real ``provnet_soc.py`` over a temporary store built by its own
``ingest``/``detect``/``archive`` (the helpers of test_soc_store.py): the CLI's quoting and its
parsing of the real output are both tested. Model: inventory/lab (the SOC, dc-soc, is 198.19.0.11).
"""

from __future__ import annotations

import json
import shlex
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest
from typer.testing import CliRunner

from provnet.cli import app
from provnet.drivers.ssh import ConnectError, Result
from provnet.soc import remote
from test_soc_store import ATTACK_NOW, EXPECTED, NODE, compiled_file, run, scenario, three_days  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
LAB = str(REPO / "inventory" / "lab")
SOC_ADDR = "198.19.0.11"


class LocalSoc:
    """Stands in for provnet.drivers.ssh.SSH: ``run`` is the shell of this machine, the program the real one."""

    store: Path
    now: str = ATTACK_NOW
    commands: list[str] = []
    opened: list[str] = []

    def __init__(self, address: str, usernames: tuple[str, ...], key_file: Any = None, password: Any = None,
                 production: bool = False, timeout: float = 15.0) -> None:
        self.address = address

    def open(self) -> "LocalSoc":
        LocalSoc.opened.append(self.address)
        return self

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        LocalSoc.commands.append(command)
        assert command.startswith(remote.PROGRAM + " ")
        node = shlex.join([sys.executable, str(NODE), "--store", str(self.store / "store"),
                           "--events", str(self.store / "events"), "--now", self.now])
        proc = subprocess.run(["/bin/sh", "-c", node + command[len(remote.PROGRAM):]], capture_output=True,
                              text=True, timeout=120)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def close(self) -> None:
        pass


def _tripwire(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an SSH connection was attempted")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PROVNET_INVENTORY", raising=False)
    monkeypatch.delenv("PROVNET_DEBUG", raising=False)
    LocalSoc.commands, LocalSoc.opened, LocalSoc.now = [], [], ATTACK_NOW


@pytest.fixture
def local_soc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> type[LocalSoc]:
    LocalSoc.store = tmp_path
    monkeypatch.setattr("provnet.drivers.ssh.SSH", LocalSoc)
    return LocalSoc


@pytest.fixture
def attack_store(tmp_path: Path, compiled_file: Path) -> Path:  # noqa: F811
    scenario(tmp_path, "attack")
    run(tmp_path, "ingest")
    run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog")
    return tmp_path


def soc(*args: str) -> Any:
    result = CliRunner().invoke(app, ["soc", *args, "-i", LAB])
    assert "Traceback" not in result.output
    return result


def argv(command: str) -> list[str]:
    return shlex.split(command)


# ---------------------------------------------------------------- alerts


def test_alerts_as_json_and_as_a_table_from_the_real_program(local_soc: type[LocalSoc], attack_store: Path) -> None:
    res = soc("alerts", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and (data["soc"], data["address"]) == ("dc-soc", SOC_ADDR)
    assert data["since"] == "2026-12-03T21:00:00Z" and data["since_local"] == "2026-12-04 04:00:00"  # 24h, giờ VN
    assert sorted(a["rule_name"] for a in data["alerts"]) == sorted(EXPECTED)
    brute = next(a for a in data["alerts"] if a["rule_name"] == "provnet_ssh_brute_force")
    assert (brute["site"], brute["hosts"], brute["count"], brute["level"]) == ("dong-dang", ["dong-dang-ce"], 6,
                                                                                "critical")
    assert (brute["first_local"], brute["last_local"]) == ("2026-12-05 03:10:00", "2026-12-05 03:11:10")
    # one SSH session, one command, every argument where the program expects it
    assert local_soc.opened == [SOC_ADDR]
    assert [argv(c) for c in local_soc.commands] == [[remote.PROGRAM, "alerts", "--since", "24h", "--json"]]

    table = soc("alerts")
    assert table.exit_code == 0, table.output
    assert "first (giờ VN)" in table.stdout and "2026-12-05 03:10:00" in table.stdout
    assert "critical" in table.stdout and brute["alert_id"] in table.stdout
    assert table.stdout.rstrip().endswith(f"{len(EXPECTED)} alert(s)")


def test_alerts_of_one_site_and_none_at_all_both_exit_0(local_soc: type[LocalSoc], attack_store: Path) -> None:
    res = soc("alerts", "--site", "dong-dang", "--since", "7d", "--json")
    assert res.exit_code == 0, res.output
    names = {a["rule_name"] for a in json.loads(res.stdout)["alerts"]}
    assert names == {r for r, (site, _h, _c) in EXPECTED.items() if site == "dong-dang"}
    assert argv(local_soc.commands[-1]) == [remote.PROGRAM, "alerts", "--since", "7d", "--site", "dong-dang", "--json"]
    # a time without an offset is giờ VN: 04:00 on the 5th is 21:00Z on the 4th, after every alert
    quiet = soc("alerts", "--since", "2026-12-05T04:00")
    assert quiet.exit_code == 0, quiet.output
    assert "no alerts since 2026-12-05 04:00:00 (giờ VN)" in quiet.stdout
    assert argv(local_soc.commands[-1])[2:4] == ["--since", "2026-12-04T21:00:00Z"]
    empty = soc("alerts", "--since", "2026-12-04T21:00:00Z", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["alerts"] == []


# ---------------------------------------------------------------- events


def test_events_of_a_site_with_a_category_and_a_limit(local_soc: type[LocalSoc], attack_store: Path) -> None:
    res = soc("events", "--site", "dong-dang", "--category", "authentication", "--since", "3d", "--limit", "3",
              "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ok"] is True and data["truncated"] is True and len(data["events"]) == 3
    assert {(e["labels.site"], e["event.category"]) for e in data["events"]} == {("dong-dang", "authentication")}
    times = [e["@timestamp"] for e in data["events"]]
    assert times == sorted(times) and times[-1] == "2026-12-04T20:11:10Z"  # the newest 3, oldest first
    assert argv(local_soc.commands[-1]) == [remote.PROGRAM, "events", "--site", "dong-dang", "--category",
                                            "authentication", "--since", "3d", "--limit", "3", "--json"]
    table = soc("events", "--site", "dong-dang", "--category", "authentication", "--since", "3d", "--limit", "3")
    assert table.exit_code == 0, table.output
    assert "time (giờ VN)" in table.stdout and "2026-12-05 03:11:10" in table.stdout
    assert "3 authentication events at dong-dang" in table.stdout and "the newest 3" in table.stdout


def test_every_argument_reaches_the_program_quoted(local_soc: type[LocalSoc], attack_store: Path) -> None:
    canary = attack_store / "pwned"
    hostile = f"x'; touch {canary}; echo '$(id)"
    # the command line quotes whatever it is given (one argument, nothing run) …
    assert argv(remote.events_command("dc", hostile))[5] == hostile
    # … and the CLI refuses a category the store does not have before it connects at all
    res = soc("events", "--site", "dc", "--category", hostile, "--json")
    assert res.exit_code == 2 and not canary.exists() and local_soc.commands == []
    res = soc("events", "--site", "dc", "--category", "auth", "--json")
    assert res.exit_code == 0, res.output
    assert argv(local_soc.commands[-1])[5] == "authentication"


# ---------------------------------------------------------------- refused before connecting


@pytest.mark.parametrize("args", [["alerts", "--site", "ban-xa"], ["events", "--site", "ban-xa"],
                                  ["events", "--site", "Dong-Dang"]], ids=" ".join)
def test_an_unknown_site_is_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setattr("provnet.drivers.ssh.SSH", _tripwire)
    monkeypatch.setattr("paramiko.SSHClient.connect", _tripwire)
    res = soc(*args)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(f"provnet: --site {args[-1]!r}: no such site in ")
    assert "provnet inventory ipplan" in res.stderr and "dc, unknown, cao-loc" in res.stderr
    assert "dong-dang" in res.stderr and "quan-son" in res.stderr
    as_json = soc(*args, "--json")
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["error"].startswith(f"--site {args[-1]!r}: no such site")


def test_a_close_slug_is_suggested() -> None:
    from provnet import model

    with pytest.raises(remote.SocError, match="did you mean dong-dang") as caught:
        remote.check_site(model.load(Path(LAB), LAB), "dong-dnag")
    assert caught.value.code == 2


def test_a_malformed_since_is_refused_before_any_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("provnet.drivers.ssh.SSH", _tripwire)
    res = soc("alerts", "--since", "yesterday", "--json")
    assert res.exit_code == 2 and "neither a span (30m, 24h, 7d) nor an ISO 8601 time" in json.loads(res.stdout)["error"]


def test_the_address_guard_checks_the_soc_before_any_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("provnet.drivers.ssh.SSH", _tripwire)
    monkeypatch.setattr("socket.create_connection", _tripwire)
    monkeypatch.setattr(remote, "soc_of", lambda m: remote.Soc("dc-soc", "192.0.2.10"))
    res = soc("verify-archive", "--json")
    assert res.exit_code == 2
    assert json.loads(res.stdout)["error"].startswith("address guard: refusing to reach the SOC dc-soc at 192.0.2.10")


# ---------------------------------------------------------------- an unreachable SOC


def test_an_unreachable_soc_is_exit_1_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: Any, hostname: str, **kwargs: Any) -> None:
        assert hostname == SOC_ADDR
        raise socket.timeout("timed out")

    monkeypatch.setattr(paramiko.SSHClient, "connect", refused)  # the real SSH class, no socket
    for args in (["alerts"], ["events", "--site", "cao-loc"], ["verify-archive"]):
        res = soc(*args)
        assert res.exit_code == 1, res.output
        assert res.stderr == f"provnet: SSH to {SOC_ADDR}: unreachable over SSH (timed out)\n" and res.stdout == ""
        as_json = soc(*args, "--json")
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout) == {"ok": False, "problems": [],
                                              "error": f"SSH to {SOC_ADDR}: unreachable over SSH (timed out)"}


def test_a_connection_lost_mid_command_is_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    class Lost(LocalSoc):
        def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
            raise ConnectError(f"{SOC_ADDR}: connection lost during `{command[:60]}` (EOF)")

    monkeypatch.setattr("provnet.drivers.ssh.SSH", Lost)
    res = soc("alerts", "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["error"].startswith(f"SSH to {SOC_ADDR}: connection lost during ")


# ---------------------------------------------------------------- verify-archive


def test_verify_archive_holds_then_names_the_first_broken_day(local_soc: type[LocalSoc], tmp_path: Path) -> None:
    three_days(tmp_path)
    local_soc.now = "2026-12-04T02:00:00Z"
    run(tmp_path, "ingest", now=local_soc.now)
    run(tmp_path, "archive", now=local_soc.now)
    ok = soc("verify-archive")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("archive chain on dc-soc: 3 days verified, chain head ")
    data = json.loads(soc("verify-archive", "--json").stdout)
    assert data["ok"] is True and data["days"] == 3 and len(data["head"]) == 64
    assert [argv(c) for c in local_soc.commands] == [[remote.PROGRAM, "verify-archive"]] * 2
    conn = sqlite3.connect(tmp_path / "store" / "2026" / "12" / "events-2026-12-02.sqlite")
    conn.execute('DELETE FROM events WHERE "@timestamp" = ?', ("2026-12-02T06:00:00Z",))
    conn.commit()
    conn.close()
    bad = soc("verify-archive")
    assert bad.exit_code == 1
    assert bad.stdout.startswith("archive chain on dc-soc broken at 2026-12-02: the database ")
    assert "changed after archiving" in bad.stdout
    as_json = soc("verify-archive", "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["broken"] == "2026-12-02" and "changed after archiving" in data["reason"]
    assert data["error"].startswith("archive chain on dc-soc broken at 2026-12-02: ")


def test_an_empty_chain_is_verified(local_soc: type[LocalSoc], tmp_path: Path) -> None:
    res = soc("verify-archive")
    assert res.exit_code == 0 and "0 days verified (the chain is empty" in res.stdout


# ---------------------------------------------------------------- answers the CLI cannot use


def test_a_missing_program_or_a_failing_one_is_exit_1(local_soc: type[LocalSoc], tmp_path: Path) -> None:
    def answer(rc: int, out: str = "", err: str = "") -> remote.Runner:
        return lambda command: (rc, out, err)

    with pytest.raises(remote.SocError, match="is not installed on the SOC .*playbooks/dc.yml"):
        remote.alerts(answer(127, err="sh: 1: /usr/local/sbin/provnet-soc: not found"))
    with pytest.raises(remote.SocError, match="exited 2: provnet-soc alerts: SQLite error: disk I/O error"):
        remote.alerts(answer(2, err="provnet-soc alerts: SQLite error: disk I/O error"))
    with pytest.raises(remote.SocError, match="unreadable answer from the SOC"):
        remote.events(answer(0, out="<html>"), "dc")
    with pytest.raises(remote.SocError, match="unreadable answer"):
        remote.verify_archive(answer(1, out="something else"))
    # through the CLI: the real program on a store that is not a store
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "alerts.sqlite").write_text("not a database")
    res = soc("alerts", "--json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["error"].startswith("provnet-soc alerts: the command on the SOC exited 2: ")


@pytest.mark.parametrize("command", ["alerts", "events", "verify-archive"])
def test_help_reads_like_a_man_page(command: str) -> None:
    res = CliRunner().invoke(app, ["soc", command, "--help"])
    assert res.exit_code == 0
    assert "Exit status: 0" in res.stdout and "Example: provnet soc " in res.stdout and "SSH" in res.stdout


def test_a_category_alias_is_the_stores_category_and_an_unknown_one_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert [remote.check_category(c) for c in ("auth", "Authentication", "net", "config", "host")] == [
        "authentication", "authentication", "network", "configuration", "host"]
    assert remote.events_command("dong-dang", remote.check_category("auth")).count("--category authentication") == 1
    monkeypatch.setattr("provnet.drivers.ssh.SSH", _tripwire)
    monkeypatch.setattr("paramiko.SSHClient.connect", _tripwire)
    res = soc("events", "--site", "dong-dang", "--category", "logins", "--json")
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert data["ok"] is False and "not an event category" in data["error"] and "authentication" in data["error"]
