"""Which of some TCP ports have a listening socket on one IPv4 address (one JSON line).

Run by :meth:`provnet.vc.probes.LabProbes._probe_slots` on the bridge host:
``python3 -c <this> PORTS_JSON ADDRESS`` prints the sorted listening ports, read from
``/proc/net/tcp`` rather than by connecting (ctrl_tcp serves one client: a probing connect
would replace the one a test call is using). Standard library only: this file's source is
the program.
"""

from __future__ import annotations

import json
import sys

LISTEN = "0A"  # the TCP_LISTEN state in /proc/net/tcp


def hex_ipv4(address: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (host byte order on little-endian: 127.0.0.1 → 0100007F)."""
    return "".join(f"{int(o):02X}" for o in reversed(address.split(".")))


def listening(proc_net_tcp: str, address: str, ports: set[int]) -> list[int]:
    """The ``ports`` listening on ``address`` in the text of /proc/net/tcp, sorted."""
    ok = []
    want = hex_ipv4(address)
    for line in proc_net_tcp.splitlines()[1:]:
        f = line.split()
        a, p = f[1].split(":")
        if f[3] == LISTEN and a == want and int(p, 16) in ports:
            ok.append(int(p, 16))
    return sorted(set(ok))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    with open("/proc/net/tcp", encoding="ascii") as f:
        text = f.read()
    print(json.dumps(listening(text, args[1], set(json.loads(args[0])))))


if __name__ == "__main__":
    main()
