"""provnet-bridged: the conference bridge's SIP controller, next to Janus on the bridge host.

Janus AudioBridge mixes audio but speaks no SIP. This daemon gives it SIP legs: for each
participant it sends an INVITE *without SDP* through the registrar (Kamailio trusts this
host's address through its ``permissions`` module), takes the endpoint's offer from its 200
OK, joins the AudioBridge room as a plain-RTP participant with the endpoint's RTP address,
and answers in the ACK with the room's RTP address. Video m-lines are declined (port 0):
the lab bridge mixes audio only.

It serves a small JSON API to provnet (``provnet.vc.bridge.JanusBridge``) on the management
address, every request carrying the ``X-Provnet-Token`` header::

    GET    /health
    GET    /conferences                          → [{id, name, description, participants}]
    POST   /conferences {name, description}      → {id}
    DELETE /conferences/<id>                     → hangs up every leg, destroys the room
    GET    /conferences/<id>/participants        → [participant]
    POST   /conferences/<id>/participants {key, user, display[, proxy, muted]}   → dials (202)
           user: an account of the domain (through the registrar, or ``proxy`` HOST:PORT),
           or user@host[:port] dialled directly
    POST   /conferences/<id>/participants/<key>/mute | /unmute
    DELETE /conferences/<id>/participants/<key>  → BYE and leaves the room

Standard library only: it is copied to the bridge host as one file and run by python3.
State lives in memory: a restart ends every call (the endpoints see a BYE-less drop and
re-register; provnet's roll-call shows the legs as lost).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import secrets as _secrets
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, TypeVar
from urllib.parse import parse_qs, urlsplit

T1 = 0.5              # SIP timer T1 (s): INVITE/BYE retransmission starts here and doubles
RING_TIMEOUT = 25.0   # an endpoint that rings longer is cancelled
JOIN_TIMEOUT = 20.0   # Janus answers a join within this (its event queue is shared: see _poll)
LATE_JOIN_TIMEOUT = 300.0  # after that, how long a failed leg still waits for its join before leaving
MAX_EVENTS = 500     # events per long-poll answer
MEDIA_QUERIES = 8    # Janus admin queries in flight when a roll-call asks for media figures
HANGUPS = 16         # legs hung up at once by `end` (Janus 1.1.2 crashed on 166 leaves at once)
PREFERRED = ("PCMU", "PCMA", "opus")  # codecs the bridge answers with, in order of preference
DEBUG = os.environ.get("PROVNET_BRIDGED_DEBUG") == "1"  # every SIP message to stderr (the journal)
JANUS_CODEC = {"PCMU": "pcmu", "PCMA": "pcma", "opus": "opus"}
T = TypeVar("T")

# ---------------------------------------------------------------------------- SIP and SDP text


@dataclass
class SipMessage:
    first: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def is_response(self) -> bool:
        return self.first.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first.split()[1]) if self.is_response else 0

    @property
    def reason(self) -> str:
        return self.first.split(" ", 2)[2] if self.is_response and self.first.count(" ") >= 2 else ""

    @property
    def method(self) -> str:
        return self.first.split()[0] if not self.is_response else self.get("CSeq").split()[-1]

    def get(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


_COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
            "c": "Content-Type"}


def parse_sip(data: bytes) -> SipMessage:
    """One SIP message from a UDP datagram (compact header names expanded)."""
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, _, value = line.partition(":")
        name = name.strip()
        headers.append((_COMPACT.get(name, name) if len(name) == 1 else name, value.strip()))
    return SipMessage(lines[0], headers, body)


def tag_of(header: str) -> str:
    m = re.search(r";\s*tag=([^;>\s]+)", header)
    return m.group(1) if m else ""


def uri_of(header: str) -> str:
    """The URI in a name-addr (``"x" <sip:a@b>;p``) or addr-spec header value."""
    m = re.search(r"<([^>]+)>", header)
    return m.group(1) if m else header.split(";")[0].strip()


def host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """Host and port of a SIP URI (``sip:user@host:port;params``)."""
    rest = uri.split(":", 1)[1] if uri.startswith("sip:") else uri
    rest = rest.split(";")[0].split("?")[0]
    hostport = rest.rsplit("@", 1)[-1]
    host, _, port = hostport.partition(":")
    return host, int(port) if port else default_port


@dataclass
class Offer:
    address: str
    audio_port: int
    codecs: dict[str, int]           # encoding name → payload type, offer order
    media: list[tuple[str, str]]     # every m-line (kind, first payload), for the answer's rejections


def parse_sdp(body: str) -> Offer:
    """The endpoint's offer: its audio address, port and codecs."""
    session_c = ""
    audio_c = ""
    audio_port = 0
    codecs: dict[str, int] = {}
    media: list[tuple[str, str]] = []
    current = ""
    audio_pts: list[str] = []
    names: dict[str, str] = {}
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            current = parts[0]
            media.append((current, parts[3] if len(parts) > 3 else "0"))
            if current == "audio" and not audio_port:
                audio_port = int(parts[1])
                audio_pts = parts[3:]
        elif line.startswith("c=IN IP4 "):
            addr = line.split()[2].split("/")[0]
            if not current:
                session_c = addr
            elif current == "audio":
                audio_c = addr
        elif line.startswith("a=rtpmap:") and current == "audio":
            pt, _, enc = line[len("a=rtpmap:"):].partition(" ")
            names[pt] = enc.split("/")[0]
    static = {"0": "PCMU", "8": "PCMA"}
    for pt in audio_pts:
        name = names.get(pt) or static.get(pt)
        if name and name not in codecs:
            codecs[name] = int(pt)
    if not audio_port:
        raise ValueError("the offer has no audio stream")
    return Offer(audio_c or session_c, audio_port, codecs, media)


def choose_codec(offer: Offer) -> str:
    for name in PREFERRED:
        if name in offer.codecs:
            return name
    raise ValueError(f"no common audio codec (offered {', '.join(offer.codecs) or 'none'}; "
                     f"the bridge takes {', '.join(PREFERRED)})")


def build_answer(offer: Offer, codec: str, address: str, port: int, session: int) -> str:
    """The SDP answer: audio to the room's RTP port, every other stream declined."""
    pt = offer.codecs[codec]
    rate = "48000/2" if codec == "opus" else "8000"
    lines = ["v=0", f"o=provnet-bridge {session} {session} IN IP4 {address}", "s=provnet bridge",
             f"c=IN IP4 {address}", "t=0 0"]
    audio_done = False
    for kind, first_pt in offer.media:
        if kind == "audio" and not audio_done:
            audio_done = True
            lines += [f"m=audio {port} RTP/AVP {pt}", f"a=rtpmap:{pt} {codec}/{rate}", "a=sendrecv"]
        else:
            lines += [f"m={kind} 0 RTP/AVP {first_pt}"]
    return "\r\n".join(lines) + "\r\n"


def _branch() -> str:
    return "z9hG4bK" + _secrets.token_hex(8)


# ---------------------------------------------------------------------------- Janus HTTP API


class Membership:
    """Joins of a room run together; a participant leaves (kick, detach) or a room is destroyed alone.

    Janus 1.1's AudioBridge tells every participant about a join while a concurrent leave can
    clear the room it walks (meetecho/janus-gateway#3588): at 166 sites the lab's Janus 1.1.2
    died of SIGSEGV with five handles detached in the second of a join. A waiting leave holds
    back new joins, so hang-ups are not starved by a dial-out in progress.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._joins = 0
        self._leaves_waiting = 0
        self._leaving = False

    @contextmanager
    def join(self) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: not self._leaving and not self._leaves_waiting)
            self._joins += 1
        try:
            yield
        finally:
            self.release()

    def hold(self) -> None:
        """A join Janus has queued but not answered (JanusPending) counts as in flight until `release`."""
        with self._cond:
            self._joins += 1

    def release(self) -> None:
        with self._cond:
            self._joins -= 1
            self._cond.notify_all()

    @contextmanager
    def leave(self) -> Any:
        with self._cond:
            self._leaves_waiting += 1
            self._cond.wait_for(lambda: not self._leaving and not self._joins)
            self._leaves_waiting -= 1
            self._leaving = True
        try:
            yield
        finally:
            with self._cond:
                self._leaving = False
                self._cond.notify_all()


class JanusError(RuntimeError):
    pass


class JanusSessionLost(JanusError):
    """Janus no longer knows the controller's session (error 458): it expired or Janus restarted.

    Janus destroys a session it has not heard from for `session_timeout` seconds, and with it
    every handle: the participants leave the room, the rooms stay (they belong to the plugin).
    """


JANUS_NO_SUCH_SESSION = 458  # janus.h: JANUS_ERROR_SESSION_NOT_FOUND


class JanusPending(JanusError):
    """An asynchronous request (a join) Janus has queued but not answered in time.

    The AudioBridge runs joins from one queue; detaching a handle whose join is still queued
    killed Janus 1.1.2 (SIGSEGV, twice at 166 sites, right after the handles of timed-out joins
    were detached). The waiter stays registered so the late answer can still be taken
    (`Janus.settle`) before the handle is let go.
    """

    def __init__(self, message: str, tx: str, answer: "queue.Queue[dict[str, Any]]") -> None:
        super().__init__(message)
        self.tx, self.answer = tx, answer


def _raise_error(message: dict[str, Any]) -> None:
    """JanusError (JanusSessionLost for error 458) when ``message`` is a Janus error."""
    if message.get("janus") != "error":
        return
    error = message.get("error", {})
    cls = JanusSessionLost if error.get("code") == JANUS_NO_SUCH_SESSION else JanusError
    raise cls(f"Janus: {error.get('reason', message)}")


def _plugin_data(message: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = message.get("plugindata", {}).get("data", {})
    return data


def _answer(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The AudioBridge's answer to `body`, or JanusError with its reason."""
    out = _plugin_data(message)
    if "error" in out:
        raise JanusError(f"AudioBridge {body.get('request')}: {out['error']} (code {out.get('error_code')})")
    return out


class Janus:
    """One Janus session with the AudioBridge: a control handle plus one handle per participant."""

    def __init__(self, url: str, admin_url: str, secret: str) -> None:
        self.url, self.admin_url, self.secret = url.rstrip("/"), admin_url.rstrip("/"), secret
        self.session = 0
        self.control = 0
        self._waiting: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._renewing = threading.Lock()
        # called with the lost session's id once a new one is up (the controller fails its legs)
        self.on_renew: Callable[[int], None] = lambda lost: None

    def _post(self, url: str, body: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        body = {"transaction": _secrets.token_hex(6), **body}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data: dict[str, Any] = json.load(resp)
        _raise_error(data)
        return data

    def start(self) -> None:
        self._open()
        threading.Thread(target=self._poll, daemon=True).start()
        threading.Thread(target=self._keepalive, daemon=True).start()

    def _open(self) -> None:
        session = int(self._post(self.url, {"janus": "create", "apisecret": self.secret})["data"]["id"])
        self.session, self.control = session, self._attach(session)  # both or neither: Janus may fail between

    def renew(self, lost: int) -> None:
        """A new session in place of ``lost`` (once, however many threads saw it go)."""
        with self._renewing:
            if self.session != lost:
                return
            self._open()
            with self._lock:  # joins queued in the lost session will never be answered
                waiting, self._waiting = self._waiting, {}
            for answer in waiting.values():
                answer.put({"janus": "error", "error": {"code": JANUS_NO_SUCH_SESSION, "reason": "session lost"}})
        self.on_renew(lost)

    def _retry(self, call: Callable[[], T]) -> T:
        """``call``, once more in a new session if Janus has dropped ours."""
        session = self.session
        try:
            return call()
        except JanusSessionLost:
            self.renew(session)
            return call()

    def _attach(self, session: int) -> int:
        return int(self._post(f"{self.url}/{session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge",
                                                         "apisecret": self.secret})["data"]["id"])

    def attach(self) -> tuple[int, int]:
        """A new AudioBridge handle: (session, handle)."""
        def once() -> tuple[int, int]:
            session = self.session
            return session, self._attach(session)
        return self._retry(once)

    def detach(self, handle: int) -> None:
        try:
            self._post(f"{self.url}/{self.session}/{handle}", {"janus": "detach", "apisecret": self.secret})
        except (JanusError, OSError):
            pass

    def request(self, body: dict[str, Any], handle: int | None = None) -> dict[str, Any]:
        """A synchronous AudioBridge request (on the control handle unless ``handle``); JanusError."""
        def send() -> dict[str, Any]:
            return self._post(f"{self.url}/{self.session}/{handle or self.control}",
                              {"janus": "message", "body": body, "apisecret": self.secret})
        return _answer(body, send() if handle else self._retry(send))

    def request_async(self, body: dict[str, Any], handle: int, timeout: float = JOIN_TIMEOUT) -> dict[str, Any]:
        """An asynchronous request (join): waits for its event."""
        tx = _secrets.token_hex(8)
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiting[tx] = q
        try:
            self._post(f"{self.url}/{self.session}/{handle}",
                       {"janus": "message", "body": body, "apisecret": self.secret, "transaction": tx})
        except BaseException:
            self._forget(tx)
            raise
        try:
            event = q.get(timeout=timeout)
        except queue.Empty:  # queued in Janus, not refused: keep listening (see JanusPending)
            raise JanusPending(f"AudioBridge {body.get('request')}: no answer within {timeout:.0f} s", tx, q) from None
        self._forget(tx)
        _raise_error(event)
        return _answer(body, event)

    def settle(self, pending: JanusPending, timeout: float) -> dict[str, Any] | None:
        """The late answer to a pending request (the plugin's data), or None if none came in time."""
        try:
            event = pending.answer.get(timeout=timeout)
        except queue.Empty:
            return None
        finally:
            self._forget(pending.tx)
        if event.get("janus") == "error":  # the session went first: its handles went with it
            return None
        return _plugin_data(event)

    def _forget(self, tx: str) -> None:
        with self._lock:
            self._waiting.pop(tx, None)

    def handle_info(self, handle: int) -> dict[str, Any]:
        """Janus's admin view of a handle: the AudioBridge's participant figures."""
        data = self._post(f"{self.admin_url}/{self.session}/{handle}",
                          {"janus": "handle_info", "admin_secret": self.secret}, timeout=5)
        info: dict[str, Any] = data.get("info", {}).get("plugin_specific", {})
        return info

    def _poll(self) -> None:
        while True:
            session = self.session
            try:
                # Every join is announced to every other participant's handle: a full-province room
                # queues ~N²/2 events (13,700 for 166 sites) ahead of the join answers we wait for,
                # so each long-poll takes them in large batches rather than Janus's 10 at a time.
                req = urllib.request.Request(f"{self.url}/{self.session}?maxev={MAX_EVENTS}&apisecret={self.secret}")
                with urllib.request.urlopen(req, timeout=40) as resp:
                    data = json.load(resp)
            except (OSError, ValueError):
                time.sleep(1)
                continue
            try:
                _raise_error(data if isinstance(data, dict) else {})
            except JanusSessionLost:
                self._renew_quietly(session)
                continue
            except JanusError:
                time.sleep(1)
                continue
            for event in data if isinstance(data, list) else [data]:
                tx = event.get("transaction")
                with self._lock:
                    q = self._waiting.get(tx) if tx else None
                if q is not None and event.get("janus") == "event":
                    q.put(event)

    def _keepalive(self) -> None:
        while True:
            time.sleep(20)
            session = self.session
            try:
                self._post(f"{self.url}/{session}", {"janus": "keepalive", "apisecret": self.secret})
            except JanusSessionLost:
                self._renew_quietly(session)
            except (JanusError, OSError):
                pass

    def _renew_quietly(self, lost: int) -> None:
        try:
            self.renew(lost)
        except (JanusError, OSError) as exc:  # Janus still down: the next poll or keepalive tries again
            sys.stderr.write(f"provnet-bridged: Janus session {lost} lost, no new one yet: {exc}\n")
            time.sleep(1)


# ---------------------------------------------------------------------------- the SIP user agent


@dataclass
class Leg:
    """One participant: its SIP dialog and its place in the room."""

    key: str
    user: str
    display: str
    room: int
    state: str = "dialing"          # dialing, ringing, joined, failed, left, dropped
    reason: str = ""
    sip_status: int = 0
    call_id: str = ""
    from_tag: str = ""
    to_tag: str = ""
    branch: str = ""
    cseq: int = 1
    remote_target: str = ""
    route: list[str] = field(default_factory=list)
    invite: str = ""
    first_hop: tuple[str, int] = ("", 0)
    ack: bytes = b""
    session: int = 0                # the Janus session its handle belongs to
    handle: int = 0
    participant: int = 0
    codec: str = ""
    remote_rtp: str = ""
    bridge_rtp: str = ""
    muted: bool = False
    dialed_at: float = 0.0
    answered_at: float | None = None
    joined_at: float | None = None
    left_at: float | None = None
    attempts: int = 0
    pending: JanusPending | None = field(default=None, repr=False)  # a join Janus has not answered yet
    settling: bool = False          # a thread waits for that join's answer before letting the handle go
    events: "queue.Queue[SipMessage]" = field(default_factory=queue.Queue, repr=False)

    def public(self) -> dict[str, Any]:
        return {"key": self.key, "user": self.user, "display": self.display, "state": self.state,
                "reason": self.reason, "sip_status": self.sip_status, "codec": self.codec,
                "remote_rtp": self.remote_rtp, "bridge_rtp": self.bridge_rtp, "muted": self.muted,
                "janus_id": self.participant or None, "dialed_at": self.dialed_at, "answered_at": self.answered_at,
                "joined_at": self.joined_at, "left_at": self.left_at, "attempts": self.attempts}


class Controller:
    def __init__(self, sip_addr: tuple[str, int], registrar: tuple[str, int], domain: str, janus: Janus,
                 media_ip: str) -> None:
        self.sip_addr, self.registrar, self.domain, self.janus = sip_addr, registrar, domain, janus
        self.media_ip = media_ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x60)  # CS3: signalling, as the endpoints mark it
        self.sock.bind(sip_addr)
        self.legs: dict[str, Leg] = {}           # by Call-ID
        self.conferences: dict[int, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.membership = Membership()
        janus.on_renew = self._session_lost
        threading.Thread(target=self._receive, daemon=True).start()

    def _session_lost(self, lost: int) -> None:
        """Janus dropped the session and with it every participant in it: hang up their calls.

        They show as failed with the reason, so `meeting start` (or the operator) redials them.
        """
        with self.lock:
            gone = [leg for conf in self.conferences.values() for leg in conf["legs"].values()
                    if leg.session == lost and leg.state == "joined"]
        for leg in gone:
            leg.handle = leg.participant = 0  # they went with the session: nothing to kick or detach
            threading.Thread(target=self.hangup, daemon=True, args=(
                leg, "failed", "the bridge dropped the call: Janus expired the controller's session "
                "(the bridge host did not answer it for longer than session_timeout)")).start()

    # -- conferences

    def create(self, name: str, description: str) -> int:
        room = random.randint(10_000, 2**31)
        secret = _secrets.token_urlsafe(12)
        self.janus.request({"request": "create", "room": room, "description": description or name,
                            "secret": secret, "is_private": True, "sampling_rate": 16000,
                            "allow_rtp_participants": True, "audiolevel_ext": False})
        with self.lock:
            self.conferences[room] = {"id": room, "name": name, "description": description, "secret": secret,
                                      "legs": {}, "created_at": time.time()}
        return room

    def conference(self, room: int) -> dict[str, Any]:
        with self.lock:
            if room not in self.conferences:
                raise KeyError(f"no conference {room}")
            return self.conferences[room]

    def end(self, room: int) -> None:
        conf = self.conference(room)
        legs: list[Leg] = list(conf["legs"].values())
        with ThreadPoolExecutor(max_workers=HANGUPS) as pool:
            list(pool.map(lambda leg: self.hangup(leg, "dropped", "meeting ended"), legs))
        try:
            with self.membership.leave():
                self.janus.request({"request": "destroy", "room": room, "secret": conf["secret"]})
        except JanusError as exc:
            if "No such room" not in str(exc):
                raise
        with self.lock:
            self.conferences.pop(room, None)

    def participants(self, room: int, media: bool = True) -> list[dict[str, Any]]:
        """Every leg with its state; with ``media``, Janus's figures per joined leg (one admin call each)."""
        conf = self.conference(room)
        inroom: dict[int, dict[str, Any]] = {}
        try:
            listing = self.janus.request({"request": "listparticipants", "room": room})
            inroom = {p["id"]: p for p in listing.get("participants", [])}
        except JanusError:
            pass
        legs: list[Leg] = list(conf["legs"].values())
        measured = [leg for leg in legs if leg.state == "joined" and leg.handle] if media else []
        figures: dict[str, dict[str, Any]] = {}
        if measured:  # a 166-site roll-call: 166 admin queries, a few at a time
            with ThreadPoolExecutor(max_workers=MEDIA_QUERIES) as pool:
                figures = dict(zip((leg.key for leg in measured), pool.map(self._media, measured)))
        out = []
        for leg in legs:
            row = leg.public()
            row["media"] = figures.get(leg.key, {})
            row["in_room"] = leg.participant in inroom
            out.append(row)
        return out

    def _media(self, leg: Leg) -> dict[str, Any]:
        """Janus's figures for one joined leg: is its RTP arriving, how full are its queues."""
        try:
            info = self.janus.handle_info(leg.handle)
        except (JanusError, OSError) as exc:
            return {"error": str(exc)}
        rtp = info.get("plain-rtp", {})
        return {"receiving": bool(rtp.get("remote-ssrc")), "buffer_in": info.get("buffer-in"),
                "queue_in": info.get("queue-in"), "queue_out": info.get("queue-out"),
                "active": info.get("active"), "local_port": rtp.get("local-port")}

    # -- legs

    def dial(self, room: int, key: str, user: str, display: str, proxy: str = "", muted: bool = False) -> Leg:
        conf = self.conference(room)
        with self.lock:
            old: Leg | None = conf["legs"].get(key)
            if old is not None and old.state in ("dialing", "ringing", "joined"):
                return old
            leg = Leg(key=key, user=user, display=display, room=room, muted=muted,
                      attempts=(old.attempts if old else 0) + 1)
            if proxy:
                host, _, port = proxy.partition(":")
                leg.first_hop = (host, int(port or 5060))
            conf["legs"][key] = leg
        threading.Thread(target=self._run_leg, args=(leg, conf["secret"]), daemon=True).start()
        return leg

    def leg(self, room: int, key: str) -> Leg:
        conf = self.conference(room)
        if key not in conf["legs"]:
            raise KeyError(f"no participant {key} in conference {room}")
        leg: Leg = conf["legs"][key]
        return leg

    def mute(self, room: int, key: str, muted: bool) -> None:
        leg = self.leg(room, key)
        if leg.state != "joined":
            raise ValueError(f"{key} is {leg.state}, not in the room")
        self.janus.request({"request": "mute" if muted else "unmute", "room": room,
                            "secret": self.conference(room)["secret"], "id": leg.participant})
        leg.muted = muted

    def _send(self, data: str | bytes, addr: tuple[str, int]) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if DEBUG:
            sys.stderr.write(f">>> {addr[0]}:{addr[1]}\n{raw.decode(errors='replace')}\n")
        self.sock.sendto(raw, addr)

    def _via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {self.sip_addr[0]}:{self.sip_addr[1]};branch={branch};rport"

    def _request(self, leg: Leg, method: str, uri: str, branch: str, cseq: int, body: str = "",
                 route: list[str] | None = None) -> str:
        to = (f"<sip:{leg.user}>" if "@" in leg.user else f"<sip:{leg.user}@{self.domain}>") + (
            f";tag={leg.to_tag}" if leg.to_tag else "")
        lines = [f"{method} {uri} SIP/2.0", f"Via: {self._via(branch)}", "Max-Forwards: 70",
                 f"From: \"provnet bridge\" <sip:bridge@{self.domain}>;tag={leg.from_tag}",
                 f"To: {to}", f"Call-ID: {leg.call_id}", f"CSeq: {cseq} {method}"]
        lines += [f"Route: {r}" for r in (route or [])]
        if method in ("INVITE",):
            lines += [f"Contact: <sip:bridge@{self.sip_addr[0]}:{self.sip_addr[1]}>",
                      "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"]
        lines += ["User-Agent: provnet-bridged"]
        if body:
            lines += ["Content-Type: application/sdp"]
        lines += [f"Content-Length: {len(body.encode())}", "", body]
        return "\r\n".join(lines)

    def _next_hop(self, leg: Leg) -> tuple[str, int]:
        return host_port(uri_of(leg.route[0])) if leg.route else host_port(leg.remote_target)

    def _run_leg(self, leg: Leg, room_secret: str) -> None:
        leg.call_id = f"{_secrets.token_hex(10)}@{self.sip_addr[0]}"
        leg.from_tag = _secrets.token_hex(6)
        leg.branch = _branch()
        leg.dialed_at = time.time()
        with self.lock:
            self.legs[leg.call_id] = leg
        # a bare user is dialled through the registrar; user@host[:port] straight to that host
        uri = f"sip:{leg.user}" if "@" in leg.user else f"sip:{leg.user}@{self.domain}"
        if not leg.first_hop[0]:
            leg.first_hop = host_port(uri) if "@" in leg.user else self.registrar
        leg.invite = self._request(leg, "INVITE", uri, leg.branch, 1)
        self._send(leg.invite, leg.first_hop)
        interval, next_tx, provisional = T1, time.time() + T1, False
        deadline = time.time() + RING_TIMEOUT
        final: SipMessage | None = None
        while final is None:
            now = time.time()
            if leg.state == "dropped":
                self._cancel(leg, uri)
                return
            if now >= deadline:
                self._cancel(leg, uri)
                self._fail(leg, 408, "no answer: rang " if provisional else "no response from the registrar in ",
                           suffix=f"{RING_TIMEOUT:.0f} s")
                return
            if not provisional and now >= next_tx:
                self._send(leg.invite, leg.first_hop)
                interval = min(interval * 2, 4.0)
                next_tx = now + interval
            try:
                msg = leg.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if not msg.is_response or msg.method != "INVITE":
                continue
            if msg.status < 200:
                provisional = True
                if msg.status >= 180:
                    leg.state = "ringing"
            else:
                final = msg
        leg.sip_status = final.status
        if final.status >= 300:
            ack = self._request(replace_to(leg, final), "ACK", uri, leg.branch, 1)
            self._send(ack, leg.first_hop)
            self._fail(leg, final.status, f"the endpoint refused the call: {final.status} {final.reason}")
            return
        leg.answered_at = time.time()
        leg.to_tag = tag_of(final.get("To"))
        leg.remote_target = uri_of(final.get("Contact"))
        leg.route = [r.strip() for rr in reversed(final.all("Record-Route")) for r in rr.split(",")]
        try:
            offer = parse_sdp(final.body)
            codec = choose_codec(offer)
            leg.codec, leg.remote_rtp = codec, f"{offer.address}:{offer.audio_port}"
            leg.session, leg.handle = self.janus.attach()
            rtp: dict[str, Any] = {"ip": offer.address, "port": offer.audio_port}
            if codec == "opus":
                rtp["payload_type"] = offer.codecs[codec]
            with self.membership.join():
                try:
                    joined = self.janus.request_async({"request": "join", "room": leg.room, "display": leg.display,
                                                       "codec": JANUS_CODEC[codec], "rtp": rtp, "muted": leg.muted},
                                                      leg.handle)
                except JanusPending as pending:
                    self.membership.hold()  # still a join in Janus's queue: no leave may overlap it
                    leg.pending = pending
                    raise
            leg.participant = int(joined["id"])
            mine = joined.get("rtp", {})
            ip, port = mine.get("ip") or self.media_ip, int(mine["port"])
            leg.bridge_rtp = f"{ip}:{port}"
            body = build_answer(offer, codec, ip, port, int(time.time()))
        except (ValueError, KeyError, JanusError, OSError) as exc:
            # ACK without an answer is not allowed after a delayed offer: answer, then hang up.
            leg.ack = self._request(leg, "ACK", leg.remote_target, _branch(), 1, route=leg.route).encode()
            self._send(leg.ack, self._next_hop(leg))
            self.hangup(leg, "failed", f"could not join the room: {exc}")
            return
        leg.ack = self._request(leg, "ACK", leg.remote_target, _branch(), 1, body=body, route=leg.route).encode()
        self._send(leg.ack, self._next_hop(leg))
        if leg.state == "dropped":  # the operator dropped it while it was being answered
            self.hangup(leg, "dropped", leg.reason)
            return
        leg.state, leg.joined_at = "joined", time.time()

    def _cancel(self, leg: Leg, uri: str) -> None:
        cancel = self._request(leg, "CANCEL", uri, leg.branch, 1)
        self._send(cancel, leg.first_hop)

    def _fail(self, leg: Leg, status: int, reason: str, suffix: str = "") -> None:
        leg.state, leg.sip_status, leg.reason, leg.left_at = "failed", status, reason + suffix, time.time()

    def hangup(self, leg: Leg, state: str, reason: str) -> None:
        """BYE (when the call was answered), leave the room, record why."""
        answered = bool(leg.to_tag and leg.answered_at)
        leg.state, leg.reason, leg.left_at = state, reason, time.time()
        if not answered:
            return  # not answered yet: the dialling thread sees the state and cancels
        leg.cseq += 1
        bye = self._request(leg, "BYE", leg.remote_target, _branch(), leg.cseq, route=leg.route)
        end = time.time() + 4
        interval = T1
        while time.time() < end:
            self._send(bye, self._next_hop(leg))
            try:
                msg = leg.events.get(timeout=interval)
                if msg.is_response and msg.method == "BYE" and msg.status >= 200:
                    break
            except queue.Empty:
                interval = min(interval * 2, 2.0)
        self._leave(leg)

    def _leave(self, leg: Leg) -> None:
        with self.lock:  # a failed leg is hung up again by `end` or `drop`: one thread settles it
            pending, leg.pending = leg.pending, None
            if pending is None and leg.settling:
                return
            leg.settling = pending is not None
        try:
            if pending is not None:
                # Wait for Janus to run the queued join before touching its handle; with no answer
                # at all, keep the handle (it goes with the session) rather than detach under a join.
                try:
                    late = self.janus.settle(pending, LATE_JOIN_TIMEOUT)
                finally:
                    self.membership.release()
                if late is None:
                    leg.handle = 0
                    return
                if "id" in late:
                    leg.participant = int(late["id"])
            self._kick_and_detach(leg)
        finally:
            leg.settling = False

    def _kick_and_detach(self, leg: Leg) -> None:
        if leg.session != self.janus.session:  # its session is gone, and the participant with it
            leg.handle = leg.participant = 0
            return
        with self.membership.leave():
            if leg.participant:
                try:
                    self.janus.request({"request": "kick", "room": leg.room, "id": leg.participant,
                                        "secret": self.conference(leg.room)["secret"]})
                except (JanusError, KeyError, OSError):
                    pass
            if leg.handle:
                self.janus.detach(leg.handle)
                leg.handle = 0

    def _receive(self) -> None:
        while True:
            data, addr = self.sock.recvfrom(65535)
            if DEBUG:
                sys.stderr.write(f"<<< {addr[0]}:{addr[1]}\n{data.decode(errors='replace')}\n")
            try:
                msg = parse_sip(data)
            except (ValueError, IndexError):
                continue
            with self.lock:
                leg = self.legs.get(msg.get("Call-ID"))
            if msg.is_response:
                if leg is None:
                    continue
                if msg.method == "INVITE" and 200 <= msg.status < 300 and leg.ack:
                    self._send(leg.ack, self._next_hop(leg))  # our ACK was lost: the 200 is retransmitted
                    continue
                leg.events.put(msg)
                continue
            method = msg.first.split()[0]
            if method == "ACK":
                continue
            if method == "BYE" and leg is not None:
                self._reply(msg, addr, 200, "OK")
                if leg.state == "joined":
                    leg.state, leg.reason, leg.left_at = "left", "the site hung up", time.time()
                    threading.Thread(target=self._leave, args=(leg,), daemon=True).start()
                continue
            if method == "OPTIONS":
                self._reply(msg, addr, 200, "OK")
                continue
            if method == "INVITE" and leg is not None and leg.to_tag:
                self._reply(msg, addr, 488, "Not Acceptable Here")  # no re-negotiation on the lab bridge
                continue
            if leg is None and tag_of(msg.get("To")):
                self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
            else:
                self._reply(msg, addr, 405, "Method Not Allowed")

    def _reply(self, req: SipMessage, addr: tuple[str, int], status: int, reason: str) -> None:
        to = req.get("To")
        if not tag_of(to):
            to += f";tag={_secrets.token_hex(6)}"
        lines = [f"SIP/2.0 {status} {reason}"] + [f"Via: {v}" for v in req.all("Via")]
        lines += [f"From: {req.get('From')}", f"To: {to}", f"Call-ID: {req.get('Call-ID')}",
                  f"CSeq: {req.get('CSeq')}", "User-Agent: provnet-bridged", "Content-Length: 0", "", ""]
        self._send("\r\n".join(lines), addr)


def replace_to(leg: Leg, response: SipMessage) -> Leg:
    """The leg as seen by a non-2xx ACK: same branch, the response's To tag."""
    copy = Leg(**{**leg.__dict__, "to_tag": tag_of(response.get("To"))})
    return copy


# ---------------------------------------------------------------------------- the API


class Api(BaseHTTPRequestHandler):
    controller: Controller
    token: str

    def log_message(self, fmt: str, *args: Any) -> None:  # one line per request on stderr → journal
        pass

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        if not _secrets.compare_digest(self.headers.get("X-Provnet-Token", ""), self.token):
            self._answer(401, {"error": "missing or wrong X-Provnet-Token"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        c = self.controller
        try:
            if parts == ["health"]:
                self._answer(200, {"ok": True, "conferences": len(c.conferences), "session": c.janus.session})
            elif parts == ["conferences"] and method == "GET":
                self._answer(200, [{"id": k, "name": v["name"], "description": v["description"],
                                    "participants": len(v["legs"])} for k, v in list(c.conferences.items())])
            elif parts == ["conferences"] and method == "POST":
                self._answer(201, {"id": c.create(str(body["name"]), str(body.get("description", "")))})
            elif len(parts) == 2 and parts[0] == "conferences" and method == "DELETE":
                c.end(int(parts[1]))
                self._answer(200, {"ended": int(parts[1])})
            elif len(parts) == 3 and parts[2] == "participants" and method == "GET":
                self._answer(200, c.participants(int(parts[1]), media=query.get("media", ["1"])[0] != "0"))
            elif len(parts) == 3 and parts[2] == "participants" and method == "POST":
                leg = c.dial(int(parts[1]), str(body["key"]), str(body["user"]), str(body.get("display", "")),
                             str(body.get("proxy", "")), bool(body.get("muted", False)))
                self._answer(202, leg.public())
            elif len(parts) == 5 and parts[4] in ("mute", "unmute") and method == "POST":
                c.mute(int(parts[1]), parts[3], parts[4] == "mute")
                self._answer(200, c.leg(int(parts[1]), parts[3]).public())
            elif len(parts) == 4 and parts[2] == "participants" and method == "DELETE":
                leg = c.leg(int(parts[1]), parts[3])
                c.hangup(leg, "dropped", str(body.get("reason") or "dropped by the operator"))
                self._answer(200, leg.public())
            else:
                self._answer(404, {"error": f"no such resource: {method} {self.path}"})
        except KeyError as exc:
            self._answer(404, {"error": str(exc).strip("'\"")})
        except (ValueError, JanusError) as exc:
            self._answer(409, {"error": str(exc)})
        except OSError as exc:  # Janus's HTTP API timed out or dropped the connection: say so, keep serving
            self._answer(503, {"error": f"Janus does not answer: {exc}"})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="provnet-bridged", description=__doc__.split("\n")[0])
    p.add_argument("--api", required=True, help="HOST:PORT of the JSON API (the management address)")
    p.add_argument("--sip", required=True, help="HOST:PORT the SIP legs use (the data address)")
    p.add_argument("--registrar", required=True, help="HOST:PORT of the SIP registrar")
    p.add_argument("--domain", required=True, help="the SIP domain")
    p.add_argument("--janus", default="http://127.0.0.1:8088/janus")
    p.add_argument("--janus-admin", default="http://127.0.0.1:7088/admin")
    p.add_argument("--secret-file", required=True, help="file holding the API token and Janus secrets")
    a = p.parse_args(argv)
    secret = open(a.secret_file, encoding="utf-8").read().strip()
    janus = Janus(a.janus, a.janus_admin, secret)
    for attempt in range(30):  # Janus may still be starting
        try:
            janus.start()
            break
        except (OSError, JanusError):
            if attempt == 29:
                raise
            time.sleep(1)
    sip_host, sip_port = a.sip.rsplit(":", 1)
    reg_host, reg_port = a.registrar.rsplit(":", 1)
    controller = Controller((sip_host, int(sip_port)), (reg_host, int(reg_port)), a.domain, janus, sip_host)
    api_host, api_port = a.api.rsplit(":", 1)
    Api.controller, Api.token = controller, secret
    server = ThreadingHTTPServer((api_host, int(api_port)), Api)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
