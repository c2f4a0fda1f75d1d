"""`provnet vc readiness` on the converged lab: the media probe installed, every endpoint ready, then
each fault of issue 7 reported at exactly its layer, on its endpoint only, and repaired.

Runs after test_30_converge (endpoints registered at Kamailio). Each fault test takes a baseline
run first and compares with it, so an endpoint that is not ready for another reason does not hide
(or fake) the fault's effect; `test_province_is_ready` states the done criterion on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provnet import model
from provnet.lab import faults
from provnet.vc.readiness import LAYERS

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROVNET = str(BIN / "provnet")


def readiness(*args: str, timeout: float = 600) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([PROVNET, "vc", "readiness", "--json", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout)


def rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["site"]: r for r in data["endpoints"]}


def short(data: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {s: (r["verdict"], r["layer"], r["reason"][:160]) for s, r in rows(data).items()}


def repair(cmd: str) -> None:
    if cmd.startswith("provnet lab fault clear") or cmd.startswith("provnet lab up"):
        return  # faults.clear() below undoes it (and powers a stopped endpoint host back on)
    if cmd.startswith("provnet net deploy"):
        subprocess.run([PROVNET, *cmd.split()[1:]], check=True, cwd=REPO, capture_output=True, timeout=600)
    else:
        assert cmd.startswith("ansible-playbook"), cmd
        subprocess.run([str(BIN / "ansible-playbook"), *cmd.split()[1:]], check=True, cwd=REPO,
                       capture_output=True, timeout=1200)


def wait_back(site: str, before: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
    """Poll the site until its endpoint is back where the baseline had it."""
    deadline = time.monotonic() + timeout
    while True:
        _, data = readiness("--scope", f"site {site}")
        row = rows(data)[site]
        if (row["verdict"], row["layer"]) == (before["verdict"], before["layer"]) or time.monotonic() > deadline:
            return row
        time.sleep(10)


def settle(timeout: float = 300) -> dict[str, Any]:
    """Wait until layers 1-5 pass everywhere: the `lab` fixture's `province.up` (and `lab fault clear`
    after a stopped host) restarts the PE's FRR, and every site's eBGP takes a minute or two back."""
    deadline = time.monotonic() + timeout
    while True:
        rc, data = readiness("--scope", "province", "--until", "signalling")
        if rc == 0 or time.monotonic() > deadline:
            return data
        time.sleep(10)


@pytest.fixture(scope="module", autouse=True)
def settled(lab: model.Model) -> None:
    data = settle()
    assert all(r["verdict"] != "not ready" for r in data["endpoints"]), short(data)


def test_probe_role_applies(lab: model.Model) -> None:
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory/lab", "playbooks/vc_probe.yml"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    again = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory/lab", "playbooks/vc_probe.yml"],
                           capture_output=True, text=True, cwd=REPO, timeout=900)
    assert again.returncode == 0 and "changed=0" in again.stdout.splitlines()[-2], again.stdout[-2000:]


def test_province_is_ready(lab: model.Model) -> None:
    rc, data = readiness("--scope", "province")
    endpoints = data["endpoints"]
    assert len(endpoints) == sum(1 for d in lab.devices.values() if d.role == "endpoint")
    assert rc == 0 and all(r["verdict"] == "ready" for r in endpoints), short(data)
    for r in endpoints:
        m = r["figures"]["media"]
        assert m["established"] and m["loss_pct"] is not None, r
        for stream in ("audio", "video"):
            s = m[stream]
            assert s["flowing"] and s["tx_packets"] > 0 and s["rx_packets"] > 0, (r["site"], stream, s)
        assert m["video"]["codec"] == "VP8" and m["video"]["rx_size"] == "176x144", m["video"]
    assert data["summary"]["layer_timings"]["media"]["count"] == len(endpoints)


# (fault, site, the layer it must be reported at, verdict, words the reason must hold)
FAULTS = [
    ("wan-down", "cao-loc", "wan", "not ready", "has no BGP route"),
    ("frr-stop", "dong-dang", "wan", "not ready", "FRR is not running on CE dong-dang-ce"),
    ("endpoint-host-stop", "chi-lang", "endpoint-host", "not ready", "does not answer ping"),
    ("endpoint-stop", "huyen-chi-lang", "registration|signalling", "not ready", ""),
    ("sip-password", "huyen-cao-loc", "registration", "not ready", "is not registered"),
    ("rtp-block", "quan-son", "media", "not ready", "media does not flow"),
    ("loss", "dong-dang", "media", "degraded", "media degraded: loss"),
]


@pytest.mark.parametrize("kind,site,layer,verdict,words", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_is_reported_at_its_layer(lab: model.Model, kind: str, site: str, layer: str, verdict: str,
                                        words: str) -> None:
    settle()
    _, base = readiness("--scope", "province")
    before = rows(base)
    allowed = layer.split("|")
    lowest = min(LAYERS.index(l) for l in allowed)
    b = before[site]
    assert b["verdict"] != "not ready" or LAYERS.index(b["layer"]) > lowest, \
        f"{site} is already not ready at or below {layer} before the fault: {b['layer']}: {b['reason']}"
    fault = faults.inject(lab, kind, site, percent=10)
    try:
        if kind in ("sip-password", "endpoint-stop"):
            time.sleep(3)  # baresip unregisters as it stops; the restart with the wrong password is refused
        if kind in ("wan-down", "frr-stop"):
            time.sleep(5)  # the PE withdraws the site's routes
        rc, data = readiness("--scope", "province")
        after = rows(data)
        row = after[site]
        assert row["layer"] in allowed and row["verdict"] == verdict, (row["layer"], row["verdict"], row["reason"])
        assert words in row["reason"], row["reason"]
        if verdict == "not ready":
            assert rc == 1
        # nowhere else: every other endpoint is where the baseline had it
        for other, r in after.items():
            if other != site:
                assert (r["verdict"], r["layer"]) == (before[other]["verdict"], before[other]["layer"]), \
                    (other, r["layer"], r["reason"], before[other]["layer"])
    finally:
        repair(fault.repair)
        faults.clear(lab)
        if kind == "endpoint-host-stop":  # powered back on factory-fresh: converge the site again
            repair(f"ansible-playbook playbooks/site.yml --limit site_{site.replace('-', '_')}")
    back = wait_back(site, b)
    assert (back["verdict"], back["layer"]) == (b["verdict"], b["layer"]), back["reason"]


def test_bridge_shell_survives_more_channels_than_sshd_allows(lab: model.Model) -> None:
    """30 commands at once on one connection to the bridge host, whose sshd allows MaxSessions 12:
    the refused channels wait and retry, none of the others is cut off, every command answers."""
    from concurrent.futures import ThreadPoolExecutor

    from provnet.drivers.ssh import lab_key
    from provnet.vc.probes import BridgeShell

    bridge = lab.devices[lab.services["bridge"]]
    shell = BridgeShell(bridge.ansible_host, (lab.credentials["admin_user"],), lab_key(), False, channels=30)
    try:
        with ThreadPoolExecutor(30) as pool:
            results = list(pool.map(lambda i: shell.run(f"sleep 0.3; echo ok-{i}", timeout=60), range(90)))
    finally:
        shell.close()
    assert [(r.rc, r.out.strip()) for r in results] == [(0, f"ok-{i}") for i in range(90)]
    assert shell.retries["channel_refused"] > 0 and shell.retries["reconnect"] == 0, shell.retries
