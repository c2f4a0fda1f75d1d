"""Place one test call from a baresip probe instance over its ctrl_tcp, print what it saw (one JSON line).

Run by :func:`provnet.vc.media.remote_script` on the bridge host:
``python3 -c <this> CTRL_PORT URI HOLD REPORTS MAX_WAIT ANSWER_TIMEOUT [PINGS_JSON]``. ctrl_tcp
speaks netstring-framed JSON on 127.0.0.1:CTRL_PORT. ``PINGS_JSON``: ``[[at_s, branch,
request_b64], …]``, SIP OPTIONS sent to the URI's host while the call is held, ``at_s`` after
the answer (:class:`Pinger`). Output: ``{"established", "established_t", "events", "debug",
"duration_s", "error", "sip_pings"}`` (see :mod:`provnet.vc.media` for the steps).
Standard library only: this file's source is the program.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

CTRL_HOST = "127.0.0.1"
STREAMS = ("audio", "video")
CONNECT_ATTEMPTS = 3
#: Placeholders in the OPTIONS requests for the source address the kernel picks here.
LOCAL_IP = "@@IP@@"
LOCAL_PORT = "@@PORT@@"
SIP_PORT = 5060  # the dial URI names no port: RFC 3261's default, where the INVITE went


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


def sip_dest(uri: str) -> tuple[str, int]:
    """Where requests to ``sip:user@host[:port]`` go (``SIP_PORT`` without a port)."""
    rest = uri[4:] if uri.startswith("sip:") else uri
    host, _, port = rest.rsplit("@", 1)[-1].split(";", 1)[0].partition(":")
    return host, int(port) if port else SIP_PORT


def sip_status(data: bytes) -> int | None:
    """A SIP response's status code; None for a request or garbage."""
    if data.startswith(b"SIP/2.0 ") and data[8:11].isdigit():
        return int(data[8:11])
    return None


class Pinger(threading.Thread):
    """SIP OPTIONS to the endpoint while the call runs: the call's round trip.

    Each request is a transaction of its own, sent once (no retransmission), so each final
    answer times exactly its own request; a lost one is just a missing sample. The socket is
    connected, not bound: the kernel picks the source address as it does for the call's RTP
    (baresip binds RTP to 0.0.0.0). Nothing here may fail the call.
    """

    def __init__(self, dest: tuple[str, int], pings: list[list[Any]], start: float) -> None:
        super().__init__(name="sip-ping", daemon=True)
        self.dest, self.pings, self.start_t = dest, pings, start
        self.rtt_ms: list[float | None] = [None] * len(pings)
        self.status: list[int | None] = [None] * len(pings)
        self.sent = 0
        self.error = ""
        self._wake, self._waker = socket.socketpair()  # stop() ends the wait at once

    def run(self) -> None:
        sock = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.exchange(sock)
        except Exception as exc:  # noqa: BLE001 - the call's figures stand without the pings
            self.error = "%s: %s" % (type(exc).__name__, exc)
        finally:
            if sock is not None:
                sock.close()

    def exchange(self, sock: socket.socket) -> None:
        sock.connect(self.dest)
        ip, port = sock.getsockname()[:2]
        waiting: dict[bytes, tuple[int, float]] = {}  # "branch=…" → (ping, monotonic send time)
        while True:
            now = time.monotonic()
            while self.sent < len(self.pings) and self.start_t + float(self.pings[self.sent][0]) <= now:
                _at, branch, request = self.pings[self.sent]
                data = base64.b64decode(request).replace(LOCAL_IP.encode(), str(ip).encode())
                data = data.replace(LOCAL_PORT.encode(), str(port).encode())
                waiting[b"branch=" + str(branch).encode()] = (self.sent, time.monotonic())
                sock.send(data)
                self.sent += 1
            if self.sent == len(self.pings) and not waiting:
                return
            wait = None
            if self.sent < len(self.pings):
                wait = max(self.start_t + float(self.pings[self.sent][0]) - time.monotonic(), 0.001)
            ready, _, _ = select.select([sock, self._wake], [], [], wait)
            if self._wake in ready:
                return
            if sock not in ready:
                continue
            try:
                data = sock.recv(65535)
            except OSError as exc:  # ICMP port unreachable surfaces here on a connected socket
                self.error = str(exc.strerror or exc)
                continue
            arrived, status = time.monotonic(), sip_status(data)
            if status is None or status < 200:
                continue
            key = next((k for k in waiting if k in data), None)
            if key is not None:
                i, sent_at = waiting.pop(key)
                self.rtt_ms[i], self.status[i] = round((arrived - sent_at) * 1000, 2), status

    def stop(self) -> dict[str, Any]:
        """Stop and say what was sent and answered (per ping: RTT ms and status, None unanswered)."""
        try:
            self._waker.send(b"x")
        except OSError:
            pass
        self.join(1.0)
        self._wake.close()
        self._waker.close()
        return {"sent": self.sent, "rtt_ms": list(self.rtt_ms), "status": list(self.status), "error": self.error}


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


def run(port: int, uri: str, hold: float, reports: int, max_wait: float, answer_s: float,
        pings: list[list[Any]] | None = None) -> dict[str, Any]:
    """The whole test call → what it saw (``pings``: see :class:`Pinger`)."""
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
            pinger = Pinger(sip_dest(uri), pings, established) if pings else None
            if pinger:
                pinger.start()
            try:
                closed = hold_call(ctrl, established, hold, reports, max_wait)
            finally:
                if pinger:
                    out["sip_pings"] = pinger.stop()
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
    pings = json.loads(a[6]) if len(a) > 6 else None
    print(json.dumps(run(int(a[0]), a[1], float(a[2]), int(a[3]), float(a[4]), float(a[5]), pings)))


if __name__ == "__main__":
    main()
