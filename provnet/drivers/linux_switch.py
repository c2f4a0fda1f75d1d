"""The DC access switch on Linux: one bridge per VLAN (this kernel has no VLAN filtering).

Bridges and their member ports are systemd-networkd files (``50-provnet-*``) the driver
owns; the diff covers both the files and the live state (``ip -j -d link`` / ``bridge -j link``),
in two commands: the directory listing with the live state, then the files.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from provnet.drivers.base import DriverError
from provnet.drivers.linux import LinuxDriver, unified

if TYPE_CHECKING:
    from provnet.drivers.ssh import Result

NETWORK_DIR = "/etc/systemd/network"
PREFIX = "50-provnet-"
LIST = f"ls {NETWORK_DIR} 2>/dev/null"


def intended_bridges(files: dict[str, str]) -> dict[str, set[str]]:
    """{bridge: {ports}} from .netdev (Kind=bridge) and .network (Bridge=) files."""
    bridges: dict[str, set[str]] = {}
    for name, text in files.items():
        if name.endswith(".netdev") and re.search(r"^Kind=bridge", text, re.M):
            m = re.search(r"^Name=(\S+)", text, re.M)
            if m:
                bridges.setdefault(m.group(1), set())
    for name, text in files.items():
        if name.endswith(".network"):
            port = re.search(r"^Name=(\S+)", text, re.M)
            br = re.search(r"^Bridge=(\S+)", text, re.M)
            if port and br:
                bridges.setdefault(br.group(1), set()).add(port.group(1))
    return bridges


class LinuxSwitchDriver(LinuxDriver):
    platform = "linux_switch"
    services = ("systemd-networkd",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listed: list[str] | None = None  # the live 50-provnet-* files, read once per candidate

    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        super().load_replace_candidate(filename, config)
        self._listed = None

    def discard_config(self) -> None:
        super().discard_config()
        self._listed = None

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        try:
            super().commit_config(message, revert_in)
        finally:
            self._listed = None

    def path_of(self, name: str) -> str:
        if not name.startswith(PREFIX) or "/" in name:
            raise DriverError(f"linux_switch: section '{name}' must be a {PREFIX}* networkd file")
        return f"{NETWORK_DIR}/{name}"

    def owned(self) -> list[str]:
        if self._listed is None:
            self._list(self.s.run(LIST))
        return sorted(set(self._listed or ()) | set(self.candidate or {}))

    def _list(self, res: Result) -> None:
        self._listed = [n for n in res.out.split() if n.startswith(PREFIX)]

    def remove_stale(self) -> str:
        stale = [n for n in self.owned() if n not in (self.candidate or {})]
        return "".join(f"rm -f {NETWORK_DIR}/{n}\n" for n in stale)

    def live_bridges(self, links: Result | None = None, ports: Result | None = None) -> dict[str, set[str]]:
        """{bridge: {ports}} on the device (from the two results when given; linkinfo needs ``-d``)."""
        if links is None or ports is None:
            links, ports = self.s.run_many(["ip -j -d link show", "bridge -j link show"])
        bridges: dict[str, set[str]] = {l["ifname"]: set() for l in json.loads(links.out or "[]")
                                        if l.get("linkinfo", {}).get("info_kind") == "bridge"}
        for port in json.loads(ports.out or "[]"):
            if port.get("master") in bridges:
                bridges[port["master"]].add(port["ifname"])
        return bridges

    def platform_diff(self) -> str:
        assert self.candidate is not None
        listing, links, ports = self.s.run_many([LIST, "ip -j -d link show", "bridge -j link show"])
        self._list(listing)
        out = [self.file_diff()]
        want, have = intended_bridges(self.candidate), self.live_bridges(links, ports)
        want_lines = [f"bridge {b}: {' '.join(sorted(p))}\n" for b, p in sorted(want.items())]
        have_lines = [f"bridge {b}: {' '.join(sorted(p))}\n" for b, p in sorted(have.items()) if b in want or
                      b.startswith("br")]
        if want_lines != have_lines:
            out.append(unified("".join(have_lines), "".join(want_lines), "bridges (live state)"))
        return "".join(out)

    def apply_script(self) -> str:
        return "systemctl enable -q systemd-networkd\nsystemctl restart systemd-networkd\n" \
               "networkctl reload 2>/dev/null || true\n"

    def revert_apply(self) -> str:
        return self.apply_script()
