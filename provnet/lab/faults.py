"""Fault injection for demos and tests: break one site in one precise way, and undo it.

Each fault names its repair — what an engineer would run — and `clear` undoes every
fault still recorded in the lab's state (for faults whose repair is not a converge).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from provnet.lab import node
from provnet.lab.province import LabError, lab_dir
from provnet.model import Model

FAULTS = {
    "frr-stop": "stop FRR on the site's CE",
    "wan-down": "shut the CE's WAN interface",
    "fw-rule-delete": "delete the CE firewall rule that lets the LAN reach the SIP registrar",
    "endpoint-stop": "stop baresip on the site's endpoint",
    "endpoint-host-stop": "power the endpoint's host off",
    "sip-password": "give the endpoint a wrong SIP password",
    "rsyslog-stop": "stop rsyslog (log forwarding) on the site's CE",
    "rtp-block": "make the CE firewall drop the RTP port range",
    "loss": "drop N % of packets on the site's WAN link (carrier side, nftables numgen)",
}

ENDPOINT_FAULTS = ("endpoint-stop", "sip-password", "endpoint-host-stop")   # the rest act on the site's CE


@dataclass
class Fault:
    kind: str
    site: str
    host: str
    undo: list[str]  # shell run inside `host` by `clear` (empty: the repair is a converge)
    repair: str
    percent: int = 0


def _state() -> Path:
    return lab_dir() / "faults.json"


def active() -> list[Fault]:
    path = _state()
    return [Fault(**f) for f in json.loads(path.read_text())] if path.exists() else []


def _save(faults: list[Fault]) -> None:
    _state().write_text(json.dumps([asdict(f) for f in faults], indent=2) + "\n")


def _run(host: str, script: str) -> str:
    res = node.exec(host, ["sh", "-c", script], lab_dir(), timeout=60)
    if res.returncode != 0:
        raise LabError(f"fault on {host} failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return res.stdout


def inject(m: Model, kind: str, site: str, percent: int = 10) -> Fault:
    """Inject one fault into one site; returns what was done and how to repair it."""
    if kind not in FAULTS:
        raise LabError(f"unknown fault '{kind}'; one of: {', '.join(FAULTS)}")
    if site not in m.sites:
        raise LabError(f"no site '{site}' in {m.root}")
    s = m.sites[site]
    ce = next((h for h in s.devices if m.devices[h].role == "ce"), None)
    vc = next((h for h in s.devices if m.devices[h].role == "endpoint"), None)
    if ce is None and kind not in ENDPOINT_FAULTS:
        raise LabError(f"site {site} has no CE (a province-level hall: its router is {s.router}); "
                       f"fault {kind} needs one — use one of: {', '.join(ENDPOINT_FAULTS)}")
    converge = f"ansible-playbook playbooks/site.yml --limit site_{site.replace('-', '_')}"
    lo, hi = m.rtp_ports
    if kind == "frr-stop":
        _run(ce, "systemctl stop frr")
        f = Fault(kind, site, ce, ["systemctl start frr"], converge)
    elif kind == "wan-down":
        _run(ce, "ip link set wan0 down")
        f = Fault(kind, site, ce, ["ip link set wan0 up"], "provnet lab fault clear (the carrier restores the circuit)")
    elif kind == "fw-rule-delete":
        rules = _run(ce, "nft -a list chain inet provnet lan_to_dc")
        reg = m.service_address("sip_registrar")
        handle = next((h for line in rules.splitlines()
                       if f"ip daddr {reg} udp dport {m.sip_port}" in line
                       for h in re.findall(r"# handle (\d+)", line)), None)
        if handle is None:
            raise LabError(f"{ce}: no SIP rule to delete in chain lan_to_dc")
        _run(ce, f"nft delete rule inet provnet lan_to_dc handle {handle}")
        f = Fault(kind, site, ce, [], f"provnet net deploy --commit --limit {ce}")
    elif kind == "rtp-block":
        _run(ce, f"nft insert rule inet provnet forward udp dport {lo}-{hi} counter drop comment provnet-fault && "
                 f"nft insert rule inet provnet forward udp sport {lo}-{hi} counter drop comment provnet-fault")
        f = Fault(kind, site, ce, [], f"provnet net deploy --commit --limit {ce}")
    elif kind == "rsyslog-stop":
        _run(ce, "systemctl stop rsyslog.service syslog.socket 2>/dev/null; systemctl stop rsyslog")
        f = Fault(kind, site, ce, ["systemctl start rsyslog"], converge)
    elif kind in ENDPOINT_FAULTS:
        if vc is None:
            raise LabError(f"site {site} has no endpoint")
        if kind == "endpoint-stop":
            _run(vc, "systemctl stop baresip")
            f = Fault(kind, site, vc, ["systemctl start baresip"], converge)
        elif kind == "sip-password":
            _run(vc, "sed -i -E 's/auth_pass=[^;]*/auth_pass=wrong-password-injected/' /etc/provnet/baresip/accounts && "
                     "systemctl restart baresip")
            f = Fault(kind, site, vc, [], f"provnet net deploy --commit --limit {vc}")
        else:
            node.stop(vc, lab_dir())
            f = Fault(kind, site, vc, [], "provnet lab up (powers the endpoint host back on)")
    else:  # loss, on the carrier's PE toward the site: the provider's link, not provnet's config
        pe_if = f"ce{s.id}"
        _run(m.pe.hostname, "nft add table inet pvfault 2>/dev/null; "
                            "nft 'add chain inet pvfault pvloss { type filter hook forward priority -10; }' 2>/dev/null; "
                            f"nft add rule inet pvfault pvloss oifname {pe_if} numgen random mod 100 '<' {int(percent)} drop; "
                            f"nft add rule inet pvfault pvloss iifname {pe_if} numgen random mod 100 '<' {int(percent)} drop")
        f = Fault(kind, site, m.pe.hostname, ["nft delete table inet pvfault"], "provnet lab fault clear", percent)
    _save([*active(), f])
    return f


def clear(m: Model) -> list[Fault]:
    """Undo every recorded fault that `clear` can undo; converge-repaired ones are dropped from the record."""
    done = []
    for f in active():
        if f.kind == "endpoint-host-stop":
            from provnet.lab import province

            province.up(m)
        for cmd in f.undo:
            node.exec(f.host, ["sh", "-c", cmd], lab_dir(), timeout=60)
        done.append(f)
    _save([])
    return done


def describe() -> str:
    return "\n".join(f"{k}: {v}" for k, v in FAULTS.items())


