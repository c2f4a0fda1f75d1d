"""The lab's management station: the controller with a systemd of its own.

In a province the management station is a DC Linux server that runs provnet and its
nightly jobs under systemd (the ``compliance_runner`` role installs them). In the lab the
controller is this machine, whose PID 1 need not be systemd; the station gives it one:
a system container from the lab image that shares the host's network namespace (so it
has exactly the controller's addresses and reach, and no way out the controller lacks),
without CAP_NET_ADMIN (it can use the host's network, never change it), with this
checkout, its virtualenv, ``$PROVNET_HOME`` and the lab's SSH key mounted at the same
paths. Nothing in it listens: its sshd is masked; the lab enters it with ``nsenter``.

    provnet lab station up          # boot it (idempotent)
    provnet lab exec provnet-station -- systemctl list-timers
    provnet lab station down
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from provnet import secrets
from provnet.lab import image as lab_image
from provnet.lab import node
from provnet.lab import province as prov

NAME = "provnet-station"
#: Units of the lab image that a node in the host's network namespace must not run.
MASKED = ("ssh.service", "ssh.socket", "rsyslog.service", "chrony.service", "snmpd.service",
          "frr.service", "kamailio.service", "janus.service", "ulogd2.service", "nftables.service")


def project_root() -> Path:
    """The checkout this provnet runs from (inventories, playbooks, roles)."""
    return Path(__file__).resolve().parents[2]


def binds() -> tuple[tuple[Path, bool], ...]:
    """What the station sees of the controller: read-only code, writable history."""
    home = secrets.home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_dir = prov.ensure_key().parent
    paths: list[tuple[Path, bool]] = [(project_root(), False), (home, True), (key_dir, False)]
    venv = Path(sys.prefix).resolve()
    if not venv.is_relative_to(project_root()):
        paths.append((venv, False))
    # the interpreter the virtualenv was made from, unless it is the image's own (Debian's /usr)
    base = Path(sys.base_prefix).resolve()
    if base != Path("/usr") and not any(base.is_relative_to(p) for p, _ in paths):
        paths.append((base, False))
    return tuple(paths)


def environment() -> dict[str, str]:
    """The variables a command in the station needs to find the same state as the controller."""
    env = {"PROVNET_HOME": str(secrets.home())}
    if "PROVNET_STATE_DIR" in os.environ:
        env["PROVNET_STATE_DIR"] = os.environ["PROVNET_STATE_DIR"]
    return env


def _mask(merged: Path) -> None:
    units = merged / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for unit in MASKED:
        link = units / unit
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to("/dev/null")


def is_running() -> bool:
    return node.is_running(NAME, prov.lab_dir())


def up() -> int:
    """Boot the station (idempotent); return its PID 1. Recorded in the lab's state: `lab down` stops it."""
    prov.check_host()
    sd = prov.lab_dir()
    if is_running():
        return node.leader_pid(NAME, sd)
    image = lab_image.build_image()
    n = node.node(NAME, sd)
    node.terminate(n)
    node.mount_overlay(n, image)
    _mask(n.merged)
    pid = node.start(NAME, image, sd, NAME, host_network=True, binds=binds())
    st = prov._state(sd)
    names = list(st.get("nodes", []))  # type: ignore[arg-type]
    if NAME not in names:
        prov._save_state(sd, {**st, "nodes": [*names, NAME]})
    ready = node.wait_ready(NAME, sd)
    if not ready.ok:
        raise prov.LabError(f"the management station did not boot: {ready}; see {n.log_file}")
    return pid


def down() -> None:
    """Stop the station and forget it (the rest of the lab keeps running)."""
    sd = prov.lab_dir()
    node.stop(NAME, sd)
    st = prov._state(sd)
    if st and NAME in st.get("nodes", []):
        prov._save_state(sd, {**st, "nodes": [n for n in st["nodes"] if n != NAME]})  # type: ignore[union-attr]


def run(argv: list[str], timeout: float | None = 600.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the station with the controller's provnet environment, from the checkout."""
    env = [f"{k}={v}" for k, v in environment().items()]
    wrapped = ["/usr/bin/env", *env, "/bin/sh", "-c", 'cd "$0" && exec "$@"', str(project_root()), *argv]
    return node.exec(NAME, wrapped, prov.lab_dir(), timeout=timeout)
