"""A province-level hall: no CE — its VLANs end on the DC firewall, which admits it to the DC services only."""

from __future__ import annotations

from typing import Any

import pytest

from provnet import model
from provnet.verify.hosts import root_run, dc_probes, tcp_probes
from provnet.verify.plugin import expect

pytestmark = [pytest.mark.roles("endpoint"), pytest.mark.levels("province")]


@pytest.mark.layer("firewall", 0)
def test_the_dc_firewall_is_the_halls_gateway(dev: model.Device, m: model.Model, other: Any) -> None:
    site = m.sites[dev.site]  # type: ignore[index]
    gateway = str(dev.neighbours.gateway)
    res = root_run(other(dev.hostname), "ip -4 -o route show default; "
                   f"ping -n -c1 -W2 {gateway} >/dev/null && echo REPLY")
    via = next((w for r in res.stdout.splitlines() if r.startswith("default") for w in [r.split()[2]]), "")
    expect(via == gateway and "REPLY" in res.stdout, f"default route of {dev.hostname}",
           f"via {gateway} ({site.router}), which answers", f"via {via or 'none'}"
           + (", no answer" if "REPLY" not in res.stdout else ""))


@pytest.mark.layer("firewall", 1)
def test_the_hall_reaches_dc_services_and_nothing_else(dev: model.Device, m: model.Model, other: Any) -> None:
    registrar = str(m.service_address("sip_registrar"))
    src = other(dev.hostname)
    allowed, denied = tcp_probes(src, [(registrar, m.sip_port), (registrar, 22)])
    expect(allowed in ("open", "refused") and denied == "dropped", f"from {dev.hostname} to the DC registrar",
           f"SIP tcp/{m.sip_port} passes, ssh tcp/22 dropped by {m.sites[dev.site].router}",  # type: ignore[index]
           f"SIP {allowed}, ssh {denied}")


@pytest.mark.layer("firewall", 2)
def test_the_dc_reaches_the_hall_only_from_registrar_and_bridge(dev: model.Device, m: model.Model,
                                                               other: Any) -> None:
    ep_addr = str(dev.data_address)
    from_registrar, from_soc = dc_probes(other, m, ep_addr)
    expect(from_registrar in ("open", "refused") and from_soc == "dropped", f"DC → {dev.hostname} SIP",
           "registrar passes, SOC dropped", f"registrar {from_registrar}, SOC {from_soc}")
