"""A minimal SIP OPTIONS client over UDP (RFC 3261 §11): is the endpoint's SIP stack answering?

The builders and parsers are pure functions (tested on text); :func:`options_ping`
sends one OPTIONS from a given local address, retransmitting on RFC 3261's timer E
schedule (500 ms doubling) until a final response or the timeout, and measures the
round-trip time from the first transmission. The destination passes the address guard
before any socket is opened.

In the lab (and in production) the CE firewall only lets the DC registrar and bridge
reach an endpoint's SIP port, so readiness sends the OPTIONS *from the bridge host*:
:func:`remote_script` runs :mod:`provnet.vc.remote.sip_options` there (``python3 -c``)
with the request built here; its output (JSON, the response in base64) is parsed here too.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import time
from dataclasses import dataclass, field

from provnet import guard
from provnet.vc import sipmsg
from provnet.vc import remote
from provnet.vc.remote import sip_options
from provnet.vc.sipmsg import BRANCH_COOKIE, new_branch

T1 = 0.5  # RFC 3261 timer T1 (s)
USER_AGENT = "provnet-readiness/1"
_STATUS = re.compile(r"^SIP/(?P<version>2\.0)\s+(?P<code>\d{3})\s*(?P<reason>.*)$")


def new_tag() -> str:
    return secrets.token_hex(4)


def new_call_id(local_ip: str) -> str:
    return f"{secrets.token_hex(10)}@{local_ip}"


@dataclass(frozen=True)
class OptionsRequest:
    text: str
    branch: str
    call_id: str
    from_tag: str

    @property
    def data(self) -> bytes:
        return self.text.encode()


def build_options(target: str, port: int, local_ip: str, local_port: int | str, *, user: str | None = None,
                  domain: str | None = None, from_user: str = "provnet-probe", branch: str | None = None,
                  call_id: str | None = None, from_tag: str | None = None, cseq: int = 1,
                  max_forwards: int = 70, user_agent: str = USER_AGENT) -> OptionsRequest:
    """An OPTIONS request to ``sip:[user@]target:port`` from ``local_ip:local_port`` (UDP).

    ``user`` is the endpoint's account: many user agents (baresip among them) answer
    404 to a Request-URI naming no account of theirs. ``domain`` goes into To/From.
    """
    branch = branch or new_branch()
    if not branch.startswith(BRANCH_COOKIE):
        raise ValueError(f"branch {branch!r} must start with {BRANCH_COOKIE} (RFC 3261 §8.1.1.7)")
    call_id = call_id or new_call_id(local_ip)
    from_tag = from_tag or new_tag()
    ruri = f"sip:{user + '@' if user else ''}{target}:{port}"
    to_uri = f"sip:{user}@{domain}" if user and domain else ruri
    from_uri = f"sip:{from_user}@{domain or local_ip}"
    lines = [
        f"OPTIONS {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {local_ip}:{local_port};branch={branch};rport",
        f"Max-Forwards: {max_forwards}",
        f"From: <{from_uri}>;tag={from_tag}",
        f"To: <{to_uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <sip:{from_user}@{local_ip}:{local_port}>",
        "Accept: application/sdp",
        f"User-Agent: {user_agent}",
        "Content-Length: 0",
    ]
    return OptionsRequest("\r\n".join(lines) + "\r\n\r\n", branch, call_id, from_tag)


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case full names
    body: str = ""

    def header(self, name: str) -> str | None:
        """The first value of a header (full or compact name, any case)."""
        values = self.headers.get(sipmsg.full_name(name).lower())
        return values[0] if values else None

    @property
    def final(self) -> bool:
        return self.status >= 200

    @property
    def branch(self) -> str | None:
        return sipmsg.branch_of(self.header("via") or "") or None

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def agent(self) -> str:
        """What the far end says it is: Server (responses) or User-Agent."""
        return self.header("server") or self.header("user-agent") or ""


class SipParseError(ValueError):
    pass


def parse_response(data: bytes | str) -> SipResponse:
    """A SIP response datagram → status, reason, headers (lower-case full names; :func:`sipmsg.parse`)."""
    msg = sipmsg.parse(data)
    m = _STATUS.match(msg.first)
    if m is None:
        raise SipParseError(f"not a SIP response: {msg.first[:80]!r}")
    headers: dict[str, list[str]] = {}
    for name, value in msg.headers:
        headers.setdefault(name.lower(), []).append(value)
    return SipResponse(int(m.group("code")), m.group("reason").strip(), headers, msg.body)


def matches(resp: SipResponse, req: OptionsRequest) -> bool:
    """Is this response to our request (same branch and Call-ID)?"""
    return resp.branch == req.branch and resp.call_id == req.call_id


@dataclass
class OptionsResult:
    ok: bool  # a final response arrived
    status: int | None = None
    reason: str = ""
    rtt_ms: float | None = None
    agent: str = ""
    transmissions: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"answered": self.ok, "status": self.status, "reason": self.reason, "rtt_ms": self.rtt_ms,
                "agent": self.agent, "transmissions": self.transmissions, "error": self.error}


def retransmit_schedule(timeout: float) -> list[float]:
    """Offsets (s from the first send) of each transmission: timer E doubling from T1, capped at T2=4 s."""
    out, at, interval = [0.0], 0.0, T1
    while at + interval < timeout:
        at += interval
        out.append(at)
        interval = min(interval * 2, 4.0)
    return out


def options_ping(target: str, port: int = 5060, *, local_ip: str, local_port: int = 0, timeout: float = 2.0,
                 user: str | None = None, domain: str | None = None, production: bool = False) -> OptionsResult:
    """Send one OPTIONS from ``local_ip`` and wait for the final response (guarded)."""
    guard.check(target, production=production, purpose="send SIP OPTIONS to")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((local_ip, local_port))
        bound_port = sock.getsockname()[1]
        req = build_options(target, port, local_ip, bound_port, user=user, domain=domain)
        return _exchange(sock, req, (target, port), timeout)


def _exchange(sock: socket.socket, req: OptionsRequest, dest: tuple[str, int], timeout: float) -> OptionsResult:
    schedule = retransmit_schedule(timeout)
    start = time.monotonic()
    sent = 0
    result = OptionsResult(False)
    while True:
        now = time.monotonic() - start
        while sent < len(schedule) and schedule[sent] <= now:
            sock.sendto(req.data, dest)
            sent += 1
        wait = min(timeout, schedule[sent] if sent < len(schedule) else timeout) - now
        if now >= timeout:
            break
        sock.settimeout(max(wait, 0.001))
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except OSError as exc:  # ICMP port unreachable surfaces here on Linux
            result.error = f"{exc.strerror or exc}"
            break
        try:
            resp = parse_response(data)
        except SipParseError:
            continue
        if not matches(resp, req):
            continue
        result.status, result.reason, result.agent = resp.status, resp.reason, resp.agent
        if resp.final:
            result.ok = True
            result.rtt_ms = round((time.monotonic() - start) * 1000, 2)
            break
    result.transmissions = sent
    if not result.ok and not result.error:
        result.error = f"no final response within {timeout:g} s ({sent} transmissions)"
    return result


# ------------------------------------------------------------------ sending from another host

PORT_PLACEHOLDER = sip_options.PORT_PLACEHOLDER


def remote_script(target: str, port: int, local_ip: str, *, local_port: int = 0, timeout: float = 2.0,
                  user: str | None = None, domain: str | None = None, production: bool = False,
                  ) -> tuple[list[str], OptionsRequest]:
    """``argv`` of a ``python3 -c`` program that sends our OPTIONS from ``local_ip`` on another host.

    The destination passes the guard here, before the command is handed to SSH.
    With ``local_port`` 0 (the default) the kernel chooses the source port on the far
    host and the program writes it into Via and Contact before sending.
    """
    guard.check(target, production=production, purpose="send SIP OPTIONS to")
    req = build_options(target, port, local_ip, local_port or PORT_PLACEHOLDER, user=user, domain=domain)
    argv = ["python3", "-c", remote.source(sip_options), base64.b64encode(req.data).decode(), target, str(port),
            local_ip, f"{timeout:g}", json.dumps(retransmit_schedule(timeout)), req.branch, str(local_port)]
    return argv, req


def parse_remote_output(output: str, req: OptionsRequest) -> OptionsResult:
    """The JSON line printed by :func:`remote_script`'s program → :class:`OptionsResult`."""
    line = next((l for l in reversed(output.strip().splitlines()) if l.startswith("{")), "")
    if not line:
        return OptionsResult(False, error=f"probe printed no result: {output.strip()[-200:]!r}")
    data = json.loads(line)
    result = OptionsResult(False, transmissions=int(data.get("sent") or 0), error=data.get("error") or "")
    if data.get("reply"):
        try:
            resp = parse_response(base64.b64decode(data["reply"]))
        except SipParseError as exc:
            result.error = str(exc)
            return result
        if matches(resp, req):
            result.status, result.reason, result.agent = resp.status, resp.reason, resp.agent
            if resp.final and data.get("rtt_ms") is not None:
                result.ok, result.rtt_ms = True, float(data["rtt_ms"])
    if not result.ok and not result.error:
        result.error = f"no final response ({result.transmissions} transmissions)"
    return result
