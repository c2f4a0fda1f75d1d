"""The media layer's test call: one baresip probe instance on the bridge host, driven over ctrl_tcp.

The ``vc_probe`` role runs one baresip per call slot on the bridge host; instance ``i``
answers ctrl_tcp (netstring-framed JSON) on ``127.0.0.1:PROBE_CTRL_BASE + i`` — loopback
only, so provnet runs :mod:`provnet.vc.remote.media_call` (stdlib only) on the bridge host
with ``python3 -c`` over SSH (:func:`remote_script`, like :func:`provnet.vc.sip.remote_script`). It:

1. connects to the slot's ctrl_tcp port (ctrl_tcp serves one client at a time and acts on
   its current call: :class:`SlotPool` makes sure two test calls never share an instance);
2. hangs up whatever call a killed earlier run may have left, then sends
   ``{"command": "dial", "params": "sip:<user>@<endpoint data address>"}``;
3. waits for ``CALL_ESTABLISHED`` (the endpoint auto-answers);
4. keeps the call at least ``hold`` seconds and until the endpoint's first RTCP sender report
   per stream has arrived: baresip 1.0.0 (libre 1.1) sends RTCP every 5 s, fixed, and emits a
   ``CALL_RTCP`` event with ``rtcp_stats`` (``tx``/``rx`` ``sent``, ``lost``, ``jit`` in µs,
   ``rtt`` in µs) whenever a sender report arrives. That first report (~5 s after the answer)
   carries loss and jitter both ways;
5. meanwhile sends SIP OPTIONS to the endpoint (``PING_AT``, each a transaction of its own,
   from the bridge host as the call's RTP: :class:`~provnet.vc.remote.media_call.Pinger`);
6. asks ``audio_debug`` and ``video_debug`` (the stream's codec, RTP packets sent, RTP
   packets received), hangs up, and prints one JSON line of what it saw.

Where the RTT comes from: libre computes RTCP's RTT (arrival − LSR − DLSR, RFC 3550 §6.4.1)
from a report block that refers to one of our sender reports. A baresip endpoint starts its
RTCP timer when it answers, before ours starts (on the 200 OK), so its first report leaves
before our first one exists: LSR is 0 and only its second report (~10 s) would carry an RTT.
The call's ``rtt_ms`` is therefore the RTCP RTT when a report did carry one (an endpoint whose
first report follows ours), else the median round trip of the OPTIONS answered during the
call (``rtt_source``: ``rtcp`` or ``sip-options``; the samples are ``sip_rtts_ms``).

``callstat`` in 1.0.0 prints only the SDP session (no figures) and ``rtcpsummary`` logs at
call end to syslog, so the figures come from the ``CALL_RTCP`` events and the debug text.
Parsing and judging happen here, on the management station (unit-tested on recorded output).
"""

from __future__ import annotations

import base64
import json
import queue
import re
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from provnet import guard
from provnet.vc import remote, sip
from provnet.vc.remote import media_call
from provnet.vc.readiness import LayerResult, judge_media

STREAMS = ("audio", "video")
#: Seconds the call is kept at least (media flowing), then up to MAX_WAIT_S after it was
#: established for the RTCP reports (REPORTS per stream: the first, ~5 s, brings loss and
#: jitter both ways; MAX_WAIT_S leaves it 1.5 s of lateness).
HOLD_S = 4.0
REPORTS = 1
MAX_WAIT_S = 6.5
ANSWER_TIMEOUT_S = 8.0
#: SSH command timeout: answer + reports + debug + hang-up, with margin.
CALL_TIMEOUT_S = ANSWER_TIMEOUT_S + MAX_WAIT_S + 10
#: When the SIP OPTIONS for the RTT go out (s after the answer): all within HOLD_S.
PING_AT = (0.5, 1.5, 2.5, 3.5)


def ping_requests(target: str, user: str, at: tuple[float, ...] = PING_AT) -> list[list[Any]]:
    """``[[at_s, branch, request_b64], …]``: one OPTIONS per offset, the source address left to
    the bridge host (:data:`media_call.LOCAL_IP`, :data:`media_call.LOCAL_PORT`)."""
    out: list[list[Any]] = []
    for t in at:
        req = sip.build_options(target, media_call.SIP_PORT, media_call.LOCAL_IP, media_call.LOCAL_PORT, user=user)
        # baresip allocates a whole call to offer SDP to an OPTIONS that accepts it (ua.c handle_options):
        # not wanted on an endpoint in a call, nor in the round trip
        text = req.text.replace("Accept: application/sdp", "Accept: text/plain")
        out.append([t, req.branch, base64.b64encode(text.encode()).decode()])
    return out


def remote_script(port: int, target: str, user: str, *, hold: float = HOLD_S, reports: int = REPORTS,
                  max_wait: float = MAX_WAIT_S, answer_timeout: float = ANSWER_TIMEOUT_S,
                  ping_at: tuple[float, ...] = PING_AT, production: bool = False) -> list[str]:
    """``argv`` of the ``python3 -c`` program that places one test call from probe slot ``port``.

    The endpoint's address passes the guard here, before the command is handed to SSH.
    """
    guard.check(target, production=production, purpose="place a test call to")
    return ["python3", "-c", remote.source(media_call), str(port), f"sip:{user}@{target}", f"{hold:g}", str(reports),
            f"{max_wait:g}", f"{answer_timeout:g}", json.dumps(ping_requests(target, user, ping_at))]


# ------------------------------------------------------------------ parsing (unit-tested)


class MediaParseError(ValueError):
    pass


def parse_remote_output(output: str) -> dict[str, Any]:
    """The program's last JSON line → its dict (``established``, ``events``, ``debug``, ``error``)."""
    line = next((l for l in reversed(output.strip().splitlines()) if l.startswith("{")), "")
    if not line:
        raise MediaParseError(f"the test-call program printed no result: {output.strip()[-200:]!r}")
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise MediaParseError(f"the test-call program printed bad JSON ({exc}): {line[:200]!r}") from None
    if not isinstance(data, dict):
        raise MediaParseError(f"the test-call program printed {type(data).__name__}, not an object")
    data.setdefault("events", [])
    data.setdefault("debug", {})
    return data


_TX_PACKETS = re.compile(r"^\s*TX: packets=(\d+)", re.M)
_RCVD = re.compile(r"\bpsent=(\d+) rcvd=(\d+)")
_MEMBER = re.compile(r"member 0x[0-9a-f]+: lost=(-?\d+) Jitter=([\d.]+)ms RTT=([\d.]+)ms")
_CODEC = re.compile(r"^\s*tx:\s+encode:\s+([^\s=]+)(?:\s|$)", re.M)
_VIDSRC = re.compile(r"^\s*source: \S+ (\d+) x (\d+), fps=([\d.]+) frames=(\d+)", re.M)
_VIDISP = re.compile(r"^\s*vidisp: \S+ (\d+) x (\d+) frames=(\d+)", re.M)


def parse_stream_debug(text: str | None) -> dict[str, Any]:
    """``audio_debug``/``video_debug`` output of baresip 1.0.0 → RTP counters and codec.

    ``tx_packets`` from the RTCP session's ``TX: packets=N``; ``rx_packets`` from the
    member line ``IP=… psent=P rcvd=R`` (``rcvd``: RTP packets received from the
    endpoint; the line is absent when nothing was received); ``codec`` the encoder.
    """
    if not text:
        return {}
    out: dict[str, Any] = {}
    m = _TX_PACKETS.search(text)
    if m:
        out["tx_packets"] = int(m.group(1))
    m = _RCVD.search(text)
    out["rx_packets"] = int(m.group(2)) if m else 0
    if m:
        out["peer_sent"] = int(m.group(1))
    m = _CODEC.search(text)
    if m and m.group(1) not in ("none", "???"):
        out["codec"] = m.group(1)
    m = _VIDSRC.search(text)
    if m:
        out["tx_size"], out["tx_fps"], out["tx_frames"] = f"{m.group(1)}x{m.group(2)}", float(m.group(3)), int(m.group(4))
    m = _VIDISP.search(text)
    if m:
        out["rx_size"], out["rx_frames"] = f"{m.group(1)}x{m.group(2)}", int(m.group(3))
    return out


def rtcp_reports(events: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    """The ``CALL_RTCP`` statistics of one stream that carry figures, in order."""
    out = []
    for e in events:
        r = e.get("rtcp")
        if e.get("type") == "CALL_RTCP" and e.get("param") == stream and r:
            if (r.get("tx") or {}).get("sent") or (r.get("rx") or {}).get("sent"):
                out.append(r)
    return out


def _pct(lost: int, total: int) -> float:
    return round(100.0 * max(lost, 0) / total, 2) if total > 0 else 0.0


@dataclass
class StreamFigures:
    tx_packets: int = 0
    rx_packets: int = 0
    loss_pct: float | None = None  # worst direction
    loss_tx_pct: float | None = None  # what the endpoint lost of ours (its report)
    loss_rx_pct: float | None = None  # what we lost of the endpoint's
    jitter_ms: float | None = None  # worst direction
    rtt_ms: float | None = None  # RTCP's only (the call's may be SIP's: TestCall.rtt)
    reports: int = 0
    peer_reported: bool = False  # the endpoint's RTCP reports on our stream
    codec: str = ""
    video: dict[str, Any] = field(default_factory=dict)  # sizes and frame counts (video only)

    @property
    def flowing(self) -> bool:
        """Media both ways: we received the endpoint's RTP and sent ours, and the endpoint's
        RTCP (when any arrived) reports receiving ours."""
        return self.rx_packets > 0 and self.tx_packets > 0 and (self.peer_reported or self.reports == 0)

    def as_dict(self) -> dict[str, Any]:
        d = {"tx_packets": self.tx_packets, "rx_packets": self.rx_packets, "loss_pct": self.loss_pct,
             "jitter_ms": self.jitter_ms, "rtt_ms": self.rtt_ms, "loss_tx_pct": self.loss_tx_pct,
             "loss_rx_pct": self.loss_rx_pct, "rtcp_reports": self.reports, "flowing": self.flowing}
        if self.codec:
            d["codec"] = self.codec
        d.update(self.video)
        return d


def stream_figures_of(reports: list[dict[str, Any]], dbg: dict[str, Any]) -> StreamFigures:
    f = StreamFigures(reports=len(reports), codec=str(dbg.get("codec", "")),
                      video={k: dbg[k] for k in ("tx_size", "tx_fps", "tx_frames", "rx_size", "rx_frames") if k in dbg})
    if reports:
        last = reports[-1]
        tx, rx = last.get("tx") or {}, last.get("rx") or {}
        f.tx_packets, f.rx_packets = int(tx.get("sent", 0)), int(rx.get("sent", 0))
        f.loss_tx_pct = _pct(int(tx.get("lost", 0)), int(tx.get("sent", 0)))
        f.loss_rx_pct = _pct(int(rx.get("lost", 0)), int(rx.get("sent", 0)) + max(int(rx.get("lost", 0)), 0))
        f.loss_pct = max(f.loss_tx_pct, f.loss_rx_pct)
        f.jitter_ms = round(max(int(tx.get("jit", 0)), int(rx.get("jit", 0))) / 1000.0, 2)
        rtts = [int(r.get("rtt", 0)) for r in reports if int(r.get("rtt", 0)) > 0]
        f.rtt_ms = round(rtts[-1] / 1000.0, 2) if rtts else None
        f.peer_reported = any(int((r.get("tx") or {}).get("jit", 0)) > 0 or int((r.get("tx") or {}).get("lost", 0)) != 0
                              or int(r.get("rtt", 0)) > 0 for r in reports)
    # the debug counters are read last, just before hang-up: the call's totals
    if "tx_packets" in dbg:
        f.tx_packets = max(f.tx_packets, int(dbg["tx_packets"]))
    if "rx_packets" in dbg:
        f.rx_packets = max(f.rx_packets, int(dbg["rx_packets"]))
    return f


@dataclass
class TestCall:
    """What one test call saw, parsed."""

    established: bool
    uri: str = ""
    error: str = ""
    progress: list[str] = field(default_factory=list)  # event types before the answer / the end
    closed_reason: str = ""
    setup_ms: float | None = None
    duration_s: float | None = None
    streams: dict[str, StreamFigures] = field(default_factory=dict)
    sip_rtts_ms: list[float | None] | None = None  # per OPTIONS sent during the call; None: unanswered

    def worst(self, key: str) -> float | None:
        values = [getattr(s, key) for s in self.streams.values() if getattr(s, key) is not None]
        return max(values) if values else None

    def rtt(self) -> tuple[float | None, str | None]:
        """The call's RTT and its source: RTCP's (worst stream) when a report carried one, else
        the median of the OPTIONS round trips (see the module's docstring)."""
        rtcp = self.worst("rtt_ms")
        if rtcp is not None:
            return rtcp, "rtcp"
        answered = [r for r in self.sip_rtts_ms or [] if r is not None]
        if answered:
            return round(statistics.median(answered), 2), "sip-options"
        return None, None

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {"established": self.established}
        if self.setup_ms is not None:
            out["setup_ms"] = self.setup_ms
        if self.established:
            rtt, source = self.rtt()
            out.update(loss_pct=self.worst("loss_pct"), jitter_ms=self.worst("jitter_ms"), rtt_ms=rtt,
                       rtt_source=source, duration_s=self.duration_s)
            if self.sip_rtts_ms is not None:
                out["sip_rtts_ms"] = self.sip_rtts_ms
            for name, s in self.streams.items():
                out[name] = s.as_dict()
        else:
            out["progress"] = self.progress
            if self.closed_reason:
                out["closed"] = self.closed_reason
        return out


def parse_call(data: dict[str, Any], uri: str = "") -> TestCall:
    events = list(data.get("events") or [])
    call = TestCall(bool(data.get("established")), uri, str(data.get("error") or ""))
    for e in events:
        t = e.get("type")
        if t in ("CALL_RINGING", "CALL_PROGRESS", "CALL_ESTABLISHED", "CALL_CLOSED") and t not in call.progress:
            call.progress.append(t)
        if t == "CALL_CLOSED":
            call.closed_reason = str(e.get("param") or "")
    if data.get("established_t") is not None:
        call.setup_ms = round(float(data["established_t"]) * 1000, 1)
    if data.get("duration_s") is not None:
        call.duration_s = float(data["duration_s"])
    pings = data.get("sip_pings")
    if isinstance(pings, dict):
        call.sip_rtts_ms = [None if r is None else float(r) for r in pings.get("rtt_ms") or []]
    if call.established:
        debug = data.get("debug") or {}
        for name in STREAMS:
            call.streams[name] = stream_figures_of(rtcp_reports(events, name), parse_stream_debug(debug.get(f"{name}_debug")))
    return call


# ------------------------------------------------------------------ judging


def judge_call(call: TestCall, where: str, limits: dict[str, float], rtp_ports: tuple[int, int] | None = None,
               ) -> LayerResult:
    """A parsed test call → the media layer's verdict (thresholds through :func:`judge_media`)."""
    figures = call.figures()
    if call.error and not call.established:
        return LayerResult(False, f"test call from {where} failed: {call.error}", figures)
    if not call.established:
        if call.closed_reason:
            return LayerResult(False, f"test call to {call.uri} refused or dropped before answer: {call.closed_reason} "
                                      f"(from {where})", figures)
        if "CALL_RINGING" in call.progress or "CALL_PROGRESS" in call.progress:
            return LayerResult(False, f"test call to {call.uri} rang but was not answered within "
                                      f"{ANSWER_TIMEOUT_S:g} s — auto-answer off, or the endpoint could not start "
                                      "its media (audio/video source: see its baresip log)", figures)
        return LayerResult(False, f"no answer at all to the test call's INVITE to {call.uri} from {where}", figures)
    silent = [name for name, s in call.streams.items() if not s.flowing]
    if silent:
        parts = []
        for name in silent:
            s = call.streams[name]
            if s.rx_packets == 0 and not s.peer_reported:
                parts.append(f"no {name} either way")
            elif s.rx_packets == 0:
                parts.append(f"no {name} received from the endpoint")
            elif s.tx_packets == 0:
                parts.append(f"no {name} sent by the probe")
            else:
                parts.append(f"the endpoint reports no {name} received")
        rng = f" {rtp_ports[0]}–{rtp_ports[1]}" if rtp_ports else ""
        return LayerResult(False, f"test call answered but media does not flow: {', '.join(parts)} — RTP port "
                                  f"range{rng} dropped on the way (CE firewall?) or the endpoint's media failed",
                           figures)
    judged = judge_media({"loss_pct": figures.get("loss_pct"), "jitter_ms": figures.get("jitter_ms"),
                          "rtt_ms": figures.get("rtt_ms"), "audio": True, "video": True}, limits)
    return LayerResult(judged.ok, judged.reason, figures, degraded=judged.degraded)


# ------------------------------------------------------------------ call slots


class SlotPool:
    """The probe's call slots (instances): each test call takes one, exclusively.

    ``readiness.run_scope`` already bounds concurrent media calls by ``media_slots``; the
    pool makes the slot a call uses its own, so two calls never drive the same
    instance (ctrl_tcp serves one client and acts on the current call).
    """

    def __init__(self, slots: list[int]) -> None:
        self.slots = list(slots)
        self._q: queue.Queue[int] = queue.Queue()
        for s in self.slots:
            self._q.put(s)
        self._busy: set[int] = set()
        self._lock = threading.Lock()

    @contextmanager
    def take(self, timeout: float | None = None) -> Iterator[int]:
        try:
            slot = self._q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no free probe slot within {timeout:g} s") from None
        with self._lock:
            assert slot not in self._busy, f"probe slot {slot} handed out twice"
            self._busy.add(slot)
        try:
            yield slot
        finally:
            with self._lock:
                self._busy.discard(slot)
            self._q.put(slot)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._busy)
