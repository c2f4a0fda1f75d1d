"""The controller's SIP transport: one UDP socket, requests of the legs out, every datagram in."""

from __future__ import annotations

import sys
import threading
import time

from provnet.vc.bridged import siptext
from provnet.vc.bridged.leg import Leg
from provnet.vc.bridged.limits import DEBUG
from provnet.vc.bridged.state import ControllerState
from provnet.vc.sipmsg import SipMessage, parse, tag_of


class Signalling(ControllerState):
    def _send(self, data: str | bytes, addr: tuple[str, int]) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if DEBUG:
            sys.stderr.write(f">>> {addr[0]}:{addr[1]}\n{raw.decode(errors='replace')}\n")
        self.sock.sendto(raw, addr)

    def _request(self, leg: Leg, method: str, uri: str, branch: str, cseq: int, body: str = "",
                 route: list[str] | None = None) -> str:
        return siptext.request(leg, method, uri, branch, cseq, domain=self.domain, sip_addr=self.sip_addr,
                               body=body, route=route)

    def _next_hop(self, leg: Leg) -> tuple[str, int]:
        return siptext.next_hop(leg)

    def _reply(self, req: SipMessage, addr: tuple[str, int], status: int, reason: str) -> None:
        self._send(siptext.reply(req, status, reason), addr)

    def _receive(self) -> None:
        while True:
            data, addr = self.sock.recvfrom(65535)
            if DEBUG:
                sys.stderr.write(f"<<< {addr[0]}:{addr[1]}\n{data.decode(errors='replace')}\n")
            try:
                msg = parse(data)
                if msg.first:  # a blank one is a keep-alive (CRLF)
                    self._dispatch(msg, addr)
            except (ValueError, IndexError):  # malformed: dropped, and the receiver lives on
                continue

    def _dispatch(self, msg: SipMessage, addr: tuple[str, int]) -> None:
        with self.lock:
            leg = self.legs.get(msg.get("Call-ID"))
        if msg.is_response:
            if leg is not None:
                self._on_response(leg, msg)
        else:
            self._on_request(leg, msg, addr)

    def _on_response(self, leg: Leg, msg: SipMessage) -> None:
        if msg.method == "INVITE" and 200 <= msg.status < 300 and leg.ack:
            self._send(leg.ack, self._next_hop(leg))  # our ACK was lost: the 200 is retransmitted
            return
        leg.events.put(msg)

    def _on_request(self, leg: Leg | None, msg: SipMessage, addr: tuple[str, int]) -> None:
        method = msg.first.split()[0]
        if method == "ACK":
            return
        if method == "BYE" and leg is not None:
            self._reply(msg, addr, 200, "OK")
            if leg.state == "joined":
                leg.state, leg.reason, leg.left_at = "left", "the site hung up", time.time()
                threading.Thread(target=self._leave, args=(leg,), daemon=True).start()
        elif method == "OPTIONS":
            self._reply(msg, addr, 200, "OK")
        elif method == "INVITE" and leg is not None and leg.to_tag:
            self._reply(msg, addr, 488, "Not Acceptable Here")  # no re-negotiation on the lab bridge
        elif leg is None and tag_of(msg.get("To")):
            self._reply(msg, addr, 481, "Call/Transaction Does Not Exist")
        else:
            self._reply(msg, addr, 405, "Method Not Allowed")
