"""Host sysctls the lab must raise while it runs, and restore afterwards.

Every node's systemd (and journald, udev-less as it is) holds several inotify
instances; the host default of 128 ``fs.inotify.max_user_instances`` is exhausted
after a few dozen nodes.  The neighbour (ARP/ND) table is one table for every network
namespace of the kernel, and its default hard limit of 1024 entries overflows on the
full-scale province (340 nodes with several neighbours each, plus the host's 340 on the
out-of-band bridge): the kernel then drops packets ("neighbor table overflow!") and SSH to
random nodes fails with "No route to host" or times out.

One setting is set to an exact value rather than raised: the scheduler's autogroups
(``kernel.sched_autogroup_enabled``).  With them on, every session is its own CPU
scheduling group, and every systemd service of every node is its own session: each of the
full-scale province's 166 endpoints then weighs as much on the CPU as the whole
conference bridge (about 400 threads), which starves the bridge under load, and ``Nice=``
cannot help because it only orders threads inside one group.  With them off, threads
compete one by one and ``Nice=`` works.  The kernel puts a thread in a group only when it
is created, so the setting must be in place before the nodes boot.

:func:`raise_limits` records the previous values in the state directory (only the first
time, so a second ``lab up`` never records the raised values as "old"), and
:func:`restore_limits` puts them back.

Only these limits are touched; in particular ``net.ipv4.ip_forward`` on the host
is never changed (the host must not forward lab traffic).
"""

from __future__ import annotations

import json
from pathlib import Path

#: sysctl -> value the lab needs (at least).
LAB_LIMITS: dict[str, int] = {
    "fs.inotify.max_user_instances": 8192,
    "fs.inotify.max_user_watches": 1048576,
    # thresholds of the shared neighbour tables (gc_thresh3: hard limit; 2: soft; 1: no GC below)
    "net.ipv4.neigh.default.gc_thresh3": 16384,
    "net.ipv4.neigh.default.gc_thresh2": 8192,
    "net.ipv4.neigh.default.gc_thresh1": 4096,
    "net.ipv6.neigh.default.gc_thresh3": 16384,
    "net.ipv6.neigh.default.gc_thresh2": 8192,
    "net.ipv6.neigh.default.gc_thresh1": 4096,
}
#: sysctl -> the exact value the lab needs (skipped on a kernel that lacks the sysctl).
LAB_SETTINGS: dict[str, int] = {
    "kernel.sched_autogroup_enabled": 0,
}
SAVED_FILE = "sysctl-saved.json"


def _proc_path(key: str) -> Path:
    """Return the /proc/sys path of a sysctl key."""
    return Path("/proc/sys") / key.replace(".", "/")


def exists(key: str) -> bool:
    """Whether this kernel has the sysctl."""
    return _proc_path(key).exists()


def read(key: str) -> int:
    """Read an integer sysctl."""
    return int(_proc_path(key).read_text().split()[0])


def write(key: str, value: int) -> None:
    """Write an integer sysctl."""
    _proc_path(key).write_text(f"{value}\n")


def raise_limits(state_dir: Path, limits: dict[str, int] | None = None,
                 settings: dict[str, int] | None = None) -> dict[str, int]:
    """Raise each limit to at least, and set each setting to exactly, the lab's value.

    The host's originals are remembered once; returns them.
    """
    limits = LAB_LIMITS if limits is None else limits
    settings = LAB_SETTINGS if settings is None else settings
    saved_path = state_dir / SAVED_FILE
    saved: dict[str, int] = json.loads(saved_path.read_text()) if saved_path.exists() else {}
    present = {key: wanted for key, wanted in settings.items() if exists(key)}
    current = {key: read(key) for key in (*limits, *present)}
    for key, value in current.items():
        saved.setdefault(key, value)
    # the originals are on disk before anything changes: a crash in between loses nothing
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = saved_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved, indent=2) + "\n")
    tmp.replace(saved_path)
    for key, wanted in limits.items():
        if current[key] < wanted:
            write(key, wanted)
    for key, wanted in present.items():
        if current[key] != wanted:
            write(key, wanted)
    return saved


def restore_limits(state_dir: Path) -> dict[str, int]:
    """Restore the limits recorded by :func:`raise_limits`; forget the record.

    Safe to call when nothing was recorded (returns an empty dict).
    """
    saved_path = state_dir / SAVED_FILE
    if not saved_path.exists():
        return {}
    saved: dict[str, int] = json.loads(saved_path.read_text())
    for key, value in saved.items():
        write(key, value)
    saved_path.unlink()
    return saved
