"""Meetings on the lab's real bridge (Janus AudioBridge + provnet-bridged through Kamailio).

Runs after test_50_readiness on the converged lab. The chair's endpoint (vc.chair: the People's Committee
hall, a province-level site) plays vc.chair_tone_hz (1 kHz), every other endpoint vc.tone_hz (440 Hz); Chi Lăng's endpoint
(vc.recorders) records what it receives (baresip's sndfile module). The mix is proven by the
spectrum of that recording, not by packet counters.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provnet import model
from provnet.lab import faults, province
from provnet.vc import audio
from provnet.vc.bridge import lab_bridge

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROVNET = str(BIN / "provnet")


def meeting(*args: str, timeout: float = 600) -> tuple[int, Any]:
    proc = subprocess.run([PROVNET, "vc", "meeting", *args, "--json"], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)
    assert proc.stdout.strip(), (proc.returncode, proc.stderr[-3000:])
    return proc.returncode, json.loads(proc.stdout)


def roll(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["site"]: p for p in data["participants"]}


def states(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s: (p["state"], p["reason"][:140]) for s, p in roll(data).items()}


def received(m: model.Model, seconds: float = 1.5) -> audio.Pcm:
    """The last seconds of what the recorder endpoint decoded in its current call."""
    host = f"{m.vc.recorders[0]}-vc"  # the lab's listener (vc.recorders in province.yml)
    cmd = "f=$(ls -t /var/lib/baresip/recordings/*-dec.wav | head -1) && base64 -w0 \"$f\""
    res = province.ssh_run(m, host, cmd)
    assert res.returncode == 0, res.stderr
    return audio.parse_wav(base64.b64decode(res.stdout)).tail(seconds)


def endpoint_rtp_sockets(m: model.Model, site: str) -> str:
    lo, hi = m.rtp_ports
    res = province.ssh_run(m, f"{site}-vc", f"ss -Huan 'sport >= {lo} and sport <= {hi}'")
    return res.stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def ready_province(lab: model.Model) -> None:
    from test_50_readiness import settle  # the same wait as the readiness tests

    data = settle()
    assert all(r["verdict"] != "not ready" for r in data["endpoints"]), data["endpoints"]


def test_bridge_answers_and_is_empty(lab: model.Model) -> None:
    bridge = lab_bridge(lab)
    assert bridge.health()["ok"]
    assert bridge.conferences() == [] and bridge.janus_rooms() == {}


def test_toan_tinh_meeting(lab: model.Model) -> None:
    bridge = lab_bridge(lab)
    rc, data = meeting("start", "toan-tinh")
    meeting_id = data["id"]
    try:
        assert rc == 0, states(data)
        sites = roll(data)
        assert set(sites) == set(lab.sites) and all(p["state"] == "joined" for p in sites.values()), states(data)
        assert [p["tier"] for p in data["participants"]][0] == "chair"
        # chaired from the People's Committee hall: a province-level site, reached from the DC
        assert lab.vc.chair == "ubnd-tinh" and lab.sites["ubnd-tinh"].level == "province"
        assert sites["ubnd-tinh"]["tier"] == "chair" and not lab.sites["ubnd-tinh"].via_carrier

        # the bridge's own API lists every endpoint in one room
        rooms = bridge.janus_rooms()
        assert len(rooms) == 1, rooms
        (listed,) = rooms.values()
        assert len(listed) == len(lab.sites)
        assert {p["display"].rsplit("(", 1)[1].rstrip(")") for p in listed} == set(lab.sites)

        # the mix is real. Districts and communes join muted (vc.join_muted): a commune hears the
        # chair's 1 kHz alone; muting the chair leaves silence; a district given the floor is heard
        # at its own 440 Hz; both together once the chair speaks again.
        chair, district = lab.vc.chair or "", "huyen-chi-lang"
        assert sites[chair]["muted"] is False and sites[district]["muted"] is True
        time.sleep(3)
        pcm = received(lab)
        assert audio.tone_share(pcm, lab.vc.chair_tone_hz) > 0.5, (audio.rms(pcm), audio.tone_share(pcm, 440))
        rc, muted = meeting("mute", chair)
        assert rc == 0 and muted["muted"] is True
        time.sleep(3)
        pcm = received(lab)
        assert audio.tone_share(pcm, lab.vc.chair_tone_hz) < 0.02 and audio.rms(pcm) < 300, audio.rms(pcm)
        meeting("unmute", district)
        time.sleep(3)
        pcm = received(lab)
        assert audio.tone_share(pcm, lab.vc.tone_hz) > 0.3 and audio.tone_share(pcm, lab.vc.chair_tone_hz) < 0.02
        meeting("unmute", chair)
        time.sleep(3)
        pcm = received(lab)
        assert audio.tone_share(pcm, lab.vc.chair_tone_hz) > 0.2 and audio.tone_share(pcm, lab.vc.tone_hz) > 0.1

        # drop and redial
        rc, dropped = meeting("drop", "cao-loc")
        assert rc == 0 and dropped["state"] == "dropped"
        (listed,) = bridge.janus_rooms().values()
        assert len(listed) == len(lab.sites) - 1
        rc, back = meeting("redial", "cao-loc")
        assert rc == 0 and back["state"] == "joined" and back["attempts"] == 2, back
        rc, status = meeting("status")
        assert all(p["state"] == "joined" for p in status["participants"]), states(status)
        assert all(p["receiving"] for p in status["participants"]), states(status)
    finally:
        rc_end, ended = meeting("end", "--id", str(meeting_id))
    assert rc_end == 0 and ended["summary"]["state"] == "ended"
    # nothing left behind: no room in Janus, no conference in the controller, no RTP socket on endpoints
    assert bridge.janus_rooms() == {} and bridge.conferences() == []
    time.sleep(1)
    assert all(endpoint_rtp_sockets(lab, s) == "" for s in lab.sites), \
        {s: endpoint_rtp_sockets(lab, s) for s in lab.sites}
    report = subprocess.run([PROVNET, "vc", "meeting", "report", str(meeting_id), "--format", "json"],
                            capture_output=True, text=True, cwd=REPO, check=True)
    rec = roll(json.loads(report.stdout))
    assert set(rec) == set(lab.sites)
    for site, p in rec.items():
        assert p["verdict"] == "left" and p["joined_at"] and p["duration_s"] > 0, (site, p)
    md = subprocess.run([PROVNET, "vc", "meeting", "report", str(meeting_id)], capture_output=True, text=True,
                        cwd=REPO, check=True).stdout
    assert "every site joined" in md


def test_meeting_with_two_broken_communes(lab: model.Model) -> None:
    from test_50_readiness import repair, settle

    injected = [faults.inject(lab, "endpoint-stop", "quan-son"), faults.inject(lab, "rtp-block", "cao-loc")]
    meeting_id = None
    try:
        time.sleep(3)  # baresip unregisters as it stops
        rc, data = meeting("start", "toan-tinh")
        meeting_id = data["id"]
        assert rc == 1
        got = roll(data)
        failed = {s for s, p in got.items() if p["state"] != "joined"}
        assert failed == {"quan-son", "cao-loc"}, states(data)
        assert got["quan-son"]["verdict"] == "not ready" and got["quan-son"]["layer"] in ("registration", "signalling")
        assert got["cao-loc"]["verdict"] == "not ready" and got["cao-loc"]["layer"] == "media"
        assert got["cao-loc"]["reason"].startswith("readiness: media:")
        (listed,) = lab_bridge(lab).janus_rooms().values()
        assert len(listed) == len(lab.sites) - 2
    finally:
        if meeting_id is not None:
            meeting("end", "--id", str(meeting_id))
        faults.clear(lab)
        for f in injected:
            repair(f.repair)
    md = subprocess.run([PROVNET, "vc", "meeting", "report", str(meeting_id)], capture_output=True, text=True,
                        cwd=REPO, check=True).stdout
    never = md.split("## Never joined")[1]
    assert "`quan-son`" in never and "`cao-loc`" in never and "media" in never
    assert sum(1 for line in never.splitlines() if line.startswith("- **")) == 2
    settle()


def test_playbook_runs_the_same_code(lab: model.Model) -> None:
    play = [str(BIN / "ansible-playbook"), "-i", "inventory/lab", "playbooks/vc_meeting.yml"]
    start = subprocess.run([*play, "-e", "meeting_template=huyen-chi-lang"], capture_output=True, text=True,
                           cwd=REPO, timeout=600)
    try:
        assert start.returncode == 0, start.stdout[-3000:]
        rc, status = meeting("status")
        assert status["summary"]["template"] == "huyen-chi-lang"
        assert {p["site"] for p in status["participants"]} == {"huyen-chi-lang", "chi-lang", "quan-son"}
        assert all(p["state"] == "joined" for p in status["participants"]), states(status)
    finally:
        end = subprocess.run([*play, "-e", "meeting_action=end"], capture_output=True, text=True, cwd=REPO,
                             timeout=300)
    assert end.returncode == 0, end.stdout[-3000:]
    assert lab_bridge(lab).conferences() == []


def test_the_controller_comes_back_after_janus_dies(lab: model.Model) -> None:
    """Janus crashing (seen once under a 166-site hang-up storm) must not leave the bridge without its controller."""
    host = lab.services["bridge"]

    def main_pid(unit: str) -> str:
        res = province.ssh_run(lab, host, f"systemctl show -p MainPID --value {unit}")
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    before = main_pid("provnet-bridged")
    assert before != "0"
    killed = province.ssh_run(lab, host, "kill -KILL $(systemctl show -p MainPID --value janus)")
    assert killed.returncode == 0, killed.stderr
    bridge = lab_bridge(lab)
    deadline = time.monotonic() + 90
    healthy, after = False, before
    while time.monotonic() < deadline and not healthy:
        time.sleep(2)
        after = main_pid("provnet-bridged")
        if after not in ("0", before):
            try:
                healthy = bool(bridge.health()["ok"])
            except Exception:  # the controller is still starting or Janus is not answering yet
                healthy = False
    assert after not in ("0", before), "provnet-bridged was not restarted after Janus died"
    assert healthy, "the bridge did not answer /health within 90 s of Janus dying"
    assert bridge.conferences() == [] and bridge.janus_rooms() == {}
