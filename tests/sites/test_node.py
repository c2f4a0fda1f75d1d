"""Every node: reachable, systemd healthy, SSH hardened, time and logs flowing."""

from __future__ import annotations

from typing import Any

import pytest

from provnet import model
from provnet.verify import timesync
from provnet.verify.plugin import degrade, expect


@pytest.mark.layer("node", 0)
def test_reachable_over_ssh(facts: dict[str, Any], dev: model.Device) -> None:
    expect(facts["system"] != "", f"SSH to {dev.ansible_host}", "a shell", "no answer")


@pytest.mark.layer("node", 1)
def test_systemd_running_with_no_failed_unit(facts: dict[str, Any]) -> None:
    expect(facts["system"] == "running" and not facts["failed"], "systemd state",
           "running, no failed unit", f"{facts['system']}, failed: {', '.join(facts['failed']) or 'none'}")


@pytest.mark.layer("node", 2)
def test_ssh_is_hardened(facts: dict[str, Any]) -> None:
    sshd = facts["sshd"]
    observed = {k: sshd.get(k, "?") for k in ("permitrootlogin", "passwordauthentication")}
    expect(observed == {"permitrootlogin": "no", "passwordauthentication": "no"}, "sshd -T",
           "permitrootlogin no, passwordauthentication no", observed)


@pytest.mark.layer("time", 0)
def test_time_is_synchronised_to_the_dc(facts: dict[str, Any], dev: model.Device, m: model.Model) -> None:
    if dev.hostname == m.services["ntp"]:
        pytest.skip("the NTP server itself")
    sync = timesync.assess(facts, str(m.service_address("ntp")))
    if sync.severity == timesync.DEGRADED:
        degrade("chrony tracking", sync.expected, sync.observed, sync.message)
    expect(sync.severity == timesync.OK, "chrony tracking", sync.expected, sync.observed)


@pytest.mark.layer("logging", 0)
def test_syslog_forwarding_to_the_soc(facts: dict[str, Any], dev: model.Device, m: model.Model) -> None:
    if dev.hostname == m.services["syslog"]:
        pytest.skip("the SOC collector itself")
    soc = str(m.service_address("syslog"))
    rsyslog = facts["units"].get("rsyslog", {}).get("active")
    expect(rsyslog == "active" and soc in facts["raw"].get("rsyslog", ""), "rsyslog forwarding",
           f"rsyslog active, forwarding to {soc}", f"rsyslog {rsyslog}, target {'set' if soc in facts['raw'].get('rsyslog', '') else 'missing'}")
