"""What every part of the controller shares: its attributes, and the calls one part makes on another."""

from __future__ import annotations

import socket
import threading
from typing import Any

from provnet.vc.bridged.janus import Janus
from provnet.vc.bridged.leg import Leg
from provnet.vc.bridged.membership import Membership


class ControllerState:
    """Base of the controller's parts (:mod:`~provnet.vc.bridged.controller` puts them together)."""

    sip_addr: tuple[str, int]
    registrar: tuple[str, int]
    domain: str
    janus: Janus
    media_ip: str
    sock: socket.socket
    legs: dict[str, Leg]                   # by Call-ID
    conferences: dict[int, dict[str, Any]]
    lock: threading.RLock
    membership: Membership

    # implemented by the parts: rooms, dialling, hangup, signalling
    def conference(self, room: int) -> dict[str, Any]:
        raise NotImplementedError

    def hangup(self, leg: Leg, state: str, reason: str) -> None:
        raise NotImplementedError

    def _leave(self, leg: Leg) -> None:
        raise NotImplementedError

    def _run_leg(self, leg: Leg) -> None:
        raise NotImplementedError

    def _send(self, data: str | bytes, addr: tuple[str, int]) -> None:
        raise NotImplementedError

    def _request(self, leg: Leg, method: str, uri: str, branch: str, cseq: int, body: str = "",
                 route: list[str] | None = None) -> str:
        raise NotImplementedError

    def _next_hop(self, leg: Leg) -> tuple[str, int]:
        raise NotImplementedError
