"""The one address guard: no socket opens to a destination outside the lab range.

Every entry point that connects anywhere (inventory plugin, Nornir, testinfra,
the lab, SIP and HTTP clients) calls :func:`check` first. Production inventories
are only contacted when the inventory says ``production: true`` *and* the operator
exports ``PROVNET_PRODUCTION=1``.
"""

from __future__ import annotations

import ipaddress
import os

from provnet.errors import AddressRefused

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
PRODUCTION_ENV = "PROVNET_PRODUCTION"


def in_lab_range(address: str | ipaddress.IPv4Address | ipaddress.IPv4Network) -> bool:
    """True when the address (or the whole network) lies inside 198.18.0.0/15."""
    try:
        net = ipaddress.ip_network(str(address), strict=False)
    except ValueError:
        return False
    return net.version == 4 and net.subnet_of(LAB_RANGE)  # type: ignore[arg-type]


def production_allowed(inventory_production: bool) -> bool:
    """Both keys must turn: the inventory's flag and the operator's environment."""
    return inventory_production and os.environ.get(PRODUCTION_ENV) == "1"


def check(address: str, *, production: bool = False, purpose: str = "connect") -> str:
    """Return ``address`` if it may be contacted, else raise :class:`AddressRefused`.

    ``address`` must be a literal IP address: names are refused because their
    resolution could lead anywhere.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise AddressRefused(
            f"address guard: refusing to {purpose} {address!r}: not an IP address "
            "(names are never resolved; give the device an address in the model)"
        ) from None
    if in_lab_range(ip):
        return address
    if production_allowed(production):
        return address
    if production:
        hint = f"export {PRODUCTION_ENV}=1 to manage this production inventory"
    else:
        hint = (
            "the lab uses 198.18.0.0/15 only; a real network needs `production: true` "
            f"in the inventory and {PRODUCTION_ENV}=1"
        )
    raise AddressRefused(
        f"address guard: refusing to {purpose} {address}: outside 198.18.0.0/15 — {hint}"
    )
