"""Slices of the compiled model as plain data: what Ansible sees as hostvars.

The inventory plugin, ``provnet inventory show`` and the templates all read these,
so a device's facts are computed in one place. Secrets appear as vault names only.
"""

from __future__ import annotations

from typing import Any

from provnet.model import Device, Model, Site


def service_address(m: Model, service: str) -> str:
    """The data-plane address of the DC server that provides a service."""
    dev = m.devices[m.services[service]]
    for iface in dev.interfaces:
        if iface.address is not None:
            return str(iface.address.ip)
    raise ValueError(f"service {service}: {dev.hostname} has no data-plane address")


def site_vars(m: Model, site: Site) -> dict[str, Any]:
    """A site as plain data."""
    return {
        "id": site.id, "code": site.code, "name": site.name, "slug": site.slug,
        "level": site.level, "kind": site.kind, "district": site.district,
        "circuit_id": site.circuit_id,
        "contact": {"name": site.contact_name, "phone": site.contact_phone},
        "bandwidth_mbps": site.bandwidth_mbps, "management": site.management,
        "asn": site.asn, "loopback": str(site.loopback), "wan": str(site.wan),
        "wan_pe": str(site.wan_pe.ip), "wan_ce": str(site.wan_ce.ip),
        "lans": {name: {"vlan": lan.vlan, "subnet": str(lan.subnet), "gateway": str(lan.gateway.ip)}
                 for name, lan in site.lans.items()},
        "prefixes": [str(p) for p in site.prefixes],
        "devices": list(site.devices),
    }


def device_vars(m: Model, dev: Device) -> dict[str, Any]:
    """One device's slice of the model (``ansible-inventory --host``)."""
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
        "provnet_interfaces": [
            {"name": i.name, "segment": i.segment, "address": str(i.address) if i.address else None}
            for i in dev.interfaces
        ],
        "provnet_loopback": str(dev.loopback) if dev.loopback else None,
        "provnet_asn": dev.asn,
        "provnet_oob_address": str(dev.oob_address) if dev.oob_address else None,
        "provnet_site": site_vars(m, site) if site else None,
        "provnet_district": dev.district,
        "provnet_province": {"name": m.name, "code": m.code, "production": m.production,
                             "carrier": {"name": m.carrier_name, "asn": m.carrier_asn},
                             "dc_asn": m.dc_asn, "dc_prefixes": [str(p) for p in m.dc_prefixes]},
        "provnet_services": {name: {"host": host, "address": service_address(m, name)}
                             for name, host in m.services.items()},
        "provnet_voice": {"domain": m.sip_domain, "sip_port": m.sip_port, "rtp_ports": list(m.rtp_ports),
                          "register_interval": m.register_interval, "max_expires": m.max_expires,
                          "rpc_port": m.sip_rpc_port},
        "provnet_vc": {"chair": m.vc.chair, "bridge_api_port": m.vc.bridge_api_port,
                       "bridge_sip_port": m.vc.bridge_sip_port, "janus_port": m.vc.janus_port,
                       "secret": m.vc.secret, "probe_slots": m.vc.probe_slots,
                       "audio_codecs": list(m.vc.audio_codecs), "video_codecs": list(m.vc.video_codecs),
                       # the lab endpoints' synthetic microphone: the chair's sine differs from the rest
                       "tone_hz": m.vc.chair_tone_hz if dev.site and dev.site == m.vc.chair else m.vc.tone_hz,
                       "records": bool(dev.site and dev.site in m.vc.recorders),
                       "endpoint_nice": m.vc.endpoint_nice},
        "provnet_admin_user": m.credentials["admin_user"],
        # every site's addresses lie in these (loopback pool + VLAN pools): what DC services admit
        "provnet_sip_domain": m.sip_domain,
        # where the controller manages the device (= ansible_host, which a play may override)
        "provnet_management_address": dev.ansible_host,
        "provnet_site_supernets": m.site_supernets(),
        "provnet_secret_names": {
            "admin_password": m.credentials["admin_password"],
            "snmp_auth_key": m.credentials["snmp"]["auth_key"],
            "snmp_priv_key": m.credentials["snmp"]["priv_key"],
        },
    }
    from provnet.topology import routing_context

    data.update(routing_context(m, dev))
    if dev.sip is not None:
        data["provnet_sip"] = {"user": dev.sip.user, "extension": dev.sip.extension,
                               "domain": dev.sip.domain, "aor": dev.sip.aor,
                               "display_name": dev.sip.display_name, "password": dev.sip.password_ref}
    return data
