"""SIP OPTIONS: request building, response parsing, the remote program's output (no sockets)."""

from __future__ import annotations

import base64
import json

import pytest

from provnet.errors import AddressRefused
from provnet.vc import sip

# A response shaped like baresip's answer to OPTIONS (synthetic: written for this test,
# following RFC 3261 §11.2 and baresip's User-Agent format).
RESPONSE = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 198.18.9.13:40123;branch={branch};rport=40123;received=198.18.9.13\r\n"
    "From: <sip:provnet-probe@vc.langson.lab>;tag={tag}\r\n"
    "To: <sip:dong-dang@vc.langson.lab>;tag=8a1b\r\n"
    "i: {call_id}\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Server: baresip v3.0.0 (x86_64/linux)\r\n"
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER\r\n"
    "Accept: application/sdp\r\n"
    "  , multipart/mixed\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_options_request_has_every_mandatory_header() -> None:
    req = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 40123, user="dong-dang", domain="vc.langson.lab")
    lines = req.text.split("\r\n")
    assert lines[0] == "OPTIONS sip:dong-dang@198.18.64.34:5060 SIP/2.0"
    headers = dict(l.split(": ", 1) for l in lines[1:] if l)
    assert headers["Via"] == f"SIP/2.0/UDP 198.18.9.13:40123;branch={req.branch};rport"
    assert req.branch.startswith("z9hG4bK") and len(req.branch) > len("z9hG4bK") + 8
    assert headers["From"] == f"<sip:provnet-probe@vc.langson.lab>;tag={req.from_tag}"
    assert headers["To"] == "<sip:dong-dang@vc.langson.lab>"
    assert headers["Call-ID"] == req.call_id and req.call_id.endswith("@198.18.9.13")
    assert headers["CSeq"] == "1 OPTIONS"
    assert headers["Max-Forwards"] == "70"
    assert headers["Content-Length"] == "0"
    assert req.text.endswith("\r\n\r\n")


def test_each_request_gets_a_fresh_branch_and_call_id() -> None:
    a = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 5070)
    b = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 5070)
    assert a.branch != b.branch and a.call_id != b.call_id
    with pytest.raises(ValueError, match="z9hG4bK"):
        sip.build_options("198.18.64.34", 5060, "198.18.9.13", 5070, branch="abc")


def _reply(req: sip.OptionsRequest) -> str:
    return RESPONSE.format(branch=req.branch, tag=req.from_tag, call_id=req.call_id)


def test_response_parsing_status_headers_compact_and_folded() -> None:
    req = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 40123, user="dong-dang", domain="vc.langson.lab")
    resp = sip.parse_response(_reply(req).encode())
    assert (resp.status, resp.reason, resp.final) == (200, "OK", True)
    assert resp.header("Call-ID") == req.call_id  # sent in compact form "i:"
    assert resp.header("i") == req.call_id
    assert resp.branch == req.branch
    assert resp.agent == "baresip v3.0.0 (x86_64/linux)"
    assert resp.header("accept") == "application/sdp , multipart/mixed"
    assert sip.matches(resp, req)
    other = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 40123)
    assert not sip.matches(resp, other)


def test_provisional_and_user_agent_fallback() -> None:
    resp = sip.parse_response("SIP/2.0 100 Trying\r\nUser-Agent: Cisco TelePresence\r\n\r\n")
    assert resp.status == 100 and not resp.final and resp.agent == "Cisco TelePresence"


@pytest.mark.parametrize("data", [b"", b"OPTIONS sip:x SIP/2.0\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\n"])
def test_non_responses_are_refused(data: bytes) -> None:
    with pytest.raises(sip.SipParseError):
        sip.parse_response(data)


def test_retransmissions_follow_timer_e() -> None:
    assert sip.retransmit_schedule(2.0) == [0.0, 0.5, 1.5]
    assert sip.retransmit_schedule(8.0) == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert sip.retransmit_schedule(0.4) == [0.0]


def test_remote_program_output_is_parsed_against_our_request() -> None:
    argv, req = sip.remote_script("198.18.64.34", 5060, "198.18.9.13", user="dong-dang", domain="vc.langson.lab")
    assert argv[:2] == ["python3", "-c"]
    sent = base64.b64decode(argv[3]).decode()
    assert sent == req.text and sip.PORT_PLACEHOLDER in sent  # the far host fills in its source port
    compile(argv[2], "remote", "exec")  # the shipped program is valid Python
    reply = base64.b64encode(_reply(req).encode()).decode()
    res = sip.parse_remote_output(json.dumps({"reply": reply, "rtt_ms": 1.25, "sent": 1, "error": ""}), req)
    assert (res.ok, res.status, res.rtt_ms, res.agent, res.transmissions) == \
        (True, 200, 1.25, "baresip v3.0.0 (x86_64/linux)", 1)


def test_remote_silence_and_errors() -> None:
    argv, req = sip.remote_script("198.18.64.34", 5060, "198.18.9.13")
    res = sip.parse_remote_output('{"reply": null, "rtt_ms": null, "sent": 3, "error": ""}', req)
    assert not res.ok and res.error == "no final response (3 transmissions)"
    res = sip.parse_remote_output('{"reply": null, "rtt_ms": null, "sent": 1, "error": "Connection refused"}', req)
    assert not res.ok and res.error == "Connection refused"
    assert "printed no result" in sip.parse_remote_output("Traceback …", req).error
    # a reply to somebody else's request does not count
    other = sip.build_options("198.18.64.34", 5060, "198.18.9.13", 1)
    reply = base64.b64encode(_reply(other).encode()).decode()
    assert not sip.parse_remote_output(json.dumps({"reply": reply, "rtt_ms": 1, "sent": 1}), req).ok


def test_the_guard_refuses_before_any_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVNET_PRODUCTION", raising=False)

    def no_socket(*a: object, **k: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(sip.socket, "socket", no_socket)
    with pytest.raises(AddressRefused):
        sip.options_ping("10.1.2.3", 5060, local_ip="198.18.9.13")
    with pytest.raises(AddressRefused):
        sip.remote_script("8.8.8.8", 5060, "198.18.9.13")
