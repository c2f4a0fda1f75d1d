"""The one SIP parser (provnet.vc.sipmsg) and the bridge controller's SIP text and inbound dispatch."""

from __future__ import annotations

import threading
from typing import Any

from provnet.vc import bridged, sip, sipmsg
from provnet.vc.bridged import siptext

OPTIONS_IN = (
    "OPTIONS sip:bridge@198.18.9.13:5062 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.18.9.12:5060;branch=z9hG4bK1\r\n"
    "v: SIP/2.0/UDP 198.18.64.98:5060;branch=z9hG4bK2\r\n"
    "From: <sip:kamailio@vc.langson.lab>;tag=k1\r\n"
    "To: <sip:bridge@vc.langson.lab>\r\n"
    "Call-ID: o1@198.18.9.12\r\n"
    "CSeq: 7 OPTIONS\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_one_parser_for_both_readers() -> None:
    """Compact names (any case) expanded, folded lines joined, bare LF taken, non-headers skipped."""
    text = "SIP/2.0 486 Busy Here\nI: x1@h\nVia: SIP/2.0/UDP a;branch=z9hG4bKq\nSubject: a\n  b\nnot a header\n\nbody"
    msg = sipmsg.parse(text)
    assert (msg.is_response, msg.status, msg.reason) == (True, 486, "Busy Here")
    assert msg.get("call-id") == msg.get("i") == "x1@h" and msg.get("SUBJECT") == "a b" and msg.body == "body"
    assert [k for k, _ in msg.headers] == ["Call-ID", "Via", "Subject"]
    resp = sip.parse_response(text)
    assert resp.header("Call-ID") == "x1@h" and resp.branch == "z9hG4bKq" and resp.header("s") == "a b"
    assert sipmsg.branch_of(msg.get("Via")) == "z9hG4bKq" and sipmsg.new_branch().startswith(sip.BRANCH_COOKIE)


def test_requests_keep_every_via_in_order() -> None:
    msg = bridged.parse_sip(OPTIONS_IN.encode())
    assert msg.method == "OPTIONS" and not msg.is_response and msg.status == 0
    assert [sipmsg.branch_of(v) for v in msg.all("Via")] == ["z9hG4bK1", "z9hG4bK2"]
    assert sipmsg.host_port("sip:dongdang@198.18.64.98:5070;transport=udp") == ("198.18.64.98", 5070)


def test_a_reply_answers_the_request_with_a_to_tag_of_its_own() -> None:
    reply = sipmsg.parse(siptext.reply(sipmsg.parse(OPTIONS_IN), 200, "OK"))
    assert reply.first == "SIP/2.0 200 OK" and reply.all("Via") == sipmsg.parse(OPTIONS_IN).all("Via")
    assert sipmsg.tag_of(reply.get("To")) and sipmsg.tag_of(reply.get("From")) == "k1"
    assert reply.get("CSeq") == "7 OPTIONS" and reply.get("User-Agent") == "provnet-bridged"


def test_a_bare_user_goes_through_the_domain() -> None:
    assert siptext.target_uri("dongdang", "vc.langson.lab") == "sip:dongdang@vc.langson.lab"
    assert siptext.target_uri("probe@198.18.9.13:5090", "vc.langson.lab") == "sip:probe@198.18.9.13:5090"
    leg = bridged.Leg(key="k", user="dongdang", display="d", room=1, call_id="c@x", from_tag="f")
    invite = sipmsg.parse(siptext.request(leg, "INVITE", "sip:dongdang@vc.langson.lab", "z9hG4bKi", 1,
                                          domain="vc.langson.lab", sip_addr=("198.18.9.13", 5062)))
    assert invite.get("Contact") == "<sip:bridge@198.18.9.13:5062>"
    assert invite.get("To") == "<sip:dongdang@vc.langson.lab>"
    assert invite.get("Content-Length") == "0" and not invite.get("Content-Type")


class _Sock:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def _controller() -> Any:
    c = object.__new__(bridged.Controller)  # no socket bound, no threads: only the dispatch is exercised
    c.sock, c.legs, c.lock = _Sock(), {}, threading.RLock()
    return c


def test_inbound_requests_outside_a_dialog() -> None:
    c = _controller()
    addr = ("198.18.9.12", 5060)
    c._dispatch(sipmsg.parse(OPTIONS_IN), addr)
    bye = OPTIONS_IN.replace("OPTIONS sip", "BYE sip").replace("7 OPTIONS", "8 BYE").replace(
        "To: <sip:bridge@vc.langson.lab>", "To: <sip:bridge@vc.langson.lab>;tag=gone")
    c._dispatch(sipmsg.parse(bye), addr)
    c._dispatch(sipmsg.parse(OPTIONS_IN.replace("OPTIONS sip", "MESSAGE sip")), addr)
    firsts = [sipmsg.parse(data).first for data, _ in c.sock.sent]
    assert firsts == ["SIP/2.0 200 OK", "SIP/2.0 481 Call/Transaction Does Not Exist", "SIP/2.0 405 Method Not Allowed"]
    assert all(to == addr for _, to in c.sock.sent)


def test_a_blank_or_broken_datagram_leaves_the_receiver_running() -> None:
    c = _controller()
    c.legs["c1@x"] = bridged.Leg(key="k", user="u", display="d", room=1, call_id="c1@x")
    # a CRLF keep-alive, then a response of a leg without CSeq (no method to read)
    datagrams = [b"\r\n\r\n", b"SIP/2.0 200 OK\r\nCall-ID: c1@x\r\n\r\n", OPTIONS_IN.encode()]

    class Sock(_Sock):
        def recvfrom(self, n: int) -> tuple[bytes, tuple[str, int]]:
            if not datagrams:
                raise SystemExit  # ends the receive loop
            return datagrams.pop(0), ("198.18.9.12", 5060)

    c.sock = Sock()
    try:
        c._receive()
    except SystemExit:
        pass
    assert [sipmsg.parse(d).first for d, _ in c.sock.sent] == ["SIP/2.0 200 OK"]


def test_a_response_goes_to_its_leg_and_a_repeated_200_gets_the_ack_again() -> None:
    c = _controller()
    leg = bridged.Leg(key="k", user="u", display="d", room=1, call_id="c1@x", remote_target="sip:u@198.18.64.98:5060")
    c.legs["c1@x"] = leg
    ok = "SIP/2.0 200 OK\r\nCall-ID: c1@x\r\nCSeq: 1 INVITE\r\n\r\n"
    c._dispatch(sipmsg.parse(ok), ("198.18.9.12", 5060))
    assert leg.events.get_nowait().status == 200 and not c.sock.sent
    leg.ack = b"ACK sip:u@198.18.64.98:5060 SIP/2.0\r\n\r\n"
    c._dispatch(sipmsg.parse(ok), ("198.18.9.12", 5060))
    assert c.sock.sent == [(leg.ack, ("198.18.64.98", 5060))] and leg.events.empty()
