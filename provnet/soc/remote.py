"""The controller's side of the SOC node's program: ``provnet soc alerts | events | verify-archive``.

The SOC node (``services.syslog``, dc-soc in the lab) runs ``/usr/local/sbin/provnet-soc``
(``roles/soc_collector/files/provnet_soc.py``, docs/soc.md). Each query here is ONE command
on that node, every argument quoted (:func:`command`), run through a ``run(command) -> (rc, stdout,
stderr)`` callable: :func:`alerts`, :func:`events` and :func:`verify_archive` read the program's
answer and never touch a socket, so tests give them the real program run locally. :func:`connect`
is the real callable, over the project's SSH (:class:`provnet.drivers.ssh.SSH`), after the address
guard has passed the SOC's address.

What the user gives is checked before any connection: ``--site`` against the model's sites
(:func:`check_site`), ``--since`` as a span or an ISO 8601 time (:func:`check_since`; a time without
an offset is Vietnam time, as ``provnet vc meeting start --at`` reads it).

Every failure is a :class:`SocError` with its exit status: 2 for input refused before connecting,
1 for a SOC that could not be reached or did not answer usably.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from provnet import guard, history
from provnet.errors import ProvnetError

PROGRAM = "/usr/local/sbin/provnet-soc"
#: ``labels.site`` values that are not sites of the model (docs/soc.md, the collector's lookup table)
EXTRA_SITES = {"dc": "the DC's devices", "unknown": "hosts the collector's site table does not list"}
SLUGS_SHOWN = 30
SSH_TIMEOUT = 15.0
COMMAND_TIMEOUT = 180.0  # seconds the program may stay silent (events reads up to a few day databases)
INSTALL_HINT = "apply the soc_collector role: ansible-playbook playbooks/dc.yml --limit role_soc"

#: run(command) -> (exit status, stdout, stderr)
Runner = Callable[[str], "tuple[int, str, str]"]

_SPAN = re.compile(r"^\d+[smhd]$")
_VERIFIED = re.compile(r"^verify-archive: (\d+) days verified(?:, chain head ([0-9a-f]{64})| \(the chain is empty\))$")
_BROKEN = re.compile(r"^verify-archive: (\d{4}-\d\d-\d\d|prune record|line \d+): (.+)$")


class SocError(ProvnetError):
    """A query that could not be made or answered; ``code`` is the command's exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Soc:
    """The SOC node of the model."""

    host: str
    address: str


@dataclass(frozen=True)
class ArchiveCheck:
    """``verify-archive``'s verdict: ``broken`` names the first broken day (or chain line), else None."""

    days: int
    head: str | None
    broken: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken is None


# ---------------------------------------------------------------- input, checked before connecting

def soc_of(model: Any) -> Soc:
    """The model's SOC host and its management address (exit 2 when the model names none)."""
    name = model.services.get("syslog")
    if not name or name not in model.devices:
        raise SocError(f"the inventory {model.root} names no SOC host: set services.syslog to a DC server "
                       "(dc-soc in the lab)", 2)
    address = model.devices[name].ansible_host
    if not address:
        raise SocError(f"the SOC host {name} has no management address in the model", 2)
    return Soc(name, str(address))


def known_sites(model: Any) -> list[str]:
    """What ``--site`` accepts: ``dc``, ``unknown`` and every site slug of the model."""
    return [*EXTRA_SITES, *sorted(s for s in model.sites if s not in EXTRA_SITES)]


def check_site(model: Any, slug: str) -> str:
    """``slug`` if it names a site the SOC labels events with, else SocError (exit 2) listing the known ones."""
    known = known_sites(model)
    if slug in known:
        return slug
    close = difflib.get_close_matches(slug.lower(), known, n=3)
    guess = f"did you mean {', '.join(close)}? " if close else ""
    shown = ", ".join(known[:SLUGS_SHOWN]) + (f", … ({len(known)} in all)" if len(known) > SLUGS_SHOWN else "")
    raise SocError(f"--site {slug!r}: no such site in {model.root}; {guess}give a site slug "
                   f"(`provnet inventory ipplan` lists them): {shown}", 2)


CATEGORIES = ("authentication", "network", "configuration", "host", "process", "session")  # the rulebase's
ALIASES = {"auth": "authentication", "net": "network", "config": "configuration", "conf": "configuration"}


def check_category(value: str) -> str:
    """``--category`` as the store holds it: an event.category the normaliser writes, or a short alias."""
    text = value.strip().lower()
    text = ALIASES.get(text, text)
    if text not in CATEGORIES:
        raise SocError(f"--category {value!r} is not an event category of the SOC; use one of "
                       f"{', '.join(CATEGORIES)} (or auth, net, config)", 2)
    return text


def check_since(value: str) -> str:
    """``--since`` as the node reads it: a span (30m, 24h, 7d) as given, or an ISO 8601 time as UTC ``…Z``.

    A time without an offset is Vietnam time (UTC+7)."""
    text = value.strip()
    if _SPAN.match(text):
        return text
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SocError(f"--since {value!r} is neither a span (30m, 24h, 7d) nor an ISO 8601 time "
                       "(2026-12-05T08:00, read as giờ VN, or 2026-12-05T01:00Z)", 2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=history.LOCAL_TZ)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- the commands (pure)

def command(subcommand: str, *args: str) -> str:
    """The one shell command the SOC runs: the program, the subcommand and its arguments, each quoted."""
    return shlex.join([PROGRAM, subcommand, *args])


def alerts_command(since: str = "24h", site: str | None = None) -> str:
    return command("alerts", "--since", since, *(("--site", site) if site else ()), "--json")


def events_command(site: str, category: str | None = None, since: str = "24h", limit: int = 1000) -> str:
    return command("events", "--site", site, *(("--category", category) if category else ()),
                   "--since", since, "--limit", str(limit), "--json")


def verify_command() -> str:
    return command("verify-archive")


# ---------------------------------------------------------------- running them, reading the answers

def _answer(run: Runner, cmd: str, what: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """Run ``cmd``; an exit status outside ``ok`` is a SocError (exit 1) with what the program said."""
    rc, out, err = run(cmd)
    if rc in ok:
        return rc, out
    said = " | ".join((err.strip() or out.strip()).splitlines()[-3:])[:600]
    if rc == 127:  # the shell found no such program
        raise SocError(f"{what}: {PROGRAM} is not installed on the SOC ({said or 'exit 127'}); {INSTALL_HINT}")
    if rc < 0:
        raise SocError(f"{what}: the command on the SOC did not finish (no exit status){': ' + said if said else ''}")
    raise SocError(f"{what}: the command on the SOC exited {rc}{': ' + said if said else ''}")


def _json(out: str, what: str, key: str) -> dict[str, Any]:
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise SocError(f"{what}: unreadable answer from the SOC (not JSON: {exc}): {out.strip()[:200]!r}") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise SocError(f"{what}: unreadable answer from the SOC (no {key!r} list): {out.strip()[:200]!r}")
    return data


def alerts(run: Runner, since: str = "24h", site: str | None = None) -> dict[str, Any]:
    """The alerts whose last event is at or after ``since`` (of ``site`` only, if given).

    ``{"since": "…Z", "alerts": [{alert_id, rule_id, rule_name, title, level, kind, site, hosts, group,
    first_event, last_event, count, event_ids, metric, detected_at, updated_at}, …]}``, oldest first."""
    _, out = _answer(run, alerts_command(since, site), "provnet-soc alerts")
    return _json(out, "provnet-soc alerts", "alerts")


def events(run: Runner, site: str, category: str | None = None, since: str = "24h",
           limit: int = 1000) -> dict[str, Any]:
    """A site's events since ``since``, oldest first, the newest ``limit`` of them.

    ``{"site", "since", "truncated": bool, "events": [{field: value, …}, …]}`` (fields of
    provnet/soc/fields.py; a field the event lacks is left out)."""
    _, out = _answer(run, events_command(site, category, since, limit), "provnet-soc events")
    return _json(out, "provnet-soc events", "events")


def verify_archive(run: Runner) -> ArchiveCheck:
    """The archive chain recomputed on the SOC: exit 0 and ``N days verified``, or exit 1 and the first
    broken day (``verify-archive: 2026-12-02: the database … (changed after archiving)``)."""
    rc, out = _answer(run, verify_command(), "provnet-soc verify-archive", ok=(0, 1))
    line = next((l.strip() for l in out.splitlines() if l.startswith("verify-archive: ")), "")
    if rc == 0 and (m := _VERIFIED.match(line)):
        return ArchiveCheck(int(m.group(1)), m.group(2))
    if rc == 1 and (m := _BROKEN.match(line)):
        return ArchiveCheck(0, None, m.group(1), m.group(2))
    raise SocError(f"provnet-soc verify-archive: unreadable answer from the SOC (exit {rc}): "
                   f"{(line or out.strip())[:300]!r}")


# ---------------------------------------------------------------- the real run(): one SSH session

def _reason(exc: Exception, address: str) -> str:
    text = str(exc).strip()
    return text[len(address) + 2:] if text.startswith(f"{address}: ") else text


@contextlib.contextmanager
def connect(model: Any, soc: Soc | None = None, timeout: float = COMMAND_TIMEOUT) -> Iterator[Runner]:
    """A ``run`` over SSH to the SOC (as the compliance run reaches servers: the admin user, and root in a
    lab; the lab's key). The address guard checks the SOC's address first (a production inventory needs
    PROVNET_PRODUCTION=1); an unreachable SOC, or one lost mid-command, is SocError "SSH to <addr>: …"."""
    from provnet.drivers import ssh as sshmod
    from provnet.drivers.base import DriverError

    soc = soc or soc_of(model)
    address = guard.check(soc.address, production=model.production, purpose=f"reach the SOC {soc.host} at")
    users = tuple(dict.fromkeys((model.credentials["admin_user"], *(() if model.production else ("root",)))))
    try:
        session = sshmod.SSH(address, users, sshmod.lab_key(), None, model.production, timeout=SSH_TIMEOUT).open()
    except (DriverError, OSError) as exc:
        raise SocError(f"SSH to {address}: {_reason(exc, address)}") from None

    def run(cmd: str) -> tuple[int, str, str]:
        try:
            res = session.run(cmd, timeout=timeout)
        except (DriverError, OSError) as exc:
            raise SocError(f"SSH to {address}: {_reason(exc, address)}") from None
        return res.rc, res.out, res.err

    try:
        yield run
    finally:
        with contextlib.suppress(Exception):  # closing never masks the answer
            session.close()


__all__ = ["PROGRAM", "Runner", "SocError", "Soc", "ArchiveCheck", "soc_of", "known_sites", "check_site",
           "check_since", "command", "alerts_command", "events_command", "verify_command", "alerts", "events",
           "verify_archive", "connect"]
