"""A virtual province: the compiled model's topology brought up as system containers.

``up`` boots one container per device plus the carrier's PE, wires every link of
the model as a veth pair, joins every node's ``oob0`` to the host's out-of-band
bridge, and waits until every node answers SSH at its management address.
Nodes boot *factory default*: hostname, management address and sshd only — the
PE excepted, which the carrier configures (eBGP to every CE, standing in for the
MPLS L3VPN). ``down`` removes everything ``up`` made, from the state file, and is
safe to run twice or after a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from provnet import guard
from provnet.errors import ProvnetError
from provnet.lab import image as lab_image
from provnet.lab import kernel, node, sysctl
from provnet.lab.paths import state_root
from provnet.model import HALL_INTERFACE, Device, Model

OOB_BRIDGE = "pvoob"
CONTROLLER_IF = "pvctl0"
STATE_FILE = "lab.json"
_STALE_INTERFACE = re.compile(r'"interface \S+ --  no" we failed to remove')
Progress = Callable[[str, int, int], None]


class LabError(ProvnetError):
    """The lab cannot start or stop as asked."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    role: str
    state: str
    address: str
    uptime_s: float | None


def lab_dir() -> Path:
    return state_root() / "lab"


def key_path() -> Path:
    """The lab's SSH key (generated once, outside the repository)."""
    return state_root() / "ssh" / "id_ed25519"


def ensure_key() -> Path:
    key = key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provnet-lab", "-f", str(key)],
                       check=True)
    return key


# ---------------------------------------------------------------- interlocks


def check_range(m: Model) -> None:
    """Refuse an inventory with any address outside 198.18.0.0/15."""
    outside = sorted({str(n) for n in m.addresses() if not guard.in_lab_range(n)})
    if outside:
        shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise LabError(f"lab refuses {m.root}: addresses outside 198.18.0.0/15 ({shown}) — the lab only runs "
                       "inventories addressed inside 198.18.0.0/15 (e.g. inventory/lab, inventory/thanhhoa-lab)")
    if m.oob_network is None or m.controller_oob is None:
        raise LabError(f"lab refuses {m.root}: no out-of-band pool (pools.oob) — the controller reaches lab nodes "
                       "over it; add pools.oob: 198.19.0.0/16")


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("lab needs root (network namespaces, mounts, containers): run it with sudo")
    missing = kernel.probe()
    if missing:
        raise LabError("lab cannot run here; missing: " + "; ".join(missing))
    if sysctl.read("net.ipv4.ip_forward") != 0:
        raise LabError("the host forwards IPv4 (net.ipv4.ip_forward=1): lab traffic could leave the lab — "
                       "set it to 0 first")


# ---------------------------------------------------------------- wiring helpers


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _host_if(name: str) -> str:
    """Host-side name of a node's out-of-band veth (≤ 15 characters)."""
    return "pvo" + hashlib.sha1(name.encode()).hexdigest()[:10]


def _link_exists(netns: str | None, ifname: str) -> bool:
    args = (["-n", netns] if netns else []) + ["link", "show", ifname]
    return _ip(*args, check=False).returncode == 0


def _ensure_oob_bridge(m: Model) -> None:
    assert m.controller_oob is not None and m.oob_network is not None
    if not _link_exists(None, OOB_BRIDGE):
        _ip("link", "add", OOB_BRIDGE, "type", "bridge")
    addr = f"{m.controller_oob.ip}/{m.oob_network.prefixlen}"
    _ip("addr", "replace", addr, "dev", OOB_BRIDGE)
    _ip("link", "set", OOB_BRIDGE, "up")


def _wire_oob(dev: Device, m: Model) -> None:
    assert dev.oob_address is not None and m.oob_network is not None
    ns = node.node(dev.hostname, lab_dir()).netns
    host = _host_if(dev.hostname)
    if not _link_exists(ns, "oob0"):
        if _link_exists(None, host):
            _ip("link", "del", host)
        _ip("link", "add", host, "type", "veth", "peer", "name", "oob0", "netns", ns)
    _ip("link", "set", host, "master", OOB_BRIDGE, "up")
    _ip("-n", ns, "addr", "replace", f"{dev.oob_address.ip}/{m.oob_network.prefixlen}", "dev", "oob0")
    _ip("-n", ns, "link", "set", "oob0", "up")


def _wire_link(a: tuple[str, str], b: tuple[str, str]) -> list[tuple[str, str]]:
    """Wire one point-to-point link; returns the (netns, ifname) ends it had to create."""
    ns_a = node.node(a[0], lab_dir()).netns
    ns_b = node.node(b[0], lab_dir()).netns
    created: list[tuple[str, str]] = []
    if not _link_exists(ns_a, a[1]):
        if _link_exists(ns_b, b[1]):  # the far end of a veth whose near end left with a removed node
            _ip("-n", ns_b, "link", "del", b[1], check=False)
        _ip("link", "add", a[1], "netns", ns_a, "type", "veth", "peer", "name", b[1], "netns", ns_b)
        created = [(ns_a, a[1]), (ns_b, b[1])]
    _ip("-n", ns_a, "link", "set", a[1], "up")
    _ip("-n", ns_b, "link", "set", b[1], "up")
    return created


def _settle(ends: list[tuple[str, str]], timeout: float = 10.0) -> None:
    """Wait until the new ends' IPv6 addresses have passed duplicate address detection.

    A freshly created veth's link-local address is tentative for about a second; until
    then nothing can be sent from it, so `lab up` returning earlier would hand back a
    link that does not yet carry traffic.
    """
    deadline = time.monotonic() + timeout
    pending = list(ends)
    while pending and time.monotonic() < deadline:
        pending = [
            (ns, ifname)
            for ns, ifname in pending
            if _ip("-n", ns, "-6", "addr", "show", "dev", ifname, "tentative", check=False).stdout.strip()
            or not _ip("-n", ns, "-6", "addr", "show", "dev", ifname, "scope", "link", check=False).stdout.strip()
        ]
        if pending:
            time.sleep(0.2)


def _wire_stub(host: str, ifname: str) -> None:
    """A VLAN with only the CE on it: a veth whose peer (``<if>p``) stays in the node."""
    ns = node.node(host, lab_dir()).netns
    if not _link_exists(ns, ifname):
        _ip("-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", f"{ifname}p")
    _ip("-n", ns, "link", "set", ifname, "up")
    _ip("-n", ns, "link", "set", f"{ifname}p", "up")


def _wire_controller(m: Model) -> str | None:
    """The management station's in-band leg: a host veth into the DC management zone.

    The host only originates and receives on it (it never forwards); its route to the
    data plane (198.18.0.0/16) goes through the zone's router, so in-band management
    crosses the real DC firewall, core, PE and CE.
    """
    if m.controller_data is None or m.controller_gateway is None:
        return None
    host, ifname = m.controller_gateway
    ns = node.node(host, lab_dir()).netns
    if not _link_exists(None, CONTROLLER_IF):
        _ip("link", "add", CONTROLLER_IF, "type", "veth", "peer", "name", ifname, "netns", ns)
    _ip("addr", "replace", str(m.controller_data), "dev", CONTROLLER_IF)
    _ip("link", "set", CONTROLLER_IF, "up")
    _ip("-n", ns, "link", "set", ifname, "up")
    via = m.controller_route_via()
    _ip("route", "replace", "198.18.0.0/16", "via", str(via), "dev", CONTROLLER_IF)
    seg = next(s for s in m.segments if (host, ifname) in s.members)
    return seg.name


# ---------------------------------------------------------------- the carrier PE


def pe_config(m: Model) -> str:
    """The carrier's PE: eBGP to the DC and every CE, passing routes between them."""
    lines = ["frr defaults traditional", f"hostname {m.pe.hostname}", "ip forwarding", "no ipv6 forwarding", "!"]
    for iface in m.pe.interfaces:
        lines += [f"interface {iface.name}", f" ip address {iface.address}", "!"]
    lines += [f"router bgp {m.carrier_asn}", " bgp router-id 198.18.2.0", " no bgp ebgp-requires-policy",
              " timers bgp 10 30"]
    peers = m.pe.neighbours.customers
    for peer in peers:
        lines.append(f" neighbor {peer.address} remote-as {peer.asn}")
    lines += [" address-family ipv4 unicast"]
    for peer in peers:
        lines.append(f"  neighbor {peer.address} activate")
    lines += [" exit-address-family", "!", "line vty", "!"]
    return "\n".join(lines) + "\n"


def configure_pe(m: Model, restart: bool = False) -> str:
    """Write the PE's FRR config and apply it (the carrier's job, not provnet's engine).

    A changed ``frr.conf`` alone is applied with ``frr-reload.py --reload``: a site joining or
    leaving must not drop every other CE's BGP session. FRR is restarted only when it is not
    running, the daemons file changed, or ``restart`` says so (the PE was booted just now).
    Returns ``restarted``, ``reloaded`` or ``unchanged``.
    """
    sd = lab_dir()
    daemons = "/etc/frr/daemons"
    script = (
        "set -e; new=$(mktemp); cat > \"$new\"; restart=$1; conf=0; "
        f"grep -q '^bgpd=yes' {daemons} || {{ sed -i 's/^bgpd=no/bgpd=yes/' {daemons}; restart=1; }}; "
        "if ! cmp -s \"$new\" /etc/frr/frr.conf; then "
        "cat \"$new\" > /etc/frr/frr.conf; chown frr:frr /etc/frr/frr.conf; conf=1; fi; "
        "rm -f \"$new\"; sysctl -qw net.ipv4.ip_forward=1; systemctl enable -q frr; "
        "if [ \"$restart\" = 1 ] || ! systemctl -q is-active frr; then systemctl restart frr; echo restarted; "
        "elif [ \"$conf\" = 1 ]; then "
        "/usr/lib/frr/frr-reload.py --reload /etc/frr/frr.conf 2>&1 && echo reloaded || echo reload-failed; fi"
    )
    proc = node.exec(m.pe.hostname, ["sh", "-c", script, "configure-pe", "1" if restart else "0"], sd,
                     timeout=90, input=pe_config(m))
    if proc.returncode != 0:
        raise LabError(f"PE configuration failed: {proc.stderr.strip() or proc.stdout.strip()}")
    if "reload-failed" in proc.stdout:
        failed = [line for line in proc.stdout.splitlines() if "we failed to" in line]
        # `no interface ceN` is refused once the site's veth has gone with its node: harmless
        if not failed or any(not _STALE_INTERFACE.search(line) for line in failed):
            raise LabError(f"PE: frr-reload.py failed: {proc.stdout.strip()[-1500:]}")
        return "reloaded"
    return next((w for w in ("restarted", "reloaded") if w in proc.stdout), "unchanged")


def pe_sessions(m: Model) -> dict[str, dict[str, object]]:
    """The PE's eBGP sessions by neighbour address: state, uptime (s), prefixes received, peer hostname."""
    proc = node.exec(m.pe.hostname, ["vtysh", "-c", "show bgp ipv4 unicast summary json"], lab_dir(), timeout=30)
    if proc.returncode != 0:
        raise LabError(f"PE: vtysh failed: {proc.stderr.strip()}")
    peers = json.loads(proc.stdout or "{}").get("peers", {})
    return {addr: {"state": p.get("state"), "uptime_s": round(p.get("peerUptimeMsec", 0) / 1000, 1),
                   "prefixes": p.get("pfxRcd", 0), "hostname": p.get("hostname", "")}
            for addr, p in peers.items()}


# ---------------------------------------------------------------- up / down / status


def _state(sd: Path) -> dict[str, object]:
    path = sd / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _save_state(sd: Path, data: dict[str, object]) -> None:
    sd.mkdir(parents=True, exist_ok=True)
    tmp = sd / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(sd / STATE_FILE)


def _authorize(dev_name: str, pubkey: str) -> None:
    n = node.node(dev_name, lab_dir())
    ssh_dir = n.upper / "root" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    os.chmod(ssh_dir / "authorized_keys", 0o600)


def wait_ssh(address: str, timeout: float) -> bool:
    """True once TCP port 22 at ``address`` accepts and speaks SSH."""
    guard.check(address, purpose="reach lab node")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, 22), timeout=2) as sock:
                sock.settimeout(3)
                if sock.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def family(m: Model | Path) -> set[str]:
    """The inventories whose lab this model (or inventory folder) may join: its own folder and, for an
    overlay, its base — and the base's base, for an overlay of an overlay (a rollout into a copy that is
    itself an overlay)."""
    from provnet.rollout.overlay import OVERLAY_OF

    out: set[str] = set()
    todo = [(m if isinstance(m, Path) else m.root).resolve()]
    while todo:
        root = todo.pop()
        if str(root) in out:
            continue
        out.add(str(root))
        try:
            raw = yaml.safe_load((root / "province.yml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            raw = {}
        if isinstance(raw, dict) and isinstance(raw.get("base"), str):
            todo.append((root / raw["base"]).resolve())
        made_of = root / OVERLAY_OF
        if made_of.is_file():
            todo.append(Path(made_of.read_text(encoding="utf-8").strip()).resolve())
    return out


def running_inventory() -> str | None:
    """The inventory whose lab runs on this machine (None: no lab)."""
    inv = _state(lab_dir()).get("inventory")
    return str(inv) if inv else None


def up(m: Model, progress: Progress | None = None, workers: int = 8) -> list[NodeStatus]:
    """Bring the lab province up (idempotent: what already runs is left alone)."""
    check_range(m)
    check_host()
    sd = lab_dir()
    prev = _state(sd)
    inventory = str(m.root.resolve())
    if prev.get("inventory"):
        if prev["inventory"] not in family(m):
            raise LabError(f"a lab of {prev['inventory']} is running: `provnet lab down` first")
        inventory = str(prev["inventory"])
    image = lab_image.build_image()
    sysctl.raise_limits(sd)
    names = list(dict.fromkeys([*prev.get("nodes", []), *(d.hostname for d in m.nodes())]))  # type: ignore[misc]
    _save_state(sd, {"inventory": inventory, "nodes": names, "oob_bridge": OOB_BRIDGE, "image": str(image)})
    pubkey = ensure_key().with_suffix(".pub").read_text()
    _ensure_oob_bridge(m)
    nodes = m.nodes()
    total = len(nodes)
    done = 0

    booted: set[str] = set()

    def boot(dev: Device) -> None:
        if not node.is_running(dev.hostname, sd):
            n = node.node(dev.hostname, sd)
            n.upper.mkdir(parents=True, exist_ok=True)
            _authorize(dev.hostname, pubkey)
            node.start(dev.hostname, image, sd, dev.hostname)
            booted.add(dev.hostname)
        _wire_oob(dev, m)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(boot, nodes):
            done += 1
            if progress:
                progress("boot", done, total)
    created = [end for link in m.links for end in _wire_link(link.a, link.b)]
    controller_seg = _wire_controller(m)
    for seg in m.segments:
        if len(seg.members) == 1 and seg.name != controller_seg:
            _wire_stub(*seg.members[0])
    _settle(created)
    if progress:
        progress("wire", total, total)

    def reachable(dev: Device) -> tuple[str, bool]:
        assert dev.oob_address is not None
        return dev.hostname, wait_ssh(str(dev.oob_address.ip), 180)

    done = 0
    failed = []
    with ThreadPoolExecutor(max_workers=32) as pool:
        for name, ok in pool.map(reachable, nodes):
            done += 1
            if not ok:
                failed.append(name)
            if progress:
                progress("ssh", done, total)
    if failed:
        raise LabError(f"no SSH from {', '.join(failed)} within 180 s; see {sd}/nodes/<name>/console.log")
    # a PE booted now had its links wired after FRR started: restart it on them
    configure_pe(m, restart=m.pe.hostname in booted)
    return status(m)


def status(m: Model | None = None) -> list[NodeStatus]:
    """One row per node of the running lab (from the state file)."""
    sd = lab_dir()
    st = _state(sd)
    names = list(st.get("nodes", [])) if st else []  # type: ignore[arg-type]
    by_name = {d.hostname: d for d in m.nodes()} if m else {}
    rows = []
    for name in names:
        dev = by_name.get(name)
        running = node.is_running(name, sd)
        uptime = None
        if running:
            uptime = _uptime(node.leader_pid(name, sd))
        rows.append(NodeStatus(name, dev.role if dev else "?", "running" if running else "stopped",
                               str(dev.oob_address.ip) if dev and dev.oob_address else "", uptime))
    return rows


def _uptime(pid: int) -> float:
    """Seconds since the process started (from /proc, in clock ticks since boot)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    since_boot = float(Path("/proc/uptime").read_text().split()[0])
    return since_boot - ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Teardown:
    """What :func:`teardown` did."""

    removed: tuple[str, ...]
    killed: tuple[str, ...]  # did not power off within the grace: killed by recorded PID
    stuck: tuple[str, ...]  # still running after SIGKILL: kept in the state for the next `down`
    seconds: float


def down(force: bool = False, grace: float = node.STOP_GRACE) -> list[str]:
    """Stop every node and remove namespaces, mounts, veths, bridge and state; the names removed."""
    return list(teardown(force, grace).removed)


def teardown(force: bool = False, grace: float = node.STOP_GRACE) -> Teardown:
    """:func:`down`, reporting the nodes that had to be killed.

    Every node is stopped at once (:func:`node.stop_all`: one poweroff signal each, one wait of at
    most ``grace`` seconds, SIGKILL by PID after it); the host-side veths, the bridge and the
    controller's veth go in the same ``ip`` batch as the namespaces.
    """
    t0 = time.monotonic()
    sd = lab_dir()
    st = _state(sd)
    names: set[str] = set(st.get("nodes", []))  # type: ignore[arg-type]
    if force or not st:
        nodes_dir = sd / "nodes"
        if nodes_dir.is_dir():
            names |= {p.name for p in nodes_dir.iterdir() if p.is_dir()}
        if node.NETNS_DIR.is_dir():
            names |= {p.name.removeprefix(node.NETNS_PREFIX) for p in node.NETNS_DIR.iterdir()
                      if p.name.startswith(node.NETNS_PREFIX)}
    if os.geteuid() != 0:
        if names:
            raise LabError("lab down needs root")
        return Teardown((), (), (), 0.0)
    ordered = sorted(names)
    present = _host_links()
    links = [x for x in (*(_host_if(n) for n in ordered), OOB_BRIDGE, CONTROLLER_IF) if x in present]
    stopped = node.stop_all(ordered, sd, grace, host_links=links)
    if stopped.stuck:
        _save_state(sd, {**st, "nodes": list(stopped.stuck)})
    else:
        sysctl.restore_limits(sd)
        (sd / STATE_FILE).unlink(missing_ok=True)
    removed = tuple(n for n in ordered if n not in stopped.stuck)
    return Teardown(removed, stopped.killed, stopped.stuck, time.monotonic() - t0)


def _host_links() -> set[str]:
    """Names of the host's links (one ``ip`` call)."""
    out = _ip("-o", "link", "show", check=False).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2}


def remove(names: list[str] | set[str]) -> list[str]:
    """Take nodes out of the running lab (a retired site's): stop each, delete its host-side veth, drop it
    from the state — what ``down`` does, for these nodes only. Their data-plane veths go with their
    namespaces. Returns the names removed (unknown names are ignored)."""
    sd = lab_dir()
    st = _state(sd)
    known: list[str] = list(st.get("nodes", []))  # type: ignore[arg-type]
    gone = sorted({n for n in names if n in known or node.node(n, sd).dir.exists()})
    if not gone:
        return []
    if os.geteuid() != 0:
        raise LabError("removing lab nodes needs root")
    for name in gone:
        # delete the data-plane veths first: a dead namespace's veths can outlive it (the kernel frees a
        # namespace lazily) and a peer's end left behind would refuse the next wiring of that name
        ns = node.node(name, sd).netns
        if (node.NETNS_DIR / ns).exists():
            links = json.loads(_ip("-n", ns, "-j", "link", "show", check=False).stdout or "[]")
            node.ip_batch([f"link del {link['ifname']}" for link in links
                           if link.get("ifname") not in ("lo", "oob0") and link.get("link_type") != "loopback"], ns)
    present = _host_links()
    stopped = node.stop_all(gone, sd, host_links=[h for h in map(_host_if, gone) if h in present])
    st["nodes"] = [n for n in known if n not in gone or n in stopped.stuck]
    _save_state(sd, st)
    return [n for n in gone if n not in stopped.stuck]


def prune(m: Model, names: list[str] | set[str] | tuple[str, ...]) -> tuple[list[str], str]:
    """Take a retired site's nodes (``names``, none of them in ``m``) out of the running lab of ``m``'s
    inventory, and reconfigure the PE without their neighbours (a reload, not a restart).

    Only when the running lab is this inventory's or, for an overlay (a rollout's), its base's — the
    overlay's sites are the ones that joined it; a copy's model would not describe the lab.
    Returns (removed, PE action)."""
    st = _state(lab_dir())
    if not st or st.get("inventory") not in family(m):
        return [], "unchanged"
    keep = {d.hostname for d in m.nodes()}
    removed = remove([n for n in names if n not in keep])
    if removed:
        _unwire_halls(m)
    return removed, configure_pe(m) if removed else "unchanged"


def _unwire_halls(m: Model) -> None:
    """Delete the DC firewall's interfaces (stubs included) toward province-level halls no longer in ``m``."""
    sd = lab_dir()
    for dev in m.devices.values():
        if dev.role != "firewall" or not node.is_running(dev.hostname, sd):
            continue
        ns = node.node(dev.hostname, sd).netns
        wanted = {i.name for i in dev.interfaces}
        for link in json.loads(_ip("-n", ns, "-j", "link", "show", check=False).stdout or "[]"):
            name = str(link.get("ifname", ""))
            if HALL_INTERFACE.match(name.removesuffix("p")) and name.removesuffix("p") not in wanted:
                _ip("-n", ns, "link", "del", name, check=False)


def leftovers() -> list[str]:
    """Anything of the lab still on the host (for tests and `lab down` checks)."""
    found = []
    if node.NETNS_DIR.is_dir():
        found += [f"netns {p.name}" for p in node.NETNS_DIR.iterdir() if p.name.startswith(node.NETNS_PREFIX)]
    found += [f"link {name}" for name in sorted(_host_links()) if name.startswith(("pvo", OOB_BRIDGE, CONTROLLER_IF))]
    found += [f"mount {p}" for p in sorted(node.mount_points()) if p.startswith(str(lab_dir()))]
    return found


def ssh_argv(address: str, user: str = "root") -> list[str]:
    """The ssh command line that reaches a lab node with the lab key."""
    guard.check(address, purpose="ssh to")
    return ["ssh", "-i", str(key_path()), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"{user}@{address}"]


def login_user(m: Model, address: str) -> str:
    """The admin once the base role ran (root login is then off), root on a factory-default node."""
    for user in (m.credentials["admin_user"], "root"):
        if subprocess.run([*ssh_argv(address, user), "true"], capture_output=True, timeout=20).returncode == 0:
            return user
    raise LabError(f"{address}: neither {m.credentials['admin_user']} nor root can log in with the lab key")


def ssh_run(m: Model, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command as root on a lab node over real SSH at its management address (sudo when needed)."""
    dev = next(d for d in m.nodes() if d.hostname == host)
    if dev.oob_address is None:
        raise LabError(f"{host} has no management address")
    address = str(dev.oob_address.ip)
    user = login_user(m, address)
    if user != "root":
        command = "sudo -n sh -c " + shlex.quote(command)
    return subprocess.run([*ssh_argv(address, user), command], capture_output=True, text=True, timeout=timeout)
