"""Deterministic, stable address allocation.

Every address is a pure function of a site's numeric ``id`` (or a DC device's
``index``) and the province's pools — never of list position — so adding or
removing a site cannot move any other site's addresses.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from provnet.errors import ProvnetError


class PoolExhausted(ProvnetError):
    """An id or index does not fit in its pool."""


def _nth_subnet(pool: IPv4Network, prefix: int, n: int, what: str) -> IPv4Network:
    if prefix < pool.prefixlen:
        raise PoolExhausted(f"{what}: /{prefix} does not fit in {pool}")
    count = 2 ** (prefix - pool.prefixlen)
    if not 0 <= n < count:
        raise PoolExhausted(f"{what}: index {n} outside {pool} (holds {count} /{prefix})")
    base = int(pool.network_address) + n * 2 ** (32 - prefix)
    return IPv4Network((base, prefix))


def host(subnet: IPv4Network, n: int, what: str) -> IPv4Interface:
    """The ``n``-th address of ``subnet`` with the subnet's prefix (n=1 → first host)."""
    size = subnet.num_addresses
    usable = range(0, 2) if size == 2 else range(1, size - 1)
    if n not in usable:
        raise PoolExhausted(f"{what}: host {n} outside {subnet}")
    return IPv4Interface((int(subnet.network_address) + n, subnet.prefixlen))


def loopback(pool: IPv4Network, site_id: int) -> IPv4Address:
    """Site loopback /32: the pool's ``id``-th address."""
    return _nth_subnet(pool, 32, site_id, "loopback pool").network_address


def wan_link(pool: IPv4Network, site_id: int) -> IPv4Network:
    """Site WAN /31 to the carrier's PE (id 0 is the DC's)."""
    return _nth_subnet(pool, 31, site_id, "WAN pool")


def wan_pe(link: IPv4Network) -> IPv4Interface:
    """The PE's end of a WAN /31 (the even address)."""
    return IPv4Interface((link.network_address, 31))


def wan_ce(link: IPv4Network) -> IPv4Interface:
    """The CE's end of a WAN /31 (the odd address)."""
    return IPv4Interface((int(link.network_address) + 1, 31))


def lan(pool: IPv4Network, prefix: int, site_id: int) -> IPv4Network:
    """The site's subnet for one VLAN."""
    return _nth_subnet(pool, prefix, site_id, f"VLAN pool {pool}")


def oob_block(pool: IPv4Network, block_prefix: int, block: int) -> IPv4Network:
    """Out-of-band management block; block 0 holds the controller, the PE and the DC."""
    return _nth_subnet(pool, block_prefix, block, "out-of-band pool")


def asn(start: int, site_id: int) -> int:
    """Site ASN: the start of the province's range plus the site id (id 0: the DC)."""
    return start + site_id


def net(text: str) -> IPv4Network:
    """Parse a pool already validated by the schema."""
    return ipaddress.IPv4Network(text)
