"""Groups of devices, shared by the Ansible plugin, ``--limit`` and ``verify``: one definition."""

from __future__ import annotations

import re

from provnet.model import Device, Model

LEVEL_GROUP = {"dc": "dc", "province": "halls", "district": "districts", "commune": "communes"}
SITE_GROUPS = ("halls", "districts", "communes")   # the children of the group "sites"


def group_name(name: str) -> str:
    """Ansible-safe group name."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def groups_of(dev: Device) -> list[str]:
    """Every group a device belongs to (besides ``all``)."""
    groups = [LEVEL_GROUP[dev.level]] if dev.level in LEVEL_GROUP else []
    groups += [f"platform_{p}" for p in dev.platforms] + [f"role_{dev.role}"]
    if dev.site:
        groups.append(f"site_{dev.site}")
    if dev.district:
        groups.append(f"district_{dev.district}")
    return [group_name(g) for g in groups]


def select(m: Model, limit: str | None) -> list[str]:
    """Hostnames matching ``limit``: comma-separated hostnames, site or district slugs, or group names."""
    if not limit:
        return list(m.devices)
    chosen: list[str] = []
    for term in (t.strip() for t in limit.split(",") if t.strip()):
        matched = [h for h, d in m.devices.items()
                   if term in (h, d.site, d.district) or group_name(term) in groups_of(d) or term == "all"]
        if not matched:
            raise ValueError(f"--limit '{term}' matches no device, site, district or group "
                             "(see `provnet inventory show` and `ansible-inventory --graph`)")
        chosen += [h for h in matched if h not in chosen]
    return chosen
