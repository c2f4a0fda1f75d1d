"""The bridge's SIP text: requests within a leg's dialog, replies to what arrives, where to send them."""

from __future__ import annotations

import secrets

from provnet.vc.bridged.leg import Leg
from provnet.vc.sipmsg import SipMessage, host_port, tag_of, uri_of

USER_AGENT = "provnet-bridged"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


def target_uri(user: str, domain: str) -> str:
    """A bare user is an account of the domain (dialled through the registrar); user@host[:port] is direct."""
    return f"sip:{user}" if "@" in user else f"sip:{user}@{domain}"


def via(sip_addr: tuple[str, int], branch: str) -> str:
    return f"SIP/2.0/UDP {sip_addr[0]}:{sip_addr[1]};branch={branch};rport"


def request(leg: Leg, method: str, uri: str, branch: str, cseq: int, *, domain: str, sip_addr: tuple[str, int],
            body: str = "", route: list[str] | None = None) -> str:
    """A request of the leg's dialog (``route``: its route set, for requests after the INVITE)."""
    to = f"<{target_uri(leg.user, domain)}>" + (f";tag={leg.to_tag}" if leg.to_tag else "")
    lines = [f"{method} {uri} SIP/2.0", f"Via: {via(sip_addr, branch)}", "Max-Forwards: 70",
             f"From: \"provnet bridge\" <sip:bridge@{domain}>;tag={leg.from_tag}",
             f"To: {to}", f"Call-ID: {leg.call_id}", f"CSeq: {cseq} {method}"]
    lines += [f"Route: {r}" for r in (route or [])]
    if method == "INVITE":
        lines += [f"Contact: <sip:bridge@{sip_addr[0]}:{sip_addr[1]}>", f"Allow: {ALLOW}"]
    lines += [f"User-Agent: {USER_AGENT}"]
    if body:
        lines += ["Content-Type: application/sdp"]
    lines += [f"Content-Length: {len(body.encode())}", "", body]
    return "\r\n".join(lines)


def reply(req: SipMessage, status: int, reason: str) -> str:
    """A bodiless response to ``req`` (a To tag of our own when it had none)."""
    to = req.get("To")
    if not tag_of(to):
        to += f";tag={secrets.token_hex(6)}"
    lines = [f"SIP/2.0 {status} {reason}"] + [f"Via: {v}" for v in req.all("Via")]
    lines += [f"From: {req.get('From')}", f"To: {to}", f"Call-ID: {req.get('Call-ID')}",
              f"CSeq: {req.get('CSeq')}", f"User-Agent: {USER_AGENT}", "Content-Length: 0", "", ""]
    return "\r\n".join(lines)


def next_hop(leg: Leg) -> tuple[str, int]:
    """Where in-dialog requests go: the first route (loose routing), else the remote target."""
    return host_port(uri_of(leg.route[0])) if leg.route else host_port(leg.remote_target)
