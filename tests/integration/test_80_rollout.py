"""`provnet rollout` end to end on the converged lab: a commune from the official data joins an overlay of
inventory/lab; every step passes with its figures, no other BGP session restarts, a re-run changes nothing.
Afterwards the DC is put back to inventory/lab and the new nodes leave the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provnet import model, secrets
from provnet.lab import node, province
from provnet.rollout import overlay
from provnet.rollout.steps import digest

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventory" / "lab"
BIN = Path(sys.executable).parent
SLUG = "mau-son"


def run(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "provnet"), *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=timeout)


@pytest.fixture
def rollout_env(lab: model.Model, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """An overlay of inventory/lab (the lab's vault, a private history store); afterwards the DC back to
    inventory/lab and the new site's nodes out of the lab."""
    inv = overlay.build(LAB, tmp_path / "inventory")
    env = overlay.env(secrets.vault_paths(lab).directory)
    env["PROVNET_HOME"] = str(tmp_path / "home")
    # the lab's SSH and vault stay the machine's: only the history store and the records are private
    yield inv, env
    hosts = ["mau-son-ce", "mau-son-vc"]
    removed, _pe = province.prune(lab, hosts)
    dc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(LAB), "playbooks/site.yml", "--limit", "dc-sip,dc-soc"],
                        capture_output=True, text=True, cwd=REPO, timeout=600,
                        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert dc.returncode == 0, dc.stdout[-3000:]
    assert not [r for r in province.status(lab) if r.name in hosts]
    assert not [x for x in province.leftovers() if "mau-son" in x]


#: The fault at the new site: its endpoint's SIP never leaves it (it cannot register).
FAULT = "table inet test80 { chain out { type filter hook output priority -10; udp dport 5060 drop; tcp dport 5060 drop; }; }"
DC_STATE = ("find /etc -xdev -type f ! -name 'ssh_host_*' ! -name adjtime -print0 | sort -z | xargs -0 sha256sum "
            "| sha256sum; nft -s list ruleset 2>/dev/null | sha256sum; vtysh -c 'show running-config' 2>/dev/null "
            "| grep -v '^!' | sha256sum")


def dc_state(lab: model.Model) -> dict[str, str]:
    """What every DC device runs, as digests: its /etc, its live ruleset and its live FRR configuration."""
    sd = province.lab_dir()
    out = {}
    for host, dev in lab.devices.items():
        if dev.site is None:
            proc = node.exec(host, ["sh", "-c", DC_STATE], sd, timeout=60)
            assert proc.returncode == 0, proc.stderr
            out[host] = proc.stdout
    return out


def rollout_with_fault(inv: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The rollout, with the fault injected into the endpoint as soon as the lab step has booted it."""
    proc = subprocess.Popen([str(BIN / "provnet"), "rollout", SLUG, "-i", str(inv), "--json", "--wait", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    sd, injected = province.lab_dir(), False
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not injected:
        if node.is_running(f"{SLUG}-vc", sd):
            injected = node.exec(f"{SLUG}-vc", ["nft", "-f", "-"], sd, input=FAULT, timeout=30).returncode == 0
        time.sleep(0.2)
    stdout, stderr = proc.communicate(timeout=900)
    assert injected, stderr[-3000:]
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def meeting(*args: str) -> tuple[int, dict[str, Any]]:
    """`provnet vc meeting …` on inventory/lab (the test home's history store)."""
    proc = subprocess.run([str(BIN / "provnet"), "vc", "meeting", *args, "--json"], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def legs(data: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Each leg of the meeting: its state, when it joined and how many dials it took (a drop changes these)."""
    return {p["site"]: (p["state"], p["joined_at"], p["attempts"]) for p in data["participants"]}


def test_rollout_of_a_new_commune_while_a_meeting_runs(lab: model.Model,
                                                       rollout_env: tuple[Path, dict[str, str]]) -> None:
    """The province-wide meeting runs through a failed rollout, its re-run and the retire: no leg drops."""
    from test_50_readiness import settle  # every endpoint registered again (an earlier test restarts the registrar)

    inv, env = rollout_env
    settle()
    rc, started = meeting("start", "toan-tinh")
    try:
        assert rc == 0 and all(p["state"] == "joined" for p in started["participants"]), \
            {p["site"]: (p["state"], p["reason"]) for p in started["participants"] if p["state"] != "joined"}
        running = legs(started)
        journey(lab, inv, env, lambda: meeting("status")[1], running)
        rc, status = meeting("status")
        assert legs(status) == running and all(p["receiving"] for p in status["participants"]), legs(status)
    finally:
        meeting("end", "--id", str(started["id"]))


def journey(lab: model.Model, inv: Path, env: dict[str, str], status: Callable[[], dict[str, Any]],
            running: dict[str, tuple[Any, ...]]) -> None:
    """A fault first (fails at verify, the DC exactly as before), then the same command finishes the job; a
    re-run changes nothing; then the commune is retired again and leaves the registrar and the lab."""
    add = run("site", "add", "-i", str(inv), "--official", "mau son", "--district", "huyen-cao-loc",
              "--circuit", "LAB-MAU-SON", "--contact-name", "Hoàng Thị Lan", "--contact-phone", "0912 000 007",
              env=env)
    assert add.returncode == 0, add.stdout + add.stderr
    before = province.pe_sessions(lab)
    dc_before = dc_state(lab)

    failed = rollout_with_fault(inv, env)
    assert failed.returncode == 1, failed.stderr[-3000:]
    rec = json.loads(failed.stdout)
    assert not rec["ok"] and rec["failed_step"] == 4 and rec["outcome"].startswith("rollout failed at step 4: ")
    assert f"{SLUG}-vc" in rec["outcome"] and "SIP" in rec["outcome"], rec["outcome"]  # its SIP is what the fault drops
    steps = {s["name"]: s for s in rec["steps"]}
    assert [s["status"] for s in rec["steps"][:4]] == ["passed", "passed", "passed", "failed"]
    assert set(steps["lab"]["evidence"]["joined"]) == {"mau-son-ce", "mau-son-vc"}
    assert rec["put_back"]["ok"] and rec["put_back"]["hosts"].keys() == {"dc-sip", "dc-soc"}, rec["put_back"]
    assert dc_state(lab) == dc_before  # every DC device exactly as before the rollout
    assert "KHÔNG ĐẠT" in Path(rec["files"]["html"]).read_text()
    # the engineer repairs the endpoint: the block gone, baresip restarted (after minutes of failed REGISTERs
    # it waits its back-off before trying again)
    fixed = node.exec(f"{SLUG}-vc", ["sh", "-c", "nft delete table inet test80 && systemctl restart baresip"],
                      province.lab_dir())
    assert fixed.returncode == 0, fixed.stderr

    proc = run("rollout", SLUG, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    rec = json.loads(proc.stdout)
    assert rec["ok"] and rec["outcome"] == "rollout completed"
    steps = {s["name"]: s for s in rec["steps"]}
    assert [s["number"] for s in rec["steps"]] == [1, 2, 3, 4, 5, 6]
    assert all(s["status"] == "passed" for s in rec["steps"]), [(s["name"], s["reason"]) for s in rec["steps"]]
    assert steps["lab"]["evidence"]["joined"] == []  # already there from the failed run
    assert all(k["kept"] for k in steps["lab"]["evidence"]["pe_neighbours_kept"])
    now = status()
    assert legs(now) == running and all(p["receiving"] for p in now["participants"]), legs(now)  # no leg dropped
    push = steps["push"]["evidence"]
    assert set(push["hosts"]) == {"dc-sip", "dc-soc", "mau-son-ce", "mau-son-vc"} and push["changed"] > 0
    assert set(push["digests"]) == set(push["hosts"]) and all(len(d.split(":")[-1]) == 64 for d in push["digests"].values())
    (bgp,) = steps["verify"]["evidence"]["bgp"]
    assert bgp["state"] == "Established" and bgp["prefixes_received"] >= 1 and bgp["prefixes_announced"]
    assert steps["verify"]["evidence"]["sites"][0]["registration"]
    (ep,) = steps["test-call"]["evidence"]["endpoints"]
    assert ep["verdict"] == "ready" and ep["registration"]["contacts"] >= 1
    media = ep["media"]
    assert media["established"] and media["loss_pct"] is not None and media["loss_pct"] < 5
    # loss and jitter come from every call; RTT only when the endpoint's RTCP reports arrive in the 10 s
    assert media["jitter_ms"] is not None and (media["rtt_ms"] is None or media["rtt_ms"] >= 0)
    page = Path(rec["files"]["html"]).read_text()
    assert "Biên bản nghiệm thu" in page and "Xã Mẫu Sơn" in page and "LAB-MAU-SON" in page and "@page" in page

    # no other site's session restarted: every PE uptime grew across the rollout
    after = province.pe_sessions(lab)
    new_ce = bgp["peer"]
    for addr, b in before.items():
        if addr != new_ce and b["state"] == "Established":
            assert after[addr]["state"] == "Established" and after[addr]["uptime_s"] >= b["uptime_s"], (addr, b, after[addr])

    # a completed rollout re-run changes nothing
    again = run("rollout", SLUG, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    rec2 = json.loads(again.stdout)
    steps2 = {s["name"]: s for s in rec2["steps"]}
    assert rec2["ok"] and steps2["lab"]["evidence"]["joined"] == []
    assert {h: r["changed"] for h, r in steps2["push"]["evidence"]["hosts"].items()} == dict.fromkeys(push["hosts"], 0)
    assert steps2["push"]["evidence"]["digests"] == push["digests"]

    report = run("rollout", "report", SLUG, "--format", "json", env=env)
    assert report.returncode == 0 and json.loads(report.stdout)["run_id"] == rec2["run_id"]

    # retired again: the DC converged without it, its nodes out of the lab, every other session kept
    sessions = province.pe_sessions(lab)
    gone = run("site", "retire", SLUG, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert gone.returncode == 0, gone.stderr[-3000:] + gone.stdout[-3000:]
    data = json.loads(gone.stdout)
    assert data["ok"] and data["written"] and data["dc_hosts"] == ["dc-soc", "dc-sip"]
    assert data["push"]["hosts"].keys() == {"dc-sip", "dc-soc"} and data["push"]["changed"] > 0
    assert set(data["lab"]["removed"]) == {"mau-son-ce", "mau-son-vc"}
    assert all(data["push"]["digests"][h] == digest(lab, h) for h in ("dc-sip", "dc-soc"))  # the lab's own again
    assert dc_state(lab) == dc_before  # and what runs: as before the rollout
    after = province.pe_sessions(lab)
    assert bgp["peer"] not in after
    for addr, b in sessions.items():
        if addr != bgp["peer"] and b["state"] == "Established":
            assert after[addr]["state"] == "Established" and after[addr]["uptime_s"] >= b["uptime_s"], (addr, after[addr])
    assert not (inv / "sites" / f"{SLUG}.yml").exists() and (inv / "retired" / f"{SLUG}.yml").exists()
    # the registrar restarts on an account change (its registrations kept in db_text): every endpoint
    # registered before verify
    from test_50_readiness import settle

    settle()
    verify = run("verify", "-i", str(inv), "--all", "--json", env=env, timeout=600)
    assert verify.returncode == 0, verify.stdout[-3000:]
    # validation refuses the retired id
    mau_son_id = data["reserved"]["id"]
    (inv / "sites" / "reuse.yml").write_text((LAB / "sites" / "chi-lang.yml").read_text(encoding="utf-8")
                                             .replace("slug: chi-lang", "slug: reuse").replace('code: "06463"', 'code: "06999"')
                                             .replace("Xã Chi Lăng", "Xã Tái Dùng")
                                             .replace(f"id: {lab.sites['chi-lang'].id}\n", f"id: {mau_son_id}\n"),
                                             encoding="utf-8")
    check = run("inventory", "validate", "-i", str(inv), env=env)
    (inv / "sites" / "reuse.yml").unlink()
    assert check.returncode == 2 and f"id {mau_son_id} was retired with '{SLUG}'" in check.stderr, check.stderr


HALL = "so-khcn"


@pytest.fixture
def hall_env(lab: model.Model, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """An overlay of inventory/lab for a province-level hall; afterwards the DC back to inventory/lab and the
    hall's node (and the DC firewall's interfaces toward it) out of the lab."""
    inv = overlay.build(LAB, tmp_path / "inventory")
    env = overlay.env(secrets.vault_paths(lab).directory)
    env["PROVNET_HOME"] = str(tmp_path / "home")
    yield inv, env
    province.prune(lab, [f"{HALL}-vc"])
    dc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(LAB), "playbooks/site.yml", "--limit",
                         "dc-core,dc-fw,dc-soc,dc-sip"], capture_output=True, text=True, cwd=REPO, timeout=600,
                        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert dc.returncode == 0, dc.stdout[-3000:]
    assert not [x for x in province.leftovers() if HALL in x]


def test_a_province_level_hall_rolls_out_from_the_dc_and_retires(lab: model.Model,
                                                                 hall_env: tuple[Path, dict[str, str]]) -> None:
    """A hall has no CE and no circuit: the rollout changes the DC firewall (its VLANs), the core (static
    routes to them), the registrar and the SOC's host table; its endpoint joins the lab cabled to the firewall; no BGP session of
    the PE restarts (the core's included: FRR reloads); the retire puts every DC device back exactly."""
    from test_50_readiness import settle

    inv, env = hall_env
    settle()
    add = run("site", "add", "-i", str(inv), "--name", "Sở Khoa học và Công nghệ", "--kind", "so_nganh",
              "--slug", HALL, "--contact-name", "Lê Văn Hùng", "--contact-phone", "0205 000 008", "--json", env=env)
    assert add.returncode == 0, add.stdout + add.stderr
    site = json.loads(add.stdout)["site"]
    assert (site["level"], site["wan"], site["router"]) == ("province", None, "dc-fw")
    before, dc_before = province.pe_sessions(lab), dc_state(lab)

    proc = run("rollout", HALL, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    rec = json.loads(proc.stdout)
    steps = {s["name"]: s for s in rec["steps"]}
    assert rec["ok"] and all(s["status"] == "passed" for s in rec["steps"]), [(s["name"], s["reason"]) for s in rec["steps"]]
    assert {d["hostname"] for d in steps["plan"]["evidence"]["devices"]} == {"dc-core", "dc-fw", "dc-soc", "dc-sip",
                                                                             f"{HALL}-vc"}
    assert steps["plan"]["evidence"]["carrier"] == [] and steps["plan"]["evidence"]["work_orders"] == []  # no carrier
    assert steps["lab"]["evidence"]["joined"] == [f"{HALL}-vc"]
    assert all(k["kept"] for k in steps["lab"]["evidence"]["pe_neighbours_kept"])
    assert set(steps["push"]["evidence"]["hosts"]) == {"dc-core", "dc-fw", "dc-soc", "dc-sip", f"{HALL}-vc"}
    assert steps["verify"]["evidence"]["bgp"] == []                    # a hall has no eBGP session
    (ep,) = steps["test-call"]["evidence"]["endpoints"]
    assert ep["verdict"] == "ready" and ep["media"]["established"], ep
    after = province.pe_sessions(lab)
    for addr, b in before.items():
        if b["state"] == "Established":
            assert after[addr]["state"] == "Established" and after[addr]["uptime_s"] >= b["uptime_s"], (addr, b, after[addr])
    # the core routes the hall's video VLAN to the firewall; the endpoint's default route is the firewall
    video = model.load(inv).sites[HALL].lans["video"]
    core = node.exec("dc-core", ["vtysh", "-c", f"show ip route {video.subnet} json"], province.lab_dir()).stdout
    assert '"protocol":"static"' in core.replace(" ", ""), core
    route = node.exec(f"{HALL}-vc", ["ip", "-4", "route", "show", "default"], province.lab_dir()).stdout
    assert f"via {video.gateway.ip}" in route, route

    gone = run("site", "retire", HALL, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert gone.returncode == 0, gone.stderr[-3000:] + gone.stdout[-3000:]
    data = json.loads(gone.stdout)
    assert data["ok"] and data["dc_hosts"] == ["dc-core", "dc-fw", "dc-soc", "dc-sip"] and data["pe_neighbour"] is None
    assert data["lab"]["removed"] == [f"{HALL}-vc"]
    links = node.exec("dc-fw", ["ip", "-o", "link", "show"], province.lab_dir()).stdout
    assert f"h{site['id']}v" not in links, links                      # its VLANs left the firewall too
    assert dc_state(lab) == dc_before
