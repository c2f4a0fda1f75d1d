"""A one-screen province summary: per site, BGP to the PE, endpoint registration, last log at the SOC."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from provnet.engine import device
from provnet.errors import ProvnetError
from provnet.model import Model

SOC_DIR = "/var/log/remote"


@dataclass
class SiteStatus:
    site: str
    name: str
    bgp: str
    registration: str
    last_log: str


def _bgp(ctx: device.Context, m: Model, host: str, peer: str) -> str:
    try:
        peers = device.get(ctx, host, "get_bgp_neighbors")["global"]["peers"]
    except (ProvnetError, OSError) as exc:
        return f"unreachable ({str(exc)[:40]})"
    return str(peers.get(peer, {}).get("state") or "no session")


def _soc_ages(ctx: device.Context, m: Model) -> dict[str, float]:
    from provnet.drivers.ssh import SSH, lab_key

    soc = m.devices[m.services["syslog"]]
    ssh = SSH(soc.ansible_host, (m.credentials["admin_user"], "root"), lab_key(), production=m.production).open()
    try:
        out = ssh.run(f"now=$(date +%s); for d in {SOC_DIR}/*/; do "
                      f"printf '%s %s\\n' $(basename $d) $((now - $(stat -c %Y $d/syslog.log 2>/dev/null || echo 0))); done").out
    finally:
        ssh.close()
    return {name: float(age) for name, age in (l.split() for l in out.splitlines() if len(l.split()) == 2)}


def collect(m: Model) -> list[SiteStatus]:
    from provnet.vc import kamailio

    ctx = device.Context.build(m)
    registrar = m.devices[m.services["sip_registrar"]]
    try:
        regs: dict[str, Any] = kamailio.KamailioRpc(registrar.ansible_host, m.sip_rpc_port,
                                                    production=m.production).ul_dump()
    except (ProvnetError, OSError):
        regs = {}
    try:
        ages = _soc_ages(ctx, m)
    except (ProvnetError, OSError):
        ages = {}

    def one(slug: str) -> SiteStatus:
        site = m.sites[slug]
        ce = next((h for h in site.devices if m.devices[h].role == "ce"), None)
        vc = next((m.devices[h] for h in site.devices if m.devices[h].role == "endpoint"), None)
        bgp = _bgp(ctx, m, ce, str(site.wan_pe.ip)) if ce else "-"
        reg = "-"
        if vc is not None and vc.sip is not None:
            r = kamailio.find(regs, vc.sip.aor)
            reg = f"registered ({r.user_agent or 'unknown agent'})" if r and r.active else "NOT registered"
        logs = [ages[h] for h in site.devices if h in ages]
        last = f"{min(logs):.0f} s ago" if logs else "none"
        return SiteStatus(slug, site.name, bgp, reg, last)

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, sorted(m.sites, key=lambda s: m.sites[s].id)))

