"""Runs last: `lab down` leaves no namespace, mount, veth or process behind, after a crash too, and is safe twice."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from provnet import model
from provnet.lab import node, province, sysctl

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
              pytest.mark.skipif(os.environ.get("PROVNET_KEEP_LAB") == "1", reason="PROVNET_KEEP_LAB=1 keeps the lab")]


def _lab_processes() -> list[int]:
    root = str(province.lab_dir())
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "root").startswith(root) or root in (proc / "cmdline").read_text(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_down_leaves_nothing_and_is_idempotent(lab: model.Model) -> None:
    saved = province.lab_dir() / sysctl.SAVED_FILE
    originals = __import__("json").loads(saved.read_text())
    assert set(originals) == set(sysctl.LAB_LIMITS) | {k for k in sysctl.LAB_SETTINGS if sysctl.exists(k)}
    # as after a crash: one node's nspawn and another node's systemd killed under the lab
    sd = province.lab_dir()
    os.kill(int(node.node("dong-dang-ce", sd).pid_file.read_text().split()[0]), signal.SIGKILL)
    os.kill(node.leader_pid("chi-lang-ce", sd), signal.SIGKILL)
    removed = province.down()
    assert set(removed) == {d.hostname for d in lab.nodes()}
    assert province.leftovers() == []
    assert _lab_processes() == []
    assert {key: sysctl.read(key) for key in originals} == originals  # the host's own limits are back
    assert province.down() == []  # twice is fine
