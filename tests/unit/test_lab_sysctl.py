"""The lab's host sysctls (limits raised, settings set exactly, originals restored) and its host interlock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provnet.lab import sysctl


@pytest.fixture
def proc_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /proc/sys holding a host's values."""
    root = tmp_path / "proc-sys"
    values = {"fs.inotify.max_user_instances": 128, "net.ipv4.neigh.default.gc_thresh3": 20000,
              "kernel.sched_autogroup_enabled": 1}
    for key, value in values.items():
        path = root / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    monkeypatch.setattr(sysctl, "_proc_path", lambda key: root / key.replace(".", "/"))
    return root


LIMITS = {"fs.inotify.max_user_instances": 8192, "net.ipv4.neigh.default.gc_thresh3": 16384}
SETTINGS = {"kernel.sched_autogroup_enabled": 0}


def test_limits_are_raised_never_lowered_and_settings_set_exactly(proc_sys: Path, tmp_path: Path) -> None:
    saved = sysctl.raise_limits(tmp_path / "state", LIMITS, SETTINGS)
    assert saved == {"fs.inotify.max_user_instances": 128, "net.ipv4.neigh.default.gc_thresh3": 20000,
                     "kernel.sched_autogroup_enabled": 1}
    assert sysctl.read("fs.inotify.max_user_instances") == 8192
    assert sysctl.read("net.ipv4.neigh.default.gc_thresh3") == 20000  # already above: left alone
    assert sysctl.read("kernel.sched_autogroup_enabled") == 0


def test_a_second_up_keeps_the_hosts_originals_and_down_restores_them(proc_sys: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    sysctl.raise_limits(state, LIMITS, SETTINGS)
    assert sysctl.raise_limits(state, LIMITS, SETTINGS)["kernel.sched_autogroup_enabled"] == 1
    assert json.loads((state / sysctl.SAVED_FILE).read_text())["fs.inotify.max_user_instances"] == 128
    restored = sysctl.restore_limits(state)
    assert restored["kernel.sched_autogroup_enabled"] == 1
    assert sysctl.read("kernel.sched_autogroup_enabled") == 1
    assert sysctl.read("fs.inotify.max_user_instances") == 128
    assert not (state / sysctl.SAVED_FILE).exists()
    assert sysctl.restore_limits(state) == {}  # twice is fine


def test_a_setting_this_kernel_lacks_is_skipped(proc_sys: Path, tmp_path: Path) -> None:
    (proc_sys / "kernel" / "sched_autogroup_enabled").unlink()
    saved = sysctl.raise_limits(tmp_path / "state", LIMITS, SETTINGS)
    assert "kernel.sched_autogroup_enabled" not in saved
    assert not (proc_sys / "kernel" / "sched_autogroup_enabled").exists()



# ------------------------------------------------------------ the host interlock of `lab up`

def test_lab_up_refuses_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.lab import province

    monkeypatch.setattr(province.os, "geteuid", lambda: 1000)
    with pytest.raises(province.LabError, match="lab needs root"):
        province.check_host()


def test_lab_up_names_the_kernel_features_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.lab import kernel, province

    monkeypatch.setattr(province.os, "geteuid", lambda: 0)
    monkeypatch.setattr(kernel, "probe", lambda include_optional=False: ["veth pairs", "overlayfs"])
    with pytest.raises(province.LabError, match="missing: veth pairs; overlayfs"):
        province.check_host()


def test_lab_up_refuses_a_host_that_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.lab import kernel, province

    monkeypatch.setattr(province.os, "geteuid", lambda: 0)
    monkeypatch.setattr(kernel, "probe", lambda include_optional=False: [])
    monkeypatch.setattr(sysctl, "read", lambda key: 1 if key == "net.ipv4.ip_forward" else 0)
    with pytest.raises(province.LabError, match="ip_forward"):
        province.check_host()
