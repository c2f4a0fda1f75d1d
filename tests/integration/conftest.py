"""One lab per test run, shared by every integration test (`make test` starts with `lab down --force`)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provnet import model
from provnet.lab import province

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventory" / "lab"


@pytest.fixture(scope="session")
def lab_model() -> model.Model:
    return model.load(LAB)


@pytest.fixture(scope="session")
def lab(lab_model: model.Model) -> Iterator[model.Model]:
    """The lab province, up for the whole session, torn down (and checked clean) at the end."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    province.up(lab_model)
    yield lab_model
    province.down()
    assert province.leftovers() == []


def ssh(m: model.Model, host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command on a lab node over real SSH at its management address, with the lab key."""
    from provnet import guard

    dev = next(d for d in m.nodes() if d.hostname == host)
    assert dev.oob_address is not None
    addr = guard.check(str(dev.oob_address.ip), purpose="ssh to")
    return subprocess.run(
        ["ssh", "-i", str(province.key_path()), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"root@{addr}", command],
        capture_output=True, text=True, timeout=timeout,
    )
