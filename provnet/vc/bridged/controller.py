"""The controller: conferences (rooms), dialling, hang-ups and SIP signalling over one Janus session."""

from __future__ import annotations

import socket
import threading

from provnet.vc.bridged.dialling import Dialling
from provnet.vc.bridged.hangup import Hangup
from provnet.vc.bridged.janus import Janus
from provnet.vc.bridged.membership import Membership
from provnet.vc.bridged.rooms import Rooms
from provnet.vc.bridged.signalling import Signalling

CS3 = 0x60  # DSCP CS3 in the TOS byte: signalling, as the endpoints mark it


class Controller(Rooms, Dialling, Hangup, Signalling):
    def __init__(self, sip_addr: tuple[str, int], registrar: tuple[str, int], domain: str, janus: Janus,
                 media_ip: str) -> None:
        self.sip_addr, self.registrar, self.domain, self.janus = sip_addr, registrar, domain, janus
        self.media_ip = media_ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, CS3)
        self.sock.bind(sip_addr)
        self.legs = {}
        self.conferences = {}
        self.lock = threading.RLock()
        self.membership = Membership()
        janus.on_renew = self._session_lost
        threading.Thread(target=self._receive, daemon=True).start()
