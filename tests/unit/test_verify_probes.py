"""verify's TCP probes: every target of a node in one program, all at once (the program run here, locally)."""

from __future__ import annotations

import socket
import subprocess
import time
from types import SimpleNamespace
from typing import Any

from provnet.verify import hosts


class LocalHost:
    """A testinfra-like host whose commands run on this machine (as root: no sudo)."""

    def run(self, command: str) -> Any:
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
        return SimpleNamespace(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def _full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener whose accept queue is full: Linux drops further SYNs unanswered (a real drop,
    on this machine: no packet leaves it)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(listener.getsockname())
        fillers.append(c)
    time.sleep(0.2)
    return listener, fillers


def test_open_refused_and_dropped_in_one_program_within_one_timeout() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()
    full, fillers = _full_listener()
    started = time.monotonic()
    got = hosts.tcp_probes(LocalHost(), [("127.0.0.1", listening.getsockname()[1]), ("127.0.0.1", free_port),
                                         ("127.0.0.1", full.getsockname()[1])], timeout=1.0)
    took = time.monotonic() - started
    for s in [listening, full, *fillers]:
        s.close()
    assert got == ["open", "refused", "dropped"]
    assert 1.0 <= took < 1.0 + 1.5        # the drop's one timeout, not one per target


def test_a_program_that_prints_nothing_reads_as_dropped() -> None:
    class Silent:
        def run(self, command: str) -> Any:
            return SimpleNamespace(rc=0 if command == "id -u" else 124, stdout="0\n" if command == "id -u" else "",
                                   stderr="")
    assert hosts.tcp_probes(Silent(), [("198.18.9.10", 5060), ("198.18.9.10", 22)]) == ["dropped", "dropped"]


def test_the_dc_probes_go_from_the_registrar_and_the_soc() -> None:
    asked: list[str] = []

    class Silent:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, command: str) -> Any:
            if command != "id -u":
                asked.append(self.name)
            return SimpleNamespace(rc=0, stdout="0\n" if command == "id -u" else "", stderr="")
    m = SimpleNamespace(services={"sip_registrar": "dc-sip", "syslog": "dc-soc"}, sip_port=5060)
    assert hosts.dc_probes(Silent, m, "198.18.64.2") == ("dropped", "dropped")
    assert sorted(asked) == ["dc-sip", "dc-soc"]
