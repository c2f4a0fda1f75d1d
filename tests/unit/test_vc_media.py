"""The media layer's parsers and judgement on recorded baresip 1.0.0 output: no socket, no SSH, no lab.

Recorded on the lab's bridge host (dc-mcu, baresip 1.0.0 / libre 1.1.0) with the vc_probe role:
a 10-s test call from probe slot 0 to probe slot 1 (auto-answer), CALL_RTCP events as the
test-call program keeps them, and the ``audio_debug``/``video_debug`` answers just before hang-up.
It shows why the RTT now comes from SIP OPTIONS: the first sender reports (5.2 s) carry rtt 0,
only the second ones (10.2 s) an RTT. Today's program stops after the first (``FIRST_REPORTS``).
"""

from __future__ import annotations

import base64
import json
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from provnet import model
from provnet.drivers.ssh import Result
from provnet.vc import media, probes, readiness
from provnet.vc.remote import media_call

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"
LIMITS = dict(readiness.DEFAULT_THRESHOLDS)

EVENTS: list[dict[str, Any]] = [{"t": 0.202, "type": "CALL_LOCAL_SDP", "param": "offer", "id": ""},
    {"t": 0.204, "type": "CALL_RINGING", "param": "sip:probe-1@198.18.9.13:5072", "id": "7a8c7951c197e443"},
    {"t": 0.204, "type": "CALL_REMOTE_SDP", "param": "answer", "id": "7a8c7951c197e443"},
    {"t": 0.204, "type": "CALL_ESTABLISHED", "param": "sip:probe-1@198.18.9.13:5072", "id": "7a8c7951c197e443"},
    {"t": 0.205, "type": "CALL_RTCP", "param": "audio", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 0, "lost": 0, "jit": 0}, "rx": {"sent": 0, "lost": 0, "jit": 0}, "rtt": 0}},
    {"t": 0.205, "type": "CALL_RTCP", "param": "video", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 0, "lost": 0, "jit": 0}, "rx": {"sent": 0, "lost": 0, "jit": 0}, "rtt": 0}},
    {"t": 0.207, "type": "CALL_RTPESTAB", "param": "audio", "id": "7a8c7951c197e443"},
    {"t": 0.207, "type": "CALL_RTPESTAB", "param": "video", "id": "7a8c7951c197e443"},
    {"t": 5.202, "type": "CALL_RTCP", "param": "audio", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 250, "lost": 0, "jit": 625}, "rx": {"sent": 250, "lost": 0, "jit": 750}, "rtt": 0}},
    {"t": 5.202, "type": "CALL_RTCP", "param": "video", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 100, "lost": 0, "jit": 1411}, "rx": {"sent": 100, "lost": 0, "jit": 1577}, "rtt": 0}},
    {"t": 10.202, "type": "CALL_RTCP", "param": "audio", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 500, "lost": 0, "jit": 750}, "rx": {"sent": 500, "lost": 0, "jit": 625}, "rtt": 93}},
    {"t": 10.203, "type": "CALL_RTCP", "param": "video", "id": "7a8c7951c197e443", "rtcp": {"tx": {"sent": 200, "lost": 0, "jit": 1188}, "rx": {"sent": 200, "lost": 0, "jit": 1144}, "rtt": 291}}]

# what today's program keeps of the same call: it stops at the first sender report per stream
FIRST_REPORTS = [e for e in EVENTS if e["t"] < 6]
# the OPTIONS round trips it measured meanwhile (one lost)
PINGS = {"sent": 4, "rtt_ms": [0.52, 0.31, None, 0.35], "status": [200, 200, None, 200], "error": ""}

AUDIO_DEBUG = """
--- Audio stream ---
 tx:   encode: PCMU 8000Hz/1ch ptime=20ms S16LE
       aubuf: wish_sz=3840 cur_sz=0 filling=0 (cur 0.00ms, max 600.00ms, or 0, ur 0)
       source: ausine,1000 S16LE
       time = 10.019 sec
 rx:   decode: PCMU 8000Hz/1ch S16LE
       aubuf:  (cur nanms, max nanms, or 0, ur 0)
       player: none,/var/lib/provnet-probe/0/received.wav S16LE
       n_discard:0
       time = 9.900 sec
 audio tx pipeline:      ausine ---> PCMU
 audio rx pipeline:      (play) <--- PCMU
 audio dir=sendrecv pt_enc=0
 local: 0.0.0.0:10930, remote: 198.18.9.13:10942/198.18.9.13:10943
 mnat: (none) (connected=no)
 menc: (none) (secure=no)
RTP debug:
 Encode: seq=8212 ssrc=0x516d1ad8
----- RTCP Session: -----
  cname=sip:probe-0@198.18.9.13:5070 SSRC=0x516d1ad8/1366104792 rx=8000Hz
  member 0x8568c29a: lost=0 Jitter=0.7ms RTT=0.0ms
                 IP=198.18.9.13:10942 psent=500 rcvd=501
  TX: packets=501, octets=80160
--- jitter buffer debug---
 running=1 min=5 cur=5 max=10 [frames]
 seq_put=24218
"""

VIDEO_DEBUG = """
--- Video stream ---
 started: yes
 tx: encode: VP8 yuv420p
     source: fakevideo 176 x 144, fps=10.00 frames=101
     skipc=0 sendq=0
     time = 10.000 sec
 rx: decode: VP8 yuv420p
     vidisp: fakevideo 176 x 144 frames=98
     n_keyframes=1, n_picup=0
     time = 9.800 sec
 video dir=sendrecv pt_enc=96
 local: 0.0.0.0:10920, remote: 198.18.9.13:10944/198.18.9.13:10945
 mnat: (none) (connected=no)
 menc: (none) (secure=no)
RTP debug:
 Encode: seq=12078 ssrc=0x2ce4b0a4
----- RTCP Session: -----
  cname=sip:probe-0@198.18.9.13:5070 SSRC=0x2ce4b0a4/753184932 rx=90000Hz
  member 0xba4b7b66: lost=0 Jitter=1.1ms RTT=0.2ms
                 IP=198.18.9.13:10944 psent=200 rcvd=202
  TX: packets=202, octets=9250
--- jitter buffer debug---
 running=1 min=5 cur=5 max=10 [frames]
 seq_put=15544
"""

# audio_debug of a stream that never started (the call was not answered)
AUDIO_NOT_STARTED = """
--- Audio stream ---
 tx:   encode:  ptime=20ms S16LE
       aubuf:  (cur nanms, max nanms, or 0, ur 0)
       source: none,1000 S16LE
       time = 0.000 sec
 audio dir=sendrecv pt_enc=-1
 local: 0.0.0.0:10924, remote: ?/?
RTP debug:
 Encode: seq=1718 ssrc=0xfc51b3ef
----- RTCP Session: -----
  cname= SSRC=0xfc51b3ef/4233212911 rx=0Hz
  member 0x78d6ad3f: lost=0 Jitter=0.0ms RTT=0.0ms
  TX: packets=0, octets=0
"""

# the lab endpoint that rang and never answered (its audio source failed to start)
RANG_ONLY = {"established": False, "events": [
    {"t": 0.003, "type": "CALL_LOCAL_SDP", "param": "offer", "id": ""},
    {"t": 0.009, "type": "CALL_RINGING", "param": "sip:dong-dang@198.18.64.98", "id": "4b26d74ed74e2411"}],
    "debug": {}, "error": "", "duration_s": 0.0}


def recorded(**over: Any) -> dict[str, Any]:
    data = {"established": True, "established_t": 0.204, "duration_s": 10.015, "error": "",
            "events": EVENTS, "debug": {"audio_debug": AUDIO_DEBUG, "video_debug": VIDEO_DEBUG}}
    data.update(over)
    return data


def rtcp(stream: str, tx: tuple[int, int, int], rx: tuple[int, int, int], rtt: int = 0, t: float = 5.2) -> dict[str, Any]:
    return {"t": t, "type": "CALL_RTCP", "param": stream, "id": "c1",
            "rtcp": {"tx": dict(zip(("sent", "lost", "jit"), tx)), "rx": dict(zip(("sent", "lost", "jit"), rx)),
                     "rtt": rtt}}


# ------------------------------------------------------------------ parsers


def test_parse_remote_output_takes_the_last_json_line() -> None:
    out = "some warning\n" + json.dumps(recorded()) + "\n"
    assert media.parse_remote_output(out)["established"] is True
    with pytest.raises(media.MediaParseError, match="printed no result"):
        media.parse_remote_output("Traceback (most recent call last):\n  boom\n")
    with pytest.raises(media.MediaParseError, match="bad JSON"):
        media.parse_remote_output("{not json")


def test_parse_stream_debug_audio() -> None:
    d = media.parse_stream_debug(AUDIO_DEBUG)
    assert d == {"tx_packets": 501, "rx_packets": 501, "peer_sent": 500, "codec": "PCMU"}


def test_parse_stream_debug_video() -> None:
    d = media.parse_stream_debug(VIDEO_DEBUG)
    assert d["tx_packets"] == 202 and d["rx_packets"] == 202 and d["codec"] == "VP8"
    assert (d["tx_size"], d["tx_fps"], d["tx_frames"]) == ("176x144", 10.0, 101)
    assert (d["rx_size"], d["rx_frames"]) == ("176x144", 98)


def test_parse_stream_debug_of_a_stream_that_never_started() -> None:
    d = media.parse_stream_debug(AUDIO_NOT_STARTED)
    assert d == {"tx_packets": 0, "rx_packets": 0}  # no codec, no member IP line
    assert media.parse_stream_debug(None) == {} and media.parse_stream_debug("") == {}


def test_rtcp_reports_skip_the_empty_ones() -> None:
    audio = media.rtcp_reports(EVENTS, "audio")
    assert [r["tx"]["sent"] for r in audio] == [250, 500]  # the all-zero report at setup is dropped
    assert len(media.rtcp_reports(EVENTS, "video")) == 2


def test_stream_figures_from_the_recorded_call() -> None:
    call = media.parse_call(recorded(), "sip:probe-1@198.18.9.13:5072")
    a, v = call.streams["audio"], call.streams["video"]
    assert (a.tx_packets, a.rx_packets, a.loss_pct, a.jitter_ms, a.rtt_ms) == (501, 501, 0.0, 0.75, 0.09)
    assert (v.tx_packets, v.rx_packets, v.loss_pct, v.rtt_ms) == (202, 202, 0.0, 0.29)
    assert a.flowing and v.flowing and a.peer_reported and a.reports == 2 and v.codec == "VP8"
    assert call.setup_ms == 204.0 and call.duration_s == 10.015
    assert call.worst("rtt_ms") == 0.29 and call.worst("jitter_ms") == max(a.jitter_ms, v.jitter_ms)


def test_loss_both_directions_and_the_worst_one() -> None:
    # the endpoint lost 25 of our 250 packets (its report); we lost 10 of its 250 (received 240)
    f = media.stream_figures_of([rtcp("audio", (250, 25, 2500), (240, 10, 40000), rtt=31000)["rtcp"]], {})
    assert (f.loss_tx_pct, f.loss_rx_pct, f.loss_pct) == (10.0, 4.0, 10.0)
    assert f.jitter_ms == 40.0 and f.rtt_ms == 31.0 and f.flowing
    # duplicates make RTCP's cumulative loss negative: counted as none
    assert media.stream_figures_of([rtcp("audio", (250, -2, 500), (250, -1, 500))["rtcp"]], {}).loss_pct == 0.0


def test_rtt_is_absent_until_a_report_carries_it() -> None:
    f = media.stream_figures_of([rtcp("video", (100, 0, 1300), (100, 0, 1300))["rtcp"]], {})
    assert f.rtt_ms is None and f.jitter_ms == 1.3


def test_stream_not_flowing() -> None:
    # nothing came back and the endpoint reports nothing on ours (RTP dropped both ways)
    silent = media.stream_figures_of([], {"tx_packets": 250, "rx_packets": 0})
    assert not silent.flowing
    # we receive, but the endpoint's reports say it got none of ours
    one_way = media.stream_figures_of([rtcp("audio", (250, 0, 0), (250, 0, 600))["rtcp"]], {})
    assert not one_way.flowing and not one_way.peer_reported


# ------------------------------------------------------------------ judgement


def test_judge_a_good_call_is_ready_with_figures() -> None:
    call = media.parse_call(recorded(), "sip:probe-1@198.18.9.13:5072")
    res = media.judge_call(call, "probe slot 0", LIMITS, (10000, 10999))
    assert res.ok and not res.degraded and res.reason == ""
    assert res.figures["loss_pct"] == 0.0 and res.figures["rtt_ms"] == 0.29
    assert res.figures["audio"]["flowing"] and res.figures["video"]["codec"] == "VP8"


def test_judge_ten_percent_loss_is_degraded() -> None:
    events = [rtcp("audio", (250, 26, 3000), (228, 22, 4000), rtt=2000), rtcp("video", (100, 9, 5000), (91, 9, 6000))]
    call = media.parse_call({"established": True, "events": events, "debug": {}}, "sip:a@198.18.64.98")
    res = media.judge_call(call, "probe slot 0", LIMITS)
    assert res.ok and res.degraded and res.reason.startswith("media degraded: loss 10.4% > 1%")


def test_judge_heavy_loss_is_not_ready() -> None:
    events = [rtcp("audio", (250, 100, 3000), (150, 100, 4000)), rtcp("video", (100, 0, 5000), (100, 0, 6000))]
    call = media.parse_call({"established": True, "events": events, "debug": {}}, "sip:a@198.18.64.98")
    res = media.judge_call(call, "probe slot 0", LIMITS)
    assert not res.ok and "loss 40% > 20%" in res.reason


def test_judge_rtp_dropped_names_the_port_range() -> None:
    dbg = {"audio_debug": AUDIO_NOT_STARTED.replace("TX: packets=0", "TX: packets=250"),
           "video_debug": "--- Video stream ---\n  TX: packets=100, octets=9000\n"}
    call = media.parse_call({"established": True, "events": [], "debug": dbg}, "sip:a@198.18.64.98")
    res = media.judge_call(call, "probe slot 0", LIMITS, (10000, 10999))
    assert not res.ok
    assert res.reason == ("test call answered but media does not flow: no audio either way, no video either way — "
                          "RTP port range 10000–10999 dropped on the way (CE firewall?) or the endpoint's media failed")


def test_judge_unanswered_calls() -> None:
    rang = media.judge_call(media.parse_call(RANG_ONLY, "sip:dong-dang@198.18.64.98"), "probe slot 0", LIMITS)
    assert not rang.ok and "rang but was not answered within 8 s" in rang.reason
    assert rang.figures == {"established": False, "progress": ["CALL_RINGING"]}
    refused = {"established": False, "events": [{"type": "CALL_CLOSED", "param": "488 Not Acceptable Here", "id": "x"}]}
    res = media.judge_call(media.parse_call(refused, "sip:a@198.18.64.98"), "probe slot 0", LIMITS)
    assert not res.ok and "488 Not Acceptable Here" in res.reason
    silent = media.judge_call(media.parse_call({"established": False, "events": []}, "sip:a@b"), "slot 0", LIMITS)
    assert "no answer at all" in silent.reason
    err = media.judge_call(media.parse_call({"established": False, "error": "ctrl_tcp: reset"}, "sip:a@b"), "s", LIMITS)
    assert "failed: ctrl_tcp: reset" in err.reason


def test_remote_script_is_guarded_and_stdlib_only() -> None:
    from provnet.errors import AddressRefused

    argv = media.remote_script(4451, "198.18.64.98", "dong-dang")
    assert argv[:2] == ["python3", "-c"] and argv[3:9] == ["4451", "sip:dong-dang@198.18.64.98", "4", "1", "6.5", "8"]
    assert [p[0] for p in json.loads(argv[9])] == list(media.PING_AT)
    imports = {w for line in argv[2].splitlines() if line.startswith("import") for w in line[6:].replace(",", " ").split()}
    assert imports <= {"base64", "json", "select", "socket", "sys", "threading", "time"}
    compile(argv[2], "<remote>", "exec")
    with pytest.raises(AddressRefused):
        media.remote_script(4450, "192.0.2.1", "x")


# ------------------------------------------------------------------ one report, RTT from SIP OPTIONS


def test_one_report_per_stream_is_enough_and_gives_loss_and_jitter() -> None:
    assert media.REPORTS == 1
    assert media_call.enough(FIRST_REPORTS, media.REPORTS)
    assert not media_call.enough([e for e in FIRST_REPORTS if e["param"] != "video"], media.REPORTS)
    call = media.parse_call(recorded(events=FIRST_REPORTS, sip_pings=PINGS, duration_s=5.01), "sip:probe-1@x")
    a, v = call.streams["audio"], call.streams["video"]
    assert (a.reports, a.loss_pct, a.jitter_ms, a.rtt_ms) == (1, 0.0, 0.75, None)  # no RTT in the first report
    assert (v.reports, v.jitter_ms) == (1, 1.58) and a.flowing and v.flowing


def test_the_rtt_is_the_median_options_round_trip_when_rtcp_has_none() -> None:
    call = media.parse_call(recorded(events=FIRST_REPORTS, sip_pings=PINGS), "sip:probe-1@x")
    assert call.sip_rtts_ms == [0.52, 0.31, None, 0.35] and call.rtt() == (0.35, "sip-options")
    res = media.judge_call(call, "probe slot 0", LIMITS)
    assert res.ok and not res.degraded
    f = res.figures
    assert (f["rtt_ms"], f["rtt_source"], f["sip_rtts_ms"]) == (0.35, "sip-options", [0.52, 0.31, None, 0.35])
    # the fields the rollout evidence and the report read are all there
    assert {"established", "setup_ms", "loss_pct", "jitter_ms", "rtt_ms", "duration_s", "audio", "video"} <= set(f)
    assert f["audio"]["rtt_ms"] is None and f["video"]["codec"] == "VP8"


def test_an_rtcp_rtt_wins_over_the_options_one() -> None:
    call = media.parse_call(recorded(sip_pings=PINGS), "sip:probe-1@x")  # the recorded second reports: RTT
    assert call.rtt() == (0.29, "rtcp") and call.figures()["rtt_source"] == "rtcp"


def test_no_rtt_at_all_is_not_judged() -> None:
    unanswered = {"sent": 4, "rtt_ms": [None] * 4, "status": [None] * 4, "error": "Connection refused"}
    for over in ({"sip_pings": unanswered}, {}):  # answered by none / an older program without pings
        call = media.parse_call(recorded(events=FIRST_REPORTS, **over), "sip:probe-1@x")
        res = media.judge_call(call, "probe slot 0", LIMITS)
        assert res.ok and res.figures["rtt_ms"] is None and res.figures["rtt_source"] is None
    assert "sip_rtts_ms" not in media.parse_call(recorded(), "x").figures()


def test_a_long_options_round_trip_is_judged_like_an_rtcp_one() -> None:
    slow = {"sent": 4, "rtt_ms": [420.0, 410.5, 430.0, None]}
    res = media.judge_call(media.parse_call(recorded(events=FIRST_REPORTS, sip_pings=slow), "x"), "s", LIMITS)
    assert res.ok and res.degraded and res.reason == "media degraded: RTT 420 ms > 300 ms"
    far = {"sent": 4, "rtt_ms": [900.0, 950.0, None, None]}
    res = media.judge_call(media.parse_call(recorded(events=FIRST_REPORTS, sip_pings=far), "x"), "s", LIMITS)
    assert not res.ok and res.reason == "media beyond limits: RTT 925 ms > 800 ms"


def test_the_pings_are_fresh_options_transactions_without_sdp() -> None:
    pings = media.ping_requests("198.18.64.98", "dong-dang")
    assert [p[0] for p in pings] == list(media.PING_AT) and all(t < media.HOLD_S for t in media.PING_AT)
    texts = [base64.b64decode(p[2]).decode() for p in pings]
    for (_, branch, _), text in zip(pings, texts):
        assert text.startswith("OPTIONS sip:dong-dang@198.18.64.98:5060 SIP/2.0\r\n")
        assert f"Via: SIP/2.0/UDP {media_call.LOCAL_IP}:{media_call.LOCAL_PORT};branch={branch};rport" in text
        assert "Accept: text/plain" in text and "application/sdp" not in text
    call_ids = {line for t in texts for line in t.split("\r\n") if line.startswith("Call-ID:")}
    assert len({p[1] for p in pings}) == len(call_ids) == 4  # never merged requests (482)
    assert media_call.sip_dest("sip:dong-dang@198.18.64.98") == ("198.18.64.98", 5060)
    assert media_call.sip_dest("sip:probe-1@198.18.9.13:5072;transport=udp") == ("198.18.9.13", 5072)
    assert media_call.sip_dest("sip:198.18.64.98") == ("198.18.64.98", 5060)


def test_the_program_takes_its_pings_from_the_command_line(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[tuple[Any, ...]] = []
    monkeypatch.setattr(media_call, "run", lambda *a: seen.append(a) or {"established": False})
    argv = media.remote_script(4451, "198.18.64.98", "dong-dang")
    media_call.main(argv[3:])
    media_call.main(argv[3:9])  # an older command line: no pings
    assert seen[0][:6] == (4451, "sip:dong-dang@198.18.64.98", 4.0, 1, 6.5, 8.0) and seen[0][6] == json.loads(argv[9])
    assert seen[1][6] is None and json.loads(capsys.readouterr().out.splitlines()[0]) == {"established": False}


def test_the_timeouts_follow_the_hold() -> None:
    assert (media.HOLD_S, media.MAX_WAIT_S) == (4.0, 6.5)  # first report ~5 s after the answer, 1.5 s late at most
    assert media.CALL_TIMEOUT_S == media.ANSWER_TIMEOUT_S + media.MAX_WAIT_S + 10


class TimedCtrl:
    """A ctrl_tcp socket that delivers the scripted messages at their times (s after creation)."""

    def __init__(self, script: list[tuple[float, dict[str, Any]]]) -> None:
        self.t0, self.script = time.monotonic(), list(script)

    def settimeout(self, t: float) -> None:
        self.timeout = t

    def recv(self, n: int) -> bytes:
        due = [m for at, m in self.script if at <= time.monotonic() - self.t0]
        if not due:
            time.sleep(min(self.timeout, 0.01))
            raise socket.timeout
        self.script = self.script[len(due):]
        return b"".join(media_call.frame(m) for m in due)


def test_the_hold_ends_at_the_first_report_of_both_streams_or_at_the_max_wait() -> None:
    def report(stream: str) -> dict[str, Any]:
        return {"event": True, "id": "c1", "type": "CALL_RTCP", "param": stream,
                "rtcp_stats": {"tx": {"sent": 25, "lost": 0, "jit": 600}, "rx": {"sent": 25, "lost": 0, "jit": 700},
                               "rtt": 0}}

    def hold(script: list[tuple[float, dict[str, Any]]], hold_s: float, max_wait: float) -> float:
        sock = TimedCtrl(script)
        ctrl = media_call.Ctrl(sock, {"events": []}, sock.t0)  # type: ignore[arg-type]
        ctrl.call_id = "c1"
        assert not media_call.hold_call(ctrl, sock.t0, hold_s, media.REPORTS, max_wait)
        return time.monotonic() - sock.t0

    assert 0.3 <= hold([(0.1, report("audio")), (0.3, report("video"))], 0.05, 2.0) < 1.2  # the reports
    assert 0.4 <= hold([(0.1, report("audio")), (0.15, report("video"))], 0.4, 2.0) < 1.2  # the minimum hold
    assert 0.5 <= hold([(0.1, report("audio"))], 0.05, 0.5) < 1.2  # the max wait: no video report came


def test_the_pinger_times_each_options_answer_on_its_own() -> None:
    """Over loopback: a responder that answers 100 then 200 after 20 ms, and loses the second request."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)
    seen: list[str] = []

    def serve() -> None:
        for n in range(3):
            data, addr = srv.recvfrom(65535)
            seen.append(data.decode())
            if n == 1:
                continue
            via = next(line for line in data.decode().split("\r\n") if line.startswith("Via:"))
            srv.sendto(f"SIP/2.0 100 Trying\r\n{via}\r\n\r\n".encode(), addr)
            time.sleep(0.02)
            srv.sendto(f"SIP/2.0 200 OK\r\n{via}\r\nServer: baresip\r\n\r\n".encode(), addr)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    pinger = media_call.Pinger(srv.getsockname(), media.ping_requests("198.18.64.98", "x", (0.0, 0.05, 0.1)),
                               time.monotonic())
    pinger.start()
    server.join(5)
    time.sleep(0.1)
    t = time.monotonic()
    out = pinger.stop()
    srv.close()
    assert time.monotonic() - t < 0.5 and not pinger.is_alive()  # stop() does not wait for the lost answer
    assert out["sent"] == 3 and out["status"] == [200, None, 200] and out["error"] == ""
    assert out["rtt_ms"][1] is None and all(15 <= r < 1000 for r in (out["rtt_ms"][0], out["rtt_ms"][2]))
    assert media_call.LOCAL_IP not in seen[0] and "Via: SIP/2.0/UDP 127.0.0.1:" in seen[0]
    call = media.parse_call(recorded(events=FIRST_REPORTS, sip_pings=out), "x")
    assert call.rtt()[1] == "sip-options" and 15 <= (call.rtt()[0] or 0) < 1000


# ------------------------------------------------------------------ slots


def test_slot_pool_never_hands_a_slot_to_two_calls() -> None:
    pool = media.SlotPool([0, 1, 2])
    held: set[int] = set()
    lock = threading.Lock()
    peak = [0]

    def call(_: int) -> None:
        with pool.take(timeout=5) as slot:
            with lock:
                assert slot not in held
                held.add(slot)
                peak[0] = max(peak[0], len(held))
            time.sleep(0.01)
            with lock:
                held.discard(slot)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(call, range(40)))
    assert peak[0] <= 3 and pool.busy == 0
    with pool.take() as a, pool.take() as b, pool.take() as c:
        assert {a, b, c} == {0, 1, 2}
        with pytest.raises(TimeoutError):
            with pool.take(timeout=0.01):
                pass


# ------------------------------------------------------------------ LabProbes.media with a fake bridge


class FakeBridge:
    def __init__(self, answer: Any) -> None:
        self.answer, self.commands = answer, []

    def run(self, command: str, timeout: float = 30) -> Result:
        self.commands.append(command)
        return self.answer(command)

    def close(self) -> None:
        pass


class NoRpc:
    address, port = "198.19.0.12", 5080


def test_lab_media_places_the_call_from_a_free_slot() -> None:
    m = model.load(LAB)

    def answer(command: str) -> Result:
        argv = shlex.split(command)
        if "/proc/net/tcp" in command:
            return Result(0, "[4450, 4451, 4452, 4453]\n", "")
        assert argv[3] in {"4450", "4451", "4452", "4453"} and argv[4] == "sip:dong-dang@198.18.64.98"
        return Result(0, json.dumps(recorded()) + "\n", "")

    bridge = FakeBridge(answer)
    p = probes.LabProbes(m, ctx=object(), bridge=bridge, rpc=NoRpc())  # type: ignore[arg-type]
    ep = readiness.endpoint_of(m, "dong-dang-vc")
    res = p.media(ep)
    assert res.ok and res.figures["slot"] in {0, 1, 2, 3} and res.figures["video"]["flowing"]
    # a slot whose ctrl_tcp went away is named
    p2 = probes.LabProbes(m, ctx=object(), rpc=NoRpc(), bridge=FakeBridge(  # type: ignore[arg-type]
        lambda c: Result(0, "[4450]\n" if "/proc/net/tcp" in c else
                         json.dumps({"established": False, "error": "connect: Connection refused"}), "")))
    res = p2.media(ep)
    assert not res.ok and "provnet-probe@0 down?" in res.reason
