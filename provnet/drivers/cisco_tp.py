"""Cisco TelePresence endpoint (CE software) driver on Netmiko (``device_type="cisco_tp"``).

The endpoint's configuration is a flat set of ``xConfiguration <path>: <value>`` lines,
as rendered from ``templates/cisco_tp/``; the device shows them as ``*c xConfiguration …``.

- ``compare_config``: candidate settings against ``xConfiguration`` output, key by key
  (``-``/``+`` lines). Write-only settings (passwords: the endpoint never shows them) are
  not compared; they are sent with every commit. A replace and a merge differ only in
  what is reported: settings the candidate does not name keep their value on the device.
- ``commit_config``: one ``xConfiguration`` command per changed setting; any ``ERROR``
  aborts and names the line. The endpoint has no commit-confirm of its own, so
  ``revert_in`` is refused (``NotImplementedError``), as NAPALM drivers do; ``rollback``
  re-applies the values the last commit replaced.
- ``get_sip_registration`` (``xStatus SIP Registration``), ``get_calls`` (``xStatus Call``),
  ``dial`` (``xCommand Dial Number: …``), ``disconnect`` (``xCommand Call Disconnect``).

Parsers take text, so they are tested on recorded output without a device.
"""

from __future__ import annotations

import re
from typing import Any

from provnet.drivers import models
from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.netmiko_session import NetmikoDriver

WRITE_ONLY = re.compile(r"Password|Passphrase|Secret", re.IGNORECASE)
_LINE = re.compile(r"^\s*(?:\*c\s+)?xConfiguration\s+(?P<path>.+?):\s?(?P<value>.*?)\s*$")
_STATUS = re.compile(r"^\*s\s+(?P<path>.+?):\s?(?P<value>.*?)\s*$")
# Netmiko normalises line ends to "\n" before matching, so its own cisco_tp default
# ("\r\nOK\r\n") never matches: the driver always names what ends an answer.
ANSWER_END = r"(?:^|\n)(OK|ERROR|Command not recognized\.)\r?\n"
RESULT_END = r"(\*\* end|ERROR|Command not recognized\.)"  # an xCommand answers OK, then its *r block
_NUMBER = re.compile(r"^[A-Za-z0-9@._+:\-]{1,128}$")


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_xconfiguration(text: str) -> dict[str, str]:
    """``xConfiguration`` lines (rendered or as the device shows them) → {path: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group("path")] = _unquote(m.group("value"))
    return out


def parse_status(text: str) -> dict[str, str]:
    """``*s`` lines of an ``xStatus`` answer → {path: value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _STATUS.match(line.strip())
        if m:
            out[m.group("path")] = _unquote(m.group("value"))
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def parse_indexed(text: str, prefix: str) -> dict[int, dict[str, str]]:
    """``*s <prefix> <n> Key: value`` → {n: {key: value}} (keys in snake_case)."""
    out: dict[int, dict[str, str]] = {}
    for path, value in parse_status(text).items():
        m = re.match(rf"{re.escape(prefix)}\s+(\d+)\s+(.+)$", path)
        if m:
            out.setdefault(int(m.group(1)), {})[_snake(m.group(2).replace(" ", ""))] = value
    return out


def parse_sip_registration(text: str) -> models.SipRegistrations:
    """``xStatus SIP Registration`` → [{id, status, reason, uri, registered}]."""
    regs: models.SipRegistrations = []
    for idx, r in sorted(parse_indexed(text, "SIP Registration").items()):
        regs.append({"id": idx, "status": r.get("status", ""), "reason": r.get("reason", ""),
                     "uri": r.get("uri", ""), "registered": r.get("status") == "Registered"})
    return regs


def parse_calls(text: str) -> models.Calls:
    """``xStatus Call`` → {call id: {status, remote_number, direction, display_name, protocol, duration, …}}."""
    calls: dict[int, Any] = {}
    for idx, c in parse_indexed(text, "Call").items():
        call: dict[str, Any] = dict(c)
        if "duration" in call:
            try:
                call["duration"] = int(call["duration"])
            except ValueError:
                pass
        calls[idx] = call
    return calls


def parse_command_result(text: str) -> dict[str, Any]:
    """An ``xCommand`` answer (``*r <Name>Result (status=OK):`` + indented keys) → dict; raises on error."""
    m = re.search(r"^\*r\s+(\w+?)(?:Result)?\s+\(status=(\w+)\):", text, re.MULTILINE)
    if m is None:
        if re.search(r"^(ERROR|Command not recognized\.)", text, re.MULTILINE):
            raise DriverError(f"endpoint refused the command: {text.strip()}")
        raise DriverError(f"unexpected answer: {text.strip()[:200]}")
    fields: dict[str, Any] = {"command": m.group(1), "status": m.group(2)}
    for line in text[m.end():].splitlines():
        if line.startswith("** end"):
            break
        if ":" in line:
            k, v = line.split(":", 1)
            v = _unquote(v.strip())
            fields[_snake(k.strip())] = int(v) if v.isdigit() else v
    if fields["status"] != "OK":
        raise DriverError(f"{fields['command']} failed: {fields.get('reason', fields)}")
    return fields


def diff_settings(candidate: dict[str, str], running: dict[str, str], replace: bool = True) -> str:
    """``-``/``+`` lines for the settings the candidate names (write-only ones are not compared)."""
    lines = []
    for path in sorted(candidate):
        if WRITE_ONLY.search(path):
            continue
        want, have = candidate[path], running.get(path)
        if want == have:
            continue
        if have is not None:
            lines.append(f'- xConfiguration {path}: "{have}"')
        lines.append(f'+ xConfiguration {path}: "{want}"')
    _ = replace  # settings not named keep their value on the device either way
    return "\n".join(lines)


def config_line(path: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise DriverError(f"xConfiguration {path}: value spans lines")
    return f'xConfiguration {path}: "{value}"'


class CiscoTpDriver(NetmikoDriver):
    """TelePresence endpoint over Netmiko. ``optional_args``: ``port``, ``production``."""

    platform = "cisco_tp"
    device_type = "cisco_tp"
    supports_commit_confirm = False  # the engine commits it without revert_in

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn: Any = None
        self.candidate: dict[str, str] | None = None
        self.candidate_text = ""
        self.replace = True
        self._backup: dict[str, str] = {}

    def _send(self, command: str, expect: str | None = None) -> str:
        if self.conn is None:
            raise DriverError(f"{self.platform} {self.hostname}: not open")
        return str(self.conn.send_command(command, expect_string=expect or ANSWER_END, read_timeout=self.timeout))

    # -- candidate
    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self.candidate_text = self._file(filename, config)
        self.candidate, self.replace = parse_xconfiguration(self.candidate_text), True

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self.load_replace_candidate(filename, config)
        self.replace = False

    def discard_config(self) -> None:
        self.candidate, self.candidate_text = None, ""

    def running(self) -> dict[str, str]:
        return parse_xconfiguration(self._send("xConfiguration"))

    def compare_config(self) -> str:
        if self.candidate is None:
            return ""
        return diff_settings(self.candidate, self.running(), self.replace)

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        if revert_in is not None:
            raise NotImplementedError(f"{self.platform}: the endpoint has no commit-confirm; "
                                      "commit without revert_in (its CE router keeps the management path)")
        if self.candidate is None:
            raise CommitError(f"{self.platform} {self.hostname}: no candidate loaded")
        running = self.running()
        changes = {p: v for p, v in self.candidate.items() if WRITE_ONLY.search(p) or running.get(p) != v}
        self._apply(changes)
        self._backup = {p: running[p] for p in changes if p in running and not WRITE_ONLY.search(p)}
        self.candidate = None

    def _apply(self, settings: dict[str, str]) -> None:
        for path, value in settings.items():
            line = config_line(path, value)
            out = self._send(line)
            if re.search(r"^(ERROR|Command not recognized\.)|status=Error", out, re.MULTILINE):
                shown = f"xConfiguration {path}: <secret>" if WRITE_ONLY.search(path) else line
                raise CommitError(f"{self.platform} {self.hostname}: the endpoint refused {shown!r}: "
                                  + " ".join(l.strip() for l in out.splitlines() if "Reason" in l or "ERROR" in l))

    def has_pending_commit(self) -> bool:
        return False

    def confirm_commit(self) -> None:
        raise CommitError(f"{self.platform} {self.hostname}: no commit to confirm (revert_in is not supported)")

    def rollback(self) -> None:
        if not self._backup:
            raise DriverError(f"{self.platform} {self.hostname}: nothing to roll back to in this session")
        self._apply(self._backup)
        self._backup = {}

    # -- getters
    def get_facts(self) -> models.Facts:
        st = parse_status(self._send("xStatus SystemUnit"))
        name = parse_xconfiguration(self._send("xConfiguration SystemUnit Name")).get("SystemUnit Name", "")
        uptime = st.get("SystemUnit Uptime", "0")
        return {"vendor": "Cisco", "model": st.get("SystemUnit ProductId", ""),
                "os_version": st.get("SystemUnit Software Version", ""),
                "serial_number": st.get("SystemUnit Hardware Module SerialNumber", ""),
                "hostname": name, "fqdn": name, "uptime": float(uptime) if uptime.isdigit() else 0.0,
                "interface_list": ["Ethernet1"]}

    def get_config(self, retrieve: str = "all", full: bool = False, sanitized: bool = False) -> models.ConfigDict:
        text = self._send("xConfiguration")
        if sanitized:
            text = "\n".join(re.sub(r'(Password|Passphrase|Secret)(.*?):\s.*', r"\1\2: <removed>", l)
                             for l in text.splitlines())
        return {"running": text if retrieve in ("all", "running") else "",
                "startup": text if retrieve in ("all", "startup") else "", "candidate": self.candidate_text}

    def get_sip_registration(self) -> models.SipRegistrations:
        return parse_sip_registration(self._send("xStatus SIP Registration"))

    def get_calls(self) -> models.Calls:
        return parse_calls(self._send("xStatus Call"))

    def dial(self, number: str) -> dict[str, Any]:
        """Place a call; returns ``{call_id, conference_id, …}`` from the DialResult."""
        if not _NUMBER.match(number):
            raise DriverError(f"dial: refusing number {number!r} (letters, digits and @._+:- only)")
        return parse_command_result(self._send(f'xCommand Dial Number: "{number}"', expect=RESULT_END))

    def disconnect(self, call_id: int | None = None) -> dict[str, Any]:
        cmd = "xCommand Call Disconnect" + (f" CallId: {int(call_id)}" if call_id is not None else "")
        return parse_command_result(self._send(cmd, expect=RESULT_END))
