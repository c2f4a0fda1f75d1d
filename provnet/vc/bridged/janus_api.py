"""Janus's answers read in one place: its errors (one class per case the controller handles) and plugin data."""

from __future__ import annotations

import queue
from typing import Any

JANUS_NO_SUCH_SESSION = 458  # janus.h: JANUS_ERROR_SESSION_NOT_FOUND


class JanusError(RuntimeError):
    pass


class JanusSessionLost(JanusError):
    """Janus no longer knows the controller's session (error 458): it expired or Janus restarted.

    Janus destroys a session it has not heard from for `session_timeout` seconds, and with it
    every handle: the participants leave the room, the rooms stay (they belong to the plugin).
    """


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


def raise_error(message: dict[str, Any]) -> None:
    """JanusError (JanusSessionLost for error 458) when ``message`` is a Janus error."""
    if message.get("janus") != "error":
        return
    error = message.get("error", {})
    cls = JanusSessionLost if error.get("code") == JANUS_NO_SUCH_SESSION else JanusError
    raise cls(f"Janus: {error.get('reason', message)}")


def session_lost_event() -> dict[str, Any]:
    """What a join still waiting in a lost session is told."""
    return {"janus": "error", "error": {"code": JANUS_NO_SUCH_SESSION, "reason": "session lost"}}


def plugin_data(message: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = message.get("plugindata", {}).get("data", {})
    return data


def answer_of(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """The AudioBridge's answer to `body`, or JanusError with its reason."""
    out = plugin_data(message)
    if "error" in out:
        raise JanusError(f"AudioBridge {body.get('request')}: {out['error']} (code {out.get('error_code')})")
    return out
