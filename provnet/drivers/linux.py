"""The common half of provnet's Linux drivers: files the driver owns, commit with revert.

A candidate is a *bundle*: ``### file: <section>`` blocks, one per config file (the
renderer's sections). This module is the one home of that format: :func:`make_bundle`
writes it, :func:`parse_bundle` reads it (the renderer too, for templates that emit
several files). ``commit_config(revert_in=N)`` follows one protocol on every
Linux platform:

1. snapshot the running files and service state into ``/var/lib/provnet/rollback/``
   on the device, with a ``revert.sh`` that restores them;
2. arm the revert **on the device** before touching anything:
   ``systemd-run --on-active=N`` runs ``revert.sh`` unless confirmed;
3. apply detached from the SSH session (``systemd-run`` unit), so a change that cuts
   the session still completes — and is still reverted;
4. ``confirm_commit()`` opens a **fresh** connection (a reused one could survive a
   rule that blocks new ones) and only then disarms the revert.

Each step is one SSH command (:meth:`provnet.drivers.ssh.SSH.run_many`): the candidate,
``apply.sh`` and ``revert.sh`` are uploaded in one write; the check (``vtysh -C``,
``nft -c``), the snapshot (which moves the staged ``revert.sh`` into place) and the arming
of the revert in one; the apply waits for its unit (``systemd-run --wait``) instead of
polling it. The drivers of one device may share one session (``shares_session``):
``open()`` adopts ``optional_args["session"]`` and ``close()`` leaves a session it did
not open; ``confirm_commit(connection)`` confirms over a fresh connection the caller
opened once for all of the device's platforms after their commits (:meth:`LinuxDriver.open_fresh`).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from provnet.drivers import models
from provnet.drivers.base import CommitError, DriverError, MergeConfigException, NetworkDriver

if TYPE_CHECKING:
    from provnet.drivers.ssh import SSH, Result, Step

# provnet.drivers.ssh (paramiko) is imported where a session opens: the renderer reads
# bundles through this module and must not pay for an SSH stack.

STATE = "/var/lib/provnet"
REVERT_UNIT = "provnet-revert"
APPLY_TIMEOUT = 120  # seconds an apply unit may run before the commit reports it unfinished
MARKER = "### file: "
MARK = re.compile(r"^### file: (\S+)\s*$", re.M)


def apply_unit(platform: str) -> str:
    """A unit name of its own for each apply: two runs in one second once clashed on ``provnet-<platform>-<epoch>``."""
    return f"provnet-{platform}-{int(time.time())}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def is_bundle(text: str) -> bool:
    """Whether ``text`` is a bundle (starts with a ``### file:`` line), not one plain file."""
    return text.startswith(MARKER)


def parse_bundle(text: str) -> dict[str, str]:
    """``### file: name`` blocks → {name: content}."""
    parts = MARK.split(text)
    if parts[0].strip():
        raise DriverError("candidate must start with '### file: <name>' (a provnet config bundle)")
    return {parts[i]: parts[i + 1].lstrip("\n") if i + 1 < len(parts) else "" for i in range(1, len(parts), 2)}


def make_bundle(sections: Mapping[str, str]) -> str:
    """{name: content} → ``### file: name`` blocks, in name order."""
    return "".join(f"{MARKER}{name}\n{text}" for name, text in sorted(sections.items()))


def unified(old: str, new: str, name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        f"running/{name}", f"intended/{name}"))


class LinuxDriver(NetworkDriver):
    """Base for frr, nftables, linux_switch and baresip over a plain SSH exec session."""

    platform = "linux"
    services: tuple[str, ...] = ()
    login: ClassVar[Literal["password", "key"]] = "key"
    confirms_on_fresh_connection: ClassVar[bool] = True  # see confirm_commit
    shares_session: ClassVar[bool] = True  # see open

    @classmethod
    def build_candidate(cls, sections: Mapping[str, str]) -> str:
        return make_bundle(sections)

    def __init__(self, hostname: str, username: str, password: str | None = None, timeout: int = 60,
                 optional_args: dict[str, Any] | None = None) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.ssh: SSH | None = None
        self.owns_ssh: bool = False
        self.candidate: dict[str, str] | None = None

    # -------------------------------------------------------------- connection

    def open(self) -> None:
        """Connect; ``optional_args["session"]``, an open session to the same address, is adopted instead."""
        from provnet.drivers.ssh import SSH, lab_key

        shared = self.optional_args.get("session")
        if shared is not None and shared.address == self.hostname and shared.alive():
            self.ssh, self.owns_ssh = shared, False
            return
        users = (self.username, *self.optional_args.get("fallback_users", ()))
        self.ssh = SSH(self.hostname, tuple(dict.fromkeys(users)), self.optional_args.get("key_file") or lab_key(),
                       self.password, bool(self.optional_args.get("production")), timeout=min(self.timeout, 15)).open()
        self.owns_ssh = True

    def close(self) -> None:
        """Drop the session; close it only if this driver opened it and did not hand it over."""
        if self.ssh is not None and self.owns_ssh:
            self.ssh.close()
        self.ssh, self.owns_ssh = None, False

    def share(self) -> SSH:
        """Hand this driver's session to the caller, who closes it (this driver's close() then leaves it)."""
        self.owns_ssh = False
        return self.s

    def open_fresh(self) -> SSH:
        """A new connection to this driver's address (raises ConnectError when a change cut management off)."""
        return self.s.fresh()

    @property
    def s(self) -> SSH:
        if self.ssh is None:
            raise DriverError("not connected: call open() first")
        return self.ssh

    # -------------------------------------------------------------- what each platform defines

    def path_of(self, name: str) -> str:
        """Where a section lives on the device."""
        raise NotImplementedError

    def owned(self) -> list[str]:
        """Section names this driver manages on the device right now (for stale-file removal)."""
        return list(self.candidate or {})

    def validate_command(self, staged: dict[str, str]) -> str:
        """Shell that checks the staged candidate before anything is applied ('' for none); non-zero: rejected."""
        return ""

    def rejected(self, res: Result) -> CommitError:
        """The error for a candidate :meth:`validate_command` rejected."""
        return CommitError(f"{self.hostname}: {self.platform} rejects the candidate: "
                           f"{(res.err or res.out).strip()[-800:]}; nothing was applied")

    def apply_script(self) -> str:
        """Shell run (detached) after the files are in place, to make them live."""
        raise NotImplementedError

    def platform_diff(self) -> str:
        """Diff of the live state against the candidate; default: file by file."""
        return self.file_diff()

    # -------------------------------------------------------------- NAPALM interface

    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self.candidate = parse_bundle(self._file(filename, config))

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        raise MergeConfigException(f"{self.platform}: merge is not supported; render the whole intended config "
                                   "and use load_replace_candidate")

    def discard_config(self) -> None:
        self.candidate = None

    def running_files(self, names: list[str] | None = None) -> dict[str, str | None]:
        return self.read_with(names if names is not None else self.owned())[0]

    def read_with(self, names: list[str], steps: Sequence[Step] = (),
                  timeout: float = 60) -> tuple[dict[str, str | None], list[Result]]:
        """The named sections' files (None: absent) and the results of ``steps``, in one command."""
        reads: list[Step] = [f"cat -- {shlex.quote(self.path_of(n))}" for n in names]
        results = self.s.run_many([*reads, *steps], timeout=timeout)
        files = {n: r.out if r.rc == 0 else None for n, r in zip(names, results)}
        return files, results[len(names):]

    def file_diff(self, running: dict[str, str | None] | None = None) -> str:
        """Section by section, the running files (read now unless given) against the candidate."""
        self._need_candidate()
        assert self.candidate is not None
        if running is None:
            running = self.running_files(self.diff_names())
        out = []
        for name in sorted(running):
            old, new = running[name] or "", self.candidate.get(name, "")
            if old != new:
                out.append(unified(old, new, name))
        return "".join(out)

    def diff_names(self) -> list[str]:
        """The sections a file diff compares: the candidate's and the ones the driver owns."""
        return sorted(set(self.candidate or {}) | set(self.owned()))

    def compare_config(self) -> str:
        self._need_candidate()
        return self.platform_diff()

    def _need_candidate(self) -> None:
        if self.candidate is None:
            raise DriverError("no candidate loaded")

    def _stage(self, names: list[str]) -> dict[str, str]:
        """Upload the candidate next to the live files, with its apply.sh and revert.sh, in one
        command; return name → staged path."""
        assert self.candidate is not None
        directory = f"{STATE}/candidate/{self.platform}"
        staged = {name: f"{directory}/{name}" for name in self.candidate}
        install = [f"install -D -m {self.mode_of(n)} {shlex.quote(p)} {shlex.quote(self.path_of(n))}"
                   for n, p in staged.items()]
        apply = "set -e\n" + "\n".join(install) + "\n" + self.remove_stale() + self.apply_script()
        self.s.write_many([*((staged[n], text, "0600") for n, text in self.candidate.items()),
                           (f"{directory}/apply.sh", apply, "0700"),
                           (f"{directory}/revert.sh", self._snapshot_script(names), "0700")])
        return staged

    def _snapshot_script(self, names: list[str]) -> str:
        """revert.sh: put back every owned file (or remove it) and the service state, then re-apply."""
        lines = ["#!/bin/sh", f"# provnet revert for {self.platform}", "set +e"]
        for name in names:
            live, saved = self.path_of(name), f"{STATE}/rollback/{self.platform}/files/{name}"
            lines.append(f"if [ -e {shlex.quote(saved)} ]; then cp -p {shlex.quote(saved)} {shlex.quote(live)}; "
                         f"else rm -f {shlex.quote(live)}; fi")
        lines.append(self.revert_apply())
        for svc in self.services:
            lines.append(f"if [ \"$(cat {STATE}/rollback/{self.platform}/{svc}.enabled)\" != enabled ]; then "
                         f"systemctl disable -q {svc}; systemctl stop {svc}; fi")
        lines.append(f"rm -f {STATE}/rollback/{self.platform}/pending")
        lines.append(f"logger -t provnet 'revert of {self.platform} applied'")
        return "\n".join(lines) + "\n"

    def _snapshot_command(self, names: list[str]) -> str:
        """Snapshot the live files and service state, then put the staged revert.sh beside them:
        ``rm -rf`` of the old snapshot comes first, so revert.sh is moved in, never written before."""
        base = f"{STATE}/rollback/{self.platform}"
        core = [f"rm -rf {base}", f"mkdir -p {base}/files"]
        for name in names:
            live = shlex.quote(self.path_of(name))
            core.append(f"if [ -e {live} ]; then cp -p {live} {base}/files/{shlex.quote(name)}; fi")
        for svc in self.services:
            core.append(f"{{ systemctl is-enabled {svc} > {base}/{svc}.enabled 2>/dev/null || true; }}")
        core.append(f"mv -f {STATE}/candidate/{self.platform}/revert.sh {base}/revert.sh")
        # the live state refines the file copies where it can be read (a factory node may lack it)
        live = "".join(f"\n{{ {line}\n}} || true" for line in self.snapshot_live(f"{base}/files"))
        return "{ " + " && ".join(core) + "; } || exit 1" + live

    def _arm_command(self, revert_in: int) -> str:
        base = f"{STATE}/rollback/{self.platform}"
        return (f"systemctl stop {REVERT_UNIT}-{self.platform}.timer 2>/dev/null; "
                f"systemctl reset-failed {REVERT_UNIT}-{self.platform} 2>/dev/null; "
                f"systemd-run --quiet --unit={REVERT_UNIT}-{self.platform} --on-active={int(revert_in)} "
                f"/bin/sh {base}/revert.sh && touch {base}/pending")

    def revert_apply(self) -> str:
        """Shell that makes restored files live again (default: the apply script)."""
        return self.apply_script()

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        from provnet.drivers.ssh import ConnectError

        self._need_candidate()
        assert self.candidate is not None
        names = self.diff_names()
        staged = self._stage(names)
        base = f"{STATE}/rollback/{self.platform}"
        check = self.validate_command(staged)
        steps = [*([check] if check else []), self._snapshot_command(names),
                 *([self._arm_command(revert_in)] if revert_in else [])]
        results = self.s.run_many(steps, stop_on_error=True)
        if check:
            if results[0].rc != 0:
                raise self.rejected(results[0])
            results = results[1:]
        results[0].check("snapshot")
        if revert_in:
            results[1].check("arm the revert")
        unit = apply_unit(self.platform)
        # --wait: the unit still runs detached from this session (a change that cuts it completes, and reverts)
        apply = (f"timeout {APPLY_TIMEOUT} systemd-run --wait --collect --quiet --unit={unit} "
                 f"--property=Type=oneshot /bin/sh {STATE}/candidate/{self.platform}/apply.sh; r=$?\n"
                 f"[ $r -ne 0 ] || logger -t provnet {shlex.quote(f'{self.platform} commit: {message}')}\n"
                 "exit $r")
        try:
            done = self.s.run_many([apply, *self.after_commit_steps()], stop_on_error=True,
                                   timeout=APPLY_TIMEOUT + 90)
        except ConnectError as exc:
            if revert_in:
                raise CommitError(f"{self.hostname}: connection lost while applying ({exc}); the device reverts "
                                  f"by itself in {revert_in} s unless confirmed") from None
            raise
        if done[0].rc == 124:  # timeout(1): the unit goes on; an armed revert still undoes it unless confirmed
            raise CommitError(f"{self.hostname}: {unit} did not finish within {APPLY_TIMEOUT} s")
        if done[0].rc != 0:
            log = self.s.run_many([f"journalctl -u {unit} --no-pager -n 20 -o cat",
                                   f"/bin/sh {base}/revert.sh; systemctl stop {REVERT_UNIT}-{self.platform}.timer "
                                   "2>/dev/null; true"])[0].out.strip()
            log = log or done[0].err.strip()  # the unit never ran (systemd-run --wait needs the D-Bus system bus)
            raise CommitError(f"{self.hostname}: applying {self.platform} failed and was rolled back: {log[-800:]}")
        self.after_commit(done[1:])

    def snapshot_live(self, directory: str) -> list[str]:
        """Shell that overwrites file snapshots with the *live* state (what a backup shows)."""
        return []

    def after_commit_steps(self) -> list[Step]:
        """Commands run in the apply's own exec once it succeeded; their results go to :meth:`after_commit`."""
        return []

    def after_commit(self, checked: list[Result]) -> None:
        """Checks after the apply (e.g. FRR's second --test must be empty)."""

    def mode_of(self, name: str) -> str:
        return "0644"

    def remove_stale(self) -> str:
        return ""

    def confirm_commit(self, connection: SSH | None = None) -> None:
        """Disarm the revert over a fresh connection: ``connection``, one the caller opened after
        the commit (:meth:`open_fresh`), else a new one of its own."""
        fresh = connection if connection is not None else self.open_fresh()  # ConnectError: the change cut us off
        pending = f"{STATE}/rollback/{self.platform}/pending"
        try:
            res = fresh.run(f"test -e {pending} || exit 3; systemctl stop {REVERT_UNIT}-{self.platform}.timer "
                            f"{REVERT_UNIT}-{self.platform}.service 2>/dev/null; rm -f {pending}; true")
        finally:
            if connection is None:
                fresh.close()
        if res.rc == 3:
            raise DriverError(f"{self.hostname}: no pending commit to confirm")
        res.check("confirm")

    def has_pending_commit(self) -> bool:
        return self.s.run(f"test -e {STATE}/rollback/{self.platform}/pending").rc == 0

    def rollback(self) -> None:
        res = self.s.run(f"test -x {STATE}/rollback/{self.platform}/revert.sh || test -e "
                         f"{STATE}/rollback/{self.platform}/revert.sh")
        if res.rc != 0:
            raise DriverError(f"{self.hostname}: nothing to roll back ({self.platform} was never committed by provnet)")
        self.s.run(f"systemctl stop {REVERT_UNIT}-{self.platform}.timer 2>/dev/null; "
                   f"/bin/sh {STATE}/rollback/{self.platform}/revert.sh").check("rollback")

    # -------------------------------------------------------------- getters shared by Linux nodes

    def live_steps(self) -> list[Step]:
        """Commands whose results :meth:`live_sections` reads (run with the file reads, in one command)."""
        return []

    def live_sections(self, files: dict[str, str], live: list[Result]) -> dict[str, str]:
        """The running config by section; platforms whose live state differs from their files override it."""
        return files

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> models.ConfigDict:
        read, live = self.read_with(self.owned(), self.live_steps())
        files = {k: v for k, v in read.items() if v is not None}
        return {"running": make_bundle(self.live_sections(dict(files), live)),
                "candidate": make_bundle(self.candidate) if self.candidate else "", "startup": make_bundle(files)}

    def get_facts(self) -> models.Facts:
        out = self.s.run("hostname; cat /proc/uptime; uname -r; . /etc/os-release; echo $PRETTY_NAME; "
                         "ls /sys/class/net").out.splitlines()
        return {"hostname": out[0], "fqdn": out[0], "vendor": "Debian", "model": self.platform,
                "os_version": f"{out[3]} (kernel {out[2]})", "serial_number": "",
                "uptime": float(out[1].split()[0]), "interface_list": sorted(out[4:])}

    def get_interfaces(self) -> models.Interfaces:
        import json

        links = json.loads(self.s.run("ip -j -s link show").out)
        return {l["ifname"]: {"is_up": "UP" in l.get("flags", []) and l.get("operstate") != "DOWN",
                              "is_enabled": "UP" in l.get("flags", []), "description": l.get("ifalias", ""),
                              "last_flapped": -1.0, "speed": 0.0, "mtu": l.get("mtu", 0),
                              "mac_address": l.get("address", "")} for l in links}

    def get_interfaces_ip(self) -> models.InterfacesIP:
        import json

        out: dict[str, Any] = {}
        for l in json.loads(self.s.run("ip -j addr show").out):
            for a in l.get("addr_info", []):
                fam = "ipv4" if a["family"] == "inet" else "ipv6"
                out.setdefault(l["ifname"], {}).setdefault(fam, {})[a["local"]] = {"prefix_length": a["prefixlen"]}
        return out

    def get_bgp_neighbors(self) -> models.BGPNeighbors:
        return {"global": {"router_id": "", "peers": {}}}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
