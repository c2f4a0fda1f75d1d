"""The lab province compiles into the model every consumer reads."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from provnet import guard, model

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventory" / "lab"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def test_lab_province_shape() -> None:
    m = model.load(LAB)
    assert len(m.districts()) == 2 and len(m.communes()) == 4 and [s.slug for s in m.halls()] == ["ubnd-tinh"]
    assert {s.district for s in m.communes()} == {"huyen-cao-loc", "huyen-chi-lang"}
    assert m.sites["quan-son"].management == "inband"
    # every CE peers with the PE over its own /31
    for site in m.sites.values():
        if site.level == "province":
            continue
        ce = m.devices[f"{site.slug}-ce"]
        assert ce.interface("wan0").address == site.wan_ce
        assert ("pe", f"ce{site.id}") in next(s for s in m.segments if s.name == f"wan-{site.slug}").members


def test_a_province_level_hall_is_routed_by_the_dc_firewall() -> None:
    m = model.load(LAB)
    hall = m.sites["ubnd-tinh"]
    assert hall.level == "province" and not hall.via_carrier and hall.router == "dc-fw"
    assert (hall.asn, hall.loopback, hall.wan, hall.circuit_id) == (None, None, None, "")
    assert hall.devices == ("ubnd-tinh-vc",)                 # site_defaults without the CE
    ep, fw, core = m.devices["ubnd-tinh-vc"], m.devices["dc-fw"], m.devices["dc-core"]
    assert ep.level == "province" and ep.district is None and ep.sip is not None
    video = hall.lans["video"]
    # the firewall holds each VLAN's gateway, the endpoint's default route points at it, over one cable
    assert fw.interface("h7v20").address == video.gateway and fw.interface("h7v20").peer == "ubnd-tinh-vc"
    assert ep.neighbours.gateway == video.gateway.ip and ep.interface("eth0").peer == "dc-fw"
    assert {i.name for i in fw.interfaces} >= {"h7v10", "h7v20", "h7v99"}
    # the core routes every hall VLAN to the firewall; nothing of the hall goes to the carrier
    fw_transit = fw.interface("transit0").address.ip
    assert {(str(r.prefix), r.via) for r in core.neighbours.behind} >= {(str(l.subnet), fw_transit)
                                                                         for l in hall.lans.values()}
    assert not any(s.site == "ubnd-tinh" for s in m.segments if s.kind == "wan")
    assert f"ce{hall.id}" not in {i.name for i in m.pe.interfaces}
    # the registrar serves its account; a commune's CE and endpoint are unchanged by it
    assert "ubnd-tinh" in {a.user for a in m.sip_accounts()}
    assert m.devices["dong-dang-vc"].neighbours.gateway == m.sites["dong-dang"].lans["video"].gateway.ip


def test_every_lab_address_is_in_the_lab_range() -> None:
    m = model.load(LAB)
    for net in m.addresses():
        assert guard.in_lab_range(net), net
    for dev in m.nodes():
        guard.check(dev.ansible_host if dev.role != "pe" else str(dev.oob_address.ip))


def test_links_connect_real_interfaces() -> None:
    m = model.load(LAB)
    ifaces = {(d.hostname, i.name) for d in m.nodes() for i in d.interfaces}
    for link in m.links:
        assert link.a in ifaces and link.b in ifaces
        assert len(link.a[1]) <= 15 and len(link.b[1]) <= 15


def _ansible_inventory(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ANSIBLE_INVENTORY), *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})})


def test_ansible_inventory_groups() -> None:
    proc = _ansible_inventory("-i", "inventory/lab", "--list")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["dc"]["hosts"]) == {"dc-core", "dc-fw", "dc-sw", "dc-ntp", "dc-soc", "dc-sip", "dc-mcu"}
    assert set(data["district_huyen_chi_lang"]["hosts"]) == {
        "huyen-chi-lang-ce", "huyen-chi-lang-vc", "chi-lang-ce", "chi-lang-vc", "quan-son-ce", "quan-son-vc"}
    assert set(data["platform_baresip"]["hosts"]) == {h for h in data["_meta"]["hostvars"] if h.endswith("-vc")}
    assert set(data["sites"]["children"]) == {"halls", "districts", "communes"}
    assert data["halls"]["hosts"] == ["ubnd-tinh-vc"]


def test_ansible_inventory_host_slice() -> None:
    proc = _ansible_inventory("-i", "inventory/lab", "--host", "quan-son-ce")
    assert proc.returncode == 0, proc.stderr
    hv = json.loads(proc.stdout)
    m = model.load(LAB)
    assert hv["ansible_host"] == str(m.sites["quan-son"].loopback)  # in-band: the loopback
    assert hv["provnet_site"]["name"] == "Xã Quan Sơn"
    assert hv["provnet_asn"] == m.sites["quan-son"].asn
    assert ipaddress.ip_address(hv["ansible_host"]) in guard.LAB_RANGE
