"""The conference bridge: one interface for the lab bridge and production MCUs.

A :class:`Bridge` creates a conference, dials participants out, lists them with their state
and media figures, mutes, disconnects and ends. :class:`JanusBridge` is the lab driver: it
speaks to ``provnet-bridged`` (:mod:`provnet.vc.bridged`, installed by the ``vc_bridge``
role), which gives the Janus AudioBridge its SIP legs through Kamailio. A production MCU
(Cisco Meeting Server, Pexip, Poly RPRM…) plugs in by implementing the same methods over its
own API.

Every connection passes the address guard first.
"""

from __future__ import annotations

import json
import secrets as _secrets
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from provnet import guard
from provnet.errors import ProvnetError
from provnet.model import Model

STATES = ("dialing", "ringing", "joined", "failed", "left", "dropped")
IN_FLIGHT = ("dialing", "ringing")


class BridgeError(ProvnetError):
    """The bridge refused a request or does not answer."""


@dataclass
class Participant:
    key: str                     # the site slug
    display: str
    state: str                   # one of STATES
    reason: str = ""
    sip_status: int = 0
    muted: bool = False
    in_room: bool = False        # the bridge's own participant list holds it
    attempts: int = 0
    dialed_at: float | None = None
    joined_at: float | None = None
    left_at: float | None = None
    codec: str = ""
    media: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Participant":
        return cls(key=d["key"], display=d.get("display", ""), state=d.get("state", ""), reason=d.get("reason", ""),
                   sip_status=int(d.get("sip_status") or 0), muted=bool(d.get("muted")),
                   in_room=bool(d.get("in_room")), attempts=int(d.get("attempts") or 0),
                   dialed_at=d.get("dialed_at"), joined_at=d.get("joined_at"), left_at=d.get("left_at"),
                   codec=d.get("codec", ""), media=d.get("media") or {})


class Bridge(ABC):
    """What provnet needs from a conference bridge (MCU)."""

    name: str = "bridge"

    @abstractmethod
    def create_conference(self, name: str, description: str) -> str:
        """A new, empty conference; its id."""

    @abstractmethod
    def dial(self, conference: str, key: str, user: str, display: str, muted: bool = False) -> Participant:
        """Dial a participant out (asynchronous: dialing → joined or failed); ``muted``: joins muted."""

    @abstractmethod
    def participants(self, conference: str, media: bool = True) -> list[Participant]:
        """Every participant dialled into the conference, with its state; with ``media``, its media
        figures too (they cost the bridge a query per participant: the roll-call while dialling skips them)."""

    @abstractmethod
    def mute(self, conference: str, key: str, muted: bool = True) -> Participant:
        """Mute (or unmute) a participant's audio in the mix."""

    @abstractmethod
    def disconnect(self, conference: str, key: str, reason: str = "") -> Participant:
        """Hang up one participant."""

    @abstractmethod
    def end(self, conference: str) -> None:
        """Hang up everyone and remove the conference."""

    @abstractmethod
    def conferences(self) -> list[dict[str, Any]]:
        """The conferences the bridge holds now."""


class JanusBridge(Bridge):
    """The lab bridge: Janus AudioBridge, dialled out by provnet-bridged over SIP."""

    name = "janus-audiobridge"

    def __init__(self, address: str, port: int, secret: str, *, janus_port: int = 8088, production: bool = False,
                 timeout: float = 30.0) -> None:
        self.address, self.port, self.secret = address, port, secret
        self.janus_port, self.production, self.timeout = janus_port, production, timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        guard.check(self.address, production=self.production, purpose="reach the conference bridge at")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "X-Provnet-Token": self.secret})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except (urllib.error.URLError, OSError) as exc:
            # a read is asked once more when it times out: under a full-province meeting the
            # bridge host's CPU is shared with the calls and an answer can take longer than one timeout
            if method != "GET" or not isinstance(getattr(exc, "reason", exc), TimeoutError):
                raise
        with self._opener.open(req, timeout=self.timeout) as resp:
            return json.load(resp)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return self._request(method, path, body)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("error", exc.reason)
            except ValueError:
                detail = exc.reason
            raise BridgeError(f"bridge {self.address}:{self.port}: {method} {path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BridgeError(f"bridge controller {self.url} does not answer ({getattr(exc, 'reason', exc)}) — "
                              "is provnet-bridged running on the bridge host? (ansible-playbook "
                              "playbooks/dc.yml --tags vc_bridge)") from None

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", "/health")
        return out

    def create_conference(self, name: str, description: str) -> str:
        return str(self._call("POST", "/conferences", {"name": name, "description": description})["id"])

    def dial(self, conference: str, key: str, user: str, display: str, muted: bool = False) -> Participant:
        return Participant.from_dict(self._call("POST", f"/conferences/{conference}/participants",
                                                {"key": key, "user": user, "display": display, "muted": muted}))

    def participants(self, conference: str, media: bool = True) -> list[Participant]:
        path = f"/conferences/{conference}/participants" + ("" if media else "?media=0")
        return [Participant.from_dict(p) for p in self._call("GET", path)]

    def mute(self, conference: str, key: str, muted: bool = True) -> Participant:
        action = "mute" if muted else "unmute"
        return Participant.from_dict(self._call("POST", f"/conferences/{conference}/participants/{key}/{action}", {}))

    def disconnect(self, conference: str, key: str, reason: str = "") -> Participant:
        return Participant.from_dict(self._call("DELETE", f"/conferences/{conference}/participants/{key}",
                                                {"reason": reason or "dropped by the operator"}))

    def end(self, conference: str) -> None:
        try:
            self._call("DELETE", f"/conferences/{conference}")
        except BridgeError as exc:
            if " 404 " not in str(exc):
                raise

    def conferences(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/conferences")
        return out

    # -- Janus's own API, independent of the controller (what the mixer really holds)

    def _janus(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        guard.check(self.address, production=self.production, purpose="reach the conference bridge at")
        body = {"transaction": _secrets.token_hex(6), "apisecret": self.secret, **body}
        req = urllib.request.Request(f"http://{self.address}:{self.janus_port}/janus{path}",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                data: dict[str, Any] = json.load(resp)
        except (urllib.error.URLError, OSError) as exc:
            raise BridgeError(f"Janus API {self.address}:{self.janus_port} does not answer "
                              f"({getattr(exc, 'reason', exc)})") from None
        if data.get("janus") == "error":
            raise BridgeError(f"Janus: {data.get('error', {}).get('reason')}")
        return data

    def janus_rooms(self) -> dict[int, list[dict[str, Any]]]:
        """Every AudioBridge room and its participants, as Janus itself lists them."""
        session = self._janus("", {"janus": "create"})["data"]["id"]
        try:
            handle = self._janus(f"/{session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge"})["data"]["id"]

            def ask(req: dict[str, Any]) -> dict[str, Any]:
                out: dict[str, Any] = self._janus(f"/{session}/{handle}", {"janus": "message", "body": req}
                                                  ).get("plugindata", {}).get("data", {})
                return out

            rooms: dict[int, list[dict[str, Any]]] = {}
            # private rooms are not listed by "list": the controller names them, Janus answers for each
            ids = {int(c["id"]) for c in self.conferences()} | {int(r["room"]) for r in ask({"request": "list"}).get("list", [])}
            for room in sorted(ids):
                rooms[room] = ask({"request": "listparticipants", "room": room}).get("participants", [])
            return rooms
        finally:
            try:
                self._janus(f"/{session}", {"janus": "destroy"})
            except BridgeError:
                pass


def lab_bridge(m: Model) -> JanusBridge:
    """The bridge of an inventory: the ``bridge`` service host, its controller API and secret."""
    from provnet import secrets

    host = m.devices[m.services["bridge"]]
    values = secrets.ensure(m)
    secret = secrets.resolve(values, m.vc.secret)
    return JanusBridge(host.ansible_host, m.vc.bridge_api_port, secret, janus_port=m.vc.janus_port,
                       production=m.production)
