"""Routers (CE and DC core): FRR running its intended config, eBGP to the PE, routes both ways."""

from __future__ import annotations

from typing import Any

import pytest

from provnet import model, render
from provnet.verify.plugin import expect

pytestmark = pytest.mark.roles("ce", "core")


def _peer(dev: model.Device, m: model.Model) -> str:
    seg = next(i.segment for i in dev.interfaces if i.name == "wan0")
    return str(next(i.address.ip for i in m.pe.interfaces if i.segment == seg and i.address))


@pytest.mark.layer("wan", 0)
def test_wan_link_is_up(facts: dict[str, Any]) -> None:
    wan = next((l for l in facts["links"] or [] if l["ifname"] == "wan0"), None)
    state = wan.get("operstate") if wan else "missing"
    expect(wan is not None and "UP" in wan.get("flags", []) and state in ("UP", "UNKNOWN"),
           "WAN interface wan0", "up", state if wan else "missing")


@pytest.mark.layer("wan", 1)
def test_frr_is_running(facts: dict[str, Any]) -> None:
    frr = facts["units"].get("frr", {})
    expect(frr.get("active") == "active", "FRR service", "active and enabled", f"{frr.get('active')}, {frr.get('enabled')}")


@pytest.mark.layer("wan", 2)
def test_ebgp_to_the_pe_is_established(facts: dict[str, Any], dev: model.Device, m: model.Model) -> None:
    peer = _peer(dev, m)
    state = ((facts["bgp"] or {}).get("peers", {}).get(peer) or {}).get("state", "absent")
    expect(state == "Established", f"eBGP to PE {peer}", "Established", state)


@pytest.mark.layer("routing", 0)
def test_dc_prefixes_are_received(facts: dict[str, Any], m: model.Model, dev: model.Device) -> None:
    rib = facts["rib"] or {}
    learnt = {p for p, routes in rib.items() if any(r.get("protocol") == "bgp" and r.get("selected") for r in routes)}
    if dev.role == "ce":
        missing = [str(p) for p in m.dc_prefixes if str(p) not in learnt]
        expect(not missing, "routes learnt over BGP", "every DC prefix",
               f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}")
    else:
        # a site's own missing prefixes are that site's finding (its WAN layer), not the DC's:
        # the core fails only when the carrier delivers no site route at all
        sites = {str(p) for s in m.sites.values() for p in s.prefixes}
        expect(bool(learnt & sites), "site routes learnt over BGP", "routes from the sites",
               "none: the carrier's VPN delivers no site prefix to the DC")


@pytest.mark.layer("routing", 1)
def test_own_prefixes_are_announced(sh: Any, dev: model.Device, m: model.Model) -> None:
    peer = _peer(dev, m)
    out = sh(f"vtysh -c 'show bgp ipv4 unicast neighbors {peer} advertised-routes json'").stdout
    import json

    routes = set((json.loads(out or "{}").get("advertisedRoutes") or {}).keys())
    own = {str(p) for p in m.sites[dev.site].prefixes} if dev.site else {str(p) for p in m.dc_prefixes}
    expect(routes == own, f"prefixes announced to PE {peer}", sorted(own), sorted(routes) or "none")


@pytest.mark.layer("config", 0)
def test_running_config_equals_intended(sh: Any, dev: model.Device, m: model.Model) -> None:
    intended = render.render_device(m, dev.hostname, "frr")[0].sections["frr.conf"]
    sh("mkdir -p /var/lib/provnet/verify")
    res = sh("cat > /var/lib/provnet/verify/frr.conf <<'PROVNET_EOF'\n" + intended + "PROVNET_EOF\n"
             "/usr/lib/frr/frr-reload.py --test /var/lib/provnet/verify/frr.conf")
    from provnet.drivers.frr import parse_reload_test

    delete, add = parse_reload_test(res.stdout)
    expect(not delete and not add, "FRR running config vs intended", "no difference",
           f"extra: {delete[:3]} missing: {add[:3]}")
