"""The lab province: every node a factory-default system container, wired as the model says."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from provnet import model
from provnet.lab import node, province, sysctl

ssh = province.ssh_run

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]


def test_every_node_answers_ssh_and_runs_systemd_with_no_failed_unit(lab: model.Model) -> None:
    def check(dev: model.Device) -> tuple[str, str]:
        proc = ssh(lab, dev.hostname, "hostname; readlink /proc/1/exe; systemctl is-system-running --wait; "
                                      "systemctl list-units --failed --plain --no-legend | wc -l")
        return dev.hostname, proc.stdout

    with ThreadPoolExecutor(8) as pool:
        results = dict(pool.map(check, lab.nodes()))
    for host, out in results.items():
        lines = out.split()
        assert lines[0] == host, (host, out)
        assert lines[1].endswith("/systemd"), (host, out)
        assert lines[2] == "running", (host, out)
        assert lines[3] == "0", (host, out)


def test_factory_default_nodes_carry_no_data_plane_ipv4(lab: model.Model) -> None:
    proc = ssh(lab, "dong-dang-ce", "ip -j -4 addr show")
    addrs = {(a["ifname"], i["local"]) for a in json.loads(proc.stdout) for i in a.get("addr_info", [])}
    assert {ifname for ifname, _ in addrs} == {"lo", "oob0"}
    for unit in ("frr", "kamailio", "chrony", "nftables"):
        assert ssh(lab, "dong-dang-ce", f"systemctl is-enabled {unit}").stdout.strip() != "enabled"


def _link_local(host: str, ifname: str) -> str:
    proc = node.exec(host, ["ip", "-j", "-6", "addr", "show", "dev", ifname], province.lab_dir())
    info = json.loads(proc.stdout)[0]["addr_info"]
    return next(a["local"] for a in info if a["local"].startswith("fe80"))


def test_every_link_carries_ipv6_link_local(lab: model.Model) -> None:
    sd = province.lab_dir()

    def ping(link: model.Link) -> tuple[model.Link, int]:
        peer = _link_local(*link.b)
        proc = node.exec(link.a[0], ["ping", "-6", "-c", "1", "-W", "3", f"{peer}%{link.a[1]}"], sd)
        return link, proc.returncode

    with ThreadPoolExecutor(8) as pool:
        failed = [l for l, rc in pool.map(ping, lab.links) if rc != 0]
    assert failed == []
    # PE–core, core–fw, 5 switch ports, per site its WAN and its video VLAN cable (a province-level hall: only
    # the video cable, to the DC firewall)
    assert len(lab.links) == 2 + 5 + sum(2 if s.via_carrier else 1 for s in lab.sites.values())


def test_nodes_cannot_change_the_host(lab: model.Model) -> None:
    sd = province.lab_dir()
    for name in ("pe", "dc-core", "quan-son-vc"):
        caps = node.bounding_set(node.leader_pid(name, sd))
        assert not caps & {"sys_time", "sys_module", "sys_boot"}
    assert sysctl.read("net.ipv4.ip_forward") == 0
    # the kernel's one neighbour table (all namespaces) is sized for the full-scale province
    assert sysctl.read("net.ipv4.neigh.default.gc_thresh3") >= sysctl.LAB_LIMITS["net.ipv4.neigh.default.gc_thresh3"]
    # threads compete one by one, not one scheduling group per service (docs/lab.md)
    if sysctl.exists("kernel.sched_autogroup_enabled"):
        assert sysctl.read("kernel.sched_autogroup_enabled") == 0
    assert ssh(lab, "dc-core", "date -s '2001-01-01' >/dev/null 2>&1; echo $?").stdout.strip() != "0"
    assert ssh(lab, "dc-core", "sysctl -w kernel.hostname=evil >/dev/null 2>&1; echo $?").stdout.strip() != "0"


def test_image_reaches_no_mirror_and_no_public_ntp(lab: model.Model) -> None:
    out = ssh(lab, "dc-ntp", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^#' | "
                             "grep -c deb; grep -Ec '^(pool|server) ' /etc/chrony/chrony.conf").stdout.split()
    assert out == ["0", "0"]


def test_the_pe_peers_with_every_ce(lab: model.Model) -> None:
    proc = node.exec("pe", ["vtysh", "-c", "show bgp summary json"], province.lab_dir())
    peers = json.loads(proc.stdout)["ipv4Unicast"]["peers"]
    # every district and commune's CE and the DC core; a province-level hall has no circuit
    assert set(peers) == {str(s.wan_ce.ip) for s in lab.sites.values() if s.wan_ce} | {"198.18.2.1"}


def _pe_frr_pid(lab: model.Model) -> str:
    return node.exec(lab.pe.hostname, ["systemctl", "show", "-P", "MainPID", "frr"], province.lab_dir()).stdout.strip()


def test_up_again_changes_nothing(lab: model.Model) -> None:
    sd = province.lab_dir()
    before = {d.hostname: node.leader_pid(d.hostname, sd) for d in lab.nodes()}
    frr = _pe_frr_pid(lab)
    assert frr not in ("", "0")
    province.up(lab)
    assert {d.hostname: node.leader_pid(d.hostname, sd) for d in lab.nodes()} == before
    assert _pe_frr_pid(lab) == frr  # the carrier's BGP sessions are not reset by a second up


def test_up_recovers_a_killed_node(lab: model.Model) -> None:
    sd = province.lab_dir()
    victim = "chi-lang-vc"
    pid = node.leader_pid(victim, sd)
    os.kill(pid, 9)  # by PID: PID 1 of its namespace, so the whole container dies
    import time

    deadline = time.monotonic() + 10
    while node.is_running(victim, sd) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not node.is_running(victim, sd)
    province.up(lab)
    assert node.is_running(victim, sd)
    assert ssh(lab, victim, "hostname").stdout.strip() == victim
    assert ssh(lab, "chi-lang-ce", f"ping -6 -c1 -W3 {_link_local(victim, 'eth0')}%vl20 >/dev/null; echo $?").stdout.strip() == "0"


def test_up_recovers_what_a_killed_run_leaves(lab: model.Model) -> None:
    """A `lab up` killed half-way leaves a node without its supervisor and a link unwired."""
    sd = province.lab_dir()
    orphan, unwired = "dong-dang-vc", ("chi-lang-ce", "vl20")
    nspawn = int(node.node(orphan, sd).pid_file.read_text().split()[0])
    os.kill(nspawn, 9)  # by PID: the node loses its supervisor (its systemd may outlive it)
    node.exec(unwired[0], ["ip", "link", "del", unwired[1]], sd)
    assert not node.is_running(orphan, sd)
    province.up(lab)
    assert node.is_running(orphan, sd)
    assert ssh(lab, orphan, "hostname").stdout.strip() == orphan
    peer = _link_local("chi-lang-vc", "eth0")
    assert ssh(lab, unwired[0], f"ping -6 -c1 -W3 {peer}%{unwired[1]} >/dev/null; echo $?").stdout.strip() == "0"


def test_status_lists_every_node_running(lab: model.Model) -> None:
    rows = province.status(lab)
    assert {r.name for r in rows} == {d.hostname for d in lab.nodes()}
    assert all(r.state == "running" and r.uptime_s is not None for r in rows)
