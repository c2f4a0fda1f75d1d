"""The compile stage that reads the topology: each device's neighbours, as fields of the device.

Runs once, after addresses are allocated (:func:`provnet.model.compile_source`): the BGP peer,
the default gateway, the firewall's upstream, the core's routes to the zones (and halls) behind
the firewall, a switch's bridges, and who sits across each cable. Hostvars, templates, the lab
and the VC probes read these fields; nothing re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provnet.model import Device, Model, Segment


@dataclass(frozen=True)
class BgpPeer:
    """A router's eBGP neighbour: the carrier's PE across the WAN /31."""

    address: IPv4Address
    asn: int
    interface: str
    local: IPv4Address          # this device's own address on that interface (the session's source)


@dataclass(frozen=True)
class Route:
    """A static route: a DC zone (or a province-level hall's VLAN) reached through the firewall."""

    prefix: IPv4Network
    via: IPv4Address | None


@dataclass(frozen=True)
class Bridge:
    """One bridge of a switch: a DC zone's VLAN with its ports and the switch's own address."""

    name: str
    vlan: int | None
    ports: tuple[str, ...]
    address: IPv4Interface | None
    gateway: IPv4Address | None


@dataclass(frozen=True)
class Neighbours:
    """What the topology says about one device."""

    bgp_peer: BgpPeer | None = None
    customers: tuple[BgpPeer, ...] = ()   # the PE only: every router that peers with it, in segment order
    gateway: IPv4Address | None = None
    upstream: IPv4Address | None = None
    behind: tuple[Route, ...] = ()
    bridges: tuple[Bridge, ...] = ()


class _Graph:
    """Segment lookups over the compiled devices (the PE included)."""

    def __init__(self, m: Model) -> None:
        self.m = m
        self.nodes = {d.hostname: d for d in m.nodes()}
        self.segments = {s.name: s for s in m.segments}

    def address(self, host: str, segment: str) -> IPv4Address | None:
        for i in self.nodes[host].interfaces:
            if i.segment == segment and i.address is not None:
                return i.address.ip
        return None

    def member(self, seg: Segment, *roles: str) -> str | None:
        """The first member of a segment with one of these roles."""
        return next((h for h, _ in seg.members if h in self.m.devices and self.m.devices[h].role in roles), None)

    def shares(self, a: str, b: str) -> list[Segment]:
        return [s for s in self.m.segments if s.kind == "dc" and {a, b} <= {h for h, _ in s.members}]


def _of(g: _Graph, dev: Device) -> Neighbours:
    peer = gateway = upstream = None
    behind: list[Route] = []
    bridges: list[Bridge] = []
    for iface in dev.interfaces:
        seg = g.segments.get(iface.segment)
        if seg is None:
            continue
        if seg.kind == "wan":
            pe_addr = g.address(g.m.pe.hostname, seg.name)
            if pe_addr is not None and iface.address is not None:
                peer = BgpPeer(pe_addr, g.m.carrier_asn, iface.name, iface.address.ip)
        elif seg.kind == "lan" and dev.role not in ("ce", "firewall"):
            router = g.member(seg, "ce", "firewall")  # a province-level hall's VLANs end on the DC firewall
            gateway = g.address(router, seg.name) if router else None
        elif seg.kind == "dc" and dev.role == "firewall":
            core = g.member(seg, "core")
            if core:
                upstream = g.address(core, seg.name)
        elif seg.kind == "dc" and dev.role not in ("core", "firewall", "switch"):
            fw = g.member(seg, "firewall")
            if fw:
                gateway = g.address(fw, seg.name)
    if dev.role == "core":
        for seg in g.m.segments:
            if seg.kind not in ("dc", "lan") or any(h == dev.hostname for h, _ in seg.members):
                continue
            fw = g.member(seg, "firewall")
            if fw is None:
                continue
            via = next((g.address(fw, s.name) for s in g.shares(fw, dev.hostname)), None)
            behind.append(Route(seg.subnet, via))
    if dev.role == "switch":
        for seg in g.m.segments:
            if seg.switch != dev.hostname:
                continue
            own = next((i.address for i in dev.interfaces if i.segment == seg.name and i.address), None)
            router = g.member(seg, "firewall", "core")
            bridges.append(Bridge(f"br{seg.vlan or 0}", seg.vlan,
                                  tuple(i for h, i in seg.members if h == dev.hostname and i.startswith("p")),
                                  own, g.address(router, seg.name) if router else None))
    return Neighbours(bgp_peer=peer, gateway=gateway, upstream=upstream, behind=tuple(behind), bridges=tuple(bridges))


def _customers(g: _Graph) -> tuple[BgpPeer, ...]:
    """The carrier PE's eBGP neighbours: the router across each WAN /31 (the DC core, every CE)."""
    out = []
    pe = g.m.pe
    for seg in g.m.segments:
        if seg.kind != "wan" or not seg.members:
            continue
        host, ifname = next((h, i) for h, i in seg.members if h != pe.hostname)
        own = next(i for i in pe.interfaces if i.segment == seg.name)
        router = g.m.devices[host]
        addr = g.address(host, seg.name)
        if addr is not None and router.asn is not None and own.address is not None:
            out.append(BgpPeer(addr, router.asn, own.name, own.address.ip))
    return tuple(out)


def _peers(m: Model) -> dict[tuple[str, str], str]:
    """(host, interface) → the host across its cable."""
    out: dict[tuple[str, str], str] = {}
    for link in m.links:
        out[link.a] = link.b[0]
        out[link.b] = link.a[0]
    return out


def resolve(m: Model) -> Model:
    """The model with every device's neighbours filled in."""
    g = _Graph(m)
    peers = _peers(m)
    devices: dict[str, Device] = {}
    for name, dev in m.devices.items():
        ifaces = tuple(replace(i, peer=peers.get((name, i.name))) for i in dev.interfaces)
        devices[name] = replace(dev, interfaces=ifaces, neighbours=_of(g, dev))
    pe = replace(m.pe, interfaces=tuple(replace(i, peer=peers.get((m.pe.hostname, i.name))) for i in m.pe.interfaces),
                 neighbours=Neighbours(customers=_customers(g)))
    return replace(m, devices=devices, pe=pe)
