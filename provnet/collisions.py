"""After allocation: every address the model assigns belongs to one object only.

Indexes and pools are validated one by one; only the compiled model shows two devices
that landed on one address (two DC servers with one index, a CE and an endpoint with one
index in a VLAN, the controller's host 1 taken by a device). One problem per collision,
naming both objects and their files.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address

from provnet import sot
from provnet.errors import Problem
from provnet.model import Device, Model


def _owner(m: Model, dev: Device) -> tuple[str, str]:
    """Where a device is defined: (file as shown, object)."""
    src = m.source
    if dev.site is None:
        return src.shown(src.root / sot.PROVINCE_FILE), f"dc.devices.{dev.hostname}"
    key = dev.hostname.removeprefix(f"{dev.site}-")
    path = src.site_files.get(dev.site, src.root / sot.SITES_DIR / f"{dev.site}.yml")
    return src.shown(path), f"site '{dev.site}'.devices.{key}"


def _assigned(m: Model) -> Iterator[tuple[IPv4Address, str, str, str]]:
    """(address, what, file, object) for every address the model hands out."""
    prov = m.source.shown(m.source.root / sot.PROVINCE_FILE)
    for dev in m.devices.values():
        shown, obj = _owner(m, dev)
        for i in dev.interfaces:
            if i.address is not None:
                yield i.address.ip, f"{dev.hostname} {i.name}", shown, obj
        if dev.loopback is not None and dev.site is None:  # a site's loopback is its CE's, one per site
            yield dev.loopback, f"{dev.hostname} loopback", shown, obj
        if dev.oob_address is not None:
            yield dev.oob_address.ip, f"{dev.hostname} out-of-band", shown, obj
    if m.pe.oob_address is not None:
        yield m.pe.oob_address.ip, "the carrier PE out-of-band (host 2 of block 0)", prov, "carrier"
    if m.controller_oob is not None:
        yield m.controller_oob.ip, "the controller out-of-band (host 1 of block 0)", prov, "pools.oob"
    if m.controller_data is not None:
        yield m.controller_data.ip, "the controller (host 1 of dc.controller_zone)", prov, "dc.controller_zone"


def problems(m: Model) -> list[Problem]:
    """One problem per address assigned twice."""
    first: dict[IPv4Address, tuple[str, str, str]] = {}
    out: list[Problem] = []
    for addr, what, shown, obj in _assigned(m):
        if addr not in first:
            first[addr] = (what, shown, obj)
            continue
        what0, shown0, obj0 = first[addr]
        out.append(Problem(shown, obj, f"address {addr} ({what}) is also assigned to {what0} ({obj0} in {shown0})",
                           "give each device its own index (the host number in every zone, VLAN and "
                           "out-of-band block it is on)"))
    return out
