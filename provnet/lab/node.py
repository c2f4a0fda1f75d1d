"""One system container per lab device: netns + overlayfs root + systemd as PID 1.

Layout of a node's state (``<state_dir>/nodes/<name>/``)::

    upper/ work/   overlayfs upper and work directories (the node's own changes)
    merged/        the overlay mount: the node's root filesystem
    pid            "<nspawn pid> <its start time>" of the supervising systemd-nspawn
    leader         "<pid> <start time>" of the container's PID 1 (systemd), host view
    console.log    the container's console (systemd's boot messages)

The container is started with ``systemd-nspawn --register=no --keep-unit`` (this
host runs no systemd, so nothing may be registered with machined or put in a
scope unit), inside a pre-made network namespace ``/run/netns/<netns>`` so the
lab's wiring code can plug veths into it before or after boot.  nspawn's default
capability set already lacks CAP_SYS_TIME and CAP_SYS_MODULE; CAP_SYS_BOOT is
dropped explicitly (systemd in a container then just exits at poweroff).

Processes are only ever signalled by recorded PID, after checking the PID still
belongs to the same process (start time); never by name. Nodes are stopped many at a
time (:func:`stop_all`): every PID 1 is asked to power off before anything waits, one
bounded wait covers them all, and the host commands of the cleanup are batched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from provnet.lab.paths import state_root

NETNS_PREFIX = "pvl-"
NETNS_DIR = Path("/run/netns")
NSPAWN = "systemd-nspawn"
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")
#: Capabilities a node must never hold (they would reach the host).
FORBIDDEN_CAPS: tuple[str, ...] = ("CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_SYS_BOOT")
#: nspawn's defaults minus FORBIDDEN_CAPS, plus what routers need in their own netns.
EXTRA_CAPS: tuple[str, ...] = ("CAP_NET_ADMIN",)
NODE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Node:
    """Where a node's state lives on the host."""

    name: str
    state_dir: Path

    @property
    def netns(self) -> str:
        """Name of the node's network namespace (``/run/netns/<netns>``)."""
        return NETNS_PREFIX + self.name

    @property
    def netns_path(self) -> Path:
        """Path of the node's network namespace file."""
        return NETNS_DIR / self.netns

    @property
    def dir(self) -> Path:
        """The node's state directory."""
        return self.state_dir / "nodes" / self.name

    @property
    def upper(self) -> Path:
        """overlayfs upper directory (the node's writes)."""
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        """overlayfs work directory."""
        return self.dir / "work"

    @property
    def merged(self) -> Path:
        """The node's root filesystem (overlay mount point)."""
        return self.dir / "merged"

    @property
    def pid_file(self) -> Path:
        """Record of the supervising nspawn process."""
        return self.dir / "pid"

    @property
    def leader_file(self) -> Path:
        """Record of the container's PID 1 (host PID)."""
        return self.dir / "leader"

    @property
    def log_file(self) -> Path:
        """The container's console log."""
        return self.dir / "console.log"


@dataclass(frozen=True)
class Readiness:
    """Outcome of :func:`wait_ready`."""

    state: str
    failed_units: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the node booted (running or degraded)."""
        return self.state in ("running", "degraded")


def valid_name(name: str) -> bool:
    """True when ``name`` can be a node's hostname (and so a path component)."""
    return bool(_NAME_RE.match(name))


def node(name: str, state_dir: Path | None = None) -> Node:
    """Return the :class:`Node` for ``name`` (validated) under ``state_dir``."""
    if not valid_name(name):
        raise ValueError(f"invalid node name {name!r}: use lowercase letters, digits and '-'")
    return Node(name, Path(state_dir) if state_dir else state_root())


# --- processes, identified by PID + start time ---------------------------------


def _start_time(pid: int) -> int | None:
    """Return the start time (clock ticks since boot) of ``pid``, None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _read_record(path: Path) -> tuple[int, int] | None:
    """Read a "<pid> <start time>" record."""
    try:
        pid, start = path.read_text().split()
        return int(pid), int(start)
    except (OSError, ValueError):
        return None


def _alive(record: tuple[int, int] | None) -> bool:
    """True when the recorded process still exists and is the same process."""
    if record is None:
        return False
    _reap(record[0])
    return _start_time(record[0]) == record[1]


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own exited child (so it doesn't linger as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal(record: tuple[int, int] | None, sig: int) -> None:
    """Send ``sig`` to the recorded process if it is still the same process."""
    if _alive(record):
        assert record is not None
        try:
            os.kill(record[0], sig)
        except ProcessLookupError:
            pass


def _children(pid: int) -> list[int]:
    """Return the child PIDs of ``pid``."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _ns_pid(pid: int) -> list[int]:
    """Return the NSpid line of ``pid`` (its PID in each nested PID namespace)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


# --- cgroups ------------------------------------------------------------------

CGROUP_PARENT = "provnet-lab"


def systemd_hierarchies() -> list[Path]:
    """Mount points of the cgroup hierarchies systemd uses (name=systemd v1, cgroup2)."""
    found = []
    with open("/proc/self/mounts") as handle:
        for line in handle:
            _dev, point, fstype, opts = line.split()[:4]
            if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts.split(",")):
                found.append(Path(point))
    return found


def cgroup_dirs(n: Node) -> list[Path]:
    """The node's own cgroup in each systemd hierarchy.

    nspawn with ``--keep-unit`` creates its ``supervisor`` and ``payload`` cgroups
    below the cgroup it was started in; starting every node in its own cgroup keeps
    two containers' systemd from managing the same cgroup tree.
    """
    return [h / CGROUP_PARENT / n.name for h in systemd_hierarchies()]


def _remove_cgroups(n: Node) -> bool:
    """Remove the node's (empty) cgroups, deepest first; True when none is left."""
    gone = True
    for top in cgroup_dirs(n):
        if not top.is_dir():
            continue
        dirs = sorted((d for d, _s, _f in os.walk(top)), key=len, reverse=True)
        for directory in dirs:
            try:
                os.rmdir(directory)
            except OSError:
                pass
        gone = gone and not top.exists()
        try:
            os.rmdir(top.parent)  # the shared parent, once the last node is gone
        except OSError:
            pass
    return gone


# --- namespaces and mounts -----------------------------------------------------


_NETNS_LOCK = threading.Lock()


def ensure_netns(n: Node) -> None:
    """Create the node's network namespace if missing, with loopback up.

    Serialised: concurrent first ``ip netns add`` calls can stack /run/netns mounts.
    """
    with _NETNS_LOCK:
        if not n.netns_path.exists():
            subprocess.run(["ip", "netns", "add", n.netns], check=True)
    subprocess.run(["ip", "-n", n.netns, "link", "set", "lo", "up"], check=True)


def mount_points() -> set[str]:
    """Every mount point of this mount namespace (per /proc/self/mounts)."""
    with open("/proc/self/mounts") as handle:
        return {line.split()[1] for line in handle}


def is_mounted(path: Path) -> bool:
    """True when ``path`` is a mount point (per /proc/self/mounts)."""
    return str(path) in mount_points()


def mount_overlay(n: Node, image: Path) -> None:
    """Mount the node's overlay root (lower = image) unless already mounted."""
    for path in (n.upper, n.work, n.merged):
        path.mkdir(parents=True, exist_ok=True)
    if is_mounted(n.merged):
        return
    opts = f"lowerdir={image},upperdir={n.upper},workdir={n.work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(n.merged)], check=True)


def _personalise(n: Node, hostname: str) -> None:
    """Write the node's hostname and a machine-id of its own (in the upper layer)."""
    (n.merged / "etc/hostname").write_text(hostname + "\n")
    machine_id = n.merged / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")


# --- lifecycle -----------------------------------------------------------------


def nspawn_argv(n: Node, hostname: str, host_network: bool = False,
                binds: tuple[tuple[Path, bool], ...] = ()) -> list[str]:
    """Return the systemd-nspawn command line that boots node ``n``.

    ``host_network``: the node shares the host's network namespace (the lab's management
    station: the controller's own addresses) and gets no CAP_NET_ADMIN, so it can use the
    host's network but never change it. ``binds``: (path, writable) mounted at the same path.
    """
    net = [] if host_network else [f"--network-namespace-path={n.netns_path}", f"--capability={','.join(EXTRA_CAPS)}"]
    dropped = (*FORBIDDEN_CAPS, *(EXTRA_CAPS if host_network else ()))
    mounts = [f"--bind={p}" if writable else f"--bind-ro={p}" for p, writable in binds]
    return [
        NSPAWN,
        "--quiet",
        "--register=no",
        "--keep-unit",
        *net,
        f"--directory={n.merged}",
        f"--machine={n.name}",
        f"--hostname={hostname}",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        "--console=read-only",
        *mounts,
        f"--drop-capability={','.join(dropped)}",
        "--boot",
    ]


def start(name: str, image: Path, state_dir: Path, hostname: str, host_network: bool = False,
          binds: tuple[tuple[Path, bool], ...] = ()) -> int:
    """Boot node ``name`` from ``image``; return the host PID of its PID 1 (systemd).

    Idempotent: a node already running is left alone and its PID 1 returned.
    ``host_network`` and ``binds``: see :func:`nspawn_argv`.
    """
    n = node(name, state_dir)
    if is_running(name, state_dir):
        record = _read_record(n.leader_file)
        assert record is not None
        return record[0]
    terminate(n)  # half-dead leftovers of a crashed run (no-op normally)
    if not host_network:
        ensure_netns(n)
    mount_overlay(n, image)
    _personalise(n, hostname)
    procs_files = []
    for directory in cgroup_dirs(n):
        directory.mkdir(parents=True, exist_ok=True)
        procs_files.append(str(directory / "cgroup.procs"))
    # The shell moves itself into the node's cgroups, then becomes nspawn (same PID).
    wrapper = 'for f in $PROVNET_CGROUP_PROCS; do echo $$ > "$f" || exit 1; done; exec "$@"'
    # /proc/sys/net is per network namespace: writable, so nodes set their own net.* sysctls;
    # the rest of /proc/sys (the host kernel's) stays read-only.
    env = {**os.environ, "PROVNET_CGROUP_PROCS": " ".join(procs_files), "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
    with open(n.log_file, "ab") as log:
        proc = subprocess.Popen(
            ["sh", "-c", wrapper, "sh", *nspawn_argv(n, hostname, host_network, binds)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    start_time = _start_time(proc.pid)
    n.pid_file.write_text(f"{proc.pid} {start_time}\n")
    leader = _find_leader(proc, n)
    n.leader_file.write_text(f"{leader} {_start_time(leader)}\n")
    return leader


def _find_leader(proc: subprocess.Popen[bytes], n: Node, timeout: float = 30.0) -> int:
    """Wait for nspawn to fork the container's PID 1 and return its host PID."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = n.log_file.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"systemd-nspawn for {n.name} exited ({proc.returncode}):\n{tail}")
        leader = _leader_of(proc.pid)
        if leader is not None:
            return leader
        time.sleep(0.02)
    raise TimeoutError(f"{n.name}: container PID 1 did not appear within {timeout} s")


def _leader_of(nspawn: int) -> int | None:
    """The host PID of the container PID 1 among ``nspawn``'s children, if it has one."""
    for child in _children(nspawn):
        nspid = _ns_pid(child)
        if len(nspid) >= 2 and nspid[-1] == 1:
            return child
    return None


def leader_pid(name: str, state_dir: Path) -> int:
    """Return the host PID of the running node's PID 1 (raises if not running)."""
    n = node(name, state_dir)
    record = _read_record(n.leader_file)
    if not _alive(record):
        raise RuntimeError(f"node {name} is not running")
    assert record is not None
    return record[0]


def is_running(name: str, state_dir: Path) -> bool:
    """True when the node's nspawn and its PID 1 are both alive."""
    n = node(name, state_dir)
    return _alive(_read_record(n.pid_file)) and _alive(_read_record(n.leader_file))


#: Immediate poweroff: the container's systemd runs no unit's stop job (the node's state is
#: deleted next, so a clean shutdown would keep nothing, and one slow unit would hold the node
#: up to its stop timeout) and goes straight to SIGTERM, then SIGKILL, of every process.
POWEROFF = signal.SIGRTMIN + 14
#: Seconds a node may take to power off before its PID 1 is killed.
STOP_GRACE = 10.0
#: Seconds to wait after each SIGKILL.
KILL_WAIT = 5.0
_POLL = 0.1
RM = ["rm", "-rf", "--one-file-system", "--"]
Record = tuple[int, int]


@dataclass(frozen=True)
class Stopped:
    """Outcome of :func:`terminate_all` / :func:`stop_all`."""

    killed: tuple[str, ...] = ()  # still running after the grace: killed by recorded PID
    stuck: tuple[str, ...] = ()  # still running after SIGKILL: left as they are, records kept


def stop(name: str, state_dir: Path, timeout: float = STOP_GRACE) -> None:
    """Power the node off and remove every trace of it (safe to call twice); see :func:`stop_all`."""
    stop_all([name], state_dir, timeout)


def stop_all(names: Sequence[str], state_dir: Path, grace: float = STOP_GRACE,
             host_links: Sequence[str] = (), workers: int = 8) -> Stopped:
    """Stop the nodes together (:func:`terminate_all`), then remove what they leave (:func:`cleanup_all`).

    A node stuck after SIGKILL is not cleaned up (its netns, mount and records stay for the next stop).
    ``host_links``: host-side links to delete in the same ``ip`` batch as the namespaces.
    """
    nodes = [node(name, state_dir) for name in names]
    stopped = terminate_all(nodes, grace)
    cleanup_all([n for n in nodes if n.name not in stopped.stuck], host_links, workers)
    return stopped


def terminate(n: Node, timeout: float = STOP_GRACE) -> Stopped:
    """Stop the node's processes (:func:`terminate_all` of one node)."""
    return terminate_all([n], timeout)


def terminate_all(nodes: Sequence[Node], grace: float = STOP_GRACE) -> Stopped:
    """Stop every node's processes at once, by recorded PID.

    Every PID 1 is sent :data:`POWEROFF` before anything waits; one wait of at most ``grace``
    seconds covers all nodes. A node still running then has its PID 1 killed (the kernel then
    kills its whole PID namespace, and its nspawn exits by itself); an nspawn still there
    :data:`KILL_WAIT` seconds later is killed too.
    """
    records: dict[str, tuple[Record | None, Record | None]] = {}
    for n in nodes:
        nspawn, leader = _read_record(n.pid_file), _read_record(n.leader_file)
        if leader is None and _alive(nspawn):  # killed between nspawn's start and its leader's record
            assert nspawn is not None
            pid = _leader_of(nspawn[0])
            start = _start_time(pid) if pid is not None else None
            leader = (pid, start) if pid is not None and start is not None else None
        records[n.name] = (nspawn, leader)
    for _nspawn, leader in records.values():
        _signal(leader, POWEROFF)
    late = _wait_all(records, grace)
    for name in sorted(late):
        _signal(records[name][1], signal.SIGKILL)
    stuck = _wait_all({name: records[name] for name in late}, KILL_WAIT)
    for name in sorted(stuck):
        _signal(records[name][0], signal.SIGKILL)
    stuck = _wait_all({name: records[name] for name in stuck}, KILL_WAIT)
    for n in nodes:
        if n.name not in stuck:
            n.pid_file.unlink(missing_ok=True)
            n.leader_file.unlink(missing_ok=True)
    return Stopped(tuple(sorted(late)), tuple(sorted(stuck)))


def _wait_all(records: dict[str, tuple[Record | None, Record | None]], timeout: float) -> set[str]:
    """Wait, one loop for every node, until none of the recorded processes lives; return who still does."""
    deadline = time.monotonic() + timeout
    pending = set(records)
    while True:
        pending = {name for name in pending if any(_alive(r) for r in records[name])}
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(_POLL)


def cleanup(n: Node) -> None:
    """Unmount the node's root, delete its netns, cgroups and state directory (:func:`cleanup_all`)."""
    cleanup_all([n])


def cleanup_all(nodes: Sequence[Node], host_links: Sequence[str] = (), workers: int = 8) -> None:
    """Unmount the nodes' roots, delete their netns, cgroups and state directories.

    One ``ip -batch`` deletes every namespace, then ``host_links`` (a host-side veth whose
    namespace went first is usually gone with it, in the kernel's batched namespace cleanup);
    ``umount`` and ``rm`` take many paths per process.
    """
    mounted = mount_points()
    propagate = [NSPAWN_PROPAGATE / n.name for n in nodes]  # nspawn's, left behind when /run is not a tmpfs
    _in_chunks(RM, [str(p) for p in propagate if p.is_dir() and str(p) not in mounted], workers)
    roots = [str(n.merged) for n in nodes if str(n.merged) in mounted]
    # each umount syncs the upper filesystem (a disk flush): in parallel the flushes overlap
    _in_chunks(["umount"], roots, workers, quiet=True)
    mounted = mount_points()
    _in_chunks(["umount", "-l"], [r for r in roots if r in mounted], workers)
    ip_batch([*(f"netns delete {n.netns}" for n in nodes if n.netns_path.exists()),
              *(f"link del {link}" for link in host_links)])
    mounted = mount_points()
    _in_chunks(RM, [str(n.dir) for n in nodes if n.dir.exists() and str(n.merged) not in mounted], workers,
               check=True)
    # a killed container's cgroups are busy until the kernel has released its last task
    deadline = time.monotonic() + KILL_WAIT
    left = [n for n in nodes if not _remove_cgroups(n)]
    while left and time.monotonic() < deadline:
        time.sleep(_POLL)
        left = [n for n in left if not _remove_cgroups(n)]


def ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
    """Run ``ip`` commands in one process; ``-force`` goes on past a failing line (a link already gone)."""
    if lines:
        subprocess.run(["ip", *(["-n", netns] if netns else []), "-force", "-batch", "-"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, check=False)


def _in_chunks(argv: list[str], paths: Sequence[str], workers: int, check: bool = False,
               quiet: bool = False) -> None:
    """Run ``argv + paths`` as at most ``workers`` processes at once, each with its share of the paths."""
    if not paths:
        return
    size = -(-len(paths) // max(1, workers))
    chunks = [list(paths[i:i + size]) for i in range(0, len(paths), size)]

    def run(chunk: list[str]) -> None:
        subprocess.run([*argv, *chunk], stderr=subprocess.DEVNULL if quiet else None, check=check)

    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        list(pool.map(run, chunks))


#: Linux capability names by bit number (setpriv spelling).
CAP_NAMES: tuple[str, ...] = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
    "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
    "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
    "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
    "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
    "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
    "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # fmt: skip


def bounding_set(pid: int) -> set[str]:
    """Return the capability names in the bounding set of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return {name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1}
    raise RuntimeError(f"no CapBnd for pid {pid}")


def exec_argv(name: str, state_dir: Path) -> list[str]:
    """Return the argv prefix that runs a command inside the running node.

    ``nsenter -a`` enters all of the node's namespaces and its root; ``setpriv``
    (the node's own, from util-linux) then limits the command to the capabilities
    of the node's PID 1, so ``lab exec`` can do no more than the node itself.
    """
    pid = leader_pid(name, state_dir)
    allowed = sorted(bounding_set(pid) - {c.removeprefix("CAP_").lower() for c in FORBIDDEN_CAPS})
    caps = "-all," + ",".join("+" + c for c in allowed)
    return ["nsenter", "-t", str(pid), "-a", "setpriv", f"--bounding-set={caps}", "--"]


def exec(  # noqa: A001 - the lab's verb
    name: str,
    argv: list[str],
    state_dir: Path,
    timeout: float | None = 60.0,
    input: str | None = None,  # noqa: A002
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the running node and return its captured result."""
    return subprocess.run(
        [*exec_argv(name, state_dir), *argv],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=NODE_ENV,
        check=False,
    )


def wait_ready(name: str, state_dir: Path, timeout: float = 120.0) -> Readiness:
    """Wait until the node's systemd finished booting; report its state and failed units."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        left = max(1.0, deadline - time.monotonic())
        try:
            proc = exec(name, ["systemctl", "is-system-running", "--wait"], state_dir, timeout=left)
        except subprocess.TimeoutExpired:
            break
        state = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "unknown"
        if state in ("running", "degraded", "maintenance", "stopping"):
            break
        time.sleep(0.2)
    return Readiness(state, failed_units(name, state_dir) if state != "unknown" else ())


def failed_units(name: str, state_dir: Path) -> tuple[str, ...]:
    """Return the names of the node's failed units."""
    proc = exec(name, ["systemctl", "list-units", "--failed", "--plain", "--no-legend"], state_dir)
    return tuple(line.split()[0] for line in proc.stdout.splitlines() if line.strip())


def memory_pss(name: str, state_dir: Path) -> int:
    """Return the summed PSS (bytes) of every process in the node's PID namespace."""
    leader = leader_pid(name, state_dir)
    pidns = os.readlink(f"/proc/{leader}/ns/pid")
    total = 0
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc_dir / "ns/pid") != pidns:
                continue
            for line in (proc_dir / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def have_nspawn() -> bool:
    """True when systemd-nspawn is installed."""
    return shutil.which(NSPAWN) is not None
