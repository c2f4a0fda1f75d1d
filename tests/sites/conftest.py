"""testinfra site checks: hosts come from the Ansible inventory, expectations from the compiled model.

Run through `provnet verify` (parallel, one SSH connection per host, facts once per host),
or directly: `pytest tests/sites -p provnet.verify.plugin --provnet-inventory inventory/lab`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from provnet import model, selection
from provnet.verify import facts as facts_mod
from provnet.verify import hosts
from provnet.verify.plugin import SITE_OF

REPO = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--provnet-inventory", default=os.environ.get("PROVNET_INVENTORY", str(REPO / "inventory/lab")))
    parser.addoption("--provnet-limit", default=os.environ.get("PROVNET_LIMIT", ""))


@lru_cache(maxsize=4)
def _model(path: str) -> model.Model:
    return model.load(path)


def pytest_configure(config: pytest.Config) -> None:
    m = _model(config.getoption("--provnet-inventory"))
    config.stash[SITE_OF] = {h: (d.site or "dc") for h, d in m.devices.items()}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "hostname" not in metafunc.fixturenames:
        return
    config = metafunc.config
    m = _model(config.getoption("--provnet-inventory"))
    chosen = selection.select(m, config.getoption("--provnet-limit") or None)
    roles = metafunc.definition.get_closest_marker("roles")
    levels = metafunc.definition.get_closest_marker("levels")
    hosts = [h for h in chosen if (roles is None or m.devices[h].role in roles.args)
             and (levels is None or m.devices[h].level in levels.args)]
    metafunc.parametrize("hostname", [pytest.param(h, marks=pytest.mark.xdist_group(h)) for h in hosts], ids=hosts)


@pytest.fixture(scope="session")
def m(pytestconfig: pytest.Config) -> model.Model:
    return _model(pytestconfig.getoption("--provnet-inventory"))


_FACTS: dict[str, dict[str, Any]] = {}


@pytest.fixture
def host(hostname: str, pytestconfig: pytest.Config) -> Any:
    """testinfra host over the Ansible inventory (its ControlPath: one SSH connection per host)."""
    return hosts.get(hostname, pytestconfig.getoption("--provnet-inventory"))


@pytest.fixture
def sh(host: Any):  # type: ignore[no-untyped-def]
    return lambda command: hosts.root_run(host, command)


@pytest.fixture
def other(pytestconfig: pytest.Config):  # type: ignore[no-untyped-def]
    """Another device's testinfra host (to send real packets from it)."""
    return lambda name: hosts.get(name, pytestconfig.getoption("--provnet-inventory"))


@pytest.fixture
def facts(hostname: str, host: Any) -> dict[str, Any]:
    if hostname not in _FACTS:
        _FACTS[hostname] = facts_mod.gather(lambda c: (lambda r: (r.rc, r.stdout))(hosts.root_run(host, c)))
    return _FACTS[hostname]


@pytest.fixture
def dev(hostname: str, m: model.Model) -> model.Device:
    return m.devices[hostname]
