"""The programs sent to the bridge host (provnet.vc.remote), called as code: no network, fake sockets."""

from __future__ import annotations

import ast
import base64
import json
import socket
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

import pytest

from provnet.vc import media, remote, sip
from provnet.vc.remote import listening_ports, media_call, sip_options

PROGRAMS = [sip_options, media_call, listening_ports]


@pytest.mark.parametrize("module", PROGRAMS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_program_is_stdlib_only_and_runs_main(module: ModuleType) -> None:
    tree = ast.parse(remote.source(module))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    assert callable(module.main) and 'if __name__ == "__main__":\n    main()' in remote.source(module)


def test_the_shipped_programs_are_the_modules_sources() -> None:
    argv, _ = sip.remote_script("198.18.64.34", 5060, "198.18.9.13")
    assert argv[2] == remote.source(sip_options)
    assert media.remote_script(4451, "198.18.64.98", "dong-dang")[2] == remote.source(media_call)


# ------------------------------------------------------------------ sip_options


class FakeUdp:
    """Answers each request with the scripted datagrams, then stays silent."""

    def __init__(self, replies: list[bytes | OSError]) -> None:
        self.replies, self.sent, self.bound = list(replies), [], None  # type: ignore[var-annotated]

    def bind(self, addr: tuple[str, int]) -> None:
        self.bound = addr

    def getsockname(self) -> tuple[str, int]:
        return ("198.18.9.13", 40999)

    def sendto(self, data: bytes, dest: tuple[str, int]) -> None:
        self.sent.append((data, dest))

    def settimeout(self, t: float) -> None:
        pass

    def recvfrom(self, n: int) -> tuple[bytes, tuple[str, int]]:
        if not self.replies:
            time.sleep(0.01)
            raise socket.timeout
        reply = self.replies.pop(0)
        if isinstance(reply, OSError):
            raise reply
        return reply, ("198.18.64.34", 5060)


BRANCH = b"z9hG4bKabc"


def test_options_exchange_keeps_the_final_reply() -> None:
    trying = b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKabc\r\n\r\n"
    ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKabc\r\n\r\n"
    stranger = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKother\r\n\r\n"
    sock = FakeUdp([stranger, trying, ok])
    dest = ("198.18.64.34", 5060)
    out = sip_options.exchange(sock, b"OPTIONS", dest, 2.0, [0.0, 0.5], BRANCH)  # type: ignore[arg-type]
    assert base64.b64decode(str(out["reply"])) == ok and out["sent"] == 1 and out["error"] == ""
    assert isinstance(out["rtt_ms"], float)


def test_options_exchange_silence_and_icmp() -> None:
    out = sip_options.exchange(FakeUdp([]), b"OPTIONS", ("h", 1), 0.05, [0.0], BRANCH)  # type: ignore[arg-type]
    assert out == {"reply": None, "rtt_ms": None, "sent": 1, "error": ""}
    refused = OSError(111, "Connection refused")
    out = sip_options.exchange(FakeUdp([refused]), b"OPTIONS", ("h", 1), 1.0, [0.0], BRANCH)  # type: ignore[arg-type]
    assert out["error"] == "Connection refused" and out["reply"] is None


def test_options_main_fills_in_the_source_port(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv, req = sip.remote_script("198.18.64.34", 5060, "198.18.9.13", timeout=0.3)
    ok = f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch={req.branch}\r\nCall-ID: {req.call_id}\r\n\r\n".encode()
    sock = FakeUdp([ok])
    monkeypatch.setattr(sip_options.socket, "socket", lambda *a: sock)
    sip_options.main(argv[3:])
    assert sock.bound == ("198.18.9.13", 0)
    sent, dest = sock.sent[0]
    assert dest == ("198.18.64.34", 5060) and b";branch=" in sent
    assert b"198.18.9.13:40999" in sent and sip_options.PORT_PLACEHOLDER.encode() not in sent
    res = sip.parse_remote_output(capsys.readouterr().out, req)
    assert res.ok and res.status == 200 and res.transmissions == 1


def test_options_reply_tests() -> None:
    assert sip_options.fill_port(b"a @@PORT@@ b @@PORT@@", 5) == b"a 5 b 5"
    assert sip_options.is_reply(b"SIP/2.0 180 Ringing\r\nVia: ;branch=z9hG4bKabc\r\n", BRANCH)
    assert not sip_options.is_reply(b"OPTIONS sip:x SIP/2.0\r\nVia: ;branch=z9hG4bKabc\r\n", BRANCH)
    assert not sip_options.is_final(b"SIP/2.0 183 Session Progress") and sip_options.is_final(b"SIP/2.0 404 Not Found")


# ------------------------------------------------------------------ listening_ports

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1162 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1
   1: 0100007F:1163 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 2 1
   2: 0100007F:1164 0100007F:D431 01 00000000:00000000 00:00000000 00000000   999        0 3 1
   3: 0D0912C6:1165 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 4 1
   4: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1
"""


def test_listening_ports_reads_listeners_on_the_address_only() -> None:
    assert listening_ports.hex_ipv4("127.0.0.1") == "0100007F" and listening_ports.hex_ipv4("198.18.9.13") == "0D0912C6"
    # 4450, 4451 listen on loopback; 4452 is a connection; 4453 listens on another address; 22 is not asked
    assert listening_ports.listening(PROC_NET_TCP, "127.0.0.1", {4450, 4451, 4452, 4453}) == [4450, 4451]


def test_listening_ports_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(listening_ports, "open", lambda *a, **k: io.StringIO(PROC_NET_TCP), raising=False)
    listening_ports.main(["[4450, 4451, 4453]", "127.0.0.1"])
    assert json.loads(capsys.readouterr().out) == [4450, 4451]


def test_listening_ports_runs_as_shipped() -> None:
    """The program as the bridge host runs it: ``python3 -c <source> ARGS`` (reads this machine's table)."""
    res = subprocess.run([sys.executable, "-c", remote.source(listening_ports), "[1]", "127.0.0.1"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and json.loads(res.stdout) in ([], [1])


# ------------------------------------------------------------------ media_call


def test_netstrings_round_trip_and_wait_for_the_rest() -> None:
    assert media_call.frame({"command": "dial"}) == b'19:{"command": "dial"},'
    data = media_call.frame({"command": "dial", "params": "sip:a@b"})
    payload, rest = media_call.unframe(data + b"12:{")
    assert json.loads(payload or b"") == {"command": "dial", "params": "sip:a@b"} and rest == b"12:{"
    assert media_call.unframe(rest) == (None, b"12:{")


def test_enough_wants_the_reports_of_both_streams() -> None:
    def report(stream: str, sent: int) -> dict[str, Any]:
        return {"param": stream, "rtcp": {"tx": {"sent": sent}, "rx": {"sent": 0}}}

    events = [report("audio", 250), report("video", 0), report("audio", 500)]
    assert media_call.enough(events, 2) is False
    assert media_call.enough(events + [report("video", 100), report("video", 200)], 2)


RTCP = {"tx": {"sent": 250, "lost": 0, "jit": 600}, "rx": {"sent": 250, "lost": 0, "jit": 700}, "rtt": 900}


class FakeCtrlTcp:
    """baresip's ctrl_tcp as the program sees it: netstring JSON, one call ``c1`` that answers at once."""

    def __init__(self, uri: str, close_on_dial: bool = False) -> None:
        self.uri, self.close_on_dial = uri, close_on_dial
        self.inbound, self.commands, self.up, self.closed = b"", [], False, False  # type: ignore[var-annotated]

    def _push(self, *messages: dict[str, Any]) -> None:
        for m in messages:
            self.inbound += media_call.frame(m)

    def sendall(self, data: bytes) -> None:
        payload, _ = media_call.unframe(data)
        cmd = json.loads(payload or b"")
        self.commands.append(cmd["command"])
        token = cmd.get("token")
        if cmd["command"] == "dial":
            if self.close_on_dial:
                self.closed = True
                return
            self.up = True
            ev = {"event": True, "id": "c1", "peeruri": self.uri}
            self._push({"response": True, "ok": True, "token": token}, {**ev, "type": "CALL_RINGING"},
                       {**ev, "type": "CALL_ESTABLISHED"},
                       *({**ev, "type": "CALL_RTCP", "param": s, "rtcp_stats": RTCP} for s in ("audio", "video")))
        elif cmd["command"] == "hangup":
            self._push({"response": True, "ok": True, "token": token, "data": ""})
            if self.up:
                self.up = False
                self._push({"event": True, "id": "c1", "type": "CALL_CLOSED", "param": "Connection reset by user"})
        else:
            self._push({"response": True, "ok": True, "token": token,
                        "data": f"{cmd['command']}: TX: packets=250\n IP=x psent=250 rcvd=249\n"})

    def settimeout(self, t: float) -> None:
        pass

    def recv(self, n: int) -> bytes:
        if self.closed:
            return b""
        if not self.inbound:
            time.sleep(0.01)
            raise socket.timeout
        data, self.inbound = self.inbound, b""
        return data

    def close(self) -> None:
        pass


def test_a_test_call_runs_dial_to_hangup(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = "sip:dong-dang@198.18.64.98"
    ctrl = FakeCtrlTcp(uri)
    monkeypatch.setattr(media_call.socket, "create_connection", lambda addr, timeout: ctrl)
    out = media_call.run(4451, uri, hold=0.0, reports=1, max_wait=2.0, answer_s=2.0)
    assert ctrl.commands == ["hangup", "dial", "audio_debug", "video_debug", "hangup"]
    assert out["established"] and out["error"] == "" and set(out["debug"]) == {"audio_debug", "video_debug"}
    assert [e["type"] for e in out["events"]] == ["CALL_RINGING", "CALL_ESTABLISHED", "CALL_RTCP", "CALL_RTCP"]
    call = media.parse_call(json.loads(json.dumps(out)), uri)
    assert call.established and call.streams["audio"].rtt_ms == 0.9 and call.streams["audio"].rx_packets == 250


def test_a_test_call_reports_a_refused_connection_and_a_closed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(addr: tuple[str, int], timeout: float) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(media_call.socket, "create_connection", refused)
    out = media_call.run(4450, "sip:a@b", 0.0, 1, 1.0, 1.0)
    assert out == {"established": False, "events": [], "debug": {}, "error": "connect: Connection refused"}
    monkeypatch.setattr(media_call.socket, "create_connection",
                        lambda addr, timeout: FakeCtrlTcp("sip:a@b", close_on_dial=True))
    out = media_call.run(4450, "sip:a@b", 0.0, 1, 1.0, 1.0)
    assert not out["established"] and out["error"] == "ctrl_tcp: ctrl_tcp closed the connection"
