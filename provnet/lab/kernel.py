"""Probe the kernel features and host tools the lab relies on.

Each probe creates its own throwaway objects (named ``pvprobe…``) and removes them,
leaving nothing behind.  Link-level probes run inside a throwaway network namespace
so the host's interfaces and nftables ruleset are never touched.

Known on our machines (6.18, no loadable modules): veth, bridges, macvlan and
nftables (with ``numgen random``) work; VLAN sub-interfaces, VLAN-aware bridges,
dummy, VRF, vxlan, gretap and tc netem do not, so the lab does not use them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

PREFIX = "pvprobe"


@dataclass(frozen=True)
class Feature:
    """One thing the lab needs from the host."""

    name: str
    check: Callable[[str], bool]
    optional: bool = False


def _run(*argv: str) -> bool:
    """Run a command quietly; return True when it succeeded."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _run_input(text: str, *argv: str) -> bool:
    """Run a command with ``text`` on stdin; return True when it succeeded."""
    try:
        proc = subprocess.run(
            argv, input=text, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@contextmanager
def _probe_netns(tag: str) -> Iterator[str | None]:
    """Yield a throwaway namespace name (None if namespaces don't work); delete it after."""
    name = f"{PREFIX}{tag}{os.getpid() % 100000}"
    ok = _run("ip", "netns", "add", name)
    try:
        yield name if ok else None
    finally:
        if ok:
            _run("ip", "netns", "delete", name)


def _ip(ns: str | None, *args: str) -> bool:
    """Run ``ip`` inside namespace ``ns`` (or the host's if None)."""
    return _run("ip", *(("-n", ns) if ns else ()), *args)


def check_netns(tag: str) -> bool:
    """``ip netns add`` / ``delete`` work."""
    with _probe_netns(tag) as ns:
        return ns is not None


def _link_probe(tag: str, create: Callable[[str | None, str], bool]) -> bool:
    """Create a link (in a probe netns) with ``create(ns, name)``; always clean up."""
    name = f"{PREFIX}{tag}"[:15]
    with _probe_netns(tag) as ns:
        try:
            return create(ns, name)
        finally:
            if ns is None:  # host namespace fallback: remove what we made
                for link in (name, name[:13] + "p", name[:12] + "pp"):
                    _ip(None, "link", "del", link)


def check_veth(tag: str) -> bool:
    """A veth pair can be created and brought up."""
    return _link_probe(
        tag,
        lambda ns, n: _ip(ns, "link", "add", n, "type", "veth", "peer", "name", n[:13] + "p")
        and _ip(ns, "link", "set", n, "up"),
    )


def check_bridge(tag: str) -> bool:
    """A Linux bridge can be created and a veth enslaved to it."""

    def create(ns: str | None, n: str) -> bool:
        peer = n[:13] + "p"
        return (
            _ip(ns, "link", "add", n, "type", "bridge")
            and _ip(ns, "link", "add", peer, "type", "veth", "peer", "name", n[:12] + "pp")
            and _ip(ns, "link", "set", peer, "master", n)
        )

    return _link_probe(tag, create)


def check_macvlan(tag: str) -> bool:
    """A macvlan (bridge mode) can be stacked on a veth."""

    def create(ns: str | None, n: str) -> bool:
        parent = n[:13] + "p"
        return _ip(ns, "link", "add", parent, "type", "veth", "peer", "name", n[:12] + "pp") and _ip(
            ns, "link", "add", n, "link", parent, "type", "macvlan", "mode", "bridge"
        )

    return _link_probe(tag, create)


def check_overlayfs(tag: str) -> bool:
    """An overlayfs can be mounted (lower/upper/work in a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{tag}-") as tmp:
        dirs = {d: os.path.join(tmp, d) for d in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        opts = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        if not _run("mount", "-t", "overlay", "overlay", "-o", opts, dirs["merged"]):
            return False
        _run("umount", dirs["merged"])
        return True


NFT_PROBE = """\
table inet {table} {{
    chain fault {{
        type filter hook forward priority 0; policy accept;
        meta l4proto udp numgen random mod 100 < 5 drop
    }}
}}
"""


def check_nftables(tag: str) -> bool:
    """nftables works, including ``numgen random`` (used for packet-loss injection)."""
    table = f"{PREFIX}{tag}"
    with _probe_netns(tag) as ns:
        if ns is None:
            ok = _run_input(NFT_PROBE.format(table=table), "nft", "-f", "-")
            _run("nft", "delete", "table", "inet", table)
            return ok
        return _run_input(NFT_PROBE.format(table=table), "ip", "netns", "exec", ns, "nft", "-f", "-")


def _binary(name: str) -> Callable[[str], bool]:
    """Return a check that ``name`` is on PATH."""
    return lambda _tag: shutil.which(name) is not None


FEATURES: tuple[Feature, ...] = (
    Feature("network namespaces (ip netns add)", check_netns),
    Feature("veth pairs", check_veth),
    Feature("Linux bridges", check_bridge),
    Feature("macvlan", check_macvlan, optional=True),
    Feature("overlayfs mounts", check_overlayfs),
    Feature("nftables with numgen random", check_nftables),
    Feature("systemd-nspawn binary (apt-get install systemd-container)", _binary("systemd-nspawn")),
    Feature("nsenter binary (util-linux)", _binary("nsenter")),
    Feature("debootstrap binary (apt-get install debootstrap)", _binary("debootstrap")),
    Feature("ip binary (iproute2)", _binary("ip")),
    Feature("nft binary (nftables)", _binary("nft")),
)


def probe(include_optional: bool = False) -> list[str]:
    """Return the names of the lab's features missing on this host (empty: all good).

    Optional features (macvlan) are only reported when ``include_optional`` is set.
    """
    missing = []
    for index, feature in enumerate(FEATURES):
        if feature.optional and not include_optional:
            continue
        if not feature.check(f"{index}"):
            missing.append(feature.name + (" (optional)" if feature.optional else ""))
    return missing


def main() -> None:
    """``python -m provnet.lab.kernel``: print missing features, exit 1 if any."""
    missing = probe(include_optional=True)
    for name in missing:
        print(f"missing: {name}")
    if not missing:
        print("all lab kernel features present")
    raise SystemExit(1 if [m for m in missing if not m.endswith("(optional)")] else 0)


if __name__ == "__main__":
    main()
