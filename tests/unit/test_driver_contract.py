"""Every driver class keeps the base interface: its signatures, its getters' declared shapes
(provnet/drivers/models.py) and the platform traits the engine asks of it. No socket is opened."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from provnet.drivers import DRIVERS, get_network_driver, models
from provnet.drivers.base import NetworkDriver, PlatformTraits
from provnet.drivers.linux import LinuxDriver, make_bundle, parse_bundle

INTERFACE = sorted(name for name, value in vars(NetworkDriver).items()
                   if not name.startswith("_") and inspect.isfunction(value))
OWN = [name for name in DRIVERS if name != "cisco_ios"]  # NAPALM's ios driver: its own annotations


def _cls(platform: str) -> Any:
    return get_network_driver(platform)


@pytest.mark.parametrize("platform", list(DRIVERS))
@pytest.mark.parametrize("method", INTERFACE)
def test_method_signatures_match_the_base(platform: str, method: str) -> None:
    """Same parameters, kinds and defaults as the base; extra ones only after them, with a default."""
    base = list(inspect.signature(getattr(NetworkDriver, method)).parameters.values())
    ours = list(inspect.signature(getattr(_cls(platform), method)).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours[:len(base)]] == [(p.name, p.kind, p.default) for p in base]
    assert all(p.default is not inspect.Parameter.empty for p in ours[len(base):]), ours


@pytest.mark.parametrize("platform", OWN)
def test_every_getter_returns_its_declared_shape(platform: str) -> None:
    cls = _cls(platform)
    getters = [name for name in dir(cls) if name.startswith("get_") and callable(getattr(cls, name))]
    assert getters
    for name in getters:
        assert name in models.GETTERS, f"{platform}.{name}: declare its shape in provnet/drivers/models.py"
        hint = typing.get_type_hints(getattr(cls, name)).get("return")
        assert hint == models.GETTERS[name], f"{platform}.{name} returns {hint}, models says {models.GETTERS[name]}"


@pytest.mark.parametrize("platform", list(DRIVERS))
def test_every_driver_declares_the_platform_traits(platform: str) -> None:
    cls = _cls(platform)
    assert issubclass(cls, PlatformTraits)
    assert cls.login in ("password", "key")
    for flag in ("supports_commit_confirm", "confirms_on_fresh_connection", "accepts_commit_message",
                 "shares_session"):
        assert isinstance(getattr(cls, flag), bool), flag
    sections = {"b": "two\n", "a": "one\n"}
    candidate = cls.build_candidate(sections)
    if issubclass(cls, LinuxDriver):
        assert cls.login == "key" and cls.confirms_on_fresh_connection and cls.shares_session
        assert all(callable(getattr(cls, m)) for m in ("share", "open_fresh"))
        assert candidate == make_bundle(sections) and parse_bundle(candidate) == sections
    else:
        assert cls.login == "password" and not cls.confirms_on_fresh_connection and not cls.shares_session
        assert candidate == "one\ntwo\n"


def test_the_platforms_as_the_engine_knew_them() -> None:
    """What engine.device used to decide by platform name, now each class's own answer."""
    linux = {p for p in DRIVERS if _cls(p).login == "key"}
    assert linux == {"frr", "nftables", "linux_switch", "baresip"}
    assert {p for p in DRIVERS if not _cls(p).accepts_commit_message} == {"cisco_ios"}
    assert {p for p in DRIVERS if not _cls(p).supports_commit_confirm} == {"cisco_tp"}


def test_the_bundle_round_trips_and_refuses_plain_text() -> None:
    sections = {"50-provnet-br10.netdev": "[NetDev]\nName=br10\n\n", "50-provnet-br10.network": "[Match]\n"}
    assert parse_bundle(make_bundle(sections)) == sections
    with pytest.raises(Exception, match="must start with"):
        parse_bundle("hostname x\n### file: a\n")


def test_shape_errors_name_what_is_wrong() -> None:
    facts: dict[str, Any] = {"hostname": "h", "fqdn": "h", "vendor": "v", "model": "m", "os_version": "1",
                             "serial_number": "", "uptime": 3, "interface_list": ["lo"]}
    assert models.shape_errors(facts, models.Facts) == []  # an int uptime is a float (numeric tower)
    bad = dict(facts, uptime="3", extra=1)
    del bad["fqdn"]
    assert models.shape_errors(bad, models.Facts) == [
        "value: missing key 'fqdn'", "value: unexpected key 'extra'", "uptime: expected float, got str '3'"]
    assert models.shape_errors({"eth0": {"ipv4": {"198.18.0.1": {"prefix_length": True}}}}, models.InterfacesIP) == [
        "['eth0'].ipv4['198.18.0.1'].prefix_length: expected int, got bool True"]
    assert models.shape_errors({"running": True}, models.RegistrationDict) == []  # raw, error: not required
