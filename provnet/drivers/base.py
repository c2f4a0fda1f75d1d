"""NAPALM's ``NetworkDriver`` interface, without importing NAPALM.

``import napalm`` loads every vendor driver (~0.4 s, 1,000 modules here); the engine
runs hundreds of hosts in one process and Ansible runs one process per host, so
provnet's own drivers implement the same methods and semantics on this light base.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from provnet.drivers import models


class DriverError(Exception):
    """A driver operation failed; the message says what and where."""


class CommitError(DriverError):
    """The candidate could not be committed; the device keeps its previous config."""


class MergeConfigException(DriverError):
    pass


class ReplaceConfigException(DriverError):
    pass


class PlatformTraits:
    """What the engine asks of a platform, declared on its driver class (defaults: a NAPALM driver).

    A mixin of attributes only, so that an adapter over a NAPALM driver class
    (:mod:`provnet.drivers.cisco_ios`) declares them without shadowing any NAPALM method.
    """

    #: how the engine logs in: ``"password"`` (the vault's admin password) or ``"key"``
    #: (provnet's SSH key; a lab node still at factory default also takes root)
    login: ClassVar[Literal["password", "key"]] = "password"
    #: ``commit_config(revert_in=…)`` arms a revert on the device
    supports_commit_confirm: ClassVar[bool] = True
    #: ``confirm_commit()`` opens its own fresh connection; otherwise the engine opens a new driver to confirm.
    #: Such a driver may offer ``open_fresh()``: one new connection that ``confirm_commit(connection)`` of
    #: every platform of the device takes, after all of their commits
    confirms_on_fresh_connection: ClassVar[bool] = False
    #: the drivers of one device can share one connection: ``open()`` adopts ``optional_args["session"]``
    #: (an open session to the same address), ``share()`` hands a driver's own session to the caller, and
    #: ``close()`` leaves a session the driver does not own
    shares_session: ClassVar[bool] = False
    #: ``commit_config(message=…)`` takes a message (else the audit record and the device's own log carry it)
    accepts_commit_message: ClassVar[bool] = True

    @classmethod
    def build_candidate(cls, sections: Mapping[str, str]) -> str:
        """The text ``load_replace_candidate`` takes, from the rendered sections (name → text)."""
        return "".join(sections[name] for name in sorted(sections))


class NetworkDriver(PlatformTraits):
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

    def get_facts(self) -> models.Facts:
        raise NotImplementedError

    def get_interfaces(self) -> models.Interfaces:
        raise NotImplementedError

    def get_interfaces_ip(self) -> models.InterfacesIP:
        raise NotImplementedError

    def get_bgp_neighbors(self) -> models.BGPNeighbors:
        raise NotImplementedError

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> models.ConfigDict:
        raise NotImplementedError

    @staticmethod
    def _file(filename: str | None, config: str | None) -> str:
        if config is not None:
            return config
        if filename is None:
            raise DriverError("give a filename or a config")
        with open(filename, encoding="utf-8") as fh:
            return fh.read()
