"""FortiGate (FortiOS) driver on Netmiko (``device_type="fortinet"``), NAPALM-style.

The candidate is FortiOS CLI (``config … / edit … / set … / next / end``), as rendered
from ``templates/fortios/``. The driver owns the ``config`` tables the candidate names:

- ``compare_config`` flattens candidate and running config to path lines
  (``config firewall policy | edit 10 | set action accept``) and diffs them;
  a replace also lists, as removals, what the running config has in those tables
  and the candidate does not; a merge only adds and changes.
- ``commit_config`` sends the candidate (plus ``delete``/``unset`` for removals on a
  replace). ``revert_in`` uses FortiOS's own revert: ``cfg-save revert`` with
  ``cfg-revert-timeout`` is armed on the device before the change, so the FortiGate
  reloads its saved configuration unless ``confirm_commit`` (``execute cfg save``)
  arrives in time — over any connection, fresh or not.

Secrets: FortiOS shows passwords as ``ENC …``; the caller masks candidate secrets in
diffs. Parsers take text so they are tested on recorded output without a device.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from provnet.drivers import models
from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.netmiko_session import NetmikoDriver

Path = tuple[str, ...]


# ------------------------------------------------------------------ parsing

@dataclass
class Block:
    """A ``config`` table or an ``edit`` entry: its ``set`` values and children, in order."""

    sets: dict[str, str] = field(default_factory=dict)
    children: dict[str, "Block"] = field(default_factory=dict)


def parse_config(text: str) -> Block:
    """Parse FortiOS CLI into a tree keyed by ``config X`` / ``edit Y`` headers."""
    root = Block()
    stack: list[Block] = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0]
        if word in ("config", "edit"):
            key = _norm(line)
            parent = stack[-1]
            stack.append(parent.children.setdefault(key, Block()))
        elif word in ("next", "end"):
            if len(stack) > 1:
                stack.pop()
        elif word in ("set", "unset", "append"):
            parts = line.split(None, 2)
            if len(parts) >= 2:
                stack[-1].sets[parts[1]] = parts[2] if len(parts) > 2 else ""
    return root


def _norm(header: str) -> str:
    """``edit "port1"`` and ``edit port1`` are the same entry."""
    try:
        parts = shlex.split(header)
    except ValueError:
        parts = header.split()
    return parts[0] + " " + " ".join(f'"{p}"' if parts[0] == "edit" else p for p in parts[1:])


def flatten(block: Block, path: Path = ()) -> dict[Path, str]:
    """Every ``set`` as ``path + (key,) -> value``; an empty entry keeps its path alive."""
    out: dict[Path, str] = {}
    for key, value in block.sets.items():
        out[path + (f"set {key}",)] = value
    for name, child in block.children.items():
        sub = flatten(child, path + (name,))
        out.update(sub if sub else {path + (name,): ""})
    return out


def diff(candidate: str, running: str, replace: bool = True) -> str:
    """A readable diff (``+``/``-`` path lines) of candidate against running, tables the candidate owns."""
    cand, run = flatten(parse_config(candidate)), flatten(parse_config(running))
    owned = {p[0] for p in cand}
    lines: list[str] = []
    for path in sorted(set(cand) | set(run)):
        if path[0] not in owned:
            continue
        c, r = cand.get(path), run.get(path)
        if c == r:
            continue
        if r is not None and (c is not None or replace):
            lines.append(f"- {' | '.join(path)} {r}".rstrip())
        if c is not None:
            lines.append(f"+ {' | '.join(path)} {c}".rstrip())
    return "\n".join(lines)


def removals(candidate: str, running: str) -> list[str]:
    """CLI that deletes entries and unsets keys the candidate dropped (replace semantics)."""
    cand, run = parse_config(candidate), parse_config(running)
    out: list[str] = []

    def walk(c: Block, r: Block, headers: list[str]) -> None:
        for name, rchild in r.children.items():
            if name not in c.children:
                if name.startswith("edit ") and headers:
                    out.extend([*headers, f"delete {name[5:]}", *_closers(headers)])
                continue
            walk(c.children[name], rchild, headers + [name])
        for key in r.sets:
            if key not in c.sets and headers and headers[-1].startswith("edit "):
                out.extend([*headers, f"unset {key}", *_closers(headers)])

    for name, rchild in run.children.items():
        if name in cand.children:
            walk(cand.children[name], rchild, [name])
    return out


def _closers(headers: list[str]) -> list[str]:
    return ["next" if h.startswith("edit ") else "end" for h in reversed(headers)]


def parse_system_status(text: str) -> models.FactsDict:
    """``get system status`` → NAPALM facts."""
    kv = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            kv[k.strip()] = v.strip()
    version = kv.get("Version", "")
    model, _, os_version = version.partition(" ")
    uptime = parse_uptime(text)
    return {"vendor": "Fortinet", "model": model, "os_version": os_version,
            "serial_number": kv.get("Serial-Number", ""), "hostname": kv.get("Hostname", ""),
            "fqdn": kv.get("Hostname", ""), "uptime": uptime, "interface_list": []}


def parse_uptime(text: str) -> float:
    """``Uptime: 12 days,  3 hours,  41 minutes`` (``get system performance status``) → seconds."""
    m = re.search(r"Uptime:\s*(\d+) days?,\s*(\d+) hours?,\s*(\d+) minutes?", text)
    return float(int(m.group(1)) * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60) if m else 0.0


def parse_interfaces(text: str) -> dict[str, dict[str, Any]]:
    """``get system interface physical`` → {name: {is_up, ip, netmask, speed}}."""
    out: dict[str, dict[str, Any]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"\s*==\s*\[\s*(\S+?)\s*\]", line)
        if m and m.group(1) != "onboard":
            current = out.setdefault(m.group(1), {"is_up": False, "ip": "0.0.0.0", "netmask": "0.0.0.0",
                                                  "speed": 0})
            continue
        if current is None or ":" not in line:
            continue
        k, v = (s.strip() for s in line.split(":", 1))
        if k == "status":
            current["is_up"] = v == "up"
        elif k == "ip":
            ip, _, mask = v.partition(" ")
            current["ip"], current["netmask"] = ip, mask.strip() or "0.0.0.0"
        elif k == "speed":
            s = re.match(r"(\d+)Mbps", v)
            current["speed"] = int(s.group(1)) if s else 0
    return out


# ------------------------------------------------------------------ driver

class FortiosDriver(NetmikoDriver):
    """FortiOS over Netmiko. ``optional_args``: ``port``, ``production`` (the inventory's flag)."""

    platform = "fortios"
    device_type = "fortinet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: Any = None
        self.candidate: str | None = None
        self.replace = True
        self._pending = False
        self._backup: str | None = None

    def _send(self, command: str) -> str:
        if self.conn is None:
            raise DriverError(f"{self.platform} {self.hostname}: not open")
        return str(self.conn.send_command(command, read_timeout=self.timeout))

    # -- candidate
    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self.candidate, self.replace = self._file(filename, config), True

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self.candidate, self.replace = self._file(filename, config), False

    def discard_config(self) -> None:
        self.candidate = None

    def running(self) -> str:
        return self._send("show")

    def compare_config(self) -> str:
        if self.candidate is None:
            return ""
        return diff(self.candidate, self.running(), self.replace)

    def commit_lines(self, running: str) -> list[str]:
        """What commit sends: removals (replace only), then the candidate."""
        assert self.candidate is not None
        body = [l.strip() for l in self.candidate.splitlines() if l.strip() and not l.strip().startswith("#")]
        return (removals(self.candidate, running) if self.replace else []) + body

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if self.candidate is None:
            raise CommitError(f"{self.platform} {self.hostname}: no candidate loaded")
        if self._pending:
            raise CommitError(f"{self.platform} {self.hostname}: a commit is pending confirmation")
        running = self.running()
        self._backup = running
        lines = self.commit_lines(running)
        if revert_in is not None:
            # armed on the device first: unsaved changes are reverted by the FortiGate itself
            self.conn.send_config_set(["config system global", "set cfg-save revert",
                                       f"set cfg-revert-timeout {int(revert_in)}", "end"], cmd_verify=False)
        out = str(self.conn.send_config_set(lines, cmd_verify=False, read_timeout=self.timeout))
        errors = [l for l in out.splitlines() if re.search(r"Command fail|entry not found|parse error|"
                                                           r"value parse error|Unknown action", l)]
        if errors:
            if revert_in is not None:
                self._send("execute cfg reload")
            raise CommitError(f"{self.platform} {self.hostname}: the device rejected the candidate: "
                              + "; ".join(errors[:5]))
        self._pending = revert_in is not None
        self.candidate = None

    def has_pending_commit(self) -> bool:
        """This session's commit awaiting confirmation, or one the device holds (``cfg-save revert``),
        so that a fresh connection can confirm what an earlier one committed."""
        if self._pending:
            return True
        return bool(re.search(r"^\s*cfg-save\s*:\s*revert\s*$", self._send("get system global"), re.M))

    def confirm_commit(self) -> None:
        if not self.has_pending_commit():
            raise CommitError(f"{self.platform} {self.hostname}: no commit to confirm")
        self._send("execute cfg save")
        self.conn.send_config_set(["config system global", "set cfg-save automatic", "end"], cmd_verify=False)
        self._pending = False

    def rollback(self) -> None:
        if self._pending:
            self._send("execute cfg reload")
            self._pending = False
            return
        if self._backup is None:
            raise DriverError(f"{self.platform} {self.hostname}: nothing to roll back to in this session")
        self.load_replace_candidate(config=self._backup)
        self.commit_config()

    # -- getters
    def get_facts(self) -> models.Facts:
        facts = parse_system_status(self._send("get system status"))
        facts["uptime"] = parse_uptime(self._send("get system performance status"))
        facts["interface_list"] = sorted(parse_interfaces(self._send("get system interface physical")))
        return facts

    def get_interfaces(self) -> models.Interfaces:
        return {name: {"is_up": i["is_up"], "is_enabled": True, "description": "", "speed": float(i["speed"]),
                       "mtu": 1500, "mac_address": "", "last_flapped": -1.0}
                for name, i in parse_interfaces(self._send("get system interface physical")).items()}

    def get_interfaces_ip(self) -> models.InterfacesIP:
        out: models.InterfacesIP = {}
        for name, i in parse_interfaces(self._send("get system interface physical")).items():
            if i["ip"] != "0.0.0.0":
                bits = sum(bin(int(o)).count("1") for o in i["netmask"].split("."))
                out[name] = {"ipv4": {i["ip"]: {"prefix_length": bits}}}
        return out

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> models.ConfigDict:
        text = self._send("show full-configuration" if full else "show")
        if sanitized:
            text = re.sub(r"(set (?:password|passwd|auth-pwd|priv-pwd|psksecret)) \S.*", r"\1 <removed>", text)
        return {"running": text if retrieve in ("all", "running") else "",
                "startup": text if retrieve in ("all", "startup") else "", "candidate": self.candidate or ""}
