"""The CE firewall: the active ruleset is the intended one, and real packets agree with it."""

from __future__ import annotations

from typing import Any

import pytest

from provnet import model, render
from provnet.verify.plugin import expect

from provnet.verify.hosts import dc_probes, tcp_probes

pytestmark = pytest.mark.roles("ce")


@pytest.mark.layer("firewall", 0)
def test_active_ruleset_equals_intended(sh: Any, dev: model.Device, m: model.Model) -> None:
    intended = render.render_device(m, dev.hostname, "nftables")[0].sections["nftables.conf"]
    sh("mkdir -p /var/lib/provnet/verify")
    res = sh("cat > /var/lib/provnet/verify/nftables.conf <<'PROVNET_EOF'\n" + intended + "PROVNET_EOF\n"
             "unshare -n sh -c 'nft -f /var/lib/provnet/verify/nftables.conf && nft -s list ruleset' "
             "> /var/lib/provnet/verify/intended.nft && nft -s list ruleset > /var/lib/provnet/verify/running.nft && "
             "diff -u /var/lib/provnet/verify/intended.nft /var/lib/provnet/verify/running.nft")
    lines = [l for l in res.stdout.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    expect(res.rc == 0, "nftables ruleset vs intended", "identical", "; ".join(lines[:3]) or res.stderr.strip()[:200])


@pytest.mark.layer("firewall", 1)
def test_site_reaches_dc_services_and_nothing_else(dev: model.Device, m: model.Model, other: Any) -> None:
    site = m.sites[dev.site]
    endpoint = next((h for h in site.devices if m.devices[h].role == "endpoint"), None)
    if endpoint is None:
        pytest.skip("no endpoint on this site's LAN to send from")
    src = other(endpoint)
    registrar = str(m.service_address("sip_registrar"))
    allowed, denied = tcp_probes(src, [(registrar, m.sip_port), (registrar, 22)])
    expect(allowed in ("open", "refused") and denied == "dropped", f"from {endpoint} to the DC registrar",
           f"SIP tcp/{m.sip_port} passes, ssh tcp/22 dropped", f"SIP {allowed}, ssh {denied}")


@pytest.mark.layer("firewall", 2)
def test_dc_reaches_the_endpoint_only_from_registrar_and_bridge(dev: model.Device, m: model.Model,
                                                               other: Any) -> None:
    site = m.sites[dev.site]
    endpoint = next((m.devices[h] for h in site.devices if m.devices[h].role == "endpoint"), None)
    if endpoint is None:
        pytest.skip("no endpoint")
    ep_addr = str(endpoint.interfaces[0].address.ip)
    from_registrar, from_soc = dc_probes(other, m, ep_addr)
    expect(from_registrar in ("open", "refused") and from_soc == "dropped", f"DC → {endpoint.hostname} SIP",
           "registrar passes, SOC dropped", f"registrar {from_registrar}, SOC {from_soc}")
