"""Meetings: templates, the bridge controller's SIP/SDP handling, tone detection, tiered dial-out."""

from __future__ import annotations

import dataclasses
import io
import math
import queue
import struct
import threading
import wave
from pathlib import Path
from typing import Any

import pytest

from provnet import history, model, schema, sot
from provnet.vc import audio, bridged, meeting, meeting_report
from provnet.vc.bridge import Bridge, BridgeError, Participant

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"

# what baresip 1.0.0 answers to an INVITE without SDP (recorded on the lab)
OFFER_200 = (
    "SIP/2.0 200 Answering\r\n"
    "Via: SIP/2.0/UDP 198.18.9.13:5062;branch=z9hG4bK404f;rport=5062;received=198.18.9.13\r\n"
    "f: \"provnet bridge\" <sip:bridge@vc.langson.lab>;tag=5d88\r\n"
    "To: <sip:dongdang@vc.langson.lab>;tag=176acc\r\n"
    "i: eba1@198.18.9.13\r\n"
    "CSeq: 1 INVITE\r\n"
    "Record-Route: <sip:198.18.9.12;lr>\r\n"
    "Contact: <sip:dongdang-0x55ee@198.18.64.98:5060>\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\no=- 4244515 1948478572 IN IP4 198.18.64.98\r\ns=-\r\nc=IN IP4 198.18.64.98\r\nt=0 0\r\n"
    "m=audio 10658 RTP/AVP 0 8 96 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    "m=video 10632 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n"
)


@pytest.fixture(scope="module")
def m() -> model.Model:
    return model.load(LAB)


# ------------------------------------------------------------------ templates


def test_toan_tinh_is_chair_then_districts_then_communes(m: model.Model) -> None:
    t = meeting.template(m, "toan-tinh")
    assert t.chair == "ubnd-tinh" and m.sites["ubnd-tinh"].level == "province"  # chaired from the hall
    assert t.members[0] == ("ubnd-tinh", "chair")
    assert [s for s, tier in t.members if tier == "district"] == ["huyen-cao-loc", "huyen-chi-lang"]
    tiers = [tier for _, tier in t.members]
    assert tiers == sorted(tiers, key=meeting.TIERS.index)
    assert set(t.sites()) == set(m.sites)  # every site once
    assert len(t.sites()) == len(set(t.sites()))


def test_district_template_is_the_district_and_its_communes(m: model.Model) -> None:
    t = meeting.template(m, "huyen-cao-loc")
    assert t.members[0] == ("huyen-cao-loc", "chair")
    assert {s for s, _ in t.members[1:]} == {s.slug for s in m.communes() if s.district == "huyen-cao-loc"}


def test_unknown_template_names_the_choices(m: model.Model) -> None:
    with pytest.raises(meeting.MeetingError, match="toan-tinh.*huyen-cao-loc.*bien-gioi"):
        meeting.template(m, "hop-khong-co")


def test_a_meeting_naming_a_missing_site_fails_validation() -> None:
    src = sot.read(LAB)
    vc = schema.Vc(chair="khong-co", meetings={"giao-ban": schema.MeetingDef(title="x", chair="dong-dang",
                                                                              sites=["xa-ma"])})
    bad = dataclasses.replace(src, province=src.province.model_copy(update={"vc": vc}))
    problems = {(p.obj, p.message) for p in sot.check(bad, "province.yml")}
    assert ("vc.chair", "site 'khong-co' does not exist") in problems
    assert ("vc.meetings.giao-ban.sites", "site 'xa-ma' does not exist") in problems


def test_validation_names_an_unknown_recorder() -> None:
    src = sot.read(LAB)
    vc = src.province.vc.model_copy(update={"recorders": ["chi-lang", "xa-khong-co"]})
    bad = dataclasses.replace(src, province=src.province.model_copy(update={"vc": vc}))
    problems = {(p.obj, p.message) for p in sot.check(bad, "province.yml")}
    assert ("vc.recorders", "site 'xa-khong-co' does not exist") in problems
    assert not any("'chi-lang'" in msg for _, msg in problems)


def test_only_recorder_endpoints_record_their_calls(m: model.Model) -> None:
    from provnet import render

    assert m.vc.recorders == ["chi-lang"]
    (recorder,) = render.render_device(m, "chi-lang-vc")
    (other,) = render.render_device(m, "dong-dang-vc")
    rec, oth = recorder.text(), other.text()
    assert "module\t\t\tsndfile.so" in rec and "snd_path\t\t/var/lib/baresip/recordings" in rec
    assert "sndfile" not in oth and "snd_path" not in oth
    assert "\naudio_player" not in rec + oth  # none is loaded: a named one would only mislead


def test_the_chair_endpoint_plays_its_own_tone(m: model.Model) -> None:
    from provnet import hostvars

    assert hostvars.device_vars(m, m.devices["ubnd-tinh-vc"])["provnet_vc"]["tone_hz"] == m.vc.chair_tone_hz
    assert hostvars.device_vars(m, m.devices["dong-dang-vc"])["provnet_vc"]["tone_hz"] == m.vc.tone_hz
    assert hostvars.device_vars(m, m.devices["chi-lang-vc"])["provnet_vc"]["tone_hz"] == m.vc.tone_hz
    assert m.vc.chair_tone_hz != m.vc.tone_hz


def test_lab_endpoints_yield_the_cpu_to_the_dc(m: model.Model) -> None:
    """vc.endpoint_nice reaches baresip.service as Nice= (thanhhoa-lab: 19); 0 writes no Nice= line."""
    import jinja2
    import yaml

    from provnet import hostvars

    repo = Path(__file__).resolve().parents[2]
    full = yaml.safe_load((repo / "inventory/thanhhoa-lab/province.yml").read_text())
    assert full["vc"]["endpoint_nice"] == 19  # the full-scale lab: 166 endpoints on 2 vCPUs
    assert m.vc.endpoint_nice == 0  # the 7-site lab: the CPU is not short
    yielding = dataclasses.replace(m, vc=m.vc.model_copy(update={"endpoint_nice": 10}))
    assert hostvars.device_vars(yielding, m.devices["chi-lang-vc"])["provnet_vc"]["endpoint_nice"] == 10
    unit = repo / "roles/vc_endpoint/templates/baresip.service.j2"
    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(unit.read_text())
    base = {"ansible_managed": "x", "vc_endpoint_config_dir": "/etc/provnet/baresip", "vc_endpoint_user": "baresip",
            "vc_endpoint_group": "baresip", "vc_endpoint_home": "/var/lib/baresip"}
    assert "\nNice=10\n" in template.render(**base, vc_endpoint_nice="10")  # Ansible hands the default as text
    assert "Nice=" not in template.render(**base, vc_endpoint_nice=0)
    with pytest.raises(ValueError, match="endpoint_nice"):
        schema.Vc(endpoint_nice=20)


def test_parse_at_accepts_clock_and_iso() -> None:
    from datetime import datetime

    now = datetime(2026, 11, 22, 9, 0, tzinfo=history.LOCAL_TZ)
    assert meeting.parse_at("14:30", now).hour == 14 and meeting.parse_at("14:30", now).day == 22
    assert meeting.parse_at("08:00", now).day == 23  # already past: tomorrow
    assert meeting.parse_at("2026-12-01T08:00", now).month == 12
    with pytest.raises(meeting.MeetingError, match="HH:MM"):
        meeting.parse_at("sáng mai", now)


# ------------------------------------------------------------------ the bridge controller's SIP


def test_parse_sip_expands_compact_headers_and_reads_the_offer() -> None:
    msg = bridged.parse_sip(OFFER_200.encode())
    assert msg.is_response and msg.status == 200 and msg.method == "INVITE"
    assert bridged.tag_of(msg.get("From")) == "5d88" and msg.get("Call-ID") == "eba1@198.18.9.13"
    assert bridged.uri_of(msg.get("Contact")) == "sip:dongdang-0x55ee@198.18.64.98:5060"
    assert bridged.host_port(bridged.uri_of(msg.get("Record-Route"))) == ("198.18.9.12", 5060)
    offer = bridged.parse_sdp(msg.body)
    assert (offer.address, offer.audio_port) == ("198.18.64.98", 10658)
    assert offer.codecs == {"PCMU": 0, "PCMA": 8, "opus": 96, "telephone-event": 101}
    assert bridged.choose_codec(offer) == "PCMU"


def test_answer_points_audio_at_the_room_and_declines_video() -> None:
    offer = bridged.parse_sdp(bridged.parse_sip(OFFER_200.encode()).body)
    sdp = bridged.build_answer(offer, "PCMU", "198.18.9.13", 10002, 7)
    lines = sdp.split("\r\n")
    assert "c=IN IP4 198.18.9.13" in lines
    assert "m=audio 10002 RTP/AVP 0" in lines and "a=rtpmap:0 PCMU/8000" in lines
    assert "m=video 0 RTP/AVP 96" in lines  # one answer line per offered stream, video rejected
    assert [ln[:7] for ln in lines if ln.startswith("m=")] == ["m=audio", "m=video"]


def test_a_leave_waits_for_joins_in_flight_and_holds_back_new_ones() -> None:
    """Janus 1.1 AudioBridge crashes on a leave during a join (janus-gateway#3588): never both at once."""
    gate = bridged.Membership()
    events: list[str] = []
    release_joins, left = threading.Event(), threading.Event()
    inside = threading.Barrier(3)

    def join(name: str) -> None:
        with gate.join():
            events.append(f"{name} in")
            inside.wait(timeout=5)  # both joins are inside together
            release_joins.wait(timeout=5)
            events.append(f"{name} out")

    def leave() -> None:
        with gate.leave():
            events.append("leave")
        left.set()

    joins = [threading.Thread(target=join, args=(n,)) for n in ("a", "b")]
    for t in joins:
        t.start()
    inside.wait(timeout=5)
    leaver = threading.Thread(target=leave)
    leaver.start()
    late = threading.Thread(target=lambda: (gate.join().__enter__(), events.append("late in")))
    assert not left.wait(timeout=0.3), "the leave ran while two joins were in flight"
    late.start()
    late.join(timeout=0.3)
    assert late.is_alive(), "a new join started while a leave was waiting"
    release_joins.set()
    for t in (*joins, leaver, late):
        t.join(timeout=5)
    assert events.index("leave") > max(events.index("a out"), events.index("b out"))
    assert events.index("late in") > events.index("leave")


def test_a_join_janus_answers_late_is_still_heard() -> None:
    """A join that times out is queued in Janus, not refused: its answer is still collected."""
    janus = bridged.Janus("http://198.18.9.13:8088/janus", "http://198.18.9.13:7088/admin", "s")
    posted: list[dict[str, Any]] = []
    janus._post = lambda url, body, timeout=10: posted.append(body) or {}  # type: ignore[method-assign]
    with pytest.raises(bridged.JanusPending, match="join: no answer within 0 s") as caught:
        janus.request_async({"request": "join", "room": 1}, handle=5, timeout=0.05)
    pending = caught.value
    assert pending.tx == posted[0]["transaction"] and pending.tx in janus._waiting  # still listening
    janus._waiting[pending.tx].put({"janus": "event", "plugindata": {"data": {"audiobridge": "joined", "id": 42}}})
    assert janus.settle(pending, timeout=1) == {"audiobridge": "joined", "id": 42}
    assert pending.tx not in janus._waiting
    with pytest.raises(bridged.JanusPending) as caught:
        janus.request_async({"request": "join", "room": 1}, handle=6, timeout=0.01)
    assert janus.settle(caught.value, timeout=0.01) is None and not janus._waiting


class _RecordingJanus:
    session = 0

    def __init__(self, late: dict[str, Any] | None) -> None:
        self.late, self.calls = late, []  # type: ignore[var-annotated]
        self.answered = threading.Event()
        self.answered.set()

    def settle(self, pending: bridged.JanusPending, timeout: float) -> dict[str, Any] | None:
        self.calls.append("settle")
        self.answered.wait(timeout=5)  # Janus runs the queued join when this is set
        return self.late

    def request(self, body: dict[str, Any], handle: int | None = None) -> dict[str, Any]:
        self.calls.append(f"{body['request']} {body['id']}")
        return {}

    def detach(self, handle: int) -> None:
        self.calls.append(f"detach {handle}")


@pytest.mark.parametrize("late, calls", [
    ({"audiobridge": "joined", "id": 42}, ["settle", "kick 42", "detach 5"]),  # joined late: kick, then let go
    ({"error": "No such room"}, ["settle", "detach 5"]),                     # refused late: only let go
    (None, ["settle"]),                                                      # never answered: never detach
])
def test_a_failed_leg_never_detaches_a_handle_with_a_join_queued(late: dict[str, Any] | None,
                                                                 calls: list[str]) -> None:
    """Janus 1.1.2 died of SIGSEGV twice at 166 sites right after timed-out joins' handles were detached."""
    c, leg = _controller_with_a_pending_join(late)
    c._leave(leg)
    assert c.janus.calls == calls and leg.pending is None and leg.handle == 0


def _controller_with_a_pending_join(late: dict[str, Any] | None) -> tuple[bridged.Controller, bridged.Leg]:
    c = object.__new__(bridged.Controller)  # no SIP socket: only the leave is exercised
    c.janus, c.membership = _RecordingJanus(late), bridged.Membership()  # type: ignore[assignment]
    c.conferences = {1: {"secret": "x", "legs": {}}}
    c.lock = threading.RLock()
    leg = bridged.Leg(key="chi-lang", user="u", display="d", room=1, handle=5,
                      pending=bridged.JanusPending("join: no answer", "tx", queue.Queue()))
    c.membership.hold()  # as _run_leg does when the join times out
    return c, leg


def test_no_leave_overlaps_a_join_still_queued_in_janus() -> None:
    c, pending = _controller_with_a_pending_join({"audiobridge": "joined", "id": 42})
    other = bridged.Leg(key="cao-loc", user="u", display="d", room=1, handle=8, participant=9)
    leaver = threading.Thread(target=c._leave, args=(other,))
    leaver.start()
    leaver.join(timeout=0.3)
    assert leaver.is_alive() and c.janus.calls == [], "a leave ran while a join was queued in Janus"
    c._leave(pending)
    leaver.join(timeout=5)
    assert c.janus.calls[0] == "settle" and sorted(c.janus.calls[1:]) == ["detach 5", "detach 8", "kick 42", "kick 9"]


def test_a_leg_hung_up_again_while_its_join_is_queued_is_let_go_once() -> None:
    """`end` and `drop` hang up failed legs too: only the thread that waits for the join detaches."""
    c, leg = _controller_with_a_pending_join({"audiobridge": "joined", "id": 42})
    c.janus.answered.clear()
    first = threading.Thread(target=c._leave, args=(leg,))
    first.start()
    for _ in range(500):  # until the first thread waits for Janus (at most 5 s)
        if c.janus.calls == ["settle"]:
            break
        threading.Event().wait(0.01)
    c._leave(leg)  # e.g. `meeting end` while the dial thread still waits for Janus
    assert c.janus.calls == ["settle"], "the handle was let go under a queued join"
    c.janus.answered.set()
    first.join(timeout=5)
    assert c.janus.calls == ["settle", "kick 42", "detach 5"] and not leg.settling


def test_a_session_janus_dropped_is_renewed_once_and_the_request_retried() -> None:
    """Janus expires a session it has not heard from in session_timeout (seen at 166 sites under load)."""
    janus = bridged.Janus("http://198.18.9.13:8088/janus", "http://198.18.9.13:7088/admin", "s")
    janus.session, janus.control = 100, 1
    alive, posted, renewed = {200}, [], []  # type: ignore[var-annotated]

    def post(url: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        posted.append((url.removeprefix(janus.url), body["janus"]))
        if body["janus"] == "create":
            data: dict[str, Any] = {"janus": "success", "data": {"id": 200}}
        elif int(url.removeprefix(janus.url + "/").split("/")[0]) not in alive:
            data = {"janus": "error", "error": {"code": 458, "reason": "No such session"}}
        elif body["janus"] == "attach":
            data = {"janus": "success", "data": {"id": 7}}
        else:
            data = {"janus": "success", "plugindata": {"data": {"audiobridge": "participants", "participants": []}}}
        bridged._raise_error(data)
        return data

    janus._post = post  # type: ignore[method-assign]
    janus.on_renew = renewed.append
    waiter: queue.Queue[dict[str, Any]] = queue.Queue()
    janus._waiting["tx"] = waiter  # a join queued in the lost session
    assert janus.request({"request": "listparticipants", "room": 3})["participants"] == []
    assert (janus.session, janus.control, renewed) == (200, 7, [100])
    assert posted == [("/100/1", "message"), ("", "create"), ("/200", "attach"), ("/200/7", "message")]
    assert janus.settle(bridged.JanusPending("join", "tx", waiter), timeout=1) is None  # never to be answered
    janus.renew(100)  # another thread that saw the same loss: nothing more to do
    assert janus.session == 200 and renewed == [100] and len(posted) == 4
    assert janus.attach() == (200, 7)
    alive.clear()  # the new session is dropped too
    with pytest.raises(bridged.JanusSessionLost):  # on a leg's own handle: no retry, the handle went with it
        janus.request({"request": "mute"}, handle=5)
    assert janus.session == 200


def test_a_session_opened_without_its_control_handle_is_not_used() -> None:
    janus = bridged.Janus("http://198.18.9.13:8088/janus", "http://198.18.9.13:7088/admin", "s")
    janus.session, janus.control = 100, 1
    down = [True]

    def post(url: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        if body["janus"] == "create":
            return {"janus": "success", "data": {"id": 300}}
        if down[0]:
            raise OSError("timed out")  # Janus stalls between the create and the attach
        return {"janus": "success", "data": {"id": 7}}

    janus._post = post  # type: ignore[method-assign]
    with pytest.raises(OSError):
        janus.renew(100)
    assert (janus.session, janus.control) == (100, 1)  # still the lost one: the next call renews again
    down[0] = False
    janus.renew(100)
    assert (janus.session, janus.control) == (300, 7)


def test_the_calls_of_a_lost_session_are_hung_up_as_failed() -> None:
    """Their participants left with the session: BYE the endpoints, nothing to kick or detach."""
    c, _ = _controller_with_a_pending_join(None)
    c.janus.session = 200
    legs = {key: bridged.Leg(key=key, user="u", display="d", room=1, session=session, state=state, handle=5,
                             participant=9)
            for key, session, state in (("cao-loc", 100, "joined"), ("chi-lang", 200, "joined"),
                                        ("dong-dang", 100, "failed"))}
    c.conferences[1]["legs"] = legs
    hung: list[tuple[str, str, str]] = []
    done = threading.Event()
    c.hangup = lambda leg, state, reason: (hung.append((leg.key, state, reason)), done.set())  # type: ignore
    c._session_lost(100)
    assert done.wait(5) and [h[:2] for h in hung] == [("cao-loc", "failed")] and "session" in hung[0][2]
    assert (legs["cao-loc"].handle, legs["cao-loc"].participant) == (0, 0)
    c._kick_and_detach(bridged.Leg(key="x", user="u", display="d", room=1, session=100, handle=5, participant=9))
    assert c.janus.calls == []  # a handle of the lost session is never sent to Janus


def test_no_common_codec_is_a_clear_error() -> None:
    offer = bridged.Offer("198.18.64.98", 4000, {"G729": 18}, [("audio", "18")])
    with pytest.raises(ValueError, match="no common audio codec.*G729"):
        bridged.choose_codec(offer)


def test_an_offer_without_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="no audio"):
        bridged.parse_sdp("v=0\r\nc=IN IP4 198.18.64.98\r\nm=video 10632 RTP/AVP 96\r\n")


def test_requests_carry_the_dialog_and_route() -> None:
    c = bridged.Controller.__new__(bridged.Controller)
    c.sip_addr, c.domain = ("198.18.9.13", 5062), "vc.langson.lab"
    leg = bridged.Leg(key="dong-dang", user="dongdang", display="Đồng Đăng", room=1, call_id="c1@x",
                      from_tag="ft", to_tag="tt")
    bye = c._request(leg, "BYE", "sip:dongdang-0x55ee@198.18.64.98:5060", "z9hG4bKb", 2,
                     route=["<sip:198.18.9.12;lr>"])
    msg = bridged.parse_sip(bye.encode())
    assert msg.first == "BYE sip:dongdang-0x55ee@198.18.64.98:5060 SIP/2.0"
    assert bridged.tag_of(msg.get("To")) == "tt" and bridged.tag_of(msg.get("From")) == "ft"
    assert msg.get("Route") == "<sip:198.18.9.12;lr>" and msg.get("CSeq") == "2 BYE"
    leg.route = ["<sip:198.18.9.12;lr>"]
    leg.remote_target = "sip:dongdang-0x55ee@198.18.64.98:5060"
    assert c._next_hop(leg) == ("198.18.9.12", 5060)  # loose routing: via the registrar


# ------------------------------------------------------------------ tone detection


def _wav(freqs: list[float], seconds: float = 1.0, rate: int = 8000, amp: int = 8000, size_zero: bool = False) -> bytes:
    n = int(seconds * rate)
    samples = [int(sum(amp * math.sin(2 * math.pi * f * i / rate) for f in freqs)) for i in range(n)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{n}h", *samples))
    data = buf.getvalue()
    if size_zero:  # as a file still being written: RIFF and data sizes not yet filled in
        data = data[:4] + b"\0\0\0\0" + data[8:40] + b"\0\0\0\0" + data[44:]
    return data


def test_tone_share_finds_the_chair_in_a_mix() -> None:
    mix = audio.parse_wav(_wav([1000, 440]))
    assert 0.3 < audio.tone_share(mix, 1000) < 0.7
    alone = audio.parse_wav(_wav([440]))
    assert audio.tone_share(alone, 1000) < 0.01
    assert audio.tone_share(audio.parse_wav(_wav([])), 1000) == 0.0  # silence


def test_wav_being_written_is_still_read() -> None:
    pcm = audio.parse_wav(_wav([1000], seconds=0.5, size_zero=True))
    assert pcm.rate == 8000 and abs(pcm.seconds - 0.5) < 0.01
    assert audio.tone_share(pcm.tail(0.25), 1000) > 0.9


# ------------------------------------------------------------------ dial-out


class ScriptedBridge(Bridge):
    """An in-memory bridge whose legs settle after a few polls, as scripted per site."""

    name = "scripted"

    def __init__(self, outcomes: dict[str, list[str]]) -> None:
        self.outcomes = outcomes  # site → result per attempt ("joined" | "failed")
        self.legs: dict[str, Participant] = {}
        self.polls: dict[str, int] = {}
        self.dial_order: list[str] = []
        self.max_in_flight = 0
        self.media_asked: list[bool] = []  # per participants() call: were media figures asked for
        self.ended = False
        self.lock = threading.Lock()

    def create_conference(self, name: str, description: str) -> str:
        return "42"

    def dial(self, conference: str, key: str, user: str, display: str, muted: bool = False) -> Participant:
        old = self.legs.get(key)
        p = Participant(key, display, "dialing", attempts=(old.attempts if old else 0) + 1, muted=muted)
        self.legs[key], self.polls[key] = p, 0
        self.dial_order.append(key)
        self.max_in_flight = max(self.max_in_flight, sum(1 for x in self.legs.values() if x.state == "dialing"))
        return p

    def participants(self, conference: str, media: bool = True) -> list[Participant]:
        self.media_asked.append(media)
        for key, p in self.legs.items():
            if p.state == "dialing":
                self.polls[key] += 1
                if self.polls[key] >= 2:
                    script = self.outcomes.get(key, ["joined"])
                    p.state = script[min(p.attempts, len(script)) - 1]
                    p.reason = "" if p.state == "joined" else "the endpoint refused the call: 486 Busy Here"
                    p.joined_at = 1_000.0 if p.state == "joined" else None
                    p.in_room = p.state == "joined"
        figures = {"receiving": True} if media else {}
        return [dataclasses.replace(p, media=figures if p.state == "joined" else {}) for p in self.legs.values()]

    def mute(self, conference: str, key: str, muted: bool = True) -> Participant:
        self.legs[key].muted = muted
        return self.legs[key]

    def disconnect(self, conference: str, key: str, reason: str = "") -> Participant:
        self.legs[key].state, self.legs[key].reason = "dropped", reason
        return self.legs[key]

    def end(self, conference: str) -> None:
        self.ended = True

    def conferences(self) -> list[dict[str, Any]]:
        return [] if self.ended else [{"id": "42"}]


@pytest.fixture
def store(tmp_path: Path) -> history.Store:
    return history.open_store(tmp_path / "h.sqlite")


def test_dial_out_in_tiers_with_retries_and_a_bound(m: model.Model, store: history.Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meeting, "POLL_S", 0.0)
    monkeypatch.setattr(meeting, "RETRY_BACKOFF_S", 0.0)
    bridge = ScriptedBridge({"cao-loc": ["failed", "joined"], "quan-son": ["failed"]})
    tpl = meeting.template(m, "toan-tinh")
    mt = meeting.Meeting.start(m, tpl, bridge, store, None, concurrency=1, retries=2)
    order = [s for s in dict.fromkeys(bridge.dial_order)]
    assert order == tpl.sites()  # chair, districts, communes — in template order
    assert bridge.max_in_flight == 1
    assert mt.rows["cao-loc"].state == "joined" and mt.rows["cao-loc"].attempts == 2
    assert mt.rows["quan-son"].state == "failed" and mt.rows["quan-son"].attempts == 3  # 1 + 2 retries
    assert "486" in mt.rows["quan-son"].reason
    assert {r.state for s, r in mt.rows.items() if s != "quan-son"} == {"joined"}
    # the roll-call while dialling reads states only; the media figures are read once everyone settled
    assert bridge.media_asked[-1] is True and not any(bridge.media_asked[:-1])
    assert all(r.media == {"receiving": True} for r in mt.rows.values() if r.state == "joined")
    # vc.join_muted: in the lab only the chair's microphone is open on join
    assert {s: p.muted for s, p in bridge.legs.items()} == {s: t != "chair" for s, t in tpl.members}
    # recorded: the meeting is the active one, and survives a reload
    again = meeting.Meeting.load(m, bridge, store)
    assert again.id == mt.id and again.rows["quan-son"].verdict() == "failed"
    again.end()
    assert bridge.ended and store.run(mt.id).finished_at is not None  # type: ignore[union-attr]
    with pytest.raises(meeting.MeetingError, match="no meeting in progress"):
        meeting.Meeting.load(m, bridge, store)


def test_not_ready_sites_are_not_dialled_and_the_report_says_why(m: model.Model, store: history.Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.vc import readiness

    monkeypatch.setattr(meeting, "POLL_S", 0.0)

    class Probes:
        media_slots = 2

        def _ok(self, ep: readiness.Endpoint) -> readiness.LayerResult:
            return readiness.LayerResult(True)

        wan = router = endpoint_host = signalling = media = _ok

        def registration(self, ep: readiness.Endpoint) -> readiness.LayerResult:
            if ep.site == "chi-lang":
                return readiness.LayerResult(False, "chilang is not registered")
            return readiness.LayerResult(True)

    bridge = ScriptedBridge({})
    mt = meeting.Meeting.start(m, meeting.template(m, "toan-tinh"), bridge, store, Probes())
    assert "chi-lang" not in bridge.dial_order
    row = mt.rows["chi-lang"]
    assert (row.state, row.layer) == ("not ready", "registration") and "not registered" in row.reason
    mt.end()
    md = meeting_report.as_markdown(meeting.Meeting.load(m, bridge, store, mt.id))
    never = md.split("## Never joined")[1]
    assert "`chi-lang`" in never and "registration" in never and "`cao-loc`" not in never
    csv_text = meeting_report.as_csv(mt)
    assert csv_text.splitlines()[0].startswith("site,site_name,district,tier,verdict")
    assert sum(1 for line in csv_text.splitlines()[1:] if ",left," in line) == len(m.sites) - 1


def test_a_missed_roll_call_read_does_not_abandon_the_meeting(m: model.Model, store: history.Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meeting, "POLL_S", 0.0)

    class Flaky(ScriptedBridge):
        """Every third roll-call read fails, as a bridge host under a full-province meeting's load can."""

        reads = 0

        def participants(self, conference: str, media: bool = True) -> list[Participant]:
            self.reads += 1
            if self.reads % 3 == 0:
                raise BridgeError("bridge controller does not answer (timed out)")
            return super().participants(conference, media)

    bridge = Flaky({})
    mt = meeting.Meeting.start(m, meeting.template(m, "toan-tinh"), bridge, store, None, concurrency=4)
    assert {r.state for r in mt.rows.values()} == {"joined"}


def test_a_bridge_that_stops_answering_fails_the_meeting_start(m: model.Model, store: history.Store,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meeting, "POLL_S", 0.0)

    class Dead(ScriptedBridge):
        def participants(self, conference: str, media: bool = True) -> list[Participant]:
            raise BridgeError("bridge controller does not answer (timed out)")

    with pytest.raises(BridgeError, match="does not answer"):
        meeting.Meeting.start(m, meeting.template(m, "toan-tinh"), Dead({}), store, None, join_timeout=0.05)


def test_the_controller_reads_media_figures_only_when_asked() -> None:
    class FakeJanus:
        def __init__(self) -> None:
            self.infos: list[int] = []

        def request(self, body: dict[str, Any], handle: int | None = None) -> dict[str, Any]:
            return {"participants": [{"id": 7}]}

        def handle_info(self, handle: int) -> dict[str, Any]:
            self.infos.append(handle)
            return {"plain-rtp": {"remote-ssrc": 1, "local-port": 10002}, "active": True}

    c = object.__new__(bridged.Controller)  # no SIP socket: only the roll-call is exercised
    c.janus, c.lock = FakeJanus(), threading.RLock()  # type: ignore[assignment]
    joined = bridged.Leg(key="chi-lang", user="u", display="d", room=1, state="joined", handle=3, participant=7)
    ringing = bridged.Leg(key="cao-loc", user="u", display="d", room=1, state="ringing", handle=4)
    c.conferences = {1: {"legs": {"chi-lang": joined, "cao-loc": ringing}}}
    rows = {r["key"]: r for r in c.participants(1, media=False)}
    assert c.janus.infos == [] and rows["chi-lang"]["media"] == {} and rows["chi-lang"]["in_room"]
    rows = {r["key"]: r for r in c.participants(1)}
    assert c.janus.infos == [3] and rows["cao-loc"]["media"] == {} and not rows["cao-loc"]["in_room"]
    assert rows["chi-lang"]["media"]["receiving"] and rows["chi-lang"]["media"]["local_port"] == 10002
