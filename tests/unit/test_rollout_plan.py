"""The rollout's plan: exactly the devices a new (or retired) site changes, with diffs; the carrier's work order."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provnet import hostvars, lock, model, render, secrets
from provnet.cli import app
from provnet.rollout import plan as rp

REPO = Path(__file__).resolve().parents[2]
NEW = "quan-son"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(lock.ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A copy of the lab inventory in which quan-son's file has just been written (`site add`)."""
    dest = tmp_path / "lab"
    shutil.copytree(REPO / "inventory" / "lab", dest)
    return dest


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def test_a_new_commune_changes_its_own_devices_the_registrar_and_the_pe(inv: Path) -> None:
    before = _digest(inv)
    p = rp.plan(inv, add=[NEW])
    assert _digest(inv) == before  # the plan touches nothing
    assert p.problems == ()  # quan-son has its circuit id and contact
    assert p.action == "add" and p.sites == (NEW,) and not p.production and not p.work_orders
    status = {d.hostname: d.status for d in p.devices}
    assert status == {"quan-son-ce": "new", "quan-son-vc": "new", "dc-sip": "changed", "dc-soc": "changed"}
    assert p.hostnames == ["dc-soc", "dc-sip", "quan-son-ce", "quan-son-vc"]

    # the site's own devices come with their whole intended config, every platform and section
    ce, vc = p.device("quan-son-ce"), p.device("quan-son-vc")
    m = model.load(inv)
    assert ce.sections == [f"{r.platform}/{s}" for r in render.render_device(m, "quan-son-ce") for s in sorted(r.sections)]
    conf = next(c for c in ce.changes if c.label == "frr/frr.conf").diff
    assert conf.startswith("--- a/quan-son-ce/frr/frr.conf\n+++ b/quan-son-ce/frr/frr.conf\n@@ -0,0 ")
    assert "+router bgp 4200020006" in conf and "+ neighbor 198.18.2.12 remote-as 64512" in conf
    assert {c.platform for c in vc.changes} == {"baresip"} and "baresip/accounts" in vc.sections

    # the registrar gains the endpoint's account (a hostvar its role reads; it has no template)
    sip = p.device("dc-sip")
    assert sip.hostvars == ["provnet_registrar_accounts"] and sip.sections == []
    added = [l for l in sip.changes[0].diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert '+    "user": "quan-son"' in added and '+    "password": "vault:sip_quan_son_vc",' in added
    assert not any(l.startswith("-") and not l.startswith("---") for l in sip.changes[0].diff.splitlines())

    # the lab's PE node gains the circuit's interface and the CE as eBGP neighbour
    assert p.carrier is not None and p.carrier.hostname == m.pe.hostname and p.carrier.sections == ["frr/frr.conf"]
    pe = p.carrier.changes[0].diff
    site = m.sites[NEW]
    assert f"+interface ce{site.id}" in pe and f"+ ip address {site.wan_pe}" in pe
    assert f"+ neighbor {site.wan_ce.ip} remote-as {site.asn}" in pe and f"+  neighbor {site.wan_ce.ip} activate" in pe


def test_the_dc_firewall_and_ntp_do_not_change_the_soc_learns_the_hosts(inv: Path) -> None:
    """They admit the site supernets (the loopback and VLAN pools), which contain every site, present and future.

    So a new commune changes no DC firewall flow and no NTP/SOC allowed source: only what lists sites one by
    one does — the registrar's accounts, the PE, and the SOC's table of which host is at which site (its
    events' labels.site). Rendering every device (``full``) finds the same plan.
    """
    p = rp.plan(inv, add=[NEW])
    full = rp.plan(inv, add=[NEW], full=True)
    assert full == p
    m = model.load(inv)
    for role in ("firewall", "core", "switch", "ntp", "vc_bridge"):
        assert not any(d.role == role for d in p.devices), role
    soc = p.device("dc-soc")
    assert soc.hostvars == ["provnet_soc_sites"] and soc.sections == []
    assert '+  "quan-son-ce": "quan-son",' in soc.changes[0].diff
    without = model.compile_source(rp.without(m.source, {NEW}))
    fw = next(h for h, d in m.devices.items() if d.role == "firewall")
    assert hostvars.device_vars(m, m.devices[fw])["provnet_site_supernets"] == m.site_supernets()
    assert m.site_supernets() == without.site_supernets()
    assert ({r.platform: r.sections for r in render.render_device(m, fw)}
            == {r.platform: r.sections for r in render.render_device(without, fw)})


def test_no_other_sites_device_changes(inv: Path) -> None:
    p = rp.plan(inv, add=[NEW])
    assert {d.site for d in p.devices} == {NEW, None}
    assert all(d.site == NEW for d in p.devices if d.status == "new")


def test_retiring_is_the_same_comparison_the_other_way(inv: Path) -> None:
    add, retire = rp.plan(inv, add=[NEW]), rp.plan(inv, retire=[NEW])
    assert retire.action == "retire"
    assert {d.hostname: d.status for d in retire.devices} == {"quan-son-ce": "removed", "quan-son-vc": "removed",
                                                               "dc-sip": "changed", "dc-soc": "changed"}
    assert retire.hostnames == ["dc-soc", "dc-sip"]  # the removed devices leave; only the DC is pushed
    lost = retire.device("dc-sip").changes[0].diff
    assert '-    "user": "quan-son"' in lost and "+    " not in lost
    assert add.carrier is not None and retire.carrier is not None
    assert "-  neighbor 198.18.2.13 activate" in retire.carrier.changes[0].diff
    assert retire.device("quan-son-ce").sections == add.device("quan-son-ce").sections
    assert "meeting bien-gioi names quan-son" in retire.notes


def test_the_plan_renders_no_secret(inv: Path) -> None:
    values = secrets.ensure(model.load(inv))
    assert values  # the lab's vault exists, so a leak would show
    p = rp.plan(inv, add=[NEW])
    text = p.text() + json.dumps(p.as_dict(), ensure_ascii=False)
    assert "vault:sip_quan_son_vc" in text
    assert not any(v in text for v in values.values())


def test_production_gets_a_carrier_work_order(tmp_path: Path) -> None:
    """inventory/thanhhoa is production (10.x): rendered only, never contacted; its PE is the carrier's."""
    root = REPO / "inventory" / "thanhhoa"
    m = model.load(root)
    assert m.production
    site = max(m.communes(), key=lambda s: s.id)
    p = rp.plan(root, add=[site.slug])
    assert p.production and p.carrier is None
    assert {d.hostname for d in p.devices if d.status == "new"} == set(site.devices)
    assert [d.hostname for d in p.devices if d.status == "changed"] == [m.services["syslog"],
                                                                        m.services["sip_registrar"]]
    (w,) = p.work_orders
    assert (w.action, w.circuit_id, w.site, w.wan, w.pe_address, w.ce_address, w.ce_asn, w.carrier_asn) == (
        "provision", site.circuit_id, site.slug, str(site.wan), str(site.wan_pe), str(site.wan_ce), site.asn,
        m.carrier_asn)
    assert (w.bandwidth_mbps, w.contact_name, w.contact_phone) == (site.bandwidth_mbps, site.contact_name,
                                                                   site.contact_phone)
    text = w.text()
    for fact in (site.circuit_id, site.name, str(site.wan_pe), str(site.wan_ce), str(site.asn), str(m.carrier_asn)):
        assert fact in text
    assert p.as_dict()["work_orders"][0]["ce_address"] == str(site.wan_ce)
    assert rp.plan(root, retire=[site.slug]).work_orders[0].action == "cease"
    # an imported province holds the importer's placeholders: the plan says the rollout would be refused
    assert [x.obj for x in p.problems] == [f"site '{site.slug}'.circuit_id", f"site '{site.slug}'.contact.phone"]
    res = CliRunner().invoke(app, ["rollout", site.slug, "-i", str(root), "--no-diff"])
    assert res.exit_code == 2 and "PENDING-" in res.output and "[2/6]" not in res.output


def test_bad_requests_are_refused_before_anything(inv: Path) -> None:
    with pytest.raises(rp.PlanError, match="no site nowhere in sites/"):
        rp.plan(inv, add=["nowhere"])
    with pytest.raises(rp.PlanError, match="one of the two"):
        rp.plan(inv, add=[NEW], retire=[NEW])
    with pytest.raises(rp.PlanError, match="still belong to a district"):
        rp.plan(inv, retire=["huyen-chi-lang"])


def test_a_renumbered_model_is_a_bug_that_stops_the_plan(inv: Path) -> None:
    m = model.load(inv)
    site = m.sites["chi-lang"]
    moved = dataclasses.replace(m, sites={**m.sites, "chi-lang": dataclasses.replace(site, asn=site.asn + 1)})
    with pytest.raises(rp.PlanError, match="renumbers site chi-lang"):
        rp._check_stable(m, moved)


def test_cli_check_prints_the_plan_and_exits_0(inv: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["rollout", NEW, "-i", str(inv), "--check", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["sites"] == [NEW] and {d["hostname"] for d in data["devices"]} == {"dc-sip", "dc-soc", "quan-son-ce",
                                                                                  "quan-son-vc"}
    res = runner.invoke(app, ["rollout", NEW, "-i", str(inv), "--check", "--no-diff"])
    assert res.exit_code == 0 and "new      quan-son-ce" in res.stdout and "@@" not in res.stdout


def test_cli_without_check_refuses_an_unknown_site(inv: Path) -> None:
    res = CliRunner().invoke(app, ["rollout", "nowhere", "-i", str(inv), "--check"])
    assert res.exit_code == 2 and "no site nowhere" in res.output


def test_cli_is_refused_while_another_run_holds_the_lock(inv: Path) -> None:
    code = ("import sys, time\nfrom provnet import lock\nwith lock.hold(sys.argv[1], command='provnet net deploy "
            "--commit'):\n    print('held', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(inv)], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        res = CliRunner().invoke(app, ["rollout", NEW, "-i", str(inv)])
        assert res.exit_code == 2
        assert "is locked by " in res.output and f"(pid {proc.pid}, `provnet net deploy --commit`)" in res.output
        assert CliRunner().invoke(app, ["rollout", NEW, "-i", str(inv), "--check"]).exit_code == 0  # reads only
    finally:
        proc.kill()
        proc.wait()
