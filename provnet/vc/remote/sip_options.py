"""Send one prepared SIP OPTIONS from this host and print what came back (one JSON line).

Run by :func:`provnet.vc.sip.remote_script` on the bridge host:
``python3 -c <this> REQUEST_B64 HOST PORT LOCAL_IP TIMEOUT SCHEDULE_JSON BRANCH LOCAL_PORT``.
The request is sent at the schedule's offsets (s) until a final response or the timeout;
``@@PORT@@`` in it becomes the source port the kernel chose. Output:
``{"reply": base64 of the last response or null, "rtt_ms", "sent", "error"}``.
Standard library only: this file's source is the program.
"""

from __future__ import annotations

import base64
import json
import socket
import sys
import time

PORT_PLACEHOLDER = "@@PORT@@"


def fill_port(request: bytes, port: int) -> bytes:
    return request.replace(PORT_PLACEHOLDER.encode(), str(port).encode())


def is_reply(data: bytes, branch: bytes) -> bool:
    """A response carrying our branch."""
    return branch in data and data.split(b"\r\n", 1)[0].startswith(b"SIP/2.0 ")


def is_final(data: bytes) -> bool:
    return data[8:9] != b"1"


def exchange(sock: socket.socket, request: bytes, dest: tuple[str, int], timeout: float,
             schedule: list[float], branch: bytes) -> dict[str, object]:
    """Send on schedule, keep the last reply; stop at a final one or the timeout."""
    start, sent = time.monotonic(), 0
    out: dict[str, object] = {"reply": None, "rtt_ms": None, "sent": 0, "error": ""}
    while True:
        now = time.monotonic() - start
        while sent < len(schedule) and schedule[sent] <= now:
            sock.sendto(request, dest)
            sent += 1
        if now >= timeout:
            break
        nxt = schedule[sent] if sent < len(schedule) else timeout
        sock.settimeout(max(min(nxt, timeout) - now, 0.001))
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            continue
        except OSError as e:  # ICMP port unreachable surfaces here on Linux
            out["error"] = str(e.strerror or e)
            break
        if not is_reply(data, branch):
            continue
        out["reply"] = base64.b64encode(data).decode()
        if is_final(data):
            out["rtt_ms"] = round((time.monotonic() - start) * 1000, 2)
            break
    out["sent"] = sent
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    request, dest, local = base64.b64decode(args[0]), (args[1], int(args[2])), args[3]
    timeout, schedule, branch = float(args[4]), json.loads(args[5]), args[6].encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, int(args[7])))
    request = fill_port(request, sock.getsockname()[1])
    print(json.dumps(exchange(sock, request, dest, timeout, schedule, branch)))


if __name__ == "__main__":
    main()
