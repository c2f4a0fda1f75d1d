"""The lab's runtime building blocks on a real kernel: image, two nodes, one veth.

Needs root (skipped otherwise).  Builds the node image on first use (about a
minute and a half; cached afterwards), boots two system containers in their own
network namespaces, wires them with a veth pair and checks each is a proper
factory-default node; then stops both and checks nothing is left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab runtime needs root"),
]

from provnet.lab import image, kernel, node, sysctl  # noqa: E402
from provnet.lab.paths import state_root  # noqa: E402

NAMES = ("rt-a", "rt-b")
VETH = {"rt-a": "pvrta0", "rt-b": "pvrtb0"}
CAP_BITS = {"CAP_SYS_MODULE": 16, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25}


def _links() -> set[str]:
    """Names of the host's network interfaces."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _netns() -> set[str]:
    """Names of the host's named network namespaces."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``."""
    prefix = str(path)
    with open("/proc/self/mounts") as handle:
        points = [line.split()[1] for line in handle]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def _processes_rooted_under(path: Path) -> list[int]:
    """PIDs whose root directory lies below ``path`` (i.e. processes of our nodes)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            root = os.readlink(proc / "root")
        except OSError:
            continue
        if root.startswith(str(path) + "/"):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def lab_image() -> Path:
    """The cached node image (built on first use)."""
    missing = kernel.probe()
    if missing:
        pytest.skip("kernel/host features missing: " + ", ".join(missing))
    return image.build_image()


@pytest.fixture(scope="module")
def runtime(lab_image: Path) -> Iterator[Path]:
    """Two booted nodes wired by one veth pair; yields their state directory."""
    state = state_root() / "test-runtime"
    for name in NAMES:  # a previous crashed run
        node.stop(name, state, timeout=5)
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    sysctl.raise_limits(state)
    try:
        for name in NAMES:
            node.start(name, lab_image, state, hostname=f"{name}.lab")
        a, b = (node.node(n, state) for n in NAMES)
        subprocess.run(
            ["ip", "link", "add", VETH["rt-a"], "netns", a.netns, "type", "veth",
             "peer", "name", VETH["rt-b"], "netns", b.netns],
            check=True,
        )
        for n in (a, b):
            subprocess.run(["ip", "-n", n.netns, "link", "set", VETH[n.name], "up"], check=True)
        yield state
    finally:
        for name in NAMES:
            node.stop(name, state)
        sysctl.restore_limits(state)
        subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)


@pytest.fixture(scope="module")
def ready(runtime: Path) -> dict[str, node.Readiness]:
    """Each node's boot outcome."""
    return {name: node.wait_ready(name, runtime, timeout=120) for name in NAMES}


def run(state: Path, name: str, *argv: str) -> str:
    """Run a command in a node, assert success, return stdout."""
    proc = node.exec(name, list(argv), state)
    assert proc.returncode == 0, f"{name}: {argv} -> {proc.returncode}: {proc.stderr}"
    return proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_systemd_is_pid1_and_boot_is_clean(runtime: Path, ready: dict[str, node.Readiness], name: str) -> None:
    assert run(runtime, name, "readlink", "/proc/1/exe").strip().endswith("/systemd")
    outcome = ready[name]
    assert outcome.ok, f"{name} is {outcome.state}"
    assert outcome.failed_units == (), f"{name}: failed units {outcome.failed_units}"
    assert outcome.state == "running"


@pytest.mark.parametrize("name", NAMES)
def test_factory_default(runtime: Path, ready: dict[str, node.Readiness], name: str) -> None:
    assert run(runtime, name, "hostname").strip() == f"{name}.lab"
    assert re.search(r"[:\]]22\s", run(runtime, name, "ss", "-ltnH")), "sshd not listening"
    # managed services are installed but off until a role enables them
    for unit in ("frr", "kamailio", "chrony", "snmpd"):
        state = node.exec(name, ["systemctl", "is-active", unit], runtime).stdout.strip()
        assert state == "inactive", f"{unit} is {state}"
    chrony = run(runtime, name, "cat", "/etc/chrony/chrony.conf")
    assert not re.search(r"^\s*(pool|server|peer)\s", chrony, re.M), "chrony has a time source"
    assert run(runtime, name, "sh", "-c", "cat /etc/apt/sources.list.d/* 2>/dev/null; "
               "grep -v '^#' /etc/apt/sources.list || true").strip() == ""


@pytest.mark.parametrize("name", NAMES)
def test_no_host_changing_capabilities(runtime: Path, ready: dict[str, node.Readiness], name: str) -> None:
    status = run(runtime, name, "cat", "/proc/1/status")
    bounding = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    for cap, bit in CAP_BITS.items():
        assert not bounding & (1 << bit), f"{name}: PID 1 holds {cap}"


def test_nodes_have_distinct_identity(runtime: Path, ready: dict[str, node.Readiness]) -> None:
    ids = {run(runtime, n, "cat", "/etc/machine-id").strip() for n in NAMES}
    keys = {run(runtime, n, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1] for n in NAMES}
    assert len(ids) == len(keys) == len(NAMES)


def _link_local(runtime: Path, name: str) -> str:
    """The node's IPv6 link-local address on its veth, once DAD is done."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = run(runtime, name, "ip", "-6", "-o", "addr", "show", "dev", VETH[name], "scope", "link")
        match = re.search(r"inet6 (fe80::[0-9a-f:]+)/", out)
        if match and "tentative" not in out:
            return match.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no IPv6 link-local address on {name}")


def test_link_local_ping_across_veth(runtime: Path, ready: dict[str, node.Readiness]) -> None:
    _link_local(runtime, "rt-a")  # our own address must be out of DAD too
    addr = _link_local(runtime, "rt-b")
    out = run(runtime, "rt-a", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", f"{addr}%{VETH['rt-a']}")
    assert " 0% packet loss" in out


def test_root_ssh_by_key_across_veth(runtime: Path, ready: dict[str, node.Readiness]) -> None:
    run(runtime, "rt-a", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/root/.ssh/id_ed25519")
    pub = run(runtime, "rt-a", "cat", "/root/.ssh/id_ed25519.pub")
    run(runtime, "rt-b", "sh", "-c", f"umask 077; echo '{pub.strip()}' >> /root/.ssh/authorized_keys")
    addr = _link_local(runtime, "rt-b")
    ssh = ["ssh", "-6", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=5"]
    out = run(runtime, "rt-a", *ssh, f"root@{addr}%{VETH['rt-a']}", "hostname")
    assert out.strip() == "rt-b.lab"
    # without the key: refused (no password authentication)
    denied = node.exec("rt-a", [*ssh, "-i", "/dev/null", "-o", "IdentitiesOnly=yes",
                                f"root@{addr}%{VETH['rt-a']}", "true"], runtime)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr


def test_restart_is_idempotent(runtime: Path, lab_image: Path, ready: dict[str, node.Readiness]) -> None:
    pid = node.leader_pid("rt-a", runtime)
    assert node.start("rt-a", lab_image, runtime, hostname="rt-a.lab") == pid


def test_stop_leaves_nothing(lab_image: Path, runtime: Path, ready: dict[str, node.Readiness]) -> None:
    records = [node.leader_pid(n, runtime) for n in NAMES]
    for name in NAMES:
        node.stop(name, runtime)
        node.stop(name, runtime)  # safe twice
    assert not [ns for ns in _netns() if ns.startswith(node.NETNS_PREFIX + "rt-")]
    assert _mounts_under(runtime) == []
    assert not set(VETH.values()) & _links()
    assert not [pid for pid in records if Path(f"/proc/{pid}").exists()]
    assert _processes_rooted_under(runtime) == []
    assert not (runtime / "nodes" / "rt-a").exists()
    for name in NAMES:
        assert not (node.NSPAWN_PROPAGATE / name).exists()
        assert not [d for d in node.cgroup_dirs(node.node(name, runtime)) if d.exists()]
