"""Shared test settings: secrets and caches go to a temporary home, never the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    if "PROVNET_HOME" not in os.environ or os.environ.get("PROVNET_TEST_HOME_SHARED") != "1":
        monkeypatch.setenv("PROVNET_HOME", str(tmp_path_factory.getbasetemp() / "provnet-home"))
    monkeypatch.delenv("PROVNET_PRODUCTION", raising=False)
    monkeypatch.setenv("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
