"""Dialling a leg: the INVITE without SDP, the endpoint's offer in its 200 OK, the room's answer in the ACK."""

from __future__ import annotations

import queue
import secrets
import threading
import time
from typing import Any

from provnet.vc.bridged.janus_api import JanusError, JanusPending
from provnet.vc.bridged.leg import Leg, replace_to
from provnet.vc.bridged.limits import RING_TIMEOUT, T1
from provnet.vc.bridged.sdp import JANUS_CODEC, Offer, build_answer, choose_codec, parse_sdp
from provnet.vc.bridged.siptext import target_uri
from provnet.vc.bridged.state import ControllerState
from provnet.vc.sipmsg import SipMessage, host_port, new_branch, tag_of, uri_of

LIVE = ("dialing", "ringing", "joined")  # a leg in these states is not dialled again


class Dialling(ControllerState):
    def dial(self, room: int, key: str, user: str, display: str, proxy: str = "", muted: bool = False) -> Leg:
        """A new leg dialled in the background (or the live one under ``key``)."""
        conf = self.conference(room)
        with self.lock:
            old: Leg | None = conf["legs"].get(key)
            if old is not None and old.state in LIVE:
                return old
            leg = Leg(key=key, user=user, display=display, room=room, muted=muted,
                      attempts=(old.attempts if old else 0) + 1)
            if proxy:
                host, _, port = proxy.partition(":")
                leg.first_hop = (host, int(port or 5060))
            conf["legs"][key] = leg
        threading.Thread(target=self._run_leg, args=(leg,), daemon=True).start()
        return leg

    def _run_leg(self, leg: Leg) -> None:
        uri = self._invite(leg)
        final = self._ring(leg, uri)
        if final is None:
            return
        leg.sip_status = final.status
        if final.status >= 300:
            self._send(self._request(replace_to(leg, final), "ACK", uri, leg.branch, 1), leg.first_hop)
            self._fail(leg, final.status, f"the endpoint refused the call: {final.status} {final.reason}")
            return
        self._answered(leg, final)

    def _invite(self, leg: Leg) -> str:
        """Open the leg's dialog and send its INVITE; → the Request-URI."""
        leg.call_id = f"{secrets.token_hex(10)}@{self.sip_addr[0]}"
        leg.from_tag = secrets.token_hex(6)
        leg.branch = new_branch()
        leg.dialed_at = time.time()
        with self.lock:
            self.legs[leg.call_id] = leg
        uri = target_uri(leg.user, self.domain)
        if not leg.first_hop[0]:
            leg.first_hop = host_port(uri) if "@" in leg.user else self.registrar
        leg.invite = self._request(leg, "INVITE", uri, leg.branch, 1)
        self._send(leg.invite, leg.first_hop)
        return uri

    def _ring(self, leg: Leg, uri: str) -> SipMessage | None:
        """The INVITE transaction until its final response; None when it was cancelled (dropped, no answer)."""
        interval, next_tx, provisional = T1, time.time() + T1, False
        deadline = time.time() + RING_TIMEOUT
        while True:
            now = time.time()
            if leg.state == "dropped":
                self._cancel(leg, uri)
                return None
            if now >= deadline:
                self._cancel(leg, uri)
                self._fail(leg, 408, "no answer: rang " if provisional else "no response from the registrar in ",
                           suffix=f"{RING_TIMEOUT:.0f} s")
                return None
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
            if msg.status >= 200:
                return msg
            provisional = True
            if msg.status >= 180:
                leg.state = "ringing"

    def _answered(self, leg: Leg, final: SipMessage) -> None:
        """A 2xx: join the room with the endpoint's offer, answer in the ACK (or ACK and hang up)."""
        leg.answered_at = time.time()
        leg.to_tag = tag_of(final.get("To"))
        leg.remote_target = uri_of(final.get("Contact"))
        leg.route = [r.strip() for rr in reversed(final.all("Record-Route")) for r in rr.split(",")]
        try:
            body = self._join(leg, parse_sdp(final.body))
        except (ValueError, KeyError, JanusError, OSError) as exc:
            # ACK without an answer is not allowed after a delayed offer: answer, then hang up.
            self._ack(leg)
            self.hangup(leg, "failed", f"could not join the room: {exc}")
            return
        self._ack(leg, body)
        if leg.state == "dropped":  # the operator dropped it while it was being answered
            self.hangup(leg, "dropped", leg.reason)
            return
        leg.state, leg.joined_at = "joined", time.time()

    def _ack(self, leg: Leg, body: str = "") -> None:
        leg.ack = self._request(leg, "ACK", leg.remote_target, new_branch(), 1, body=body, route=leg.route).encode()
        self._send(leg.ack, self._next_hop(leg))

    def _join(self, leg: Leg, offer: Offer) -> str:
        """The leg as a plain-RTP participant of its room; → the SDP answer (the room's RTP address)."""
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
        return build_answer(offer, codec, ip, port, int(time.time()))

    def _cancel(self, leg: Leg, uri: str) -> None:
        self._send(self._request(leg, "CANCEL", uri, leg.branch, 1), leg.first_hop)

    def _fail(self, leg: Leg, status: int, reason: str, suffix: str = "") -> None:
        leg.state, leg.sip_status, leg.reason, leg.left_at = "failed", status, reason + suffix, time.time()
