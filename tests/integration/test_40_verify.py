"""`provnet verify` on the converged lab: all green, then each fault found at its root, nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provnet import model
from provnet.lab import faults

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPO = Path(__file__).resolve().parents[2]
PROVNET = str(Path(sys.executable).parent / "provnet")


def verify(*args: str) -> tuple[int, list[dict]]:
    proc = subprocess.run([PROVNET, "verify", "--json", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout)


def repair(cmd: str) -> None:
    if cmd.startswith("provnet lab fault clear"):
        subprocess.run([PROVNET, "lab", "fault", "clear"], check=True, cwd=REPO, capture_output=True)
    elif cmd.startswith("provnet net deploy"):
        subprocess.run([PROVNET, *cmd.split()[1:]], check=True, cwd=REPO, capture_output=True)
    else:
        assert cmd.startswith("ansible-playbook"), cmd
        subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), *cmd.split()[1:]], check=True,
                       cwd=REPO, capture_output=True)


def wait_until_green(site: str, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rc, data = verify("--site", site)
        if rc == 0 or time.monotonic() > deadline:
            return data
        time.sleep(5)


def test_verify_all_passes_with_reports(lab: model.Model, tmp_path: Path) -> None:
    junit, html = tmp_path / "verify.xml", tmp_path / "verify.html"
    proc = subprocess.run([PROVNET, "verify", "--all", "--junit", str(junit), "--html", str(html)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("tests")) > 50 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0
    page = html.read_text()
    for s in lab.sites.values():
        assert s.name in page


FAULTS = [  # (fault, site, the root-cause check expected, its layer)
    ("frr-stop", "dong-dang", "frr is running", "wan"),
    ("wan-down", "cao-loc", "wan link is up", "wan"),
    ("fw-rule-delete", "chi-lang", "active ruleset equals intended", "firewall"),
    ("endpoint-stop", "huyen-chi-lang", "baresip is running", "endpoint"),
    ("sip-password", "huyen-cao-loc", "endpoint is registered", "registration"),
    ("rsyslog-stop", "quan-son", "syslog forwarding to the soc", "logging"),
]


@pytest.mark.parametrize("kind,site,check,layer", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_localised_to_its_root_cause(lab: model.Model, kind: str, site: str, check: str, layer: str) -> None:
    fault = faults.inject(lab, kind, site)
    try:
        if kind == "sip-password":
            time.sleep(3)
        rc, data = verify("--all")
        assert rc == 1
        failing = [v for v in data if not v["ok"]]
        assert [v["site"] for v in failing] == [site], [(v["site"], v["root_cause"]) for v in failing]
        verdict = failing[0]
        roots = [f for f in verdict["findings"] if f["root_cause"]]
        assert len(roots) == 1, roots
        assert roots[0]["check"] == check and roots[0]["layer"] == layer, roots[0]
        for f in verdict["findings"]:
            if not f["ok"] and not f["skipped"] and not f["root_cause"]:
                assert f["blocked_by"].endswith(check), f
    finally:
        repair(fault.repair)
        faults.clear(lab)
    after = wait_until_green(site)
    assert all(v["ok"] for v in after), [v["root_cause"] for v in after if not v["ok"]]
