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
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from provnet.drivers import models
from provnet.drivers.base import CommitError, DriverError, MergeConfigException, NetworkDriver

if TYPE_CHECKING:
    from provnet.drivers.ssh import SSH

# provnet.drivers.ssh (paramiko) is imported where a session opens: the renderer reads
# bundles through this module and must not pay for an SSH stack.

STATE = "/var/lib/provnet"
REVERT_UNIT = "provnet-revert"
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

    @classmethod
    def build_candidate(cls, sections: Mapping[str, str]) -> str:
        return make_bundle(sections)

    def __init__(self, hostname: str, username: str, password: str | None = None, timeout: int = 60,
                 optional_args: dict[str, Any] | None = None) -> None:
        super().__init__(hostname, username, password, timeout, optional_args)
        self.ssh: SSH | None = None
        self.candidate: dict[str, str] | None = None

    # -------------------------------------------------------------- connection

    def open(self) -> None:
        from provnet.drivers.ssh import SSH, lab_key

        users = (self.username, *self.optional_args.get("fallback_users", ()))
        self.ssh = SSH(self.hostname, tuple(dict.fromkeys(users)), self.optional_args.get("key_file") or lab_key(),
                       self.password, bool(self.optional_args.get("production")), timeout=min(self.timeout, 15)).open()

    def close(self) -> None:
        if self.ssh is not None:
            self.ssh.close()
            self.ssh = None

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

    def validate(self, staged: dict[str, str]) -> None:
        """Check the staged candidate on the device before anything is applied."""

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
        names = names if names is not None else self.owned()
        return {name: self.s.read(self.path_of(name)) for name in names}

    def file_diff(self) -> str:
        self._need_candidate()
        assert self.candidate is not None
        running = self.running_files(sorted(set(self.candidate) | set(self.owned())))
        out = []
        for name in sorted(running):
            old, new = running[name] or "", self.candidate.get(name, "")
            if old != new:
                out.append(unified(old, new, name))
        return "".join(out)

    def compare_config(self) -> str:
        self._need_candidate()
        return self.platform_diff()

    def _need_candidate(self) -> None:
        if self.candidate is None:
            raise DriverError("no candidate loaded")

    def _stage(self) -> dict[str, str]:
        """Upload the candidate next to the live files; return name → staged path."""
        assert self.candidate is not None
        staged = {}
        for name, text in self.candidate.items():
            path = f"{STATE}/candidate/{self.platform}/{name}"
            self.s.write(path, text, mode="0600")
            staged[name] = path
        return staged

    def _snapshot_script(self) -> str:
        """revert.sh: put back every owned file (or remove it) and the service state, then re-apply."""
        names = sorted(set(self.owned()) | set(self.candidate or {}))
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

    def revert_apply(self) -> str:
        """Shell that makes restored files live again (default: the apply script)."""
        return self.apply_script()

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        from provnet.drivers.ssh import ConnectError

        self._need_candidate()
        assert self.candidate is not None
        staged = self._stage()
        self.validate(staged)
        base = f"{STATE}/rollback/{self.platform}"
        snap = [f"rm -rf {base} && mkdir -p {base}/files"]
        for name in sorted(set(self.owned()) | set(self.candidate)):
            live = shlex.quote(self.path_of(name))
            snap.append(f"if [ -e {live} ]; then cp -p {live} {base}/files/{shlex.quote(name)}; fi")
        for svc in self.services:
            snap.append(f"systemctl is-enabled {svc} > {base}/{svc}.enabled 2>/dev/null || true")
        snap.extend(self.snapshot_live(f"{base}/files"))
        self.s.run(" && ".join(snap) + " ; true").check("snapshot")
        self.s.write(f"{base}/revert.sh", self._snapshot_script(), mode="0700")
        unit = apply_unit(self.platform)
        if revert_in:
            self.s.run(f"systemctl stop {REVERT_UNIT}-{self.platform}.timer 2>/dev/null; "
                       f"systemctl reset-failed {REVERT_UNIT}-{self.platform} 2>/dev/null; "
                       f"systemd-run --quiet --unit={REVERT_UNIT}-{self.platform} --on-active={int(revert_in)} "
                       f"/bin/sh {base}/revert.sh && touch {base}/pending").check("arm the revert")
        install = [f"install -D -m {self.mode_of(n)} {shlex.quote(p)} {shlex.quote(self.path_of(n))}"
                   for n, p in staged.items()]
        script = "set -e\n" + "\n".join(install) + "\n" + self.remove_stale() + self.apply_script()
        self.s.write(f"{STATE}/candidate/{self.platform}/apply.sh", script, mode="0700")
        try:
            self.s.run(f"systemd-run --quiet --collect --unit={unit} --property=Type=oneshot "
                       f"--property=RemainAfterExit=yes /bin/sh {STATE}/candidate/{self.platform}/apply.sh"
                       ).check("start the apply unit")
            result = self._wait_unit(unit)
        except ConnectError as exc:
            if revert_in:
                raise CommitError(f"{self.hostname}: connection lost while applying ({exc}); the device reverts "
                                  f"by itself in {revert_in} s unless confirmed") from None
            raise
        if result != "success":
            log = self.s.run(f"journalctl -u {unit} --no-pager -n 20 -o cat").out.strip()
            self.s.run(f"systemctl stop {unit}; /bin/sh {base}/revert.sh; "
                       f"systemctl stop {REVERT_UNIT}-{self.platform}.timer 2>/dev/null; true")
            raise CommitError(f"{self.hostname}: applying {self.platform} failed and was rolled back: {log[-800:]}")
        self.s.run(f"systemctl stop {unit} 2>/dev/null; logger -t provnet "
                   f"{shlex.quote(f'{self.platform} commit: {message}')}")
        self.after_commit()
        if not revert_in:
            self.s.run(f"rm -f {base}/pending")

    def snapshot_live(self, directory: str) -> list[str]:
        """Shell that overwrites file snapshots with the *live* state (what a backup shows)."""
        return []

    def after_commit(self) -> None:
        """Checks after the apply (e.g. FRR's second --test must be empty)."""

    def mode_of(self, name: str) -> str:
        return "0644"

    def remove_stale(self) -> str:
        return ""

    def _wait_unit(self, unit: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self.s.run(f"systemctl show -p ActiveState -p Result {unit}")
            props = dict(line.split("=", 1) for line in res.out.splitlines() if "=" in line)
            state, result = props.get("ActiveState", ""), props.get("Result", "")
            if state in ("active", "failed", "inactive") and result:
                return "success" if state == "active" and result == "success" else f"{state}/{result}"
            time.sleep(0.2)
        raise CommitError(f"{self.hostname}: {unit} did not finish within {timeout} s")

    def confirm_commit(self) -> None:
        if not self.has_pending_commit():
            raise DriverError(f"{self.hostname}: no pending commit to confirm")
        fresh = self.s.fresh()  # raises ConnectError when the change cut us off
        try:
            fresh.run(f"systemctl stop {REVERT_UNIT}-{self.platform}.timer {REVERT_UNIT}-{self.platform}.service "
                      f"2>/dev/null; rm -f {STATE}/rollback/{self.platform}/pending; true").check("confirm")
        finally:
            fresh.close()

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

    def live_sections(self, files: dict[str, str]) -> dict[str, str]:
        """The running config by section; platforms whose live state differs from their files override it."""
        return files

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> models.ConfigDict:
        files = {k: v for k, v in self.running_files().items() if v is not None}
        return {"running": make_bundle(self.live_sections(dict(files))),
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
