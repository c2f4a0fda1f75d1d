"""The root-cause rule of `provnet verify`: one cause per site, the rest blocked by it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra
from rich.console import Console

from provnet.verify import facts, hosts, report
from provnet.verify.findings import Finding, classify, ssh_failure, verdicts


def f(host: str, layer: str, check: str, ok: bool, order: int = 0, site: str = "dong-dang") -> Finding:
    return Finding(site=site, host=host, layer=layer, check=check, ok=ok, order=order)


def test_lowest_failing_layer_is_the_one_root_cause() -> None:
    found = [
        f("dong-dang-ce", "wan", "frr is running", False, 1),
        f("dong-dang-ce", "wan", "ebgp to the pe is established", False, 2),
        f("dong-dang-ce", "routing", "dc prefixes are received", False),
        f("dong-dang-vc", "registration", "registered", False),
        f("dong-dang-ce", "node", "systemd running", True),
        f("cao-loc-ce", "wan", "frr is running", True, 1, site="cao-loc"),
    ]
    classify(found)
    roots = [x for x in found if x.root_cause]
    assert [(r.host, r.check) for r in roots] == [("dong-dang-ce", "frr is running")]
    blocked = {x.check: x.blocked_by for x in found if x.blocked_by}
    assert blocked == {"ebgp to the pe is established": "dong-dang-ce: frr is running",
                       "dc prefixes are received": "dong-dang-ce: frr is running",
                       "registered": "dong-dang-ce: frr is running"}
    assert not any(x.root_cause or x.blocked_by for x in found if x.site == "cao-loc")


def test_config_drift_is_its_own_cause() -> None:
    found = [f("a-ce", "config", "running config equals intended", False), f("a-ce", "logging", "syslog", False)]
    classify(found)
    assert all(x.root_cause for x in found)


def test_verdicts_put_failures_first_with_circuit_and_contact() -> None:
    found = [f("a-ce", "wan", "frr", True, site="a"), f("b-ce", "wan", "frr", False, site="b")]
    v = verdicts(found, {"a": ("Xã A", "C-1", "X 1"), "b": ("Xã B", "C-2", "Y 2")})
    assert [x.site for x in v] == ["b", "a"] and v[0].circuit_id == "C-2" and v[0].root_cause is not None


def test_facts_parse_one_command_output() -> None:
    out = ("@@@ system\nrunning\n@@@ failed\n@@@ active\nId=frr.service\nActiveState=active\nUnitFileState=enabled\n\n"
           "Id=baresip.service\nActiveState=inactive\nUnitFileState=disabled\n\n"
           "Id=janus.service\nActiveState=inactive\nUnitFileState=\n"
           "@@@ listen\ntcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n@@@ sshd\npermitrootlogin no\n"
           "@@@ chrony\nReference ID    : C612090A (198.18.9.10)\nLeap status     : Normal\n"
           "@@@ links\n[]\n@@@ addrs\n[]\n@@@ rsyslog\n@@@ bgp\n\n@@@ rib\n{}\n")
    got = facts.parse(out)
    assert got["system"] == "running" and got["failed"] == []
    assert got["units"]["baresip"] == {"active": "inactive", "enabled": "disabled"}
    assert got["units"]["frr"] == {"active": "active", "enabled": "enabled"}
    assert got["units"]["janus"] == {"active": "inactive", "enabled": "unknown"}   # not installed here
    assert got["listen"] == [("tcp", "0.0.0.0", 22)]
    assert got["sshd"]["permitrootlogin"] == "no" and got["chrony"]["Leap status"] == "Normal"
    assert got["bgp"] is None and got["rib"] == {}


UNREACHABLE = "ssh: connect to host 198.18.64.194 port 22: Network is unreachable\r\n"


def ssh_error(stderr: str, spec: str = "ssh://admin@198.18.64.194") -> RuntimeError:
    """What testinfra raises when ssh exits 255: a real SSH host whose ssh run printed ``stderr``."""
    h = testinfra.get_host(spec)
    # ssh itself is not run: its exit status and stderr are the recording
    h.backend.run_local = lambda command, *args: h.backend.result(  # type: ignore[method-assign]
        255, b"", b"", stderr.encode())
    with pytest.raises(RuntimeError) as caught:
        hosts.root_run(h, "id -u")
    assert str(caught.value).startswith("CommandResult(backend=<testinfra")  # the repr once shown as root cause
    return caught.value


def test_ssh_failure_names_the_address_and_the_error_in_plain_words() -> None:
    assert ssh_failure(ssh_error(UNREACHABLE)) == (
        "SSH login as admin", "network unreachable", "SSH to 198.18.64.194: network unreachable")


@pytest.mark.parametrize("stderr, error", [
    ("ssh: connect to host 198.18.64.194 port 22: Connection refused\r\n", "connection refused"),
    ("ssh: connect to host 198.18.64.194 port 22: Connection timed out\r\n", "timed out"),
    ("Connection timed out during banner exchange\r\nConnection to 198.18.64.194 port 22 timed out\r\n", "timed out"),
    ("Warning: Permanently added '198.18.64.194' (ED25519) to the list of known hosts.\r\n"
     "admin@198.18.64.194: Permission denied (publickey).\r\n", "permission denied"),
    ("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
     "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
     "Host key verification failed.\r\n", "host key changed"),
    ("Host key verification failed.\r\n", "host key verification failed"),
    ("Control socket connect(/root/.cache/provnet/cp/4f2a): Connection refused\r\n" + UNREACHABLE,
     "network unreachable"),  # a stale ControlMaster socket is noise, not the error
    ("kex_exchange_identification: banner line contains invalid characters\r\n",
     "kex_exchange_identification: banner line contains invalid characters"),
])
def test_ssh_errors_in_plain_words(stderr: str, error: str) -> None:
    expected, observed, message = ssh_failure(ssh_error(stderr))  # type: ignore[misc]
    assert (expected, observed, message) == ("SSH login as admin", error, f"SSH to 198.18.64.194: {error}")


def test_other_exceptions_are_no_ssh_failure() -> None:
    assert ssh_failure(RuntimeError("No process found")) is None
    assert ssh_failure(ValueError("x")) is None


SITE_CONFTEST = '''
import pytest, testinfra
from provnet.verify import hosts
from provnet.verify.plugin import SITE_OF

def pytest_configure(config):
    config.stash[SITE_OF] = {"dc-mcu": "dc", "dong-dang-vc": "dong-dang"}

@pytest.fixture
def facts(hostname):
    h = testinfra.get_host("ssh://admin@198.18.64.194")
    h.backend.run_local = lambda command, *args: h.backend.result(255, b"", b"", STDERR.encode())
    if hostname == "dong-dang-vc":  # cut off in-band
        hosts.root_run(h, "id -u")
    return {}
'''

SITE_TESTS = '''
import pytest
from provnet.verify.plugin import degrade

@pytest.mark.layer("node", 0)
@pytest.mark.parametrize("hostname", ["dc-mcu", "dong-dang-vc"])
def test_reachable_over_ssh(facts, hostname):
    pass

@pytest.mark.layer("time", 0)
@pytest.mark.parametrize("hostname", ["dc-mcu", "dong-dang-vc"])
def test_time_is_synchronised_to_the_dc(facts, hostname):
    degrade("chrony tracking", "synchronised to 198.18.9.10", "not synchronised (reference 00000000 ())",
            "time not synchronised yet, chrony started 60 s ago")
'''


def test_plugin_reports_degraded_as_passed_and_ssh_failures_in_plain_words(tmp_path: Path) -> None:
    """The plugin in a real pytest run over recorded outcomes (no host is contacted)."""
    (tmp_path / "conftest.py").write_text(f"STDERR = {UNREACHABLE!r}\n" + SITE_CONFTEST)
    (tmp_path / "test_site.py").write_text(SITE_TESTS)
    out = tmp_path / "findings.jsonl"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "provnet.verify.plugin", "-p", "no:cacheprovider",
                           "-q", "--junitxml", str(tmp_path / "junit.xml"), str(tmp_path / "test_site.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PROVNET_FINDINGS": str(out)})
    assert "2 passed, 2 errors" in proc.stdout, proc.stdout + proc.stderr  # the degraded check passed on dc-mcu
    found = [Finding(**json.loads(line)) for line in out.read_text(encoding="utf-8").splitlines()]
    by = {(x.host, x.layer): x for x in found}
    assert len(found) == 4
    time_dc = by[("dc-mcu", "time")]
    assert (time_dc.ok, time_dc.degraded, time_dc.message) == (True, True,
                                                               "time not synchronised yet, chrony started 60 s ago")
    cut = by[("dong-dang-vc", "node")]
    assert (cut.ok, cut.expected, cut.observed, cut.message) == (
        False, "SSH login as admin", "network unreachable", "SSH to 198.18.64.194: network unreachable")
    junit = (tmp_path / "junit.xml").read_text(encoding="utf-8")
    assert 'name="provnet_degraded" value="time not synchronised yet, chrony started 60 s ago"' in junit

    v = {x.site: x for x in verdicts(found, {"dc": ("DC", "", ""), "dong-dang": ("Đồng Đăng", "C-1", "A 1")})}
    assert (v["dc"].ok, v["dc"].status) == (True, "degraded")
    assert v["dong-dang"].status == "failed" and v["dong-dang"].root_cause is cut
    console = Console(record=True, width=250, file=io.StringIO())
    console.print(report.table(list(v.values())))
    text = console.export_text()
    assert "SSH to 198.18.64.194: network unreachable" in text and "CommandResult" not in text
    assert "DEGRADED" in text and "time not synchronised yet, chrony started 60 s ago" in text
    page = report.as_html(list(v.values()), "t")
    assert "SSH to 198.18.64.194: network unreachable" in page and '<tr class="degraded">' in page
    assert [r["status"] for r in report.as_json(list(v.values()))] == ["failed", "degraded"]  # failures first
