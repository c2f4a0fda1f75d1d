"""One lab per test run, shared by every integration test (`make test` starts with `lab down --force`)."""

from __future__ import annotations

import os
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
    if os.environ.get("PROVNET_KEEP_LAB") == "1":  # for development: keep the lab for the next run
        return
    province.down()
    assert province.leftovers() == []
