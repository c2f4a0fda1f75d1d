"""Place one test call from a baresip probe instance over its ctrl_tcp, print what it saw (one JSON line).

Run by :func:`provnet.vc.media.remote_script` on the bridge host:
``python3 -c <this> CTRL_PORT URI HOLD REPORTS MAX_WAIT ANSWER_TIMEOUT``. ctrl_tcp speaks
netstring-framed JSON on 127.0.0.1:CTRL_PORT. Output: ``{"established", "established_t",
"events", "debug", "duration_s", "error"}`` (see :mod:`provnet.vc.media` for the steps).
Standard library only: this file's source is the program.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

CTRL_HOST = "127.0.0.1"
STREAMS = ("audio", "video")
CONNECT_ATTEMPTS = 3


def frame(command: dict[str, Any]) -> bytes:
    """A ctrl_tcp command as a netstring."""
    data = json.dumps(command).encode()
    return str(len(data)).encode() + b":" + data + b","


def unframe(buf: bytes) -> tuple[bytes | None, bytes]:
    """The first complete netstring's payload in ``buf`` and the rest, or (None, buf)."""
    i = buf.find(b":")
    if i > 0 and buf[:i].isdigit():
        n = int(buf[:i])
        if len(buf) >= i + n + 2:
            return buf[i + 1:i + 1 + n], buf[i + 2 + n:]
    return None, buf


def event_of(m: dict[str, Any], t: float) -> dict[str, Any]:
    """What is kept of a ctrl_tcp event (its RTCP statistics when it has any)."""
    e = {"t": t, "type": m.get("type"), "param": m.get("param", ""), "id": m.get("id", "")}
    if "rtcp_stats" in m:
        e["rtcp"] = m["rtcp_stats"]
    return e


def enough(events: list[dict[str, Any]], reports: int) -> bool:
    """Has every stream had ``reports`` RTCP reports with figures?"""
    got: dict[str, int] = {}
    for e in events:
        r = e.get("rtcp")
        if r and (r["tx"]["sent"] or r["rx"]["sent"]):
            got[e["param"]] = got.get(e["param"], 0) + 1
    return all(got.get(k, 0) >= reports for k in STREAMS)


class Ctrl:
    """One ctrl_tcp connection: commands out; responses and the call's events in (kept in ``out``)."""

    def __init__(self, sock: socket.socket, out: dict[str, Any], t0: float) -> None:
        self.sock, self.out, self.t0 = sock, out, t0
        self.buf = b""
        self.call_id = ""

    def send(self, command: str, params: str | None = None, token: str | None = None) -> None:
        d: dict[str, Any] = {"command": command}
        if params is not None:
            d["params"] = params
        if token:
            d["token"] = token
        self.sock.sendall(frame(d))

    def messages(self, until: float) -> Iterator[dict[str, Any]]:
        """Messages as they arrive until ``until`` (monotonic); ConnectionError when ctrl_tcp closes."""
        while True:
            payload, self.buf = unframe(self.buf)
            if payload is not None:
                try:
                    yield json.loads(payload)
                except ValueError:
                    pass
                continue
            left = until - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise ConnectionError("ctrl_tcp closed the connection")
            self.buf += data

    def keep(self, m: dict[str, Any]) -> None:
        self.out["events"].append(event_of(m, round(time.monotonic() - self.t0, 3)))

    def ours(self, m: dict[str, Any]) -> bool:
        return bool(m.get("event")) and m.get("id") in ("", self.call_id)

    def ask(self, command: str, wait: float = 3.0) -> Any:
        """A command's answer (its ``data``), keeping the call's events meanwhile; None without one."""
        self.send(command, token=command)
        for m in self.messages(time.monotonic() + wait):
            if m.get("response") and m.get("token") == command:
                return m.get("data", "")
            if m.get("event") and (not self.call_id or m.get("id") in ("", self.call_id)):
                self.keep(m)
        return None

    def close(self) -> None:
        self.sock.close()


def connect(port: int, out: dict[str, Any], t0: float) -> Ctrl | None:
    """A connection that has hung up what a killed earlier run left; None (and ``error``) if refused.

    ctrl_tcp keeps one client: a connection it just replaced may close under us, so a few tries.
    After the last one the closed connection is returned: the call then fails as a ctrl_tcp error.
    """
    ctrl = None
    for _ in range(CONNECT_ATTEMPTS):
        try:
            sock = socket.create_connection((CTRL_HOST, port), 3)
        except OSError as exc:
            out["error"] = "connect: %s" % (exc.strerror or exc)
            return None
        ctrl = Ctrl(sock, out, t0)
        try:
            ctrl.ask("hangup", 1.0)
            for _m in ctrl.messages(time.monotonic() + 0.2):
                pass
            break
        except (OSError, ConnectionError):
            ctrl.close()
            time.sleep(0.3)
    return ctrl


def dial(ctrl: Ctrl, uri: str, answer_s: float) -> tuple[float | None, bool]:
    """Dial ``uri`` and wait for the answer: (when it was established or None, whether the call closed)."""
    ctrl.send("dial", uri, "dial")
    deadline, established, closed = time.monotonic() + answer_s, None, False
    while not closed and time.monotonic() < deadline:
        for m in ctrl.messages(deadline):
            if m.get("response") and m.get("token") == "dial" and not m.get("ok"):
                ctrl.out["error"] = "dial refused: %s" % m.get("data", "")
                closed = True
                break
            if not m.get("event"):
                continue
            if not ctrl.call_id and m.get("id") and m.get("peeruri", "").startswith(uri):
                ctrl.call_id = m["id"]
            if m.get("id") and m.get("id") != ctrl.call_id:
                continue
            ctrl.keep(m)
            if m.get("type") == "CALL_ESTABLISHED":
                established = time.monotonic()
                break
            if m.get("type") == "CALL_CLOSED":
                closed = True
                break
        if established:
            break
    return established, closed


def hold_call(ctrl: Ctrl, established: float, hold: float, reports: int, max_wait: float) -> bool:
    """Keep the call ``hold`` s and until the RTCP reports are in (at most ``max_wait``); closed?"""
    end, closed = established + max_wait, False

    def done() -> bool:
        return time.monotonic() - established >= hold and enough(ctrl.out["events"], reports)

    while time.monotonic() < end and not done() and not closed:
        for m in ctrl.messages(min(end, time.monotonic() + 0.25)):
            if ctrl.ours(m):
                ctrl.keep(m)
                if m.get("type") == "CALL_CLOSED":
                    closed = True
                    break
    return closed


def hang_up(ctrl: Ctrl) -> None:
    """Hang up unless the call closed already, then close; nothing here may fail the result."""
    try:
        if not any(e["type"] == "CALL_CLOSED" for e in ctrl.out["events"]):
            ctrl.send("hangup", token="hangup")
            for m in ctrl.messages(time.monotonic() + 2.0):
                if m.get("event") and m.get("id") == ctrl.call_id and m.get("type") == "CALL_CLOSED":
                    break
        ctrl.close()
    except Exception:
        pass


def run(port: int, uri: str, hold: float, reports: int, max_wait: float, answer_s: float) -> dict[str, Any]:
    """The whole test call → what it saw."""
    out: dict[str, Any] = {"established": False, "events": [], "debug": {}, "error": ""}
    t0 = time.monotonic()
    ctrl = connect(port, out, t0)
    if ctrl is None:
        return out
    established = None
    try:
        out["events"] = []
        established, closed = dial(ctrl, uri, answer_s)
        if established:
            out["established"], out["established_t"] = True, round(established - t0, 3)
            closed = hold_call(ctrl, established, hold, reports, max_wait)
            if not closed:
                for command in ("audio_debug", "video_debug"):
                    out["debug"][command] = ctrl.ask(command)
        out["duration_s"] = round(time.monotonic() - (established or time.monotonic()), 3)
    except (OSError, ConnectionError) as exc:
        out["error"] = "ctrl_tcp: %s" % exc
    finally:
        hang_up(ctrl)
    return out


def main(argv: list[str] | None = None) -> None:
    a = sys.argv[1:] if argv is None else argv
    print(json.dumps(run(int(a[0]), a[1], float(a[2]), int(a[3]), float(a[4]), float(a[5]))))


if __name__ == "__main__":
    main()
