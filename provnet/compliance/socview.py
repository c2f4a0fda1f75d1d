"""The SOC's view in the nightly report (issue 22, item 9): the last 24 h as the SOC saw it.

The SOC collector (``roles/soc_collector``) writes every host's syslog to
``<soc_collector_dir>/<HOSTNAME>/syslog.log``, rotated daily (``dateext``, ``delaycompress``:
``syslog.log-YYYYMMDD``, then ``syslog.log-YYYYMMDD.gz``). One command on the SOC
(:func:`command`) reads, per host, ``syslog.log`` and its newest plain rotated file: with a
daily rotation these two hold at least the last 24 h. It prints per host the last line and the
files' newest modification time (when the SOC last wrote a line of that host), and only the
lines of the last 24 h that match :data:`PATTERNS` (failed admin logins, firewall drops, the
engine's commits), a bounded number per host and in all; what it leaves out it counts. A whole
province is one SSH command, not one per host.

:func:`parse` reads that output against the model, with the same patterns and the same time
rules as the command (it checks the window again, so it also reads unfiltered text);
:func:`collect` runs it through a ``run(command) -> (rc, stdout)`` callable. An unreachable or
failing SOC is a :class:`SocView` with ``error`` set, never an exception.

The same command also asks the SOC's own program (``provnet-soc``, docs/soc.md) for the alerts of the
same 24 h, when it is installed: ``provnet-soc alerts --since <window start> --json`` between the
lines ``#alerts-begin`` and ``#alerts-end <exit status>`` (``#alerts-absent <program>`` when it is
not). They come before the log records, so ``#end`` stays the answer's last line. Each alert goes
to the site of its ``site`` label (``dc`` is the data center, ``unknown`` or a slug the model does
not know goes to :attr:`SocView.unknown_alerts`). An absent or failing program, or an answer that is
not its JSON, is one note of the view (:attr:`SocView.alerts_problem`), never an error: the log part
stands on its own.

Times: a line's RFC 3339 timestamp (rsyslog's file default on Debian 12) carries its offset;
a traditional one (``Dec  3 17:14:53``) has neither year nor zone and is read in UTC (the
SOC's clock), in the year of ``now`` — the year before when that would put it more than a day
ahead of ``now`` (a December line read in January).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from provnet import history
from provnet.soc.remote import PROGRAM  # /usr/local/sbin/provnet-soc

DIRECTORY = "/var/log/remote"  # roles/soc_collector/defaults/main.yml: soc_collector_dir
WINDOW = timedelta(hours=24)
FORMAT = "1"  # the output format of the command (its header line)
#: Lines of one kind printed per host at most (the rest are counted, not printed), and in all.
CAPS = {"auth": 200, "drop": 20, "commit": 200}
MAX_LINES = 20000
WIDTH = 400  # characters of a line printed at most
SOURCES_SHOWN = 5
ALERTS_TIMEOUT = 120  # seconds provnet-soc alerts may take on the SOC (it reads one small SQLite file)
#: The SOC's alert levels, most urgent first (the report's order); any other level sorts after them.
LEVELS = ("critical", "high", "medium", "low")
_LEVEL_RANK = {level: i for i, level in enumerate((*LEVELS, "informational"))}
NO_ALERTS = "không có cảnh báo tương quan"
ALERTS_ABSENT = f"SOC chưa cài provnet-soc: {NO_ALERTS}."

# A line as rsyslog writes it: timestamp (RFC 3339, or traditional), host, then the program. Lines the
# SOC received in RFC 5424 carry the tag as APP-NAME[PROCID] with no colon (`host sshd[2591] Failed …`,
# `host provnet frr commit: …`, as seen on the lab's dc-soc); local ones have it (`sshd[2591]: …`).
_HEAD = r"^([0-9][0-9T:.+-]*Z?|[A-Z][a-z][a-z] +[0-9]+ [0-9:]+) [^ ]+ "
#: One definition for both sides: POSIX ERE for the SOC's awk, read the same by Python's ``re``.
#: (The awk tests a substring first — "provnet", "sshd", "authentication failure", "LOGIN_FAILED",
#: "Admin login failed": each pattern needs one of them.)
PATTERNS = {
    # the engine's audit line (provnet/drivers/linux.py: logger -t provnet …) and a revert that fired
    "commit": _HEAD + r"provnet(\[[0-9]+\])?:? ([a-z_]+ commit: |revert of [a-z_]+ applied)",
    # sshd (sshd-session on OpenSSH >= 9.8), PAM, IOS login block, FortiOS admin log
    "auth": _HEAD + r"(sshd(-session)?\[[0-9]+\]:? (Failed [^ ]+ for |Invalid user )"
                    r"|[^ ]+:? pam_unix\([^)]*:auth\): authentication failure"
                    '|.*%SEC_LOGIN-4-LOGIN_FAILED|.*logdesc="Admin login failed")',
    # nftables `log group 1 prefix "provnet-drop-in "` / "provnet-drop-fwd " (templates/nftables)
    "drop": _HEAD + r".*provnet-drop-(in|fwd)",
}
KINDS = ("commit", "auth", "drop")  # the order a line is classified in
_RE = {k: re.compile(p) for k, p in PATTERNS.items()}

_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?(?= )")
_TRADITIONAL = re.compile(r"^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_SSHD_PID = re.compile(r" sshd(?:-session)?\[(\d+)\]:? ")
_SSHD_FAILED = re.compile(r" sshd(?:-session)?\[\d+\]:? Failed [^ ]+ for ")
_SOURCE = re.compile(r"(?: from | rhost=|\[Source: |srcip=)([0-9A-Fa-f:.]+)")
_COMMIT = re.compile(r" provnet(?:\[\d+\])?:? (?:(?P<platform>[a-z_]+) commit: (?P<message>.*)"
                     r"|revert of (?P<reverted>[a-z_]+) applied)")
_DROP = re.compile(r"provnet-drop-(in|fwd)")
_FIELD = re.compile(r"\b(user|ticket|diff)=(\S+)")


# ---------------------------------------------------------------- the command (pure)

_AWK = r"""
BEGIN { FS = "\t"; cap["auth"] = %(auth)d; cap["drop"] = %(drop)d; cap["commit"] = %(commit)d; room = %(max)d }
{
  h = substr($1, 3); if (h == "" || index(h, "/")) next
  seen[h] = 1; m = int($3); if (m > mt[h]) mt[h] = m
  if ($2 == "syslog.log") cur[h] = 1
  else if ($2 ~ /^syslog\.log-[0-9]+$/ && $2 > rot[h]) rot[h] = $2
}
function kind(l,   p) {
  # index() first: a line the patterns cannot match costs no regex (10x faster on a quiet log)
  p = index(l, "provnet")
  if (p && l ~ /%(commit_re)s/) return "commit"
  if ((index(l, "sshd") || index(l, "authentication failure") || index(l, "LOGIN_FAILED") || \
       index(l, "Admin login failed")) && l ~ /%(auth_re)s/) return "auth"
  if (p && l ~ /%(drop_re)s/) return "drop"
  return ""
}
function stamp(l,   t, s, sp, o, mo) {
  if (l ~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]/) {
    t = mktime(substr(l, 1, 4) " " substr(l, 6, 2) " " substr(l, 9, 2) " " substr(l, 12, 2) " " \
               substr(l, 15, 2) " " substr(l, 18, 2))
    if (t < 0) return -1
    s = substr(l, 20, 24); sp = index(s, " "); if (sp) s = substr(s, 1, sp - 1)
    if (match(s, /[+-][0-9][0-9]:[0-9][0-9]$/)) {
      o = substr(s, RSTART + 1, 2) * 3600 + substr(s, RSTART + 4, 2) * 60
      if (substr(s, RSTART, 1) == "+") t -= o; else t += o
    }
    return t
  }
  mo = index("JanFebMarAprMayJunJulAugSepOctNovDec", substr(l, 1, 3))
  if (mo == 0 || (mo - 1) %% 3 || l !~ /^[A-Z][a-z][a-z] [ 0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9] /) return -1
  mo = (mo + 2) / 3
  s = substr(l, 5, 2) + 0 " " substr(l, 8, 2) " " substr(l, 11, 2) " " substr(l, 14, 2)
  t = mktime(year " " mo " " s)
  if (t > now + 86400) t = mktime((year - 1) " " mo " " s)
  return t
}
function scan(h, f,   l, k) {
  while ((getline l < f) > 0) {
    last = l; k = kind(l)
    if (k == "" || stamp(l) < since) continue
    if (shown[k] < cap[k] && room > 0) { print "M\t" h "\t" substr(l, 1, %(width)d); shown[k]++; room-- }
    else cut[k]++
  }
  close(f)
}
END {
  print "#provnet-soc\t%(format)s\t" systime()
  for (h in seen) {
    last = ""; split("", shown); split("", cut)
    if (h in rot) scan(h, h "/" rot[h])
    if (h in cur) scan(h, h "/syslog.log")
    print "L\t" h "\t" mt[h] "\t" substr(last, 1, %(width)d)
    for (k in cut) print "K\t" h "\t" k "\t" cut[k]
    fflush()  # host by host: the SSH channel never waits the whole run for a first byte
  }
  print "#end"
}
"""


def awk_program() -> str:
    for name, pattern in PATTERNS.items():
        assert "/" not in pattern, f"{name}: a '/' would end the awk regex"
    return _AWK % {**CAPS, "max": MAX_LINES, "width": WIDTH, "format": FORMAT,
                   **{f"{k}_re": p for k, p in PATTERNS.items()}}


def alerts_command(now: datetime, program: str = PROGRAM) -> str:
    """The alerts part of :func:`command`: ``program``'s alerts of the 24 h before ``now`` between
    ``#alerts-begin`` and ``#alerts-end <exit status>``, or ``#alerts-absent`` when it is not installed.
    Its exit status is its own line's, never the command's."""
    p = shlex.quote(program)
    call = shlex.join(["timeout", str(ALERTS_TIMEOUT), program, "alerts", "--since", _iso(_utc(now) - WINDOW),
                       "--json"])
    # the newline before the end line: an answer without a final newline keeps the end line whole
    return (f"if [ -x {p} ]; then echo '#alerts-begin'; {call} 2>&1; printf '\\n#alerts-end\\t%s\\n' \"$?\"; "
            f"else printf '#alerts-absent\\t%s\\n' {p}; fi")


def command(now: datetime, hosts: Iterable[str] | None = None, directory: str = DIRECTORY,
            program: str = PROGRAM) -> str:
    """The one shell command the SOC runs (as root): the last 24 h before ``now`` of every host's
    log under ``directory`` (or of ``hosts`` only), after ``program``'s alerts of the same 24 h
    (:func:`alerts_command`). Pure: the same arguments give the same string."""
    now = _utc(now)
    since = int((now - WINDOW).timestamp())
    hosts = None if hosts is None else list(hosts)
    if hosts == []:
        raise ValueError("no host to read")
    d = shlex.quote(directory)
    where = "." if hosts is None else " ".join(shlex.quote(f"./{h}") for h in sorted(set(hosts)))
    depth = "-mindepth 2 -maxdepth 2" if hosts is None else "-mindepth 1 -maxdepth 1"
    find = (f"find {where} {depth} -type f \\( -name syslog.log -o -name 'syslog.log-[0-9]*' \\) ! -name '*.gz' "
            "-printf '%h\\t%f\\t%T@\\n' 2>/dev/null")
    awk = (f"TZ=UTC awk -v now={int(now.timestamp())} -v since={since} -v year={now.year} "
           f"{shlex.quote(awk_program())} 2>&1")
    return (f"cd {d} 2>/dev/null || {{ echo {shlex.quote(f'#provnet-soc-error no directory {directory}')}; exit 3; }}"
            f"; {alerts_command(now, program)}; {find} | {awk}")


# ---------------------------------------------------------------- what it says

@dataclass
class Commit:
    """One engine commit (or a revert that fired) as the device logged it."""

    time: datetime
    host: str
    site: str | None
    platform: str
    message: str
    kind: str = "commit"  # commit | revert

    def fields(self) -> dict[str, str]:
        """``user``, ``ticket``, ``diff`` from the engine's message (``user=… ticket=… diff=…``)."""
        return dict(_FIELD.findall(self.message))

    def as_dict(self) -> dict[str, Any]:
        return {"time": _iso(self.time), "time_local": history.local_time(self.time), "host": self.host,
                "site": self.site, "platform": self.platform, "kind": self.kind, "message": self.message,
                **self.fields()}


@dataclass
class Alert:
    """One alert of the SOC's program (``provnet-soc alerts --json``), as it reported it."""

    alert_id: str
    rule_id: str
    rule_name: str
    title: str
    level: str
    site: str  # the SOC's label: a site slug, "dc", "unknown", or several joined by ","
    hosts: list[str]
    first_event: datetime
    last_event: datetime
    count: int
    kind: str = ""
    sites: list[str | None] = field(default_factory=list)  # the view's sites it belongs to (None: the DC)

    @property
    def rank(self) -> tuple[Any, ...]:
        """Reading order: level (critical, high, medium, low, the rest), then time."""
        return (_LEVEL_RANK.get(self.level, len(_LEVEL_RANK)), self.first_event, self.last_event, self.rule_name,
                self.alert_id)

    def as_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "rule_id": self.rule_id, "rule_name": self.rule_name, "title": self.title,
                "level": self.level, "kind": self.kind, "site": self.site, "hosts": list(self.hosts),
                "first_event": _iso(self.first_event), "last_event": _iso(self.last_event),
                "first_event_local": history.local_time(self.first_event),
                "last_event_local": history.local_time(self.last_event), "count": self.count}


def level_counts(alerts: Iterable[Alert]) -> dict[str, int]:
    """Alerts per level: every level of :data:`LEVELS` (0 included), then any other level seen."""
    seen = Counter(a.level for a in alerts)
    return {**{level: seen.pop(level, 0) for level in LEVELS}, **dict(sorted(seen.items()))}


@dataclass
class HostLog:
    """One host's last 24 h at the SOC."""

    host: str
    site: str | None
    last_received: datetime | None = None  # when the SOC last wrote a line of it (the files' mtime)
    last_line: datetime | None = None  # that last line's own timestamp (the sender's clock)
    failed_logins: int = 0
    sources: Counter[str] = field(default_factory=Counter)  # address → failed logins from it
    drops_in: int = 0
    drops_fwd: int = 0
    commits: list[Commit] = field(default_factory=list)
    truncated: bool = False  # the SOC printed only part of its lines: counts include the rest
    silent: bool = True

    @property
    def drops(self) -> int:
        return self.drops_in + self.drops_fwd

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "last_received": _iso(self.last_received), "last_line": _iso(self.last_line),
                "silent": self.silent, "failed_logins": self.failed_logins, "sources": dict(self.sources.most_common()),
                "drops": self.drops, "drops_in": self.drops_in, "drops_fwd": self.drops_fwd,
                "commits": len(self.commits), "truncated": self.truncated}


@dataclass
class SiteLog:
    """A site's hosts together (``site`` None: the data center)."""

    site: str | None
    name: str
    hosts: list[HostLog]
    alerts: list[Alert] | None = None  # the SOC's alerts of the site, in reading order; None: not read

    @property
    def last_received(self) -> datetime | None:
        return max((h.last_received for h in self.hosts if h.last_received is not None), default=None)

    @property
    def silent(self) -> bool:
        return all(h.silent for h in self.hosts)

    @property
    def silent_hosts(self) -> list[str]:
        return [h.host for h in self.hosts if h.silent]

    @property
    def failed_logins(self) -> int:
        return sum(h.failed_logins for h in self.hosts)

    @property
    def sources(self) -> Counter[str]:
        return sum((h.sources for h in self.hosts), Counter())

    @property
    def drops(self) -> int:
        return sum(h.drops for h in self.hosts)

    @property
    def commits(self) -> list[Commit]:
        return sorted((c for h in self.hosts for c in h.commits), key=lambda c: (c.time, c.host))

    @property
    def truncated(self) -> bool:
        return any(h.truncated for h in self.hosts)

    def as_dict(self) -> dict[str, Any]:
        return {"site": self.site, "name": self.name, "last_received": _iso(self.last_received),
                "last_received_local": history.local_time(self.last_received), "silent": self.silent,
                "silent_hosts": self.silent_hosts, "failed_logins": self.failed_logins,
                "sources": dict(self.sources.most_common()), "drops": self.drops, "commits": len(self.commits),
                "alerts": None if self.alerts is None else len(self.alerts),
                "alert_levels": None if self.alerts is None else level_counts(self.alerts),
                "truncated": self.truncated, "hosts": [h.as_dict() for h in self.hosts]}


@dataclass
class SocView:
    """What the SOC received in the 24 h before ``now``, per site; ``error`` when it could not be read."""

    soc: str
    now: datetime
    directory: str = DIRECTORY
    sites: list[SiteLog] = field(default_factory=list)
    unknown_hosts: dict[str, int] = field(default_factory=dict)  # a folder no model device matches → its lines
    soc_clock: datetime | None = None
    complete: bool = True  # the command's output ended with its end line
    error: str = ""
    drop_devices: int = 0  # nftables devices in the view (whose drops should arrive)
    unexpected: list[str] = field(default_factory=list)  # lines of no record (the first few): awk's complaints
    alerts: list[Alert] | None = None  # the SOC's alerts of the view (sites and unknown), in reading order
    unknown_alerts: list[Alert] = field(default_factory=list)  # labelled with no site of the model
    alerts_problem: str = ""  # why ``alerts`` is None (or partial), in Vietnamese: one note

    @property
    def since(self) -> datetime:
        return self.now - WINDOW

    @property
    def commits(self) -> list[Commit]:
        return sorted((c for s in self.sites for c in s.commits), key=lambda c: (c.time, c.host))

    @property
    def silent_sites(self) -> list[SiteLog]:
        return [s for s in self.sites if s.silent]

    @property
    def truncated(self) -> bool:
        return any(s.truncated for s in self.sites)

    @property
    def alert_levels(self) -> dict[str, int] | None:
        return None if self.alerts is None else level_counts(self.alerts)

    @property
    def clock_skew(self) -> float | None:
        """Seconds the SOC's clock was ahead of ``now`` when it answered (a few seconds is the command)."""
        return None if self.soc_clock is None else (self.soc_clock - self.now).total_seconds()

    def notes(self) -> list[str]:
        """What a reader must know to trust the numbers, in Vietnamese."""
        out = []
        if not self.error and not self.complete:
            out.append("Kết quả từ SOC không đầy đủ (thiếu dòng kết thúc): số liệu có thể thiếu.")
        if self.truncated:
            out.append(f"SOC chỉ in tối đa {CAPS['auth']} dòng đăng nhập lỗi, {CAPS['drop']} dòng chặn gói tin và "
                       f"{CAPS['commit']} dòng commit mỗi thiết bị: số đếm gồm cả phần không in, danh sách địa chỉ "
                       "nguồn và commit có thể thiếu.")
        skew = self.clock_skew
        if skew is not None and not -300 <= skew <= 900:
            out.append(f"Đồng hồ của SOC lệch {skew:+.0f} giây so với máy chạy kiểm tra.")
        if not self.error and self.drop_devices and not any(s.drops for s in self.sites):
            out.append("Không nhận được dòng provnet-drop- nào: kiểm tra ulogd2 trên CE và tường lửa có chuyển "
                       "nhật ký gói tin bị chặn (NFLOG nhóm 1) vào syslog không.")
        if self.unknown_hosts:
            names = ", ".join(sorted(self.unknown_hosts)[:20]) + (" …" if len(self.unknown_hosts) > 20 else "")
            out.append(f"Thư mục không khớp thiết bị nào trong mô hình: {names}.")
        if not self.error and self.alerts_problem:
            out.append(self.alerts_problem)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"soc": self.soc, "directory": self.directory, "since": _iso(self.since), "until": _iso(self.now),
                "since_local": history.local_time(self.since), "until_local": history.local_time(self.now),
                "error": self.error or None, "complete": self.complete, "soc_clock": _iso(self.soc_clock),
                "summary": {"sites": len(self.sites), "silent_sites": [s.site or "" for s in self.silent_sites],
                            "failed_logins": sum(s.failed_logins for s in self.sites),
                            "drops": sum(s.drops for s in self.sites), "commits": len(self.commits),
                            "alerts": None if self.alerts is None else len(self.alerts),
                            "alert_levels": self.alert_levels, "truncated": self.truncated},
                "sites": [s.as_dict() for s in self.sites], "commits": [c.as_dict() for c in self.commits],
                "alerts": None if self.alerts is None else [a.as_dict() for a in self.alerts],
                "unknown_alerts": len(self.unknown_alerts),
                "unknown_hosts": dict(sorted(self.unknown_hosts.items())), "notes": self.notes()}


# ---------------------------------------------------------------- parsing

def _utc(now: datetime) -> datetime:
    """Aware UTC, whole seconds (the command's awk counts in whole seconds too)."""
    now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    return now.replace(microsecond=0)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def line_time(line: str, now: datetime) -> datetime | None:
    """A log line's timestamp (aware, UTC), RFC 3339 or traditional; None when it has neither."""
    m = _RFC3339.match(line)
    if m:
        y, mo, d, hh, mi, ss = (int(x) for x in m.groups()[:6])
        frac, off = m.group(7), m.group(8)
        tz = timezone.utc
        if off and off != "Z":
            sign = 1 if off[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
        try:
            t = datetime(y, mo, d, hh, mi, ss, int(float(frac) * 1e6) if frac else 0, tzinfo=tz)
        except ValueError:
            return None
        return t.astimezone(timezone.utc)
    m = _TRADITIONAL.match(line)
    if m and m.group(1) in _MONTHS:
        now = _utc(now)
        mo, rest = _MONTHS[m.group(1)], tuple(int(x) for x in m.groups()[1:])
        for year in (now.year, now.year - 1):
            try:
                t = datetime(year, mo, *rest, tzinfo=timezone.utc)
            except ValueError:  # 29 Feb of a year without it
                continue
            if t <= now + timedelta(days=1):
                return t
    return None


def classify(line: str) -> str:
    """``commit``, ``auth``, ``drop`` or "" (the command's awk uses the same patterns, in the same order)."""
    return next((k for k in KINDS if _RE[k].search(line)), "")


def _source(line: str) -> str | None:
    for m in _SOURCE.finditer(line):
        text = m.group(1).rstrip(".:")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


class _Resolver:
    """A folder's name (the syslog HOSTNAME) → the model's hostname: as is, in lower case, without a
    domain, or one of the device's addresses (a device that sends its address as its name)."""

    def __init__(self, model: Any) -> None:
        self.names = {h.lower(): h for h in model.devices}
        self.addresses: dict[str, str] = {}
        for h, d in model.devices.items():
            addrs = [i.address.ip for i in d.interfaces if i.address is not None]
            addrs += [a for a in (d.loopback, d.oob_address.ip if d.oob_address is not None else None) if a]
            for a in addrs:
                self.addresses.setdefault(str(a), h)

    def __call__(self, name: str) -> str | None:
        low = name.lower()
        if low in self.names:
            return self.names[low]
        if name in self.addresses:
            return self.addresses[name]
        short = low.split(".", 1)[0]
        return self.names.get(short) if short and not short.isdigit() else None


def _site_order(model: Any) -> dict[str | None, int]:
    return {None: -1, **{slug: i for i, slug in enumerate(model.sites)}}


def parse(text: str, now: datetime, model: Any, hosts: Iterable[str] | None = None, *,
          directory: str = DIRECTORY, soc: str | None = None) -> SocView:
    """The SOC's answer (the output of :func:`command`) as a :class:`SocView` of ``hosts`` (default: every
    device of the model). Lines outside the 24 h before ``now`` are left out here too."""
    from provnet.compliance.report import NO_SITE

    now = _utc(now)
    since = now - WINDOW
    wanted = list(model.devices) if hosts is None else [h for h in hosts if h in model.devices]
    logs = {h: HostLog(h, model.devices[h].site) for h in wanted}
    resolve = _Resolver(model)
    view = SocView(soc or str(model.services.get("syslog", "")), now, directory, complete=False)
    unknown: Counter[str] = Counter()
    sshd: dict[tuple[str, str], list[int]] = {}  # (host, pid) → [Failed lines, other failure lines]
    errors: list[str] = []
    block: list[str] | None = None  # the alerts' lines, while between their begin and end lines
    answer: tuple[str, str] | None = None  # (exit status, output) of provnet-soc alerts
    alerts_absent = alerts_cut = False
    for raw in text.splitlines():
        if block is not None:
            if raw.startswith("#alerts-end"):
                answer, block = (raw.partition("\t")[2].strip(), "\n".join(block)), None
                continue
            if not (raw.startswith("#provnet-soc") or raw == "#end"):
                block.append(raw)
                continue
            alerts_cut, block = True, None  # the log part began: the alerts' end line never came
        if raw.startswith("#alerts-begin"):
            block = []
            continue
        if raw.startswith("#alerts-absent"):
            alerts_absent = True
            continue
        tag, _, rest = raw.partition("\t")
        if raw.startswith("#provnet-soc-error"):
            errors.append(raw.split(" ", 1)[1] if " " in raw else raw)
            continue
        if tag == "#provnet-soc":
            parts = rest.split("\t")
            if parts[0] != FORMAT:
                errors.append(f"the SOC answered in format {parts[0]!r}, expected {FORMAT}")
            if len(parts) > 1 and parts[1].strip().isdigit():
                view.soc_clock = datetime.fromtimestamp(int(parts[1]), timezone.utc)
            continue
        if tag == "#end":
            view.complete = True
            continue
        if tag not in ("L", "M", "K"):
            if raw.strip() and len(view.unexpected) < 5:
                view.unexpected.append(raw.strip()[:300])
            continue
        name, _, rest = rest.partition("\t")
        host = resolve(name)
        if host is None:
            if hosts is None:
                unknown[name] += tag == "M"
            continue
        if host not in logs:
            continue
        log = logs[host]
        if tag == "L":
            mtime, _, last = rest.partition("\t")
            received = datetime.fromtimestamp(int(float(mtime)), timezone.utc) if mtime.strip() not in ("", "0") \
                else None
            stamped = line_time(last, now) if last else None
            received = received or stamped
            if received is not None and (log.last_received is None or received > log.last_received):
                log.last_received = received
            if stamped is not None and (log.last_line is None or stamped > log.last_line):
                log.last_line = stamped
        elif tag == "K":
            kind, _, count = rest.partition("\t")
            n = int(count) if count.strip().isdigit() else 0
            log.truncated = True
            if kind == "auth":
                log.failed_logins += n  # a line each: the pairing below needs the lines themselves
            elif kind == "drop":
                log.drops_in += n  # direction unknown for lines not printed: counted as input
        else:
            _line(log, rest, now, since, sshd)
    for (host, _pid), (failed, other) in sshd.items():
        logs[host].failed_logins += failed or (1 if other else 0)
    for log in logs.values():
        log.silent = log.last_received is None or log.last_received < since
    names = {slug: site.name for slug, site in model.sites.items()}
    grouped: dict[str | None, list[HostLog]] = {}
    for h in wanted:
        grouped.setdefault(logs[h].site, []).append(logs[h])
    order = _site_order(model)
    view.sites = sorted((SiteLog(slug, names.get(slug, slug) if slug else NO_SITE, hs) for slug, hs in grouped.items()),
                        key=lambda s: (not s.silent, order.get(s.site, len(order))))
    view.unknown_hosts = dict(unknown)
    view.drop_devices = sum(1 for h in wanted if "nftables" in model.devices[h].platforms)
    if answer is not None:
        _alerts(view, answer, model, whole=hosts is None)
    elif alerts_cut or block is not None:
        view.alerts_problem = f"Kết quả provnet-soc alerts không đầy đủ (thiếu dòng kết thúc): {NO_ALERTS}."
    elif alerts_absent:
        view.alerts_problem = ALERTS_ABSENT
    else:
        view.alerts_problem = f"SOC không trả lời phần cảnh báo (provnet-soc alerts): {NO_ALERTS}."
    if errors:
        view.error = "; ".join(errors)[:1000]
    return view


def _alert(obj: Any) -> Alert:
    """One alert of the program's JSON; ValueError, KeyError or TypeError when it is not one."""
    first, last = (history.parse_time(str(obj[k])).astimezone(timezone.utc) for k in ("first_event", "last_event"))
    hosts = obj.get("hosts") or []
    if not isinstance(hosts, list) or isinstance(obj["count"], bool):
        raise TypeError("hosts is no list")
    return Alert(str(obj["alert_id"]), str(obj.get("rule_id") or ""), str(obj.get("rule_name") or ""),
                 str(obj["title"]), str(obj.get("level") or ""), str(obj.get("site") or ""), [str(h) for h in hosts],
                 first, last, int(obj["count"]), str(obj.get("kind") or ""))


def _alerts(view: SocView, answer: tuple[str, str], model: Any, whole: bool) -> None:
    """``provnet-soc alerts --json``'s answer into the view: each alert on its sites' rows; what cannot
    be read is :attr:`SocView.alerts_problem`, never an exception."""
    rc, out = answer
    if rc != "0":
        said = " | ".join(line.strip() for line in out.strip().splitlines()[-3:])[:300]
        view.alerts_problem = (f"provnet-soc alerts trên SOC thoát với mã {rc or '?'}"
                               + (f" ({said})" if said else "") + f": {NO_ALERTS}.")
        return
    try:
        data = json.loads(out)
    except ValueError as exc:
        view.alerts_problem = f"Không đọc được kết quả provnet-soc alerts (không phải JSON: {exc}): {NO_ALERTS}."
        return
    if not isinstance(data, dict) or not isinstance(data.get("alerts"), list):
        view.alerts_problem = f"Không đọc được kết quả provnet-soc alerts (thiếu danh sách alerts): {NO_ALERTS}."
        return
    rows: dict[str | None, SiteLog] = {s.site: s for s in view.sites}
    for s in view.sites:
        s.alerts = []
    kept: list[Alert] = []
    bad = 0
    for obj in data["alerts"]:
        try:
            a = _alert(obj)
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
            continue
        if a.last_event < view.since:  # the window again, as for the log lines
            continue
        unknown = False
        for label in dict.fromkeys(x.strip() for x in a.site.split(",")):
            slug = None if label == "dc" else label
            if slug in rows:
                a.sites.append(slug)
            elif label != "dc" and label not in model.sites:  # "unknown", "", a slug the model does not have
                unknown = True
        if unknown and whole:
            view.unknown_alerts.append(a)
        if a.sites or (unknown and whole):
            kept.append(a)
            for slug in a.sites:
                rows[slug].alerts.append(a)  # type: ignore[union-attr]
    view.alerts = sorted(kept, key=lambda a: a.rank)
    view.unknown_alerts.sort(key=lambda a: a.rank)
    for s in view.sites:
        s.alerts.sort(key=lambda a: a.rank)  # type: ignore[union-attr]
    if bad:
        view.alerts_problem = (f"{bad} cảnh báo trong kết quả provnet-soc alerts không đọc được "
                               "(thiếu trường hoặc sai kiểu): đã bỏ qua.")


def _line(log: HostLog, line: str, now: datetime, since: datetime, sshd: dict[tuple[str, str], list[int]]) -> None:
    t = line_time(line, now)
    kind = classify(line)
    if t is None or t < since or not kind:
        return
    if kind == "commit":
        m = _COMMIT.search(line)
        if m:
            if m.group("reverted"):
                log.commits.append(Commit(t, log.host, log.site, m.group("reverted"), "revert applied", "revert"))
            else:
                log.commits.append(Commit(t, log.host, log.site, m.group("platform"), m.group("message").strip()))
    elif kind == "drop":
        m = _DROP.search(line)
        if m and m.group(1) == "fwd":
            log.drops_fwd += 1
        else:
            log.drops_in += 1
    else:
        src = _source(line)
        if src:
            log.sources[src] += 1
        pid = _SSHD_PID.search(line)
        if pid:  # one sshd connection: its Failed lines count; Invalid user / PAM alone count once
            counts = sshd.setdefault((log.host, pid.group(1)), [0, 0])
            counts[0 if _SSHD_FAILED.search(line) else 1] += 1
        else:
            log.failed_logins += 1


# ---------------------------------------------------------------- running it

Runner = Callable[[str], tuple[int, str]]


def collect(model: Any, runner: Runner | None, now: datetime, hosts: Iterable[str] | None = None, *,
            directory: str = DIRECTORY, reason: str = "") -> SocView:
    """Run :func:`command` on the SOC through ``runner`` and parse it; any failure is the view's ``error``.

    ``runner`` None means the SOC could not be reached (``reason`` says why)."""
    soc = str(model.services.get("syslog", "")) if hasattr(model, "services") else ""
    now = _utc(now)
    hosts = None if hosts is None else list(hosts)
    if runner is None:
        return SocView(soc, now, directory, error=reason or "the SOC was not reached")
    if hosts == []:
        return SocView(soc, now, directory)
    try:
        cmd = command(now, hosts, directory)
        rc, out = runner(cmd)
    except Exception as exc:  # noqa: BLE001 - the SOC's fault is the view's error, not the run's
        return SocView(soc, now, directory, error=f"{type(exc).__name__}: {exc}"[:1000])
    try:
        view = parse(out, now, model, hosts, directory=directory, soc=soc)
    except Exception as exc:  # noqa: BLE001 - an answer we cannot read is reported, not raised
        return SocView(soc, now, directory, error=f"unreadable answer from the SOC ({type(exc).__name__}: {exc})")
    if not view.error and rc != 0:
        said = view.unexpected or out.strip().splitlines()[-3:]
        view.error = f"the command on the SOC exited {rc}: {' | '.join(said)[:600]}"
    elif not view.error and not view.complete:
        view.error = "the SOC's answer was cut short (no end line)"
    if view.error:  # no numbers from a failed answer: its hosts would all read silent
        view.sites, view.unknown_hosts = [], {}
        view.alerts, view.unknown_alerts = None, []
    return view


__all__ = ["DIRECTORY", "WINDOW", "PATTERNS", "CAPS", "LEVELS", "PROGRAM", "command", "alerts_command", "awk_program",
           "parse", "collect", "classify", "line_time", "level_counts", "SocView", "SiteLog", "HostLog", "Commit",
           "Alert", "Runner"]
