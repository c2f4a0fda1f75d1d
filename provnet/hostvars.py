"""Hostvars: one device's slice of the compiled model, serialised as plain data.

A serialiser only: every value is a field (or method) of the model, one key per fact,
nothing computed here. The inventory plugin, ``provnet inventory show`` and the templates
(through :func:`provnet.render.context`) read these keys; tests/fixtures/hostvars/ pins them.
Secrets appear as vault references only.
"""

from __future__ import annotations

from typing import Any

from provnet.model import Device, Interface, Model, Site


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def site_vars(site: Site) -> dict[str, Any]:
    """A site as plain data."""
    return {
        "id": site.id, "code": site.code, "name": site.name, "slug": site.slug,
        "level": site.level, "kind": site.kind, "district": site.district,
        "circuit_id": site.circuit_id,
        "contact": {"name": site.contact_name, "phone": site.contact_phone},
        "bandwidth_mbps": site.bandwidth_mbps, "management": site.management,
        "asn": site.asn, "loopback": _str(site.loopback), "wan": _str(site.wan), "router": site.router,
        "lans": {name: {"vlan": lan.vlan, "subnet": str(lan.subnet), "gateway": str(lan.gateway.ip)}
                 for name, lan in site.lans.items()},
        "prefixes": [str(p) for p in site.prefixes],
        "devices": list(site.devices),
    }


def _interface(m: Model, i: Interface) -> dict[str, Any]:
    peer = m.devices.get(i.peer) if i.peer else None
    return {"name": i.name, "segment": i.segment, "address": _str(i.address),
            "peer": i.peer, "peer_role": peer.role if peer else ("pe" if i.peer == m.pe.hostname else None)}


def _neighbours(dev: Device) -> dict[str, Any]:
    n = dev.neighbours
    peer = n.bgp_peer
    return {
        "provnet_bgp_peer": {"address": str(peer.address), "asn": peer.asn, "interface": peer.interface,
                             "local": str(peer.local)}
        if peer else None,
        "provnet_gateway": _str(n.gateway),
        "provnet_upstream": _str(n.upstream),
        "provnet_behind": [{"prefix": str(r.prefix), "via": _str(r.via)} for r in n.behind],
        "provnet_bridges": [{"name": b.name, "vlan": b.vlan, "ports": list(b.ports), "address": _str(b.address),
                             "gateway": _str(b.gateway)} for b in n.bridges],
    }


def _province(m: Model) -> dict[str, Any]:
    src = m.source.province
    return {
        "provnet_province": {"name": m.name, "code": m.code, "production": m.production,
                             "carrier": {"name": m.carrier_name, "asn": m.carrier_asn},
                             "dc_asn": m.dc_asn, "dc_prefixes": [str(p) for p in m.dc_prefixes]},
        "provnet_pools": {"loopback": src.pools.loopback, "wan": src.pools.wan, "oob": _str(m.oob_network),
                          "vlans": {k: v.pool for k, v in src.vlans.items()}},
        # every site's addresses lie in these (loopback pool + VLAN pools): what DC services admit
        "provnet_site_supernets": m.site_supernets(),
        "provnet_services": {name: {"host": host, "address": str(m.service_address(name))}
                             for name, host in m.services.items()},
        "provnet_voice": {"domain": m.sip_domain, "sip_port": m.sip_port, "rtp_ports": list(m.rtp_ports),
                          "transport": m.sip_transport, "tls_port": m.sip_tls_port,
                          "registrar_tcp_ports": m.registrar_tcp_ports(),
                          "register_interval": m.register_interval, "max_expires": m.max_expires,
                          "rpc_port": m.sip_rpc_port},
        "provnet_controller": {"oob": _str(m.controller_oob.ip if m.controller_oob else None),
                               "data": _str(m.controller_data.ip if m.controller_data else None),
                               "zone": _str(m.controller_data.network if m.controller_data else None)},
        "provnet_admin_user": m.credentials["admin_user"],
        "provnet_secret_names": {
            "admin_password": m.credentials["admin_password"],
            "snmp_auth_key": m.credentials["snmp"]["auth_key"],
            "snmp_priv_key": m.credentials["snmp"]["priv_key"],
        },
    }


def _vc(m: Model, dev: Device) -> dict[str, Any]:
    return {"chair": m.vc.chair, "bridge_api_port": m.vc.bridge_api_port,
            "bridge_sip_port": m.vc.bridge_sip_port, "janus_port": m.vc.janus_port,
            "secret": m.vc.secret, "probe_slots": m.vc.probe_slots,
            "audio_codecs": list(m.vc.audio_codecs), "video_codecs": list(m.vc.video_codecs),
            "tone_hz": m.vc.tone_hz_of(dev.site), "records": m.vc.records(dev.site),
            "endpoint_nice": m.vc.endpoint_nice}


def _services(m: Model, dev: Device) -> dict[str, Any]:
    """What a DC server serves that depends on the site list."""
    out: dict[str, Any] = {}
    if dev.hostname == m.services["syslog"]:
        out["provnet_soc_sites"] = m.soc_sites()
        out["provnet_soc_parameters"] = {"change_window": m.soc.change_window, "utc_offset": m.soc.utc_offset}
    if dev.hostname == m.services["sip_registrar"]:
        out["provnet_registrar_accounts"] = [
            {"user": a.user, "extension": a.extension, "display_name": a.display_name, "password": a.password_ref}
            for a in m.sip_accounts()]
    return out


def province_vars(m: Model) -> dict[str, Any]:
    """The facts every device shares (the inventory plugin sets them once, on the group ``all``)."""
    return _province(m)


def device_vars(m: Model, dev: Device) -> dict[str, Any]:
    """One device's slice of the model (``ansible-inventory --host``): its own facts and the province's."""
    return {**own_vars(m, dev), **_province(m)}


def own_vars(m: Model, dev: Device) -> dict[str, Any]:
    """What is the device's own: everything in :func:`device_vars` but :func:`province_vars`."""
    site = m.sites[dev.site] if dev.site else None
    data: dict[str, Any] = {
        "ansible_host": dev.ansible_host,
        "provnet_hostname": dev.hostname,
        "provnet_role": dev.role,
        "provnet_platform": dev.platform,
        "provnet_platforms": list(dev.platforms),
        "provnet_level": dev.level,
        "provnet_index": dev.index,
        "provnet_management": dev.management,
        # where the controller manages the device (= ansible_host, which a play may override)
        "provnet_management_address": dev.ansible_host,
        "provnet_interfaces": [_interface(m, i) for i in dev.interfaces],
        "provnet_loopback": _str(dev.loopback),
        "provnet_asn": dev.asn,
        "provnet_oob_address": _str(dev.oob_address),
        "provnet_site": site_vars(site) if site else None,
        "provnet_district": dev.district,
        **_neighbours(dev),
        "provnet_vc": _vc(m, dev),
        **_services(m, dev),
    }
    if dev.sip is not None:
        data["provnet_sip"] = {"user": dev.sip.user, "extension": dev.sip.extension,
                               "display_name": dev.sip.display_name, "password": dev.sip.password_ref}
    return data
