"""Vendor templates (cisco_ios, fortios, cisco_tp) rendered from the Thanh Hóa production model.

These OSes cannot run here, so the rendered text is checked three ways:
golden files (``tests/fixtures/golden/<host>/<platform>/<section>``; refresh with
``PROVNET_UPDATE_GOLDEN=1 pytest tests/unit/test_vendor_templates.py`` and review the diff),
structure (hier_config's IOS parser; a FortiOS/TelePresence reading of our own), and
secrets (vault references without secrets; clear values only on their own lines with them).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

import pytest
from hier_config import Platform, WorkflowRemediation, get_hconfig

from provnet import model, render
from provnet.drivers import fortios as fos
from provnet.drivers.cisco_tp import parse_xconfiguration

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden"
UPDATE = os.environ.get("PROVNET_UPDATE_GOLDEN") == "1"
SITES = ("ham-rong", "an-nong", "ba-dinh")       # the first site (a ward) and two communes (fixed: golden)
DC = ("dc-core", "dc-fw", "dc-sw")
SECRETS = {"admin_password": "Clear-Admin-7f3a", "snmp_auth_key": "Clear-Auth-91bc",
           "snmp_priv_key": "Clear-Priv-2d4e"}


@pytest.fixture(scope="module")
def m() -> model.Model:
    return model.load(REPO / "inventory" / "thanhhoa")


def hosts(m: model.Model) -> list[str]:
    return [*DC, *(h for s in SITES for h in m.sites[s].devices)]


def rendered(m: model.Model, host: str, secrets: dict[str, str] | None = None) -> render.Rendered:
    (r,) = render.render_device(m, host, secrets=secrets)
    return r


def test_the_production_model_uses_vendor_platforms(m: model.Model) -> None:
    assert {h: m.devices[h].platform for h in DC} == {"dc-core": "cisco_ios", "dc-fw": "fortios",
                                                        "dc-sw": "cisco_ios"}
    for s in SITES:
        assert sorted(m.devices[h].platform for h in m.sites[s].devices) == ["cisco_ios", "cisco_tp"]
    lab = model.load(REPO / "inventory" / "thanhhoa-lab")
    assert lab.devices["dc-fw"].platforms == ("frr", "nftables")
    assert lab.devices["an-nong-ce"].platforms == ("frr", "nftables")
    assert lab.devices["an-nong-vc"].platform == "baresip"


# ------------------------------------------------------------------ golden

def test_golden(m: model.Model) -> None:
    """Every section of the representative hosts equals its golden file (deterministic output)."""
    seen: set[Path] = set()
    mismatched = []
    for host in hosts(m):
        r = rendered(m, host)
        assert r.sections, f"{host}: no templates for {r.platform}"
        assert rendered(m, host).sections == r.sections, f"{host}: rendering is not deterministic"
        for name, text in r.sections.items():
            path = GOLDEN / host / r.platform / name
            seen.add(path)
            if UPDATE:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            elif not path.is_file() or path.read_text(encoding="utf-8") != text:
                mismatched.append(str(path.relative_to(REPO)))
    if UPDATE:
        for stale in (p for p in GOLDEN.rglob("*") if p.is_file() and p not in seen):
            stale.unlink()
    assert not mismatched, ("rendered text differs from golden files (review, then refresh with "
                            f"PROVNET_UPDATE_GOLDEN=1): {mismatched}")
    stale = [p for p in GOLDEN.rglob("*") if p.is_file() and p not in seen]
    assert not stale, f"golden files no host renders any more: {stale}"


def test_full_province_renders(m: model.Model) -> None:
    """Smoke: every managed vendor device of the province renders, and nothing is left undefined."""
    count = 0
    for host, dev in m.devices.items():
        if dev.platform in ("cisco_ios", "fortios", "cisco_tp"):
            r = rendered(m, host)
            assert all(text.strip() for text in r.sections.values()), host
            count += 1
    assert count == 3 + 2 * len(m.sites)


# ------------------------------------------------------------------ cisco_ios structure

def ios(m: model.Model, host: str, secrets: dict[str, str] | None = None):  # noqa: ANN201
    return get_hconfig(Platform.CISCO_IOS, rendered(m, host, secrets).text())


def acl(cfg, name: str) -> list[str]:  # noqa: ANN001
    """An ACL's entries without remarks and without the sequence numbers hier_config adds."""
    return [re.sub(r"^\d+ ", "", c.text) for c in cfg.get_child(equals=name).children
            if not re.sub(r"^\d+ ", "", c.text).startswith("remark")]


@pytest.mark.parametrize("host", ["dc-core", "dc-sw", *(f"{s}-ce" for s in SITES)])
def test_ios_common_hardening(m: model.Model, host: str) -> None:
    text = rendered(m, host).text()
    cfg = ios(m, host)
    assert cfg.get_child(equals="ip ssh version 2")
    assert cfg.get_child(equals="aaa new-model")
    assert cfg.get_child(equals="aaa authentication login default local")
    assert cfg.get_child(startswith=f"username {m.credentials['admin_user']} privilege 15 ")
    for vty in cfg.get_children(startswith="line vty"):
        assert vty.get_child(equals="transport input ssh")
        assert vty.get_child(equals="access-class PROVNET-MGMT in")
    assert "telnet" not in text
    ntp = m.devices[m.services["ntp"]].interfaces[0].address.ip
    soc = m.devices[m.services["syslog"]].interfaces[0].address.ip
    assert cfg.get_child(equals=f"ntp server {ntp} prefer")
    assert cfg.get_child(equals=f"logging host {soc}")
    groups = list(cfg.get_children(startswith="snmp-server group "))
    assert groups and all(" v3 priv " in g.text for g in groups)
    assert all(" v3 auth sha " in u.text and " priv aes " in u.text
               for u in cfg.get_children(startswith="snmp-server user "))
    assert not list(cfg.get_children(startswith="snmp-server community"))
    archive = cfg.get_child(equals="archive")
    assert archive and archive.get_child(equals="path flash:archive") and archive.get_child(equals="write-memory")
    assert re.search(r"^banner login \^\n.+\n\^$", text, re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("host", ["dc-core", "dc-sw", *(f"{s}-ce" for s in SITES)])
def test_ios_every_interface_is_addressed_or_switched(m: model.Model, host: str) -> None:
    cfg = ios(m, host)
    dev = m.devices[host]
    ifaces = list(cfg.get_children(startswith="interface "))
    assert len(ifaces) >= sum(1 for i in dev.interfaces)
    addresses = set()
    for iface in ifaces:
        kids = [c.text for c in iface.children]
        assert "no shutdown" in kids or iface.text.startswith("interface Loopback"), iface.text
        if any(k.startswith("switchport") for k in kids):
            continue
        if iface.text == "interface GigabitEthernet0/0/1":     # the CE's LAN trunk parent: no address
            assert not any(k.startswith("ip address") for k in kids)
            continue
        (addr,) = [k for k in kids if k.startswith("ip address ")]
        _, _, ip, mask = addr.split()
        addresses.add(ipaddress.ip_interface(f"{ip}/{mask}"))
    want = {i.address for i in dev.interfaces if i.address is not None}
    if dev.loopback is not None:
        want.add(ipaddress.ip_interface(f"{dev.loopback}/32"))
    assert addresses == want


@pytest.mark.parametrize("site", SITES)
def test_ce_bgp_to_the_pe_announces_only_its_own_prefixes(m: model.Model, site: str) -> None:
    s = m.sites[site]
    cfg = ios(m, f"{site}-ce")
    bgp = cfg.get_child(equals=f"router bgp {s.asn}")
    assert bgp is not None
    neighbors = {c.text.split()[1] for c in bgp.get_children(startswith="neighbor ")}
    assert neighbors == {str(s.wan_pe.ip)}
    assert bgp.get_child(equals=f"neighbor {s.wan_pe.ip} remote-as {m.carrier_asn}")
    af = bgp.get_child(equals="address-family ipv4 unicast")
    assert af.get_child(equals=f"neighbor {s.wan_pe.ip} prefix-list PROVNET-PE-OUT out")
    assert af.get_child(equals=f"neighbor {s.wan_pe.ip} prefix-list PROVNET-PE-IN in")
    out = [c.text.split()[-1] for c in cfg.get_children(startswith="ip prefix-list PROVNET-PE-OUT seq")]
    assert out == [str(p) for p in s.prefixes]
    accepted = [c.text.split(" permit ")[1] for c in cfg.get_children(startswith="ip prefix-list PROVNET-PE-IN seq")]
    assert accepted == ["0.0.0.0/0", *(f"{p} le 32" for p in m.dc_prefixes)]
    networks = {c.text for c in af.get_children(startswith="network ")}
    assert networks == {f"network {p.network_address} mask {p.netmask}" for p in s.prefixes}


@pytest.mark.parametrize("site", SITES)
def test_ce_acls(m: model.Model, site: str) -> None:
    s = m.sites[site]
    cfg = ios(m, f"{site}-ce")
    rules = acl(cfg, "ip access-list extended PROVNET-LAN-IN")
    assert rules[-1] == "deny ip any any log"
    reg = m.devices[m.services["sip_registrar"]].interfaces[0].address.ip
    bridge = m.devices[m.services["bridge"]].interfaces[0].address.ip
    video = s.lans["video"].subnet
    v = f"{video.network_address} {video.hostmask}"
    assert f"permit udp {v} host {reg} eq 5060" in rules
    assert f"permit udp {v} range 10000 10999 host {bridge} range 10000 10999" in rules
    assert all(r.startswith("deny") or any(r.split()[2] == str(lan.subnet.network_address) for lan in s.lans.values())
               for r in rules), "every permit is from the site's own LANs"
    wan_in = acl(cfg, "ip access-list extended PROVNET-WAN-IN")
    assert f"permit udp host {bridge} range 10000 10999 {v} range 10000 10999" in wan_in
    assert f"permit udp host {reg} {v} eq 5060" in wan_in
    ssh = [r for r in wan_in if r.endswith(" eq 22")]
    assert ssh and all(ipaddress.ip_network(f"{r.split()[2]}/{r.split()[3]}".replace(" ", ""), strict=False)
                       .subnet_of(ipaddress.ip_network("10.38.250.0/23")) for r in ssh)
    assert wan_in[-1] == "deny ip any any log"
    mgmt = acl(cfg, "ip access-list standard PROVNET-MGMT")
    assert mgmt[-1] == "deny any log"
    assert {f"permit {p.network_address} {p.hostmask}" for p in m.dc_prefixes} <= set(mgmt)


def test_core_and_switch(m: model.Model) -> None:
    core = ios(m, "dc-core")
    bgp = core.get_child(equals=f"router bgp {m.dc_asn}")
    pe = m.pe.interface("dc0").address.ip
    assert bgp.get_child(equals=f"neighbor {pe} remote-as {m.carrier_asn}")
    servers = next(s for s in m.segments if s.name == "dc-servers")
    fw = m.devices["dc-fw"].interface("transit0").address.ip
    assert core.get_child(equals=f"ip route {servers.subnet.network_address} {servers.subnet.netmask} {fw} "
                                 "name behind-firewall")
    sw = ios(m, "dc-sw")
    assert sw.get_child(equals="vlan 100")
    assert sw.get_child(equals="interface Vlan100").get_child(startswith="ip address 10.38.251.5 ")
    trunk = sw.get_child(equals="interface GigabitEthernet1/0/4")
    assert trunk.get_child(equals="switchport mode trunk") and trunk.get_child(equals="switchport trunk allowed vlan 100")
    access = [i for i in sw.get_children(startswith="interface GigabitEthernet")
              if i.get_child(equals="switchport mode access")]
    assert len(access) == 4 and all(i.get_child(equals="switchport access vlan 100") for i in access)
    assert sw.get_child(equals="ip default-gateway 10.38.251.4")


def test_hier_config_remediation(m: model.Model) -> None:
    """From a factory config the remediation is the whole intent; from the intent, nothing."""
    intended = rendered(m, "an-nong-ce").text()
    factory = "hostname Router\nline vty 0 4\n transport input telnet\n"
    rem = WorkflowRemediation(get_hconfig(Platform.CISCO_IOS, factory), get_hconfig(Platform.CISCO_IOS, intended))
    lines = list(rem.remediation_config.dump_simple())
    assert "hostname an-nong-ce" in lines and "router bgp 4200380099" in lines
    assert "  transport input ssh" in lines or " transport input ssh" in lines
    same = WorkflowRemediation(get_hconfig(Platform.CISCO_IOS, intended), get_hconfig(Platform.CISCO_IOS, intended))
    assert not list(same.remediation_config.dump_simple())


# ------------------------------------------------------------------ fortios structure

def test_fortios_policy(m: model.Model) -> None:
    text = rendered(m, "dc-fw").text()
    tree = fos.parse_config(text)
    flat = fos.flatten(tree)
    policies = tree.children["config firewall policy"].children
    last = list(policies.values())[-1].sets
    assert last["action"] == "deny" and last["logtraffic"] == "all" and last["srcaddr"] == '"all"'
    assert all(p.sets.get("logtraffic") == "all" for p in policies.values())
    by_name = {p.sets["name"].strip('"'): p.sets for p in policies.values()}
    assert by_name["sites-to-dc-voice"]["service"] == '"PROVNET-SIP" "PROVNET-RTP"'
    assert by_name["sites-to-dc-voice"]["srcintf"] == '"transit"' and by_name["sites-to-dc-voice"]["dstintf"] == '"servers"'
    assert by_name["dc-voice-to-endpoints"]["srcaddr"] == '"dc-voice"'
    assert by_name["dc-voice-to-endpoints"]["dstaddr"] == '"site-endpoints"'
    for svc in ("ntp", "syslog", "https"):
        assert by_name[f"sites-to-dc-{svc}"]["action"] == "accept"
    ifaces = tree.children["config system interface"].children
    assert all("ip" in i.sets and "telnet" not in i.sets.get("allowaccess", "") for i in ifaces.values())
    assert flat[("config system global", "set admin-telnet")] == "disable"
    snmp = tree.children["config system snmp user"].children['edit "provnet"'].sets
    assert snmp["security-level"] == "auth-priv"
    assert flat[("config log syslogd setting", "set server")] == '"10.38.251.11"'
    assert flat[("config system ntp", "config ntpserver", 'edit "1"', "set server")] == '"10.38.251.10"'
    assert "10.38.251.13 255.255.255.255" in flat[("config firewall address", 'edit "dc-mcu"', "set subnet")]


# ------------------------------------------------------------------ cisco_tp structure

@pytest.mark.parametrize("site", SITES)
def test_telepresence_settings(m: model.Model, site: str) -> None:
    dev = m.devices[f"{site}-vc"]
    cfg = parse_xconfiguration(rendered(m, dev.hostname).text())
    assert cfg["SIP URI"] == f"{dev.sip.user}@{dev.sip.domain}"
    assert cfg["SIP DisplayName"] == dev.sip.display_name
    assert cfg["SIP Authentication UserName"] == dev.sip.user
    # inventory/thanhhoa: sip.transport tls — TLS to the registrar's 5061, its certificate verified
    assert (cfg["SIP DefaultTransport"], cfg["SIP TlsVerify"], cfg["SIP Proxy 1 Address"]) == (
        "TLS", "On", "10.38.251.12:5061")
    assert cfg["H323 Mode"] == "Off" and cfg["NetworkServices H323 Mode"] == "Off"
    assert cfg["NetworkServices SSH Mode"] == "On" and cfg["NetworkServices Telnet Mode"] == "Off"
    assert cfg["NetworkServices HTTP Mode"] == "HTTPS"
    assert (cfg["Network 1 QoS Diffserv Audio"], cfg["Network 1 QoS Diffserv Video"],
            cfg["Network 1 QoS Diffserv Signalling"]) == ("46", "34", "24")      # EF, AF41, CS3
    assert cfg["NetworkServices NTP Server 1 Address"] == "10.38.251.10"
    assert cfg["Logging External Server Address"] == "10.38.251.11"
    assert cfg["Network 1 IPv4 Gateway"] == str(m.sites[site].lans["video"].gateway.ip)


# ------------------------------------------------------------------ secrets

SECRET_LINES = {
    "admin_password": (r"^username \S+ privilege 15 algorithm-type scrypt secret ", r'^\s*set password "'),
    "snmp_auth_key": (r"^snmp-server user ", r'^\s*set auth-pwd "'),
    "snmp_priv_key": (r"^snmp-server user ", r'^\s*set priv-pwd "'),
}


@pytest.mark.parametrize("host", ["dc-fw", "dc-core", "an-nong-ce", "an-nong-vc"])
def test_vault_references_stay_without_secrets(m: model.Model, host: str) -> None:
    text = rendered(m, host).text()
    refs = set(re.findall(r"vault:\w+", text))
    want = {"vault:snmp_auth_key", "vault:snmp_priv_key", "vault:admin_password"}
    if host.endswith("-vc"):
        want = {m.devices[host].sip.password_ref}
    assert refs == want
    assert not any(v in text for v in SECRETS.values())


@pytest.mark.parametrize("host", ["dc-fw", "dc-core", "an-nong-ce", "an-nong-vc"])
def test_clear_secrets_only_where_expected(m: model.Model, host: str) -> None:
    sip_ref = m.devices["an-nong-vc"].sip.password_ref.removeprefix("vault:")
    secrets = {**SECRETS, sip_ref: "Clear-Sip-55aa"}
    text = rendered(m, host, secrets).text()
    assert "vault:" not in text
    for name, clear in secrets.items():
        lines = [l for l in text.splitlines() if clear in l]
        if name == sip_ref:
            assert lines == (['xConfiguration SIP Authentication Password: "Clear-Sip-55aa"']
                             if host.endswith("-vc") else [])
            continue
        if host.endswith("-vc"):
            assert lines == []
            continue
        assert len(lines) == 1, (name, lines)
        assert any(re.match(p, lines[0]) for p in SECRET_LINES[name]), (name, lines[0])
