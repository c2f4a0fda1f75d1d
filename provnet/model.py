"""The compiled model: one object holding the province, read by everything.

:func:`compile_source` turns a validated :class:`provnet.sot.Source` into a
:class:`Model` — sites, devices, interfaces, links, addresses and services.
Consumers (Ansible plugin, renderer, lab, engine, tests, VC) read this model
and never re-derive a fact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, Literal

from provnet import ipam, schema, sot
from provnet.errors import InventoryError, Problem
from provnet.ipam import PoolExhausted
from provnet.neighbours import Neighbours
from provnet.neighbours import resolve as resolve_neighbours

Level = Literal["dc", "province", "district", "commune", "carrier"]
ROUTER_ROLES = ("ce", "core", "firewall")


@dataclass(frozen=True)
class Interface:
    """One data-plane interface of a node, on one L2 segment."""

    name: str
    segment: str
    address: IPv4Interface | None = None
    peer: str | None = None          # the node across this interface's cable (none on a switched zone's host side)


@dataclass(frozen=True)
class SipAccount:
    """An endpoint's account at the DC registrar (password is a vault reference)."""

    user: str
    extension: str
    domain: str
    display_name: str
    password_ref: str

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"


@dataclass(frozen=True)
class Device:
    """A managed device (or the carrier's PE, which is not managed)."""

    hostname: str
    role: str
    platforms: tuple[str, ...]
    level: Level
    index: int
    site: str | None = None
    district: str | None = None
    interfaces: tuple[Interface, ...] = ()
    loopback: IPv4Address | None = None
    asn: int | None = None
    oob_address: IPv4Interface | None = None
    management: Literal["oob", "inband"] = "oob"
    sip: SipAccount | None = None
    neighbours: Neighbours = field(default_factory=Neighbours)

    @property
    def platform(self) -> str:
        """The primary platform (first listed)."""
        return self.platforms[0]

    @property
    def ansible_host(self) -> str:
        """Where the controller reaches the device: out-of-band when the model has it."""
        if self.management == "oob" and self.oob_address is not None:
            return str(self.oob_address.ip)
        if self.loopback is not None:
            return str(self.loopback)
        for iface in self.interfaces:
            if iface.address is not None:
                return str(iface.address.ip)
        raise ValueError(f"{self.hostname} has no management address")

    @property
    def data_address(self) -> IPv4Address | None:
        """The device's first data-plane address (where its services listen)."""
        return next((i.address.ip for i in self.interfaces if i.address is not None), None)

    def interface(self, name: str) -> Interface:
        return next(i for i in self.interfaces if i.name == name)


@dataclass(frozen=True)
class Lan:
    """One VLAN of a site: its id, subnet and the CE's gateway address."""

    name: str
    vlan: int
    subnet: IPv4Network
    gateway: IPv4Interface


@dataclass(frozen=True)
class Site:
    """A district or commune with its WAN circuit and LANs — or a province-level hall, whose LANs
    the DC firewall routes (no CE, no carrier circuit: ``asn``, ``loopback`` and ``wan*`` are None)."""

    id: int
    code: str
    name: str
    slug: str
    level: Literal["province", "district", "commune"]
    kind: str
    district: str | None
    circuit_id: str                  # "" for a province-level hall
    contact_name: str
    contact_phone: str
    bandwidth_mbps: int
    management: Literal["oob", "inband"]
    asn: int | None
    loopback: IPv4Address | None
    wan: IPv4Network | None
    wan_pe: IPv4Interface | None
    wan_ce: IPv4Interface | None
    lans: dict[str, Lan]
    devices: tuple[str, ...]
    oob_block: IPv4Network | None
    router: str                      # the device that routes its LANs: its CE, or the DC firewall

    @property
    def via_carrier(self) -> bool:
        """Whether the site hangs off the carrier's PE (every district and commune) or off the DC."""
        return self.wan is not None

    @property
    def prefixes(self) -> tuple[IPv4Network, ...]:
        """The site's own prefixes: its CE's loopback (when it has one) and its LANs."""
        own = (IPv4Network(self.loopback),) if self.loopback is not None else ()
        return own + tuple(l.subnet for l in self.lans.values())


@dataclass(frozen=True)
class Segment:
    """An L2 segment: a WAN /31, a site VLAN or a DC zone, with its members."""

    name: str
    kind: Literal["wan", "lan", "dc"]
    subnet: IPv4Network
    members: tuple[tuple[str, str], ...]
    vlan: int | None = None
    switch: str | None = None
    site: str | None = None


@dataclass(frozen=True)
class Link:
    """A point-to-point cable (a veth pair in the lab) between two node interfaces."""

    a: tuple[str, str]
    b: tuple[str, str]
    segment: str


@dataclass(frozen=True)
class Model:
    """The compiled province."""

    root: Path
    name: str
    code: int | None
    production: bool
    carrier_name: str
    carrier_asn: int
    dc_asn: int
    sip_domain: str
    sip_port: int
    sip_transport: str              # udp | tls: how endpoints reach the registrar
    sip_tls_port: int
    rtp_ports: tuple[int, int]
    register_interval: int
    max_expires: int
    sip_rpc_port: int
    sites: dict[str, Site]
    devices: dict[str, Device]
    pe: Device
    segments: tuple[Segment, ...]
    links: tuple[Link, ...]
    services: dict[str, str]
    oob_network: IPv4Network | None
    controller_oob: IPv4Interface | None
    controller_data: IPv4Interface | None
    controller_gateway: tuple[str, str] | None
    dc_prefixes: tuple[IPv4Network, ...]
    credentials: dict[str, Any]
    vc: schema.Vc
    soc: schema.Soc
    source: sot.Source = field(repr=False, compare=False)

    def halls(self) -> list[Site]:
        """Province-level sites (the People's Committee hall, a department), reached from the DC."""
        return [s for s in self.sites.values() if s.level == "province"]

    def districts(self) -> list[Site]:
        return [s for s in self.sites.values() if s.level == "district"]

    def communes(self) -> list[Site]:
        return [s for s in self.sites.values() if s.level == "commune"]

    def service_address(self, service: str) -> IPv4Address:
        """The data-plane address of the DC server that provides a service."""
        dev = self.devices[self.services[service]]
        if dev.data_address is None:
            raise ValueError(f"service {service}: {dev.hostname} has no data-plane address")
        return dev.data_address

    def sip_accounts(self) -> list[SipAccount]:
        """Every endpoint's account, in site order: what the registrar serves."""
        return [d.sip for d in self.devices.values() if d.sip is not None]

    def registrar_tcp_ports(self) -> list[int]:
        """The TCP ports endpoints reach the registrar on: SIP, and SIP over TLS with ``sip.transport: tls``."""
        return [self.sip_port] + ([self.sip_tls_port] if self.sip_transport == "tls" else [])

    def soc_sites(self) -> dict[str, str]:
        """hostname → the site its events belong to (``labels.site``): its slug, or ``dc`` for the DC."""
        return {h: d.site or "dc" for h, d in self.devices.items()}

    def site_supernets(self) -> list[str]:
        """Every site address lies in these: the loopback pool and the VLAN pools."""
        src = self.source.province
        return [src.pools.loopback] + [v.pool for v in src.vlans.values()]

    def controller_route_via(self) -> str | None:
        """The in-band gateway the controller uses toward the data plane (its zone's router)."""
        if self.controller_gateway is None:
            return None
        host, ifname = self.controller_gateway
        addr = self.devices[host].interface(ifname).address
        return str(addr.ip) if addr else None

    def nodes(self) -> list[Device]:
        """Every node the lab runs: managed devices plus the carrier's PE."""
        return [*self.devices.values(), self.pe]

    def site_devices(self, slug: str) -> list[Device]:
        return [self.devices[h] for h in self.sites[slug].devices]

    def addresses(self) -> list[IPv4Network]:
        """Every address and network the model uses (for the lab's range interlock)."""
        out: list[IPv4Network] = [s.subnet for s in self.segments]
        for dev in self.nodes():
            if dev.oob_address is not None:
                out.append(dev.oob_address.network)
            if dev.loopback is not None:
                out.append(IPv4Network(dev.loopback))
        out.extend(self.dc_prefixes)
        return out

    def secret_refs(self) -> dict[str, str]:
        """Vault names the model needs, with what each one is for."""
        refs = {
            self.credentials["admin_password"]: "admin password",
            self.credentials["snmp"]["auth_key"]: "SNMPv3 auth key",
            self.credentials["snmp"]["priv_key"]: "SNMPv3 priv key",
            self.vc.secret: "conference bridge API and Janus secret",
        }
        for dev in self.devices.values():
            if dev.sip is not None:
                refs[dev.sip.password_ref] = f"SIP password of {dev.hostname}"
        return {k.removeprefix("vault:"): v for k, v in refs.items() if k.startswith("vault:")}


def load(root: Path | str, shown_root: str | None = None) -> Model:
    """Read, validate and compile an inventory folder."""
    return compile_source(sot.read(root, shown_root))


_CACHE: dict[Path, tuple[tuple[tuple[str, int, int], ...], Model]] = {}


def _fingerprint(src: sot.Source) -> tuple[tuple[str, int, int], ...]:
    """The files the model was read from (``sot`` records them) and its site folders' listings."""
    out = []
    for p in src.files:
        try:
            st = p.stat()  # follows symlinks (subset inventories link their site files)
        except OSError:
            out.append((str(p), -1, -1))
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    for folder in src.folders:
        try:
            out.append((str(folder), folder.stat().st_mtime_ns, len(list(folder.iterdir()))))
        except OSError:
            out.append((str(folder), -1, -1))
    return tuple(out)


def load_cached(root: Path | str) -> Model:
    """:func:`load`, memoised per folder while none of its files changes.

    Ansible's inventory plugin compiles the model in the main process; the workers it forks
    for each host inherit this cache, so the ``provnet_config`` action does not compile the
    province once per device.
    """
    key = Path(root).resolve()
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == _fingerprint(hit[1].source):
        return hit[1]
    m = load(root)
    _CACHE[key] = (_fingerprint(m.source), m)
    return m


def compile_source(src: sot.Source) -> Model:
    """Allocate addresses, build the device graph, resolve neighbours; raise on what cannot fit."""
    try:
        m = _compile(src)
    except PoolExhausted as exc:
        raise InventoryError([Problem(src.shown(src.root / sot.PROVINCE_FILE), "pools", str(exc),
                                      "enlarge the pool or lower the index")]) from None
    from provnet import collisions

    problems = collisions.problems(m)
    if problems:
        raise InventoryError(problems)
    return resolve_neighbours(m)


@dataclass
class _Build:
    """What the compile stages accumulate."""

    src: sot.Source
    devices: dict[str, Device] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    pe_ifaces: list[Interface] = field(default_factory=list)
    sites: dict[str, Site] = field(default_factory=dict)

    @property
    def p(self) -> schema.ProvinceFile:
        return self.src.province

    def oob_block(self, n: int) -> IPv4Network | None:
        pools = self.p.pools
        return ipam.oob_block(ipam.net(pools.oob), pools.oob_block_prefix, n) if pools.oob else None


def _compile_dc(b: _Build) -> None:
    """The DC: its devices on their zones, the core's WAN link, switched zones' ports."""
    p = b.p
    dc_link = ipam.wan_link(ipam.net(p.pools.wan), 0)
    dc_lo = ipam.net(p.dc.loopback)
    block0 = b.oob_block(0)
    zone_members: dict[str, list[tuple[str, str]]] = {z: [] for z in p.dc.zones}
    core = next((n for n, d in p.dc.devices.items() if d.role == "core"), None)
    for name, d in sorted(p.dc.devices.items(), key=lambda kv: kv[1].index):
        what = f"dc.devices.{name}"
        ifaces: list[Interface] = []
        if name == core:
            ifaces.append(Interface("wan0", "wan-dc", ipam.wan_ce(dc_link)))
        for zone in d.zones:
            z = p.dc.zones[zone]
            # a switch's own address sits on its bridge for the zone (in-band management)
            ifname = f"br{z.vlan or 0}" if z.switch == name else f"{zone[:12]}0"
            ifaces.append(Interface(ifname, f"dc-{zone}", ipam.host(ipam.net(z.prefix), d.index, what)))
            zone_members[zone].append((name, ifname))
        router = d.role in ROUTER_ROLES
        b.devices[name] = Device(
            hostname=name, role=d.role, platforms=d.platforms(), level="dc", index=d.index,
            interfaces=tuple(ifaces),
            loopback=ipam.host(dc_lo, d.index, what).ip if router else None,
            asn=p.asn_range.start if router else None,
            oob_address=ipam.host(block0, d.index, f"{what} (out-of-band block 0)") if block0 else None,
        )
    b.segments.append(Segment("wan-dc", "wan", dc_link,
                              ((core, "wan0"), (p.carrier.pe_hostname, "dc0")) if core else ()))
    b.pe_ifaces.append(Interface("dc0", "wan-dc", ipam.wan_pe(dc_link)))
    for zone, z in p.dc.zones.items():
        members = tuple(zone_members[zone])
        if z.switch is not None:
            sw = b.devices[z.switch]
            ports = tuple(Interface(f"p{z.vlan or 0}-{b.devices[h].index}", f"dc-{zone}")
                          for h, _ in members if h != z.switch)
            b.devices[z.switch] = replace(sw, interfaces=sw.interfaces + ports)
            members = members + tuple((z.switch, i.name) for i in ports)
        b.segments.append(Segment(f"dc-{zone}", "dc", ipam.net(z.prefix), members, vlan=z.vlan, switch=z.switch))


def _sip_account(p: schema.ProvinceFile, s: schema.SiteFile, hostname: str) -> SipAccount:
    return SipAccount(
        user=s.slug, extension=str(10000 + s.id), domain=p.sip.domain, display_name=s.name,
        password_ref=p.sip.password.replace("{hostname}", hostname.replace("-", "_"))
        .replace("{slug}", s.slug.replace("-", "_")),
    )


HALL_INTERFACE = re.compile(r"^h[0-9]+v[0-9]+$")


def hall_interface(site_id: int, vlan: int) -> str:
    """The DC firewall's interface toward a province-level hall's VLAN (≤ 15 characters; :data:`HALL_INTERFACE`)."""
    return f"h{site_id}v{vlan}"


def _compile_site(b: _Build, s: schema.SiteFile) -> None:
    """One site: its WAN /31 to the PE (a hall: its VLANs on the DC firewall), its VLANs, its devices."""
    p = b.p
    hall = s.level == "province"
    # a hall's id still owns its /31 and loopback in the pools (ipam is by id): unused, never reallocated
    link = ipam.wan_link(ipam.net(p.pools.wan), s.id)
    lo = ipam.loopback(ipam.net(p.pools.loopback), s.id)
    lans = {}
    for vname, v in sorted(p.vlans.items(), key=lambda kv: kv[1].id):
        subnet = ipam.lan(ipam.net(v.pool), v.prefix, s.id)
        lans[vname] = Lan(vname, v.id, subnet, ipam.host(subnet, 1, f"site '{s.slug}' VLAN {vname}"))
    block = b.oob_block(s.id)
    lan_members: dict[str, list[tuple[str, str]]] = {v: [] for v in lans}
    fw = next((h for h, d in b.devices.items() if d.level == "dc" and d.role == "firewall"), None) if hall else None
    if fw is not None:
        own = tuple(Interface(hall_interface(s.id, l.vlan), f"lan-{s.slug}-{vname}", l.gateway)
                    for vname, l in lans.items())
        b.devices[fw] = replace(b.devices[fw], interfaces=b.devices[fw].interfaces + own)
        for vname, l in lans.items():
            lan_members[vname].append((fw, hall_interface(s.id, l.vlan)))
    hostnames = []
    for hostname, (key, d) in sorted(sot.site_devices(s, p).items(), key=lambda kv: kv[1][1].index):
        hostnames.append(hostname)
        what = f"site '{s.slug}' device {key}"
        ifaces = []
        if d.role == "ce":
            ifaces.append(Interface("wan0", f"wan-{s.slug}", ipam.wan_ce(link)))
            for vname, l in lans.items():
                ifaces.append(Interface(f"vl{l.vlan}", f"lan-{s.slug}-{vname}", ipam.host(l.subnet, d.index, what)))
                lan_members[vname].append((hostname, f"vl{l.vlan}"))
        elif d.vlan is not None:
            ifaces.append(Interface("eth0", f"lan-{s.slug}-{d.vlan}", ipam.host(lans[d.vlan].subnet, d.index, what)))
            lan_members[d.vlan].append((hostname, "eth0"))
        b.devices[hostname] = Device(
            hostname=hostname, role=d.role, platforms=d.platforms(), level=s.level, index=d.index,
            site=s.slug, district=s.slug if s.level == "district" else s.district,
            interfaces=tuple(ifaces),
            loopback=lo if d.role == "ce" else None,
            asn=ipam.asn(p.asn_range.start, s.id) if d.role == "ce" else None,
            oob_address=ipam.host(block, d.index, what + " (out-of-band)") if block else None,
            management=s.management, sip=_sip_account(p, s, hostname) if d.role == "endpoint" else None,
        )
    ce = next((h for h in hostnames if b.devices[h].role == "ce"), None)
    if ce is not None and not hall:
        pe_if = f"ce{s.id}"
        b.pe_ifaces.append(Interface(pe_if, f"wan-{s.slug}", ipam.wan_pe(link)))
        b.segments.append(Segment(f"wan-{s.slug}", "wan", link, ((ce, "wan0"), (p.carrier.pe_hostname, pe_if)),
                                  site=s.slug))
    for vname, l in lans.items():
        b.segments.append(Segment(f"lan-{s.slug}-{vname}", "lan", l.subnet, tuple(lan_members[vname]),
                                  vlan=l.vlan, site=s.slug))
    b.sites[s.slug] = Site(
        id=s.id, code=s.code, name=s.name, slug=s.slug, level=s.level, kind=s.kind,
        district=s.district, circuit_id=s.circuit_id or "", contact_name=s.contact.name,
        contact_phone=s.contact.phone,
        bandwidth_mbps=s.bandwidth_mbps or p.site_defaults.bandwidth_mbps,
        management=s.management, lans=lans, devices=tuple(hostnames), oob_block=block,
        router=(fw if hall else ce) or "",
        **({"asn": None, "loopback": None, "wan": None, "wan_pe": None, "wan_ce": None} if hall else
           {"asn": ipam.asn(p.asn_range.start, s.id), "loopback": lo, "wan": link,
            "wan_pe": ipam.wan_pe(link), "wan_ce": ipam.wan_ce(link)}),
    )


def _compile(src: sot.Source) -> Model:
    b = _Build(src)
    p = b.p
    _compile_dc(b)
    for s in sorted(src.sites, key=lambda s: s.id):
        _compile_site(b, s)
    block0 = b.oob_block(0)
    pe = Device(
        hostname=p.carrier.pe_hostname, role="pe", platforms=("frr",), level="carrier", index=2,
        interfaces=tuple(b.pe_ifaces), asn=p.carrier.asn,
        oob_address=ipam.host(block0, 2, "carrier PE (out-of-band block 0)") if block0 else None,
    )
    controller_data = controller_gateway = None
    if p.dc.controller_zone is not None:
        zone = ipam.net(p.dc.zones[p.dc.controller_zone].prefix)
        controller_data = ipam.host(zone, 1, "controller (dc.controller_zone host 1)")
        seg = next(s for s in b.segments if s.name == f"dc-{p.dc.controller_zone}")
        controller_gateway = next(((h, i) for h, i in seg.members if b.devices[h].role in ROUTER_ROLES), None)
    dc_prefixes = (ipam.net(p.dc.loopback),) + tuple(ipam.net(z.prefix) for z in p.dc.zones.values())
    return Model(
        root=src.root, name=p.province.name, code=p.province.code, production=p.province.production,
        carrier_name=p.carrier.name, carrier_asn=p.carrier.asn, dc_asn=p.asn_range.start,
        sip_domain=p.sip.domain, sip_port=p.sip.port, rtp_ports=p.sip.rtp_ports,
        sip_transport=p.sip.transport, sip_tls_port=p.sip.tls_port,
        register_interval=p.sip.register_interval, max_expires=p.sip.max_expires, sip_rpc_port=p.sip.rpc_port,
        sites=b.sites, devices=b.devices, pe=pe, segments=tuple(b.segments), links=_links(b.segments),
        services=p.services.model_dump(), oob_network=ipam.net(p.pools.oob) if p.pools.oob else None,
        controller_oob=ipam.host(block0, 1, "controller (out-of-band block 0)") if block0 else None,
        controller_data=controller_data, controller_gateway=controller_gateway,
        dc_prefixes=dc_prefixes, credentials=p.credentials.model_dump(), vc=p.vc, soc=p.soc, source=src,
    )


def _links(segments: list[Segment]) -> tuple[Link, ...]:
    """Cables: a two-member segment is one cable; a switched zone is one cable per port.

    A segment with a single member (a VLAN with nothing attached yet) has no cable;
    the lab gives that interface a stub so it exists as the model says.
    """
    out: list[Link] = []
    for seg in segments:
        if seg.switch is not None:
            hosts = [m for m in seg.members if m[0] != seg.switch]
            ports = [m for m in seg.members if m[0] == seg.switch and m[1].startswith("p")]
            out.extend(Link(h, p, seg.name) for h, p in zip(hosts, ports))
        elif len(seg.members) == 2:
            out.append(Link(seg.members[0], seg.members[1], seg.name))
        elif len(seg.members) > 2:
            raise InventoryError([Problem("province.yml", f"segment {seg.name}",
                                          f"{len(seg.members)} members on one segment without a switch",
                                          "give the zone a 'switch'")])
    return tuple(out)


__all__ = ["Model", "Link", "Site", "Device", "Interface", "Segment", "Lan", "SipAccount", "load",
           "compile_source", "schema"]
