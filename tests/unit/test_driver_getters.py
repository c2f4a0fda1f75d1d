"""The Linux drivers' getters on a fake SSH session: their output matches provnet/drivers/models.py.

The answers below are simulated, written after iproute2's and FRR's JSON formats (``ip -j``,
``vtysh -c '… json'``) for a lab CE; no socket is opened.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from provnet.drivers import models
from provnet.drivers.baresip import BaresipDriver
from provnet.drivers.frr import FrrDriver
from provnet.drivers.linux import LinuxDriver, make_bundle
from provnet.drivers.nftables import NftablesDriver
from provnet.drivers.ssh import Result, Step

LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536, "operstate": "UNKNOWN",
     "address": "00:00:00:00:00:00"},
    {"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
     "operstate": "UP", "address": "02:42:c6:13:00:0b", "ifalias": "management"},
    {"ifindex": 3, "ifname": "wan0", "flags": ["BROADCAST", "MULTICAST"], "mtu": 1500, "operstate": "DOWN",
     "address": "02:42:c6:12:00:05"},
]
ADDRS = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8},
                                   {"family": "inet6", "local": "::1", "prefixlen": 128}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "198.19.0.11", "prefixlen": 16}]},
    {"ifname": "wan0", "addr_info": []},
]
BGP_SUMMARY = {"routerId": "198.18.128.1", "as": 65101, "vrfId": 0, "vrfName": "default",
               "peers": {"198.18.0.1": {"remoteAs": 65000, "state": "Established", "peerUptimeMsec": 123400,
                                        "pfxRcd": 4, "pfxSnt": 2, "desc": "carrier PE"},
                         "198.18.0.9": {"remoteAs": 65000, "state": "Active", "peerUptimeMsec": 0}}}
ROUTES = {"198.18.130.0/24": [{"prefix": "198.18.130.0/24", "protocol": "bgp", "selected": True,
                               "nexthops": [{"ip": "198.18.0.1", "interfaceName": "wan0"}]}],
          "198.18.128.1/32": [{"prefix": "198.18.128.1/32", "protocol": "connected", "selected": True,
                               "nexthops": [{"interfaceName": "lo"}]}]}
REGINFO = '52:{"response":true,"ok":true,"data":"ua: sip:dong-dang@vc.lab OK"},'


class FakeSSH:
    """Answers a command by the first key it contains (``cat -- PATH`` from ``files``); records what
    was run and counts the execs (a batch of ``run_many`` is one)."""

    def __init__(self, answers: dict[str, tuple[int, str]], files: dict[str, str] | None = None) -> None:
        self.answers, self.files, self.ran, self.execs = answers, files or {}, [], 0

    def _answer(self, command: str) -> Result:
        self.ran.append(command)
        if command.startswith("cat -- "):
            text = self.files.get(shlex.split(command)[2])
            return Result(0, text, "") if text is not None else Result(1, "", "No such file or directory")
        for key, (rc, out) in self.answers.items():
            if key in command:
                return Result(rc, out, "")
        return Result(1, "", f"unexpected command: {command}")

    def run(self, command: str, timeout: float | None = None) -> Result:
        self.execs += 1
        return self._answer(command)

    def run_many(self, steps: list[Step], stop_on_error: bool = False, timeout: float | None = None) -> list[Result]:
        self.execs += 1
        results = []
        for step in steps:
            results.append(self._answer(step if isinstance(step, str) else step[0]))
            if stop_on_error and results[-1].rc != 0:
                break
        return results


def _linux_answers() -> dict[str, tuple[int, str]]:
    facts = "dong-dang-ce\n5023.41 9871.02\n6.1.0-18-amd64\nDebian GNU/Linux 12 (bookworm)\neth0\nlo\nwan0\n"
    return {"hostname; cat /proc/uptime": (0, facts), "ip -j -s link show": (0, json.dumps(LINKS)),
            "ip -j addr show": (0, json.dumps(ADDRS))}


def _driver(cls: type[LinuxDriver], answers: dict[str, tuple[int, str]], **files: str) -> Any:
    drv = cls("198.19.0.11", "netops")
    drv.ssh = FakeSSH(answers, files)  # type: ignore[assignment]
    return drv


def _check(drv: Any, getter: str) -> Any:
    value = getattr(drv, getter)()
    assert models.shape_errors(value, models.GETTERS[getter]) == [], (type(drv).__name__, getter, value)
    return value


@pytest.mark.parametrize("getter", ["get_facts", "get_interfaces", "get_interfaces_ip", "get_bgp_neighbors"])
def test_linux_getters_match_their_shapes(getter: str) -> None:
    _check(_driver(NftablesDriver, _linux_answers()), getter)


def test_linux_facts_and_interfaces() -> None:
    drv = _driver(NftablesDriver, _linux_answers())
    facts = _check(drv, "get_facts")
    assert facts["hostname"] == "dong-dang-ce" and facts["uptime"] == 5023.41
    assert facts["interface_list"] == ["eth0", "lo", "wan0"] and "6.1.0-18" in facts["os_version"]
    ifs = _check(drv, "get_interfaces")
    assert ifs["eth0"]["is_up"] and ifs["eth0"]["description"] == "management"
    assert not ifs["wan0"]["is_up"] and not ifs["wan0"]["is_enabled"]
    ips = _check(drv, "get_interfaces_ip")
    assert ips["eth0"] == {"ipv4": {"198.19.0.11": {"prefix_length": 16}}} and "wan0" not in ips


def test_frr_bgp_neighbors_and_route_table() -> None:
    answers = {"systemctl is-active -q frr": (0, ""), "show bgp ipv4 unicast summary json": (0, json.dumps(BGP_SUMMARY)),
               "show ip route json": (0, json.dumps(ROUTES)), **_linux_answers()}
    drv = _driver(FrrDriver, answers)
    bgp = _check(drv, "get_bgp_neighbors")["global"]
    assert bgp["router_id"] == "198.18.128.1"
    up, down = bgp["peers"]["198.18.0.1"], bgp["peers"]["198.18.0.9"]
    assert up["is_up"] and up["uptime"] == 123.4 and up["address_family"]["ipv4"]["received_prefixes"] == 4
    assert not down["is_up"] and down["address_family"]["ipv4"]["sent_prefixes"] == -1 and down["state"] == "Active"
    rib = _check(drv, "get_route_table")
    assert rib["198.18.130.0/24"] == [{"protocol": "bgp", "selected": True, "nexthops": ["198.18.0.1"]}]
    assert rib["198.18.128.1/32"][0]["nexthops"] == ["lo"]


def test_frr_getters_when_frr_is_down() -> None:
    drv = _driver(FrrDriver, {"systemctl is-active -q frr": (3, "")})
    assert _check(drv, "get_bgp_neighbors") == {"global": {"router_id": "", "peers": {}}}
    assert _check(drv, "get_route_table") == {}


def test_baresip_registration_and_facts() -> None:
    drv = _driver(BaresipDriver, {"python3 -": (0, REGINFO + "\n"), **_linux_answers()})
    assert _check(drv, "get_registration") == {"running": True, "raw": REGINFO}
    assert _check(drv, "get_facts")["vendor"] == "baresip"
    down = _driver(BaresipDriver, {})
    assert _check(down, "get_registration")["running"] is False


def test_linux_get_config_is_a_bundle() -> None:
    drv = _driver(NftablesDriver, {"nft -s list ruleset": (0, "table inet filter {\n}\n")},
                  **{"/etc/nftables.conf": "flush ruleset\n"})
    config = _check(drv, "get_config")
    assert config["running"] == make_bundle({"nftables.conf": "flush ruleset\ntable inet filter {\n}\n"})
    assert config["startup"] == make_bundle({"nftables.conf": "flush ruleset\n"}) and config["candidate"] == ""
    assert drv.ssh.execs == 1  # the file and the live ruleset in one command


def test_frr_get_config_reads_files_and_the_running_config_in_one_command() -> None:
    running = "Building configuration...\n\nCurrent configuration:\nfrr version 8.4\nhostname ce\nend\n"
    drv = _driver(FrrDriver, {"vtysh -c 'show running-config'": (0, running)},
                  **{"/etc/frr/frr.conf": "hostname old\n", "/etc/frr/daemons": "bgpd=yes\n"})
    config = _check(drv, "get_config")
    assert config["running"] == make_bundle({"frr.conf": "\nfrr version 8.4\nhostname ce\n", "daemons": "bgpd=yes\n"})
    assert config["startup"] == make_bundle({"frr.conf": "hostname old\n", "daemons": "bgpd=yes\n"})
    assert drv.ssh.execs == 1
    down = _driver(FrrDriver, {"vtysh -c 'show running-config'": (3, "")}, **{"/etc/frr/frr.conf": "hostname old\n"})
    assert _check(down, "get_config")["running"] == make_bundle({"frr.conf": "hostname old\n"})
