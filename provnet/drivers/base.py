"""NAPALM's ``NetworkDriver`` interface, without importing NAPALM.

``import napalm`` loads every vendor driver (~0.4 s, 1,000 modules here); the engine
runs hundreds of hosts in one process and Ansible runs one process per host, so
provnet's own drivers implement the same methods and semantics on this light base.
"""

from __future__ import annotations

from typing import Any


class DriverError(Exception):
    """A driver operation failed; the message says what and where."""


class CommitError(DriverError):
    """The candidate could not be committed; the device keeps its previous config."""


class MergeConfigException(DriverError):
    pass


class ReplaceConfigException(DriverError):
    pass


class NetworkDriver:
    """The subset of ``napalm.base.NetworkDriver`` provnet relies on (same names, same meaning)."""

    platform = "base"

    def __init__(self, hostname: str, username: str, password: str | None = None, timeout: int = 60,
                 optional_args: dict[str, Any] | None = None) -> None:
        self.hostname = hostname
        self.username = username
        self.password = password
        self.timeout = timeout
        self.optional_args = optional_args or {}

    def __enter__(self) -> "NetworkDriver":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        raise NotImplementedError

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        raise NotImplementedError

    def compare_config(self) -> str:
        raise NotImplementedError

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        raise NotImplementedError

    def confirm_commit(self) -> None:
        raise NotImplementedError

    def has_pending_commit(self) -> bool:
        raise NotImplementedError

    def discard_config(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def get_facts(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_interfaces(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_interfaces_ip(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_bgp_neighbors(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> dict[str, str]:
        raise NotImplementedError

    @staticmethod
    def _file(filename: str | None, config: str | None) -> str:
        if config is not None:
            return config
        if filename is None:
            raise DriverError("give a filename or a config")
        with open(filename, encoding="utf-8") as fh:
            return fh.read()
