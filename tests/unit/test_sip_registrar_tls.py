"""The registrar's template with sip.transport udp (the lab) and tls (inventory/thanhhoa): the TLS listener,
module and port appear only with tls, and the role's defaults take them from the model's provnet_voice."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from provnet import hostvars, model

ROLE = Path(__file__).resolve().parents[2] / "roles" / "sip_registrar"


def render(transport: str) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined)
    return env.get_template("kamailio.cfg.j2").render(
        ansible_managed="managed", sip_registrar_accounts=[{"user": "a", "password": "p"}],
        sip_registrar_domain="vc.example", sip_registrar_listen=["198.18.9.12"], sip_registrar_port=5060,
        sip_registrar_transport=transport, sip_registrar_tls_port=5061, sip_registrar_tls_config="/etc/kamailio/tls.cfg",
        sip_registrar_rpc_address="198.19.0.12", sip_registrar_rpc_port=5080, sip_registrar_min_expires=30, sip_registrar_db_dir="/var/lib/kamailio/db",
        sip_registrar_max_expires=300, sip_registrar_trusted_file="/etc/kamailio/provnet-trusted.list")


def test_udp_has_no_tls_listener_nor_module() -> None:
    text = render("udp")
    assert "listen=udp:198.18.9.12:5060" in text and "enable_tls=no" in text
    assert "tls" not in text.replace("enable_tls=no", "")


def test_tls_adds_the_listener_the_module_and_its_config() -> None:
    text = render("tls")
    assert "listen=udp:198.18.9.12:5060" in text          # UDP/TCP stay for the bridge and the probe
    assert "listen=tls:198.18.9.12:5061" in text and "enable_tls=yes" in text
    assert 'loadmodule "tls.so"' in text and 'modparam("tls", "config", "/etc/kamailio/tls.cfg")' in text


def test_the_role_defaults_read_the_model() -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert "provnet_voice.transport" in defaults["sip_registrar_transport"]
    assert "provnet_voice.tls_port" in defaults["sip_registrar_tls_port"]
    assert "provnet_voice.sip_port" in defaults["sip_registrar_port"]
    prod = model.load("inventory/thanhhoa")
    voice = hostvars.device_vars(prod, prod.devices["dc-sip"])["provnet_voice"]
    assert (voice["transport"], voice["tls_port"]) == ("tls", 5061)
    lab = model.load("inventory/thanhhoa-lab")
    assert hostvars.device_vars(lab, lab.devices["dc-sip"])["provnet_voice"]["transport"] == "udp"
