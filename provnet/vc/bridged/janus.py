"""The controller's Janus HTTP client: one session with the AudioBridge, kept alive and renewed."""

from __future__ import annotations

import json
import queue
import secrets
import sys
import threading
import time
import urllib.request
from typing import Any, Callable, TypeVar

from provnet.vc.bridged.janus_api import (JanusError, JanusPending, JanusSessionLost, answer_of, plugin_data,
                                          raise_error, session_lost_event)
from provnet.vc.bridged.limits import JOIN_TIMEOUT, MAX_EVENTS

T = TypeVar("T")


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
        body = {"transaction": secrets.token_hex(6), **body}
        req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data: dict[str, Any] = json.load(resp)
        raise_error(data)
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
                answer.put(session_lost_event())
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
        return answer_of(body, send() if handle else self._retry(send))

    def request_async(self, body: dict[str, Any], handle: int, timeout: float = JOIN_TIMEOUT) -> dict[str, Any]:
        """An asynchronous request (join): waits for its event."""
        tx = secrets.token_hex(8)
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
        raise_error(event)
        return answer_of(body, event)

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
        return plugin_data(event)

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
                raise_error(data if isinstance(data, dict) else {})
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
