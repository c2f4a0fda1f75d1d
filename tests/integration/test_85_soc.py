"""The SOC on the converged lab: real attacks replayed inside the lab raise exactly their alerts.

Every node forwards its syslog to dc-soc; rsyslog normalises it (mmnormalize), provnet-soc stores it and
runs the Sigma rules every 20 s (provnet-soc-detect.timer). Runs after the rest of the suite on the shared
lab: first the quiet check (nothing the suite did by design raised an attack alert), then each attack
and its alert, read back with `provnet soc alerts --json` as an analyst would.

In the lab only the management station reaches a node's sshd (every node's firewall drops the rest: those
attempts are drops, seen by the port-scan rule), so the SSH brute force comes from it (198.19.0.1).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from provnet import model
from provnet.lab import node, province
from provnet.soc import sigma

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ATTACK_RULES = {"provnet_ssh_brute_force", "provnet_ssh_failed_burst", "provnet_port_scan",
                "provnet_sip_register_brute_force", "provnet_new_admin_source", "provnet_commit_outside_change_window",
                "provnet_unit_keeps_failing"}
#: what earlier tests power off on purpose (test_50_readiness's endpoint-host-stop): its chronyd stops for real
POWERED_OFF = {"chi-lang-vc"}
STARTED: list[float] = []   # when the attacks began (the watched fixture)

#: SIP REGISTERs with a wrong password (digest over the registrar's nonce), N times, from the endpoint
SIP_GUESS = r"""
import hashlib, random, re, socket, sys
registrar, port, local, user, domain, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((local, 0)); s.settimeout(2)
lport = s.getsockname()[1]; call = "%x@%s" % (random.getrandbits(64), local); refused = 0
def register(cseq, auth=""):
    msg = (f"REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local}:{lport};branch=z9hG4bK{random.getrandbits(48):x}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{user}@{domain}>;tag={random.getrandbits(32):x}\r\nTo: <sip:{user}@{domain}>\r\n"
           f"Call-ID: {call}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}:{lport}>\r\nExpires: 60\r\n"
           f"{auth}Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), (registrar, port))
    return s.recv(4096).decode(errors="replace")
md5 = lambda t: hashlib.md5(t.encode()).hexdigest()
for i in range(n):
    answer = register(2 * i + 1)
    nonce = re.search(r'nonce="([^"]+)"', answer).group(1)
    uri = f"sip:{domain}"
    response = md5(f"{md5(f'{user}:{domain}:not-the-password-{i}')}:{nonce}:{md5(f'REGISTER:{uri}')}")
    auth = (f'Authorization: Digest username="{user}", realm="{domain}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5\r\n')
    refused += register(2 * i + 2, auth).startswith("SIP/2.0 401")
print(refused)
"""

#: a TCP sweep of N ports from the endpoint toward a DC server (its CE drops and logs each)
SWEEP = r"""
import socket, sys
from concurrent.futures import ThreadPoolExecutor
target, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def probe(p):
    s = socket.socket(); s.settimeout(1.0)
    try: return s.connect_ex((target, p))
    except OSError: return -1
    finally: s.close()
with ThreadPoolExecutor(16) as pool: print(list(pool.map(probe, range(first, first + n))))
"""


def soc(*args: str) -> dict[str, Any]:
    proc = subprocess.run([str(BIN / "provnet"), "soc", *args, "--json"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert proc.returncode == 0 and data["ok"], data
    return data


def alerts(since: str = "6h") -> list[dict[str, Any]]:
    return soc("alerts", "--since", since)["alerts"]


def wait_alert(rule: str, since_ts: float, timeout: float = 90) -> list[dict[str, Any]]:
    """The alerts of ``rule`` whose last event is at or after ``since_ts``, once the detect timer raised one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [a for a in alerts("1h") if a["rule_name"] == rule and _ts(a["last_event"]) >= since_ts - 1]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(5)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_on(host: str, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return node.exec(host, argv, province.lab_dir(), timeout=timeout)


@pytest.fixture(scope="module")
def watched(lab: model.Model) -> model.Model:
    """The SOC's pipeline is up: its timer is active and the store has this minute's events."""
    host = lab.services["syslog"]
    state = run_on(host, ["systemctl", "is-active", "provnet-soc-detect.timer", "rsyslog"]).stdout.split()
    assert state == ["active", "active"], state
    run_on(host, ["systemctl", "start", "provnet-soc-detect.service"])
    assert soc("events", "--site", "dong-dang", "--since", "1h", "--limit", "5")["events"], "no event of dong-dang stored"
    STARTED.append(time.time())
    return lab


def test_a_quiet_converged_lab_raised_no_attack_alert(watched: model.Model) -> None:
    """The whole suite converged, rolled out, retired, verified and faulted the lab by design: no attack rule
    fired but where a fault the suite injects is exactly what the rule looks for (named below)."""
    lab = watched
    seen = alerts("6h")
    # what the suite does on purpose, and the rules rightly see: it breaks endpoints' registrations again and
    # again (test_40/test_50 give one a wrong SIP password, stop clients, restart the registrar, roll a site
    # out with a fault), and each endpoint retries — a registration brute force from a lab endpoint's own
    # address; the management station logs in to an in-band site from its in-band address after its
    # out-of-band one (a new admin source). Anything else, or these from any other address, fails.
    # Endpoints are the site LANs' only SIP clients; test_80's rolled-out-then-retired sites are no longer in the
    # model, and their endpoints kept retrying until retire stopped them, so a site LAN pool, not today's list.
    site_lans = [ipaddress.ip_network(n) for n in lab.site_supernets()[1:]]
    station = {str(a.ip) for a in (lab.controller_oob, lab.controller_data) if a is not None}

    def from_a_site_lan(source: str) -> bool:
        try:
            return any(ipaddress.ip_address(source) in n for n in site_lans)
        except ValueError:
            return False

    def explained(a: dict[str, Any]) -> bool:
        source = str((a.get("group") or {}).get("source.ip"))
        return (a["rule_name"] == "provnet_sip_register_brute_force" and from_a_site_lan(source)) or \
            (a["rule_name"] == "provnet_new_admin_source" and source in station)

    raised = [(a["rule_name"], a["site"], a["hosts"], a.get("group")) for a in seen
              if a["rule_name"] in ATTACK_RULES and not explained(a)]
    assert raised == [], raised
    # every converge restarts chrony somewhere: a restart is no "time service stopped"
    stopped = [a["hosts"] for a in seen if a["rule_name"] == "provnet_time_service_stopped"]
    assert all(set(h) <= POWERED_OFF for h in stopped), stopped


def test_ssh_brute_force_from_one_address_then_a_success(watched: model.Model, tmp_path: Path) -> None:
    lab = watched
    key = tmp_path / "guess"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    start = time.time()
    for host in ("dong-dang-ce", lab.services["sip_registrar"]):
        address = str(lab.devices[host].oob_address.ip)  # type: ignore[union-attr]
        argv = province.ssh_argv(address, "attacker")
        argv[argv.index("-i") + 1] = str(key)
        for _ in range(6):
            subprocess.run([*argv, "-o", "IdentitiesOnly=yes", "true"], capture_output=True, timeout=30)
        time.sleep(1.5)  # events carry whole seconds: the success is then after the burst, as a real one is
        ok = subprocess.run([*province.ssh_argv(address, province.login_user(lab, address)), "true"],
                            capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    found = wait_alert("provnet_ssh_brute_force", start)
    by_host = {tuple(a["hosts"]): a for a in found}
    assert set(by_host) == {("dong-dang-ce",), (lab.services["sip_registrar"],)}, found
    assert by_host[("dong-dang-ce",)]["site"] == "dong-dang" and by_host[(lab.services["sip_registrar"],)]["site"] == "dc"
    assert all(a["count"] >= 6 and "198.19.0.1" in json.dumps(a["group"]) for a in found), found


def test_a_port_sweep_from_a_commune_toward_the_dc_servers(watched: model.Model) -> None:
    lab = watched
    target = str(lab.service_address("ntp"))
    start = time.time()
    res = run_on("dong-dang-vc", ["python3", "-c", SWEEP, target, "2000", "30"])
    assert res.returncode == 0, res.stderr
    assert all(code != 0 for code in json.loads(res.stdout)), res.stdout  # every one dropped on the way
    (alert,) = wait_alert("provnet_port_scan", start)
    assert alert["site"] == "dong-dang" and alert["hosts"] == ["dong-dang-ce"], alert
    assert str(lab.devices["dong-dang-vc"].data_address) in json.dumps(alert["group"]) and alert["count"] >= 20


def test_sip_registrations_with_a_wrong_password(watched: model.Model) -> None:
    lab = watched
    ep = lab.devices["dong-dang-vc"]
    start = time.time()
    res = run_on(ep.hostname, ["python3", "-c", SIP_GUESS, str(lab.service_address("sip_registrar")),
                               str(lab.sip_port), str(ep.data_address), ep.sip.user, lab.sip_domain, "12"])  # type: ignore[union-attr]
    assert res.returncode == 0 and res.stdout.strip() == "12", res.stdout + res.stderr  # each guess refused
    (alert,) = wait_alert("provnet_sip_register_brute_force", start)
    assert alert["hosts"] == [lab.services["sip_registrar"]] and alert["count"] >= 10, alert
    assert str(ep.data_address) in json.dumps(alert["group"]), alert


def test_an_engine_commit_outside_the_change_window(watched: model.Model, tmp_path: Path) -> None:
    """A real commit (its audit line from the device) against the rules compiled with a window that excludes
    this hour: the lab's own window is the whole day, so its tests' commits raise nothing."""
    lab = watched
    host = "dong-dang-ce"
    assert lab.soc.change_window == "00:00-24:00"
    run_on(host, ["vtysh", "-c", "conf t", "-c", "ip route 198.18.250.0/24 Null0"])
    start = time.time()
    proc = subprocess.run([str(BIN / "provnet"), "net", "deploy", "--commit", "--ticket", "CHG-SOC-85", "--limit", host,
                           "--json"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    hour = datetime.now(timezone.utc).hour
    window = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"   # never this hour nor the next
    compiled = sigma.compile_sqlite(parameters={"change_window": window, "utc_offset": "+00:00"})
    soc_host = lab.services["syslog"]
    path = "/var/lib/provnet-soc/test-85-compiled.json"
    write = node.exec(soc_host, ["sh", "-c", f"cat > {path}"], province.lab_dir(), input=json.dumps(compiled))
    assert write.returncode == 0, write.stderr

    def raised() -> list[dict[str, Any]]:
        run_on(soc_host, ["/usr/local/sbin/provnet-soc", "ingest"])
        run_on(soc_host, ["/usr/local/sbin/provnet-soc", "detect", "--compiled", path, "--no-syslog"])
        return [a for a in alerts("1h") if a["rule_name"] == "provnet_commit_outside_change_window"
                and _ts(a["last_event"]) >= start - 1]

    deadline, found = time.monotonic() + 60, []
    while not found and time.monotonic() < deadline:
        found = raised() or (time.sleep(5) or [])
    run_on(soc_host, ["rm", "-f", path])
    assert [(a["site"], a["hosts"]) for a in found] == [("dong-dang", [host])], found


def test_chrony_stopped_on_a_node(watched: model.Model) -> None:
    """chronyd stopped and not started again within a minute (a restart, as every converge does, is not)."""
    host = "chi-lang-vc"
    start = time.time()
    assert run_on(host, ["systemctl", "stop", "chrony"]).returncode == 0
    try:
        found = [a for a in wait_alert("provnet_time_service_stopped", start, timeout=150) if a["hosts"] == [host]]
    finally:
        run_on(host, ["systemctl", "start", "chrony"])
    assert [a["site"] for a in found] == ["chi-lang"], found


def test_each_attack_raised_only_its_own_alert(watched: model.Model) -> None:
    """Across the attacks above, the attack rules fired exactly where they were aimed, nowhere else."""
    since = STARTED[0]
    raised = sorted({(a["rule_name"], a["site"], tuple(a["hosts"])) for a in alerts("1h")
                     if a["rule_name"] in ATTACK_RULES | {"provnet_time_service_stopped"} and _ts(a["last_event"]) >= since})
    sip = watched.services["sip_registrar"]
    assert raised == sorted({
        ("provnet_commit_outside_change_window", "dong-dang", ("dong-dang-ce",)),
        ("provnet_port_scan", "dong-dang", ("dong-dang-ce",)),
        ("provnet_sip_register_brute_force", "dc", (sip,)),
        ("provnet_ssh_brute_force", "dc", (sip,)),
        ("provnet_ssh_brute_force", "dong-dang", ("dong-dang-ce",)),
        ("provnet_time_service_stopped", "chi-lang", ("chi-lang-vc",)),
    }), raised
