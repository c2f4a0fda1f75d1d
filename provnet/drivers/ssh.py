"""A plain SSH exec session (paramiko) for the Linux platforms: no shell, no screen scraping.

Every connection passes the address guard first. Each ``exec`` is its own channel on
one transport; ``fresh()`` opens a brand-new transport, which confirmation needs
(a reused session survives a rule that blocks new connections).

An exec costs a round trip and a process on the device (20 reads as 20 commands:
1.2 s wall, 285 ms of node CPU; as one: 88 ms, 34 ms), so the drivers batch:
:meth:`SSH.run_many` runs several commands in one exec and returns each one's exit
status, stdout and stderr apart; :meth:`SSH.read_many` and :meth:`SSH.write_many` read
and write several files in one. The batch is a script on stdin (``sh -s``) whose
data travels as base64 here-documents, so no content can break out of it and no
argument grows with the files.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import shlex
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import paramiko

from provnet import guard
from provnet.drivers.base import DriverError


class ConnectError(DriverError):
    """The device could not be reached or refused our credentials."""


class ChannelRefused(DriverError):
    """The connection is up but the server would not open another channel (sshd MaxSessions)."""


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def check(self, what: str) -> "Result":
        if self.rc != 0:
            raise DriverError(f"{what} failed (exit {self.rc}): {(self.err or self.out).strip()[-600:]}")
        return self


#: one command of a batch: a command line, or (command line, its stdin)
Step = str | tuple[str, str]

# base64 output is [A-Za-z0-9+/=] only: neither a frame line nor this delimiter can occur in it
FRAME = ">PV"
FRAME_LINE = re.compile(r"^>PV (\d+) (-?\d+)$")
EOF_MARK = "__PV_EOF__"


def _heredoc(data: bytes) -> str:
    """A quoted here-document holding ``data`` as base64 (76-column lines, as base64(1) writes)."""
    b64 = base64.encodebytes(data).decode()
    return f"<<'{EOF_MARK}'\n{b64}{EOF_MARK}\n"


def batch_script(steps: Sequence[Step], stop_on_error: bool = False) -> str:
    """``sh -s`` script running ``steps`` in order, each in a subshell with its own stdin
    (the given text, else /dev/null): per step a ``>PV <index> <exit status>`` line, then its
    stdout and its stderr, each as one line of base64. ``stop_on_error``: after a step that
    exits non-zero, the later ones do not run."""
    lines = ['t=$(mktemp -d) || exit 1', """trap 'rm -rf "$t"' EXIT""", "trap 'exit 1' HUP PIPE TERM"]
    for i, step in enumerate(steps):
        command, data = (step, None) if isinstance(step, str) else step
        source = "/dev/null"
        if data is not None:
            lines.append('base64 -d > "$t/i" ' + _heredoc(data.encode()).rstrip("\n"))
            source = '"$t/i"'
        # the newline before ")" ends a trailing comment or here-document of the command
        lines.append(f'( {command}\n) < {source} > "$t/o" 2> "$t/e"')
        lines.append(f'r=$?; printf \'{FRAME} {i} %d\\n\' "$r"; base64 -w0 "$t/o"; echo; base64 -w0 "$t/e"; echo')
        if stop_on_error and i < len(steps) - 1:
            lines.append('[ "$r" -eq 0 ] || exit 0')
    return "\n".join(lines) + "\n"


def parse_batch(out: str) -> list[Result]:
    """:func:`batch_script`'s output → one :class:`Result` per step that ran."""
    results: list[Result] = []
    lines = out.split("\n")
    i = 0
    while i < len(lines):
        m = FRAME_LINE.match(lines[i])
        if m is None:
            i += 1
            continue
        # a complete frame's stderr line ends with a newline: an element follows it
        if int(m.group(1)) != len(results) or i + 3 >= len(lines):
            break  # out of order or cut short: the caller sees fewer results than steps
        try:
            stdout, stderr = (base64.b64decode(b, validate=True).decode(errors="replace") for b in lines[i + 1:i + 3])
        except binascii.Error:
            break
        results.append(Result(int(m.group(2)), stdout, stderr))
        i += 3
    return results


def write_script(files: Iterable[tuple[str, str, str]]) -> str:
    """``sh -s`` script writing each (path, text, mode): parent directories first (the default umask,
    as ``mkdir -p`` always made them), then each file private until it is complete and renamed."""
    files = list(files)
    lines = ["set -e"]
    lines += [f"mkdir -p -- {shlex.quote(d)}" for d in dict.fromkeys(posixpath.dirname(p) or "." for p, _, _ in files)]
    lines.append("umask 077")
    for path, text, mode in files:
        tmp = shlex.quote(path + ".pvtmp")
        lines.append(f"base64 -d > {tmp} " + _heredoc(text.encode()).rstrip("\n"))
        lines.append(f"chmod {mode} {tmp}")
        lines.append(f"mv -f -- {tmp} {shlex.quote(path)}")
    return "\n".join(lines) + "\n"


@dataclass
class SSH:
    """One authenticated SSH transport to a device."""

    address: str
    usernames: tuple[str, ...]
    key_file: str | None = None
    password: str | None = None
    production: bool = False
    timeout: float = 15.0
    user: str = ""
    _client: paramiko.SSHClient | None = field(default=None, repr=False)

    def open(self) -> "SSH":
        guard.check(self.address, production=self.production, purpose="connect to")
        last: Exception | None = None
        for user in self.usernames:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # lab nodes get new keys each boot
            try:
                client.connect(self.address, username=user, key_filename=self.key_file, password=self.password,
                               timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                               allow_agent=False, look_for_keys=False)
            except paramiko.AuthenticationException as exc:
                last = exc
                client.close()
                continue
            except (OSError, socket.timeout, paramiko.SSHException) as exc:
                client.close()
                raise ConnectError(f"{self.address}: unreachable over SSH ({exc})") from None
            self._client, self.user = client, user
            return self
        raise ConnectError(f"{self.address}: authentication failed as {', '.join(self.usernames)} ({last})")

    def fresh(self) -> "SSH":
        """A new, independent connection with the same credentials."""
        return replace(self, usernames=(self.user,) if self.user else self.usernames, user="", _client=None).open()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def alive(self) -> bool:
        """Is the transport still up (a refused channel does not mean the connection is gone)?"""
        transport = self._client.get_transport() if self._client is not None else None
        return bool(transport and transport.is_active())

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        """Run a command (as root: through sudo when logged in as someone else)."""
        if self._client is None:
            raise DriverError("not connected")
        if self.user and self.user != "root":
            command = "sudo -n sh -c " + shlex.quote(command)
        try:
            stdin, stdout, stderr = self._client.exec_command(command, timeout=timeout)
        except (OSError, socket.timeout, paramiko.SSHException) as exc:
            if isinstance(exc, paramiko.SSHException) and self.alive():  # sshd said no to this channel only
                raise ChannelRefused(f"{self.address}: the server refused a new channel ({exc})") from None
            raise ConnectError(f"{self.address}: connection lost before `{command[:60]}` ({exc})") from None
        channel = stdout.channel
        try:
            if input is not None:
                stdin.write(input)
            channel.shutdown_write()
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            # -1: the channel closed without an exit status (the command did not finish)
            rc = channel.recv_exit_status()
        except (OSError, socket.timeout, paramiko.SSHException) as exc:
            raise ConnectError(f"{self.address}: connection lost during `{command[:60]}` ({exc})") from None
        finally:
            channel.close()  # frees the server's session slot now, not at garbage collection
        return Result(rc, out, err)

    def run_many(self, steps: Sequence[Step], stop_on_error: bool = False, timeout: float = 60) -> list[Result]:
        """Run ``steps`` in one exec (see :func:`batch_script`); one Result per step that ran
        (with ``stop_on_error``, none after the first that failed)."""
        if not steps:
            return []
        res = self.run("sh -s", input=batch_script(steps, stop_on_error), timeout=timeout)
        results = parse_batch(res.out)
        last_failed = bool(results) and results[-1].rc != 0
        if len(results) < len(steps) and not (stop_on_error and last_failed):
            if res.rc == -1:  # the channel closed without an exit status: the connection went away
                raise ConnectError(f"{self.address}: connection lost during a batch of {len(steps)} commands")
            raise DriverError(f"{self.address}: a batch of {len(steps)} commands ended after {len(results)} "
                              f"(exit {res.rc}): {res.err.strip()[-600:]}")
        return results

    def read_many(self, paths: Sequence[str]) -> dict[str, str | None]:
        """Each file's content, None where it cannot be read, in one exec."""
        results = self.run_many([f"cat -- {shlex.quote(p)}" for p in paths])
        return {p: r.out if r.rc == 0 else None for p, r in zip(paths, results)}

    def write_many(self, files: Sequence[tuple[str, str, str]]) -> None:
        """Write each (path, text, mode) in one exec; each file is renamed into place when complete."""
        if files:
            self.run("sh -s", input=write_script(files)).check(f"write {', '.join(p for p, _, _ in files)}")

    def read(self, path: str) -> str | None:
        return self.read_many([path])[path]

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.write_many([(path, text, mode)])


def lab_key() -> str | None:
    """The lab's SSH key, when this machine runs a lab."""
    from provnet.lab.paths import state_root

    key = state_root() / "ssh" / "id_ed25519"
    return str(key) if Path(key).exists() else None
