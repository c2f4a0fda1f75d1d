"""Who may enter or leave an AudioBridge room at a time (a Janus 1.1 crash, worked around)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


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
    def join(self) -> Iterator[None]:
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
    def leave(self) -> Iterator[None]:
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
