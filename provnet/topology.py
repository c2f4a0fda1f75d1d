"""Neighbours computed from the topology: BGP peer, upstream router, zones behind, bridges, gateway.

Part of every device's hostvars (so Ansible roles and templates read the same facts).
"""

from __future__ import annotations

from typing import Any

from provnet.model import Device, Model


def _addr(m: Model, host: str, segment: str) -> str | None:
    for i in m.devices[host].interfaces if host in m.devices else m.pe.interfaces:
        if i.segment == segment and i.address is not None:
            return str(i.address.ip)
    return None


def routing_context(m: Model, dev: Device) -> dict[str, Any]:
    """Neighbours computed from the topology: the BGP peer, the upstream, the zones behind."""
    ctx: dict[str, Any] = {"provnet_bgp_peer": None, "provnet_upstream": None, "provnet_behind": [],
                           "provnet_bridges": [], "provnet_gateway": None, "provnet_controller":
                           {"oob": str(m.controller_oob.ip) if m.controller_oob else None,
                            "data": str(m.controller_data.ip) if m.controller_data else None,
                            "zone": str(m.controller_data.network) if m.controller_data else None}}
    segs = {s.name: s for s in m.segments}
    for iface in dev.interfaces:
        seg = segs.get(iface.segment)
        if seg is None:
            continue
        if seg.kind == "wan":
            ctx["provnet_bgp_peer"] = {"address": _addr(m, m.pe.hostname, seg.name), "asn": m.carrier_asn,
                                       "interface": iface.name}
        if seg.kind == "lan" and dev.role != "ce":
            ce = next(h for h, _ in seg.members if m.devices[h].role == "ce")
            ctx["provnet_gateway"] = _addr(m, ce, seg.name)
    if dev.role == "firewall":
        for iface in dev.interfaces:
            seg = segs[iface.segment]
            core = next((h for h, _ in seg.members if h in m.devices and m.devices[h].role == "core"), None)
            if core:
                ctx["provnet_upstream"] = _addr(m, core, seg.name)
    if dev.role == "core":
        for seg in m.segments:
            if seg.kind != "dc" or any(h == dev.hostname for h, _ in seg.members):
                continue
            fw = next((h for h, _ in seg.members if h in m.devices and m.devices[h].role == "firewall"), None)
            if fw is None:
                continue
            via = next((_addr(m, fw, s.name) for s in m.segments if s.kind == "dc"
                        and any(h == fw for h, _ in s.members) and any(h == dev.hostname for h, _ in s.members)), None)
            ctx["provnet_behind"].append({"prefix": str(seg.subnet), "via": via})
    if dev.role == "switch":
        for seg in m.segments:
            if seg.switch != dev.hostname:
                continue
            own = next((i for i in dev.interfaces if i.segment == seg.name and i.address), None)
            router = next((h for h, _ in seg.members if h in m.devices and m.devices[h].role in ("firewall", "core")), None)
            ctx["provnet_bridges"].append({
                "name": f"br{seg.vlan or 0}", "vlan": seg.vlan,
                "ports": [i for h, i in seg.members if h == dev.hostname and i.startswith("p")],
                "address": str(own.address) if own else None,
                "gateway": _addr(m, router, seg.name) if router else None})
    elif dev.level == "dc" and dev.role not in ("core", "firewall"):
        for iface in dev.interfaces:
            seg = segs[iface.segment]
            router = next((h for h, _ in seg.members if h in m.devices and m.devices[h].role == "firewall"), None)
            if router:
                ctx["provnet_gateway"] = _addr(m, router, seg.name)
    return ctx


