"""Shared test settings: secrets, backups and caches go to a test home, never the user's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _test_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One provnet home per run (set before any fixture, module-scoped ones included).

    As root it is stable under the lab's state dir, so a kept lab (PROVNET_KEEP_LAB=1)
    and the next run share one vault; otherwise a temporary folder.
    """
    saved = {k: os.environ.get(k) for k in ("PROVNET_HOME", "PROVNET_PRODUCTION", "ANSIBLE_CONFIG")}
    if os.geteuid() == 0:
        from provnet.lab.paths import state_root

        home = state_root() / "test-home"
    else:
        home = tmp_path_factory.getbasetemp() / "provnet-home"
    os.environ["PROVNET_HOME"] = str(home)
    os.environ.pop("PROVNET_PRODUCTION", None)
    os.environ["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
