"""Video-conference endpoints: baresip running, registered at the DC registrar, answering SIP OPTIONS."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from provnet import model
from provnet.verify.plugin import expect
from provnet.vc import kamailio, sip

pytestmark = pytest.mark.roles("endpoint")
_DUMP: dict[str, dict[str, kamailio.Registration]] = {}


def registrations(m: model.Model) -> dict[str, kamailio.Registration]:
    """One ul.dump per run (per worker) from the registrar's JSON-RPC (management side)."""
    key = str(m.root)
    if key not in _DUMP:
        registrar = m.devices[m.services["sip_registrar"]]
        _DUMP[key] = kamailio.KamailioRpc(registrar.ansible_host, m.sip_rpc_port, production=m.production).ul_dump()
    return _DUMP[key]


@pytest.mark.layer("endpoint", 0)
def test_baresip_is_running(facts: dict[str, Any]) -> None:
    unit = facts["units"].get("baresip", {})
    expect(unit.get("active") == "active", "baresip service", "active", f"{unit.get('active')}, {unit.get('enabled')}")


@pytest.mark.layer("registration", 0)
def test_endpoint_is_registered(dev: model.Device, m: model.Model) -> None:
    assert dev.sip is not None
    reg = kamailio.find(registrations(m), dev.sip.aor)
    addr = str(dev.interfaces[0].address.ip)
    expect(reg is not None and reg.active and addr in reg.contact, f"registration of {dev.sip.aor}",
           f"registered from {addr}", reg.contact if reg else "not registered")


@pytest.mark.layer("signalling", 0)
def test_endpoint_answers_options(dev: model.Device, m: model.Model, other: Any) -> None:
    bridge = m.devices[m.services["bridge"]]
    local = str(bridge.data_address)
    target = str(dev.interfaces[0].address.ip)
    argv, req = sip.remote_script(target, m.sip_port, local, timeout=2.0, production=m.production)
    from provnet.verify.hosts import root_run

    res = root_run(other(bridge.hostname), " ".join(shlex.quote(a) for a in argv))
    result = sip.parse_remote_output(res.stdout, req)
    expect(result.ok, f"SIP OPTIONS from {bridge.hostname} to {target}", "a final answer",
           result.error or f"status {getattr(result, 'status', '?')}")
