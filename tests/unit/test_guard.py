"""The one address guard refuses every destination outside 198.18.0.0/15, in every entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provnet import guard, model
from provnet.cli import app
from provnet.errors import AddressRefused

REPO = Path(__file__).resolve().parents[2]
THANHHOA = REPO / "inventory" / "thanhhoa"


@pytest.mark.parametrize("address", ["10.38.0.1", "172.16.0.1", "192.168.1.1", "8.8.8.8", "198.20.0.1",
                                     "198.17.255.255", "::1", "lab-node"])
def test_refuses_outside_the_lab_range(address: str) -> None:
    with pytest.raises(AddressRefused):
        guard.check(address)


@pytest.mark.parametrize("address", ["198.18.0.1", "198.19.255.254", "198.18.64.98"])
def test_allows_the_lab_range(address: str) -> None:
    assert guard.check(address) == address


def test_production_needs_both_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AddressRefused, match="PROVNET_PRODUCTION=1"):
        guard.check("10.38.0.1", production=True)
    monkeypatch.setenv("PROVNET_PRODUCTION", "1")
    assert guard.check("10.38.0.1", production=True) == "10.38.0.1"
    with pytest.raises(AddressRefused):  # the environment alone is not enough
        guard.check("10.38.0.1", production=False)


def test_thanhhoa_is_production_addressed() -> None:
    m = model.load(THANHHOA)
    assert m.production and len(m.communes()) == 166
    assert all(not guard.in_lab_range(dev.ansible_host) for dev in m.devices.values())


def test_entry_point_ansible_inventory_refuses_thanhhoa() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(THANHHOA), "--list"],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert proc.returncode != 0
    assert "address guard: refusing" in proc.stderr


def test_entry_point_lab_up_refuses_thanhhoa() -> None:
    result = CliRunner().invoke(app, ["lab", "up", "-i", str(THANHHOA)])
    assert result.exit_code == 2
    assert "outside 198.18.0.0/15" in result.stderr


def test_entry_point_lab_wait_ssh_refuses_outside() -> None:
    from provnet.lab import province

    with pytest.raises(AddressRefused):
        province.wait_ssh("10.38.255.1", timeout=1)


def test_the_lab_overlay_of_thanhhoa_is_inside_the_range() -> None:
    m = model.load(REPO / "inventory" / "thanhhoa-lab")
    assert not m.production and len(m.communes()) == 166
    assert all(guard.in_lab_range(n) for n in m.addresses())
