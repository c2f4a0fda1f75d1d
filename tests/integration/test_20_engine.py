"""The engine on the lab: deploy from factory default, idempotence, drift, rollback, self-revert, errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

import pytest

from provnet import model, render, secrets
from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.ssh import ConnectError
from provnet.errors import AddressRefused
from provnet.engine import device, run
from provnet.lab import node, province

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
OUTPUTS: list[str] = []  # everything the engine printed or returned during this module


def _record(results: list[device.HostResult]) -> list[device.HostResult]:
    OUTPUTS.append(json.dumps([r.as_dict() for r in results], ensure_ascii=False))
    return results


@pytest.fixture(scope="module")
def deployed(lab: model.Model, tmp_path_factory: pytest.TempPathFactory) -> model.Model:
    os.environ["PROVNET_BACKUP_DIR"] = str(tmp_path_factory.mktemp("backups"))
    results = _record(run.run(lab, "deploy", commit=True, revert_in=60, ticket="TEST-1"))
    failed = {r.host: [p.error for p in r.platforms] + [r.note] for r in results if r.status == "failed"}
    assert failed == {}
    managed = {h for h, d in lab.devices.items() if set(d.platforms) & {"frr", "nftables", "linux_switch", "baresip"}}
    if os.environ.get("PROVNET_KEEP_LAB") != "1":  # a fresh lab is factory default: everything changes
        assert {r.host for r in results if r.status == "changed"} >= managed
    return lab


def _bgp(m: model.Model, host: str) -> dict:
    ctx = device.Context.build(m)
    return device.get(ctx, host, "get_bgp_neighbors")["global"]["peers"]


def _wait(predicate, timeout: float = 60, step: float = 1.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_every_ce_peers_with_the_pe_and_learns_the_dc(deployed: model.Model) -> None:
    ctx = device.Context.build(deployed)
    for site in (s for s in deployed.sites.values() if s.via_carrier):  # a hall has no CE
        host = f"{site.slug}-ce"
        up = _wait(lambda: _bgp(deployed, host).get(str(site.wan_pe.ip), {}).get("is_up"), timeout=90)
        assert up, f"{host}: eBGP to the PE not Established"
        drv, _ = device.reach(ctx, deployed.devices[host], "frr")
        try:
            rib = _wait(lambda: drv.get_route_table() if all(
                any(r["protocol"] == "bgp" for r in drv.get_route_table().get(str(p), []))
                for p in deployed.dc_prefixes) else None, timeout=60)
        finally:
            drv.close()
        assert rib, f"{host}: DC prefixes missing from the RIB"
        for p in deployed.dc_prefixes:
            assert any(r["protocol"] == "bgp" and r["selected"] for r in rib[str(p)]), (host, p)
        assert "198.18.0.0/24" not in rib  # other sites are not leaked to a commune


def test_a_second_deploy_after_traffic_changes_nothing(deployed: model.Model) -> None:
    sd = province.lab_dir()
    dc = "198.18.9.4"
    for site in (s for s in deployed.sites.values() if s.via_carrier):  # traffic through the CE's counters
        node.exec(f"{site.slug}-ce", ["ping", "-c", "2", "-W", "2", "-I", str(site.lans["video"].gateway.ip),
                                       dc], sd)
        # and through its forward chain from the endpoint: allowed (ICMP, SIP — marked), dropped and counted (telnet)
        node.exec(f"{site.slug}-vc", ["bash", "-c", f"ping -c 2 -W 2 {dc}; echo OPTIONS > /dev/udp/{dc}/5060; "
                                      f"timeout 3 bash -c '</dev/tcp/{dc}/23'; true"], sd, timeout=30)
    forward = node.exec("dong-dang-ce", ["nft", "list", "chain", "inet", "provnet", "forward"], sd).stdout
    assert re.search(r"counter packets [1-9]", forward), f"no traffic crossed the CE's forward chain:\n{forward}"
    results = _record(run.run(deployed, "deploy", commit=True))
    changed = {r.host: [p.diff for p in r.platforms if p.diff] for r in results if r.status != "unchanged"}
    assert changed == {}


def test_a_hand_made_change_shows_in_diff_and_goes_away(deployed: model.Model) -> None:
    sd = province.lab_dir()
    host = "dong-dang-ce"
    node.exec(host, ["vtysh", "-c", "configure terminal", "-c", "ip prefix-list HAND seq 5 permit 198.18.250.0/24"], sd)
    node.exec(host, ["nft", "add", "rule", "inet", "provnet", "input", "tcp", "dport", "2222", "accept"], sd)
    diff = _record(run.run(deployed, "diff", host))[0]
    by_platform = {p.platform: p for p in diff.platforms}
    assert by_platform["frr"].status == "would-change" and "HAND" in by_platform["frr"].diff
    assert by_platform["nftables"].status == "would-change" and "2222" in by_platform["nftables"].diff
    deployed_result = _record(run.run(deployed, "deploy", host, commit=True))[0]
    assert deployed_result.status == "changed"
    for p in deployed_result.platforms:
        mode = stat.S_IMODE(Path(p.backup).stat().st_mode)
        assert mode == 0o600 and "HAND" in Path(deployed_result.platforms[0].backup).read_text()
    assert _record(run.run(deployed, "diff", host))[0].status == "unchanged"

    # rollback restores the config the backup holds (the hand-made change), then deploy heals it again
    rolled = _record(run.run(deployed, "rollback", host))[0]
    assert rolled.status == "changed", rolled
    running = node.exec(host, ["vtysh", "-c", "show running-config"], sd).stdout
    assert "HAND" in running
    again = _record(run.run(deployed, "deploy", host, commit=True))[0]
    assert again.status == "changed"
    assert "HAND" not in node.exec(host, ["vtysh", "-c", "show running-config"], sd).stdout


def test_a_commit_that_cuts_in_band_management_reverts_itself(deployed: model.Model) -> None:
    host = "quan-son-ce"
    dev = deployed.devices[host]
    ctx = device.Context.build(deployed)
    drv, address = device.reach(ctx, dev, "nftables")
    assert address == str(deployed.sites["quan-son"].loopback), "quan-son must be managed in-band"
    good = render.render_device(deployed, host, "nftables")[0]
    text = good.sections["nftables.conf"]
    bad = "\n".join(l for l in text.splitlines() if "management from the DC management zone" not in l) + "\n"
    assert bad != text
    drv.load_replace_candidate(config=drv.build_candidate({"nftables.conf": bad}))
    t0 = time.monotonic()
    drv.commit_config(message="test: cut management", revert_in=15)
    with pytest.raises(ConnectError):
        drv.confirm_commit()
    drv.close()
    back = _wait(lambda: _try_connect(ctx, dev), timeout=60)
    assert back, "management never came back: the revert did not run"
    assert time.monotonic() - t0 < 60
    assert _record(run.run(deployed, "diff", host))[0].status == "unchanged"


def _try_connect(ctx: device.Context, dev: model.Device) -> bool:
    drv = device.driver_for(ctx, dev, "nftables")
    try:
        drv.open()
    except ConnectError:
        return False
    drv.close()
    return True


def test_an_invalid_frr_config_is_caught_before_anything_is_applied(deployed: model.Model) -> None:
    host = "cao-loc-ce"
    ctx = device.Context.build(deployed)
    drv, _ = device.reach(ctx, deployed.devices[host], "frr")
    try:
        before = drv.get_config()["running"]
        good = render.render_device(deployed, host, "frr")[0]
        broken = dict(good.sections, **{"frr.conf": good.sections["frr.conf"] + "router bgp notanumber\n"})
        drv.load_replace_candidate(config=drv.build_candidate(broken))
        with pytest.raises(CommitError, match="vtysh -C"):
            drv.commit_config(revert_in=30)
        assert drv.get_config()["running"] == before
        assert not drv.has_pending_commit()
    finally:
        drv.close()


def test_template_error_names_template_line_and_field(deployed: model.Model, tmp_path: Path) -> None:
    inv = tmp_path / "lab"
    shutil.copytree(deployed.root, inv)
    (inv / "templates" / "frr").mkdir(parents=True)
    (inv / "templates" / "frr" / "frr.conf.j2").write_text("hostname {{ provnet_hostname }}\n"
                                                           "! {{ provnet_site.no_such_field }}\n")
    m = model.load(inv)
    result = run.run(m, "diff", "dong-dang-ce")[0]
    assert result.status == "failed"
    error = result.platforms[0].error
    assert "frr/frr.conf.j2 line 2" in error and "no_such_field" in error


def test_unreachable_host_and_wrong_credentials_fail_clearly(deployed: model.Model,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from provnet.drivers.frr import FrrDriver

    with pytest.raises(ConnectError, match="unreachable"):
        FrrDriver("198.18.255.254", "root", timeout=3).open()
    with pytest.raises(ConnectError, match="authentication failed"):
        FrrDriver(str(deployed.devices["chi-lang-ce"].oob_address.ip), "nobody").open()
    # a tripwire: were the guard broken, no packet may still leave for 10.38.0.1
    def no_socket(*args: object, **kwargs: object) -> None:
        pytest.fail(f"a socket was opened outside the lab range: {args!r}")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    with pytest.raises(AddressRefused, match="address guard"):
        FrrDriver("10.38.0.1", "root").open()


def test_one_unreachable_host_fails_alone_and_the_cli_says_so(deployed: model.Model,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the engine and the CLI: the dead host's own error, the others unaffected, exit 1."""
    from typer.testing import CliRunner

    from provnet.cli import app

    dead, alive = "cao-loc-ce", "dong-dang-ce"
    real = device.driver_for

    def driver_for(ctx: device.Context, dev: model.Device, platform: str, address: str | None = None) -> object:
        # an unused lab address: the SYN goes out and nothing answers, as for a site whose WAN is down
        return real(ctx, dev, platform, "198.18.255.254" if dev.hostname == dead else address)

    monkeypatch.setattr(device, "driver_for", driver_for)
    results = {r.host: r for r in _record(run.run(deployed, "deploy", f"{dead},{alive}", commit=True))}
    assert results[dead].status == "failed"
    assert all(p.status == "failed" and "198.18.255.254" in p.error for p in results[dead].platforms)
    assert results[alive].status == "unchanged"
    cli = CliRunner().invoke(app, ["net", "diff", "-i", str(deployed.root), "--limit", f"{dead},{alive}", "--json"])
    OUTPUTS.append(cli.stdout + cli.stderr)
    assert cli.exit_code == 1, cli.stdout + cli.stderr
    rows = {r["host"]: r for r in json.loads(cli.stdout)}
    assert rows[dead]["status"] == "failed" and rows[alive]["status"] == "unchanged"
    table = CliRunner().invoke(app, ["net", "diff", "-i", str(deployed.root), "--limit", alive])
    OUTPUTS.append(table.stdout + table.stderr)
    assert table.exit_code == 0 and alive in table.stdout


def test_no_secret_in_any_output_listing_or_log(deployed: model.Model) -> None:
    values = [v for v in secrets.ensure(deployed).values()]
    backups = Path(os.environ["PROVNET_BACKUP_DIR"])
    listing = "\n".join(str(p) for p in backups.rglob("*"))
    audit = (secrets.home() / "audit.log").read_text()
    soc_like = node.exec("dong-dang-ce", ["journalctl", "-t", "provnet", "--no-pager", "-o", "cat"],
                         province.lab_dir()).stdout
    haystack = "\n".join(OUTPUTS + [listing, audit, soc_like])
    assert OUTPUTS and "TEST-1" in audit
    for value in values:
        assert value not in haystack
    # the endpoint's SIP password really is on the endpoint (the check above is not vacuous)
    acct = node.exec("dong-dang-vc", ["cat", "/etc/provnet/baresip/accounts"], province.lab_dir()).stdout
    assert secrets.resolve(secrets.ensure(deployed), deployed.devices["dong-dang-vc"].sip.password_ref) in acct
