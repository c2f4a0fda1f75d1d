"""Ending a leg: BYE to the endpoint, the participant out of the room, its Janus handle let go."""

from __future__ import annotations

import queue
import threading
import time

from provnet.vc.bridged.janus_api import JanusError
from provnet.vc.bridged.leg import Leg
from provnet.vc.bridged.limits import BYE_TIMEOUT, LATE_JOIN_TIMEOUT, T1
from provnet.vc.bridged.state import ControllerState
from provnet.vc.sipmsg import new_branch

SESSION_LOST = ("the bridge dropped the call: Janus expired the controller's session "
                "(the bridge host did not answer it for longer than session_timeout)")


class Hangup(ControllerState):
    def hangup(self, leg: Leg, state: str, reason: str) -> None:
        """BYE (when the call was answered), leave the room, record why."""
        answered = bool(leg.to_tag and leg.answered_at)
        leg.state, leg.reason, leg.left_at = state, reason, time.time()
        if not answered:
            return  # not answered yet: the dialling thread sees the state and cancels
        self._bye(leg)
        self._leave(leg)

    def _bye(self, leg: Leg) -> None:
        """A BYE, retransmitted until its final response or BYE_TIMEOUT."""
        leg.cseq += 1
        bye = self._request(leg, "BYE", leg.remote_target, new_branch(), leg.cseq, route=leg.route)
        end = time.time() + BYE_TIMEOUT
        interval = T1
        while time.time() < end:
            self._send(bye, self._next_hop(leg))
            try:
                msg = leg.events.get(timeout=interval)
                if msg.is_response and msg.method == "BYE" and msg.status >= 200:
                    break
            except queue.Empty:
                interval = min(interval * 2, 2.0)

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

    def _session_lost(self, lost: int) -> None:
        """Janus dropped the session and with it every participant in it: hang up their calls.

        They show as failed with the reason, so `meeting start` (or the operator) redials them.
        """
        with self.lock:
            gone = [leg for conf in self.conferences.values() for leg in conf["legs"].values()
                    if leg.session == lost and leg.state == "joined"]
        for leg in gone:
            leg.handle = leg.participant = 0  # they went with the session: nothing to kick or detach
            threading.Thread(target=self.hangup, daemon=True, args=(leg, "failed", SESSION_LOST)).start()
