"""`provnet rollout` end to end on the converged lab: a commune from the official data joins an overlay of
inventory/lab; every step passes with its figures, no other BGP session restarts, a re-run changes nothing.
Afterwards the DC is put back to inventory/lab and the new nodes leave the lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provnet import model, secrets
from provnet.lab import province
from provnet.rollout import overlay

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
    dc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(LAB), "playbooks/site.yml", "--limit", "dc-sip"],
                        capture_output=True, text=True, cwd=REPO, timeout=600,
                        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert dc.returncode == 0, dc.stdout[-3000:]
    assert not [r for r in province.status(lab) if r.name in hosts]
    assert not [x for x in province.leftovers() if "mau-son" in x]


def test_rollout_of_a_new_commune(lab: model.Model, rollout_env: tuple[Path, dict[str, str]]) -> None:
    inv, env = rollout_env
    add = run("site", "add", "-i", str(inv), "--official", "mau son", "--district", "huyen-cao-loc",
              "--circuit", "LAB-MAU-SON", "--contact-name", "Hoàng Thị Lan", "--contact-phone", "0912 000 007",
              env=env)
    assert add.returncode == 0, add.stdout + add.stderr
    before = province.pe_sessions(lab)

    proc = run("rollout", SLUG, "-i", str(inv), "--json", "--wait", "600", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    rec = json.loads(proc.stdout)
    assert rec["ok"] and rec["outcome"] == "rollout completed"
    steps = {s["name"]: s for s in rec["steps"]}
    assert [s["number"] for s in rec["steps"]] == [1, 2, 3, 4, 5, 6]
    assert all(s["status"] == "passed" for s in rec["steps"]), [(s["name"], s["reason"]) for s in rec["steps"]]
    assert set(steps["lab"]["evidence"]["joined"]) == {"mau-son-ce", "mau-son-vc"}
    assert all(k["kept"] for k in steps["lab"]["evidence"]["pe_neighbours_kept"])
    push = steps["push"]["evidence"]
    assert set(push["hosts"]) == {"dc-sip", "mau-son-ce", "mau-son-vc"} and push["changed"] > 0
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
