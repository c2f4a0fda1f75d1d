"""The nightly compliance run, scheduled for real (issue 22, item 8): the compliance_runner role installs
a systemd service and timer on the lab's management station, and one run through systemd writes the report.

The station (provnet/lab/station.py) is the controller with a systemd of its own: it shares this machine's
network, so its run reaches the lab exactly as `provnet compliance run` from a shell does.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from provnet import model
from provnet.lab import station

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPORTS = "/var/lib/provnet/compliance"
UNIT = "provnet-compliance"


def sh(command: str, timeout: float = 120) -> tuple[int, str]:
    proc = station.run(["sh", "-c", command], timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(lab: model.Model) -> Iterator[str]:
    """The station up and the role applied from its own checkout, as an operator would."""
    station.up()
    try:
        rc, output = sh(f".venv/bin/ansible-playbook playbooks/compliance_runner.yml "
                        f"-e compliance_runner_report_dir={REPORTS}", timeout=300)
        assert rc == 0, output[-3000:]
        yield output
    finally:
        station.down()


def test_the_role_installs_a_nightly_timer_at_two_in_the_province(installed: str) -> None:
    rc, enabled = sh(f"systemctl is-enabled {UNIT}.timer; systemctl is-active {UNIT}.timer")
    assert enabled.split() == ["enabled", "active"], enabled
    rc, shown = sh(f"systemctl show {UNIT}.timer -p TimersCalendar -p Persistent -p NextElapseUSecRealtime")
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert "Asia/Ho_Chi_Minh" in props["TimersCalendar"] and props["Persistent"] == "yes", shown
    rc, epoch = sh(f"date -d {shlex.quote(props['NextElapseUSecRealtime'])} +%s")  # systemd's own format, any zone
    assert rc == 0, epoch
    nxt = datetime.fromtimestamp(int(epoch.strip()), ZoneInfo("Asia/Ho_Chi_Minh"))
    assert (nxt.hour, nxt.minute) == (2, 0), nxt
    # the second application changes nothing
    rc, again = sh(f".venv/bin/ansible-playbook playbooks/compliance_runner.yml -e compliance_runner_report_dir={REPORTS}",
                   timeout=300)
    assert rc == 0 and "changed=0" in again, again[-2000:]


def test_a_run_through_systemd_writes_the_report(installed: str, lab: model.Model) -> None:
    rc, output = sh(f"systemctl start {UNIT}.service; systemctl show {UNIT}.service -p Result -p ExecMainStatus",
                    timeout=600)
    props = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    rc, journal = sh(f"journalctl -u {UNIT}.service --no-pager -n 30 -o cat")
    assert props.get("Result") == "success" and props.get("ExecMainStatus") == "0", output + journal
    rc, report = sh(f"cat {REPORTS}/compliance.json")
    data = json.loads(report)
    assert data["summary"]["compliant"] and data["summary"]["devices"] == len(lab.devices)
    rc, listing = sh(f"ls {REPORTS}")
    assert {"compliance.html", "compliance.md", "compliance.junit.xml", "compliance.json"} <= set(listing.split())
    rc, page = sh(f"cat {REPORTS}/compliance.html")
    assert "Lạng Sơn" in page and all(s.name in page for s in lab.sites.values())


def test_a_failing_night_shows_in_systemctl_failed_and_runs_never_overlap(installed: str) -> None:
    """A scope the inventory does not have is bad input (exit 2): the unit fails and says so. While a run
    holds the lock, a second one exits 75 at once."""
    drop_in = f"/run/systemd/system/{UNIT}.service.d/test75.conf"
    service = sh(f"systemctl cat {UNIT}.service")[1]
    exec_start = service.split("ExecStart=", 1)[1].split("StandardOutput=")[0].replace("\\\n", " ")
    broken = exec_start.replace("--scope=all", "--scope=site no-such-site")
    rc, out = sh(f"mkdir -p {shlex.quote(os.path.dirname(drop_in))} && printf '[Service]\\nExecStart=\\nExecStart=%s\\n' "
                 f"{shlex.quote(broken.strip())} > {drop_in} && systemctl daemon-reload && "
                 f"systemctl start {UNIT}.service; systemctl --failed --no-legend --plain")
    try:
        assert f"{UNIT}.service" in out, out
        rc, status = sh(f"systemctl show {UNIT}.service -p ExecMainStatus")
        assert status.strip() == "ExecMainStatus=2", status
    finally:
        sh(f"rm -f {drop_in} && systemctl daemon-reload && systemctl reset-failed {UNIT}.service")
    rc, out = sh(f"flock {REPORTS}/.lock sh -c 'systemctl start {UNIT}.service; systemctl show {UNIT}.service "
                 f"-p ExecMainStatus'", timeout=120)
    assert "ExecMainStatus=75" in out, out
    sh(f"systemctl reset-failed {UNIT}.service")
