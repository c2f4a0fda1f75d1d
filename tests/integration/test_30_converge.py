"""The province converged with Ansible: site.yml, idempotence, check mode, real traffic, bad input.

Runs after the lab and engine tests on the shared session lab: the network devices may already
be converged by the engine, the servers and the nodes' base are at factory default on a fresh
lab. Timings of the runs are printed (``pytest -s``) and kept in ``RESULTS``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provnet import model
from provnet.lab import node, province

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESULTS: dict[str, float] = {}
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_FORCE_COLOR": "0",
                **(env or {})}
    return subprocess.run([str(BIN / "ansible-playbook"), *args], cwd=REPO, capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


def recap(out: str) -> dict[str, dict[str, int]]:
    return {h: {"ok": int(ok), "changed": int(ch), "unreachable": int(un), "failed": int(fa)}
            for h, ok, ch, un, fa in RECAP.findall(out)}


def sh(host: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return node.exec(host, ["sh", "-c", command], province.lab_dir(), timeout=timeout)


def wait(predicate, timeout: float = 60, step: float = 2.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def managed(m: model.Model) -> list[str]:
    return sorted(m.devices)


@pytest.fixture(scope="module")
def converged(lab: model.Model) -> model.Model:
    started = time.monotonic()
    first = playbook("playbooks/site.yml")
    RESULTS["site.yml first run (s)"] = round(time.monotonic() - started, 1)
    print(f"\nsite.yml first run: {RESULTS['site.yml first run (s)']} s", flush=True)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    hosts = recap(first.stdout)
    assert set(hosts) == set(managed(lab))
    assert all(v["failed"] == 0 and v["unreachable"] == 0 for v in hosts.values()), hosts
    return lab


def test_a_second_run_changes_nothing(converged: model.Model) -> None:
    started = time.monotonic()
    second = playbook("playbooks/site.yml")
    RESULTS["site.yml second run (s)"] = round(time.monotonic() - started, 1)
    print(f"\nsite.yml second run: {RESULTS['site.yml second run (s)']} s", flush=True)
    assert second.returncode == 0, second.stdout[-6000:]
    hosts = recap(second.stdout)
    assert set(hosts) == set(managed(converged))
    assert {h: v["changed"] for h, v in hosts.items() if v["changed"]} == {}, second.stdout[-6000:]


def test_check_diff_on_a_converged_province_reports_no_change(converged: model.Model) -> None:
    started = time.monotonic()
    check = playbook("playbooks/site.yml", "--check", "--diff")
    RESULTS["site.yml --check --diff (s)"] = round(time.monotonic() - started, 1)
    assert check.returncode == 0, check.stdout[-6000:]
    hosts = recap(check.stdout)
    assert {h: v["changed"] for h, v in hosts.items() if v["changed"]} == {}, check.stdout[-6000:]


def test_every_ce_has_its_ebgp_session_established(converged: model.Model) -> None:
    def state(site: model.Site) -> tuple[str, str]:
        def up() -> str | None:
            out = sh(f"{site.slug}-ce", "vtysh -c 'show bgp summary json'").stdout
            peers = json.loads(out or "{}").get("ipv4Unicast", {}).get("peers", {})
            s = peers.get(str(site.wan_pe.ip), {}).get("state")
            return s if s == "Established" else None
        return site.slug, wait(up, 60) or "not Established"

    with ThreadPoolExecutor(8) as pool:
        states = dict(pool.map(state, [s for s in converged.sites.values() if s.via_carrier]))
    assert states == {s.slug: "Established" for s in converged.sites.values() if s.via_carrier}


PROBE = r"""
import socket, struct, sys, json
out = {}
def tcp(name, host, port, timeout=3):
    s = socket.socket(); s.settimeout(timeout)
    try:
        s.connect((host, port)); out[name] = "open"
    except socket.timeout:
        out[name] = "timeout"
    except OSError as e:
        out[name] = "refused" if e.errno == 111 else str(e)
    finally:
        s.close()
def ntp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    try:
        s.sendto(b"\x23" + 47 * b"\0", (host, 123)); data, _ = s.recvfrom(128)
        out["ntp"] = "stratum %d" % data[1]
    except OSError as e:
        out["ntp"] = str(e)
sip, ntp_host, syslog, blocked = sys.argv[1:5]
tcp("sip", sip, 5060); tcp("syslog", syslog, 514); ntp(ntp_host); tcp("blocked", ntp_host, 22)
print(json.dumps(out))
"""


def test_each_commune_lan_reaches_its_dc_services_and_nothing_else(converged: model.Model) -> None:
    svc = {n: str(converged.devices[h].interfaces[0].address.ip) for n, h in converged.services.items()}

    def probe(host: str) -> tuple[str, dict[str, str]]:
        res = node.exec(host, ["python3", "-c", PROBE, svc["sip_registrar"], svc["ntp"], svc["syslog"], "22"],
                        province.lab_dir())
        return host, json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr}

    endpoints = [h for h, d in converged.devices.items() if d.role == "endpoint"]
    with ThreadPoolExecutor(8) as pool:
        results = dict(pool.map(probe, endpoints))
    for host, r in results.items():
        assert r.get("sip") == "open" and r.get("syslog") == "open", (host, r)
        assert r.get("ntp", "").startswith("stratum"), (host, r)
        assert r.get("blocked") == "timeout", (host, r)  # dropped by the CE (a hall: the DC firewall), not by sshd


def test_every_endpoint_is_registered_at_kamailio(converged: model.Model) -> None:
    sip = converged.devices[converged.services["sip_registrar"]]
    url = f"http://{sip.ansible_host}:5080/RPC"
    users = {d.sip.user for d in converged.devices.values() if d.sip is not None}

    def registered() -> set[str] | None:
        req = urllib.request.Request(url, data=json.dumps({"jsonrpc": "2.0", "method": "ul.dump",
                                                           "params": ["brief"], "id": 1}).encode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            doc = json.load(resp)
        aors = {a["AoR"] for d in doc["result"]["Domains"] for a in d["Domain"]["AoRs"]}
        return aors if aors >= users else None

    assert wait(registered, 60) is not None, f"not all of {sorted(users)} registered"


def test_registrations_outlive_a_restart_of_the_registrar(converged: model.Model) -> None:
    """usrloc writes through to db_text: right after a restart every AOR is back with the contact it had
    (its last REGISTER unchanged: read from the table, not re-sent — endpoints re-register every
    sip.register_interval, 120 s)."""
    from provnet.vc import kamailio

    host = converged.services["sip_registrar"]
    rpc = kamailio.KamailioRpc(converged.devices[host].ansible_host, converged.sip_rpc_port)
    users = {d.sip.user for d in converged.devices.values() if d.sip is not None}  # usrloc keys (no domain)
    before = wait(lambda: (lambda r: r if users <= set(r) else None)(rpc.ul_dump()), 60)
    assert before, "not every endpoint registered before the restart"
    pid = sh(host, "systemctl show -p MainPID --value kamailio").stdout.strip()
    assert sh(host, "systemctl restart kamailio").returncode == 0
    assert sh(host, "systemctl show -p MainPID --value kamailio").stdout.strip() != pid

    def answers() -> dict[str, kamailio.Registration] | None:
        try:
            return rpc.ul_dump()
        except kamailio.RpcError:
            return None

    after = wait(answers, 20, 0.2)
    assert after is not None, "the registrar's RPC did not come back after the restart"
    kept = {a for a, r in before.items() if a in after and after[a].contact == r.contact
            and after[a].last_modified == r.last_modified}
    assert kept == set(before), f"lost or re-registered after the restart: {sorted(set(before) - kept)}"


def test_the_endpoint_reports_its_registration_over_its_control_interface(converged: model.Model) -> None:
    from provnet.engine import device

    ctx = device.Context.build(converged)
    reg = wait(lambda: (lambda r: r if r.get("running") and "OK" in r.get("raw", "") else None)(
        device.get(ctx, "dong-dang-vc", "get_registration")), 30)
    assert reg, device.get(ctx, "dong-dang-vc", "get_registration")
    assert '"response":true' in reg["raw"].replace(" ", "") and "dong-dang" in reg["raw"]


@pytest.mark.parametrize("host", sorted(model.load(REPO / "inventory" / "lab").devices))
def test_every_nodes_syslog_arrives_at_the_soc(converged: model.Model, host: str) -> None:
    soc = converged.services["syslog"]
    token = f"provnet-test-{host}-{time.time_ns()}"
    sh(host, f"logger -t provnet-test {token}")
    found = wait(lambda: sh(soc, f"grep -rl {token} /var/log/remote/").stdout.strip(), 30)
    assert found == f"/var/log/remote/{host}/syslog.log"


def test_an_engine_commit_leaves_its_audit_line_at_the_soc(converged: model.Model) -> None:
    """The engine's commit writes who/ticket/diff on the device, and rsyslog carries it to the SOC."""
    from provnet.engine import run

    host, soc = "dong-dang-ce", converged.services["syslog"]
    ticket = f"SOC-{time.time_ns()}"
    sh(host, "vtysh -c 'configure terminal' -c 'ip prefix-list HAND seq 5 permit 198.18.250.0/24'")
    (result,) = run.run(converged, "deploy", host, commit=True, ticket=ticket)
    assert result.status == "changed", result
    found = wait(lambda: sh(soc, f"grep -h {ticket} /var/log/remote/{host}/syslog.log").stdout, 30)
    assert "frr commit: user=" in found and f"ticket={ticket}" in found and "diff=" in found
    assert "HAND" not in sh(host, "vtysh -c 'show running-config'").stdout  # converged again


@pytest.mark.parametrize("host", sorted(model.load(REPO / "inventory" / "lab").devices))
def test_every_nodes_chrony_tracks_the_dc_ntp(converged: model.Model, host: str) -> None:
    ntp_host = converged.services["ntp"]
    ntp = str(converged.devices[ntp_host].interfaces[0].address.ip)
    if host == ntp_host:
        out = sh(host, "chronyc -n tracking").stdout
        assert "Stratum         : 8" in out or "Local" in out, out  # serves its own clock (local stratum 8)
        return
    selected = wait(lambda: f"^* {ntp}" in sh(host, "chronyc -n sources").stdout, 60)
    assert selected, sh(host, "chronyc -n sources").stdout
    assert "pool" not in sh(host, "grep -v '^#' /etc/chrony/chrony.conf").stdout


SEND = r"""
import socket, sys
sip, bridge, rtp = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"OPTIONS sip:probe SIP/2.0\r\n\r\n", (sip, 5060))
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("0.0.0.0", rtp))
for _ in range(3):
    r.sendto(b"\x80\x00" + 10 * b"\0", (bridge, rtp))
"""


def test_sip_and_rtp_leave_each_site_with_their_dscp_marks(converged: model.Model) -> None:
    svc = {n: str(converged.devices[h].interfaces[0].address.ip) for n, h in converged.services.items()}
    rtp = converged.rtp_ports[0] + 100

    def capture(site: model.Site) -> tuple[str, str]:
        ce, vc = f"{site.slug}-ce", f"{site.slug}-vc"
        sh(ce, "rm -f /tmp/dscp.txt; (timeout 12 tcpdump -l -n -v -i wan0 -c 4 "
               f"'udp and ((dst port 5060 and (ip[1] & 0xfc) = 0x60) or (dst port {rtp} and (ip[1] & 0xfc) = 0x88))' "
               "> /tmp/dscp.txt 2>/dev/null &)")
        time.sleep(2)
        node.exec(vc, ["python3", "-c", SEND, svc["sip_registrar"], svc["bridge"], str(rtp)], province.lab_dir())
        text = wait(lambda: (t := sh(ce, "cat /tmp/dscp.txt").stdout) and "tos 0x88" in t and "tos 0x60" in t and t, 12)
        return site.slug, text or sh(ce, "cat /tmp/dscp.txt").stdout

    with ThreadPoolExecutor(6) as pool:
        captures = dict(pool.map(capture, [s for s in converged.sites.values() if s.via_carrier]))
    for slug, text in captures.items():
        assert "tos 0x60" in text, (slug, "SIP not marked CS3", text)   # CS3 = 24 << 2
        assert "tos 0x88" in text, (slug, "RTP not marked AF41", text)  # AF41 = 34 << 2


# ---------------------------------------------------------------- bad input


def test_a_missing_role_variable_fails_at_argument_specs_naming_it(converged: model.Model, tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("- hosts: dc-sip\n  gather_facts: false\n  roles: [sip_registrar]\n")
    res = playbook("-i", str(REPO / "inventory" / "lab"), str(play), "--check",
                   env={"ANSIBLE_ROLES_PATH": str(REPO / "roles")})
    assert res.returncode != 0
    assert "Validating arguments against arg spec" in res.stdout
    assert "missing required arguments: sip_registrar_accounts" in res.stdout, res.stdout[-3000:]
    assert "TASK [sip_registrar : host" not in res.stdout  # nothing ran before the check (the role is one host call)


def test_an_unreachable_host_fails_only_that_host(converged: model.Model, tmp_path: Path) -> None:
    override = tmp_path / "unreachable.yml"
    override.write_text("all:\n  hosts:\n    cao-loc-vc:\n      ansible_host: 198.18.255.254\n")
    res = playbook("-i", str(REPO / "inventory" / "lab"), "-i", str(override), "playbooks/sites.yml",
                   "--limit", "site_cao_loc,site_dong_dang", "--tags", "site_base",
                   env={"ANSIBLE_INVENTORY_ENABLED": "provnet,yaml"})
    hosts = recap(res.stdout)
    assert res.returncode != 0
    assert hosts["cao-loc-vc"]["failed"] == 1, hosts
    assert "unreachable over SSH at 198.18.255.254" in res.stdout
    for h in ("cao-loc-ce", "dong-dang-ce", "dong-dang-vc"):
        assert hosts[h]["failed"] == 0 and hosts[h]["unreachable"] == 0 and hosts[h]["changed"] == 0, hosts


def test_a_broken_config_never_replaces_the_working_one(converged: model.Model) -> None:
    host = converged.services["sip_registrar"]
    before = sh(host, "sha256sum /etc/kamailio/kamailio.cfg").stdout
    res = playbook("playbooks/dc.yml", "--limit", host, "--tags", "sip_registrar",
                   "-e", json.dumps({"sip_registrar_domain": 'broken"domain'}))
    assert res.returncode != 0
    assert "failed to validate" in res.stdout, res.stdout[-3000:]
    assert sh(host, "sha256sum /etc/kamailio/kamailio.cfg").stdout == before
    assert sh(host, "systemctl is-active kamailio").stdout.strip() == "active"
    test_every_endpoint_is_registered_at_kamailio(converged)
    # and the next normal run still finds nothing to change there
    again = playbook("playbooks/dc.yml", "--limit", host, "--tags", "sip_registrar")
    assert again.returncode == 0 and recap(again.stdout)[host]["changed"] == 0, again.stdout[-3000:]
