"""Hostvars serialise the model: pinned by a golden file, read by templates key for key.

Regenerate the golden file after a reviewed change of the model or its serialisation:
``.venv/bin/python tests/unit/test_hostvars.py --update``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from provnet import hostvars, model, render

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventory" / "lab"
GOLDEN = ROOT / "tests" / "fixtures" / "hostvars" / "lab.json"
# set by plays and the engine's action, not by the model
PLAY_VARS = {"provnet_vault", "provnet_ticket", "provnet_files", "provnet_units", "provnet_config",
             "provnet_meeting", "provnet_remote", "provnet_snmp_user", "provnet_packages",
             "provnet_bin", "provnet_venv_bin"}   # new_site.yml and compliance.yml: where the CLI is


def lab_hostvars() -> dict[str, dict[str, object]]:
    m = model.load(LAB)
    return {host: hostvars.device_vars(m, dev) for host, dev in sorted(m.devices.items())}


def test_the_lab_hostvars_match_the_golden_file() -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    actual = json.loads(json.dumps(lab_hostvars()))
    assert sorted(actual) == sorted(expected)
    for host in expected:
        assert actual[host] == expected[host], f"{host}: hostvars changed (regenerate: see this file's docstring)"


def test_a_template_sees_the_hostvars_and_secret_only() -> None:
    m = model.load(LAB)
    dev = m.devices["dong-dang-ce"]
    ctx = render.context(m, dev, {"admin_password": "s3cret"})
    assert set(ctx) - set(hostvars.device_vars(m, dev)) == {"secret"}
    assert ctx["secret"]("vault:admin_password") == "s3cret"


def test_every_key_a_template_reads_is_a_hostvar() -> None:
    keys = set().union(*(set(v) for v in lab_hostvars().values()))
    used: dict[str, set[str]] = {}
    for path in [*(ROOT / "templates").rglob("*.j2"), *(ROOT / "templates").rglob("*.jinja"),
                 *(ROOT / "roles").rglob("*.j2"), *(ROOT / "roles").rglob("defaults/main.yml"),
                 *(ROOT / "playbooks").rglob("*.yml")]:
        for key in re.findall(r"\b(provnet_[a-z_]+)", path.read_text(encoding="utf-8")):
            used.setdefault(key, set()).add(str(path.relative_to(ROOT)))
    unknown = {k: v for k, v in used.items() if k not in keys and k not in PLAY_VARS and not k.startswith("provnet_verify")}
    assert not unknown, f"templates read keys the model does not serialise: {unknown}"


def test_no_fact_has_two_keys() -> None:
    """The keys the review found twice are gone: one home for the SIP domain, the peer, the supernets."""
    hv = lab_hostvars()
    ce, vc = hv["dong-dang-ce"], hv["dong-dang-vc"]
    for gone in ("provnet_sip_domain", "provnet_pe", "provnet_sites", "provnet_dc", "provnet_oob"):
        assert gone not in ce
    assert "wan_pe" not in ce["provnet_site"] and "wan_ce" not in ce["provnet_site"]
    assert "domain" not in vc["provnet_sip"] and "site_supernets" not in ce["provnet_pools"]
    m = model.load(LAB)
    site = m.sites["dong-dang"]
    assert ce["provnet_bgp_peer"] == {"address": str(site.wan_pe.ip), "asn": m.carrier_asn, "interface": "wan0",
                                      "local": str(site.wan_ce.ip)}
    assert ce["provnet_site"]["prefixes"] == [str(p) for p in site.prefixes]


def test_the_registrar_serves_every_endpoint_of_the_model() -> None:
    m = model.load(LAB)
    hv = hostvars.device_vars(m, m.devices[m.services["sip_registrar"]])
    users = [a["user"] for a in hv["provnet_registrar_accounts"]]
    assert users == [d.sip.user for d in m.devices.values() if d.sip] and len(users) == len(m.sites)
    assert all(a["password"].startswith("vault:") for a in hv["provnet_registrar_accounts"])
    assert "provnet_registrar_accounts" not in hostvars.device_vars(m, m.devices["dc-core"])



def test_inventory_show_prints_the_same_slices() -> None:
    from typer.testing import CliRunner

    from provnet.cli import app

    m = model.load(LAB)
    for what, expected in (("dong-dang", hostvars.site_vars(m.sites["dong-dang"])),
                           ("dong-dang-ce", hostvars.device_vars(m, m.devices["dong-dang-ce"]))):
        result = CliRunner().invoke(app, ["inventory", "show", what, "-i", str(LAB), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == json.loads(json.dumps(expected))
    whole = CliRunner().invoke(app, ["inventory", "show", "-i", str(LAB), "--json"])
    assert whole.exit_code == 0 and set(json.loads(whole.stdout)["sites"]) == set(m.sites)


if __name__ == "__main__":
    if "--update" in sys.argv:
        GOLDEN.write_text(json.dumps(lab_hostvars(), indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                          encoding="utf-8")
        print(f"wrote {GOLDEN}")
