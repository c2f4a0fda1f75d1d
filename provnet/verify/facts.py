"""Each host's facts, gathered in one SSH command per host per run (not one per assertion)."""

from __future__ import annotations

import json
from typing import Any, Callable

UNITS = ("ssh", "frr", "nftables", "kamailio", "baresip", "chrony", "rsyslog", "snmpd", "janus",
         "provnet-bridged", "systemd-networkd")
SECTIONS = {
    "system": "systemctl is-system-running 2>/dev/null",
    "failed": "systemctl list-units --failed --plain --no-legend 2>/dev/null | awk '{print $1}'",
    # one systemctl for every unit (was two per unit: 22 process starts per host)
    "active": "systemctl show -p Id -p ActiveState -p UnitFileState -- " + " ".join(UNITS) + " 2>/dev/null",
    "listen": "ss -lntuH 2>/dev/null",
    "sshd": "sshd -T 2>/dev/null",
    "chrony": "chronyc -n tracking 2>/dev/null",
    # when chrony (re)started, on the same clock as /proc/uptime: a fresh chrony has not synchronised yet
    "chrony_unit": "systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic chrony 2>/dev/null; "
                   "echo \"Uptime=$(cut -d' ' -f1 /proc/uptime)\"",
    "links": "ip -j link show",
    "addrs": "ip -j addr show",
    "rsyslog": "cat /etc/rsyslog.conf /etc/rsyslog.d/*.conf 2>/dev/null",
    "bgp": "vtysh -c 'show bgp ipv4 unicast summary json' 2>/dev/null",
    "rib": "vtysh -c 'show ip route json' 2>/dev/null",
}


def script() -> str:
    return "; ".join(f"echo '@@@ {name}'; {cmd}" for name, cmd in SECTIONS.items())


def parse(output: str) -> dict[str, Any]:
    raw: dict[str, str] = {}
    current = None
    for line in output.splitlines(True):
        if line.startswith("@@@ "):
            current = line[4:].strip()
            raw[current] = ""
        elif current is not None:
            raw[current] += line
    facts: dict[str, Any] = {"raw": raw, "system": raw.get("system", "").strip()}
    facts["failed"] = [u for u in raw.get("failed", "").split() if u]
    facts["units"] = units(raw.get("active", ""))
    facts["listen"] = []
    for line in raw.get("listen", "").splitlines():
        cols = line.split()
        if len(cols) >= 5:
            addr, _, port = cols[4].rpartition(":")
            facts["listen"].append((cols[0], addr.strip("[]"), int(port) if port.isdigit() else 0))
    facts["sshd"] = {}
    for line in raw.get("sshd", "").splitlines():
        key, _, value = line.partition(" ")
        facts["sshd"][key.lower()] = value.strip()
    facts["chrony"] = {}
    for line in raw.get("chrony", "").splitlines():
        key, _, value = line.partition(":")
        facts["chrony"][key.strip()] = value.strip()
    facts["chrony_unit"] = {}
    for line in raw.get("chrony_unit", "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts["chrony_unit"][key.strip()] = value.strip()
    for key in ("links", "addrs", "bgp", "rib"):
        try:
            facts[key] = json.loads(raw.get(key) or "null")
        except json.JSONDecodeError:
            facts[key] = None
    return facts


def units(out: str) -> dict[str, dict[str, str]]:
    """``systemctl show -p Id -p ActiveState -p UnitFileState`` blocks → {unit: {active, enabled}} (a unit
    not installed: inactive, its file state unknown, as ``is-active``/``is-enabled`` said)."""
    found: dict[str, dict[str, str]] = {}
    for block in out.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            found[props["Id"].removesuffix(".service")] = {"active": props.get("ActiveState") or "unknown",
                                                           "enabled": props.get("UnitFileState") or "unknown"}
    return found


def gather(run: Callable[[str], tuple[int, str]]) -> dict[str, Any]:
    """``run(command) -> (rc, stdout)`` executes as root on the host."""
    _, out = run(script())
    return parse(out)
