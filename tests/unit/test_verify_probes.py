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


def test_open_refused_and_dropped_in_one_program_within_one_timeout() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()
    # a lab address this machine has no route to: the connect fails at once, as a drop does (no answer)
    started = time.monotonic()
    got = hosts.tcp_probes(LocalHost(), [("127.0.0.1", listening.getsockname()[1]), ("127.0.0.1", free_port),
                                         ("198.18.255.254", 22)], timeout=1.0)
    took = time.monotonic() - started
    listening.close()
    assert got == ["open", "refused", "dropped"]
    assert took < 1.0 + 1.5        # one timeout at most, not one per target


def test_a_program_that_prints_nothing_reads_as_dropped() -> None:
    class Silent:
        def run(self, command: str) -> Any:
            return SimpleNamespace(rc=0 if command == "id -u" else 124, stdout="0\n" if command == "id -u" else "",
                                   stderr="")
    assert hosts.tcp_probes(Silent(), [("198.18.9.10", 5060), ("198.18.9.10", 22)]) == ["dropped", "dropped"]
