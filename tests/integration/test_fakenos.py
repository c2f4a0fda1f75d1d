"""CiscoTpDriver's Netmiko SSH session path against a SIMULATED endpoint (fakenos).

No TelePresence endpoint runs here, so ``fakenos`` (an SSH-speaking simulator) serves
provnet's own ``cisco_tp`` platform (``provnet/fakenos_platforms/cisco_tp.yaml``: simulated
CE-software answers). Simulator and client both run inside a throwaway network namespace
whose only address is 198.18.255.1/32 on its loopback: no socket leaves the lab range,
nothing touches the host's network, and the namespace and the simulator (by PID) are
removed afterwards. Needs root (for the namespace) and fakenos; skipped otherwise.
Does not use the lab.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "provnet" / "fakenos_platforms" / "cisco_tp.yaml"
ADDRESS, PORT = "198.18.255.1", 2222
USER, PASSWORD = "netops", "simulator-only-password"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs root"),
    pytest.mark.skipif(importlib.util.find_spec("fakenos") is None,
                       reason="fakenos is not installed (provnet/fakenos_platforms/requirements.txt)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 is missing"),
]

SERVER = r"""
import sys, time
from fakenos import FakeNOS
platform, address, port, user, password = sys.argv[1:6]
inventory = {"hosts": {"an-nong-vc": {
    "username": user, "password": password, "port": int(port),
    "server": {"plugin": "ParamikoSshServer", "configuration": {"address": address, "timeout": 1}},
    "shell": {"plugin": "CMDShell", "configuration": {
        "intro": "Welcome to an-nong-vc (simulated by fakenos)\nCisco Codec Release ce10.19.1.2\nOK"}},
    "nos": {"plugin": platform},
}}}
net = FakeNOS(inventory=inventory)
net.start()
print("ready", flush=True)
try:
    sys.stdin.read()          # runs until the test closes stdin
finally:
    net.stop()
"""

CLIENT = r"""
import json, sys
from provnet.drivers import get_network_driver
address, port, user, password = sys.argv[1:5]
drv = get_network_driver("cisco_tp")(address, user, password, timeout=20, optional_args={"port": int(port)})
drv.open()
out = {"registration": drv.get_sip_registration(),
       "dial": drv.dial("10001@vc.thanhhoa.gov.vn"),
       "calls": {str(k): v for k, v in drv.get_calls().items()},
       "facts": drv.get_facts()}
drv.close()
out["closed"] = drv.conn is None
print(json.dumps(out))
"""


@pytest.fixture()
def netns() -> Iterator[str]:
    name = f"pvfake-{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ADDRESS}/32", "dev", "lo"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture()
def simulator(netns: str, tmp_path: Path) -> Iterator[str]:
    script = tmp_path / "fakenos_server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, str(script), str(PLATFORM),
                             ADDRESS, str(PORT), USER, PASSWORD],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        yield netns
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()   # this PID only: the simulator this test started
                proc.wait(timeout=5)


def test_cisco_tp_session_path_against_fakenos(simulator: str, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(["ip", "netns", "exec", simulator, sys.executable, str(script), ADDRESS, str(PORT),
                          USER, PASSWORD], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["registration"] == [{"id": 1, "status": "Registered", "reason": "",
                                    "uri": "an-nong@vc.thanhhoa.gov.vn", "registered": True}]
    assert out["dial"]["status"] == "OK" and out["dial"]["call_id"] == 3
    call = out["calls"][str(out["dial"]["call_id"])]
    assert call["status"] == "Connected" and call["remote_number"] == "10001@vc.thanhhoa.gov.vn"
    assert out["facts"]["hostname"] == "an-nong-vc" and out["facts"]["model"] == "Cisco Webex Room Kit"
    assert out["closed"] is True


def test_the_guard_refuses_outside_the_lab_range_before_any_socket() -> None:
    from provnet.drivers.cisco_tp import CiscoTpDriver
    from provnet.errors import AddressRefused

    with pytest.raises(AddressRefused):
        CiscoTpDriver("127.0.0.1", USER, PASSWORD).open()
