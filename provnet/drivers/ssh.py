"""A plain SSH exec session (paramiko) for the Linux platforms: no shell, no screen scraping.

Every connection passes the address guard first. Each ``exec`` is its own channel on
one transport; ``fresh()`` opens a brand-new transport, which confirmation needs
(a reused session survives a rule that blocks new connections).
"""

from __future__ import annotations

import shlex
import socket
from dataclasses import dataclass, field
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
        return SSH(self.address, (self.user,) if self.user else self.usernames, self.key_file, self.password,
                   self.production, self.timeout).open()

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

    def read(self, path: str) -> str | None:
        res = self.run(f"cat {shlex.quote(path)} 2>/dev/null")
        return res.out if res.rc == 0 else None

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        q = shlex.quote(path)
        self.run(f"mkdir -p $(dirname {q}) && umask 077 && cat > {q}.pvtmp && chmod {mode} {q}.pvtmp && "
                 f"mv {q}.pvtmp {q}", input=text).check(f"write {path}")


def lab_key() -> str | None:
    """The lab's SSH key, when this machine runs a lab."""
    from provnet.lab.paths import state_root

    key = state_root() / "ssh" / "id_ed25519"
    return str(key) if Path(key).exists() else None
