"""A leg: one participant's SIP dialog and its place in the room."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from typing import Any

from provnet.vc.bridged.janus_api import JanusPending
from provnet.vc.sipmsg import SipMessage, tag_of


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


def replace_to(leg: Leg, response: SipMessage) -> Leg:
    """The leg as seen by a non-2xx ACK: same branch, the response's To tag."""
    copy = Leg(**{**leg.__dict__, "to_tag": tag_of(response.get("To"))})
    return copy
