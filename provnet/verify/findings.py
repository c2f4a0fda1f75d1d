"""Findings of a verify run and the root-cause rule.

Every check belongs to a layer. Layers are ordered from the bottom of a site's stack
(the CE answering at all) to the top (logs reaching the SOC); a failure in a layer
explains the failures above it, so per site the lowest failing layer is the root cause
and every failure above it is reported as *blocked by* it, not as a separate fault.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: Bottom to top. A layer depends on every layer before it, except the independent ones.
LAYERS: tuple[str, ...] = ("node", "wan", "routing", "firewall", "endpoint-host", "endpoint", "registration",
                           "signalling", "time", "logging", "config", "dc")
INDEPENDENT = {"config"}  # drift in a config file explains nothing above it


@dataclass
class Finding:
    site: str  # site slug, or "dc"
    host: str
    layer: str
    check: str
    ok: bool
    order: int = 0  # position of the check within its layer (lower = more basic)
    expected: str = ""
    observed: str = ""
    message: str = ""
    blocked_by: str = ""  # "<host> <layer>/<check>" of the root cause when blocked
    root_cause: bool = False
    skipped: bool = False
    degraded: bool = False  # passed, but not healthy yet (ok stays True: it fails nothing)

    @property
    def rank(self) -> int:
        return LAYERS.index(self.layer) if self.layer in LAYERS else len(LAYERS)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SiteVerdict:
    site: str
    name: str
    ok: bool
    root_cause: Finding | None
    findings: list[Finding] = field(default_factory=list)
    circuit_id: str = ""
    contact: str = ""

    @property
    def degraded_findings(self) -> list[Finding]:
        return [f for f in self.findings if f.degraded and not f.skipped]

    @property
    def status(self) -> str:
        """failed | degraded | ok"""
        return "failed" if not self.ok else "degraded" if self.degraded_findings else "ok"


#: ssh's stderr → the error in plain words; the first match wins
_SSH_ERRORS: tuple[tuple[str, str], ...] = (
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
    ("connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("remote host identification has changed", "host key changed"),
    ("host key verification failed", "host key verification failed"),
    ("permission denied", "permission denied"),
    ("could not resolve hostname", "name not resolved"),
    ("connection reset", "connection reset"),
    ("connection closed", "connection closed"),
)
# ssh's noise around the real error: a stale ControlMaster socket, known-hosts notes
_SSH_NOISE = re.compile(r"^(warning: permanently added|control socket connect|mux_client)", re.I)


def ssh_failure(exc: BaseException) -> tuple[str, str, str] | None:
    """(expected, observed, message) when ``exc`` is testinfra's failed SSH connection, else None.

    testinfra's ssh backend raises ``RuntimeError(CommandResult)`` when ssh exits 255; its
    repr is no root cause, ssh's stderr and the backend's host are.
    """
    result = exc.args[0] if isinstance(exc, RuntimeError) and exc.args else None
    if getattr(result, "exit_status", None) != 255:
        return None
    stderr = getattr(result, "stderr", "")
    stderr = stderr if isinstance(stderr, str) else ""
    spec = getattr(getattr(result, "backend", None), "host", None)
    address = getattr(spec, "name", None) or (m.group(1) if (m := re.search(r"connect to host (\S+) port", stderr))
                                               else "the host")
    user = getattr(spec, "user", None)
    lines = [l.strip() for l in stderr.splitlines() if l.strip() and not _SSH_NOISE.match(l.strip())]
    text = " ".join(lines).lower()
    error = next((plain for needle, plain in _SSH_ERRORS if needle in text), None)
    if error is None:
        last = lines[-1] if lines else "ssh exited 255 with no message"
        error = re.sub(r"^ssh: connect to host \S+ port \d+: ", "", last).rstrip(".")[:200]
    return (f"SSH login as {user}" if user else "SSH login"), error, f"SSH to {address}: {error}"


def classify(findings: list[Finding]) -> list[Finding]:
    """Per site: the lowest failing check is the root cause; every other failure is blocked by it.

    Checks of an independent layer (config drift) explain nothing else: when they fail
    they are causes of their own.
    """
    by_site: dict[str, list[Finding]] = {}
    for f in findings:
        by_site.setdefault(f.site, []).append(f)
    for site_findings in by_site.values():
        failed = sorted((f for f in site_findings if not f.ok and not f.skipped),
                        key=lambda f: (f.layer in INDEPENDENT, f.rank, f.order, f.host, f.check))
        if not failed:
            continue
        root = failed[0]
        root.root_cause = True
        for f in failed[1:]:
            if f.layer in INDEPENDENT:
                f.root_cause = True
            else:
                f.blocked_by = f"{root.host}: {root.check}"
    return findings


def verdicts(findings: list[Finding], sites: dict[str, tuple[str, str, str]]) -> list[SiteVerdict]:
    """One verdict per site (name, circuit id, contact from the model), failures first, then degraded."""
    classify(findings)
    out = []
    for slug in sorted({f.site for f in findings}):
        fs = [f for f in findings if f.site == slug]
        if all(f.skipped for f in fs):
            continue
        root = next((f for f in fs if f.root_cause), None)
        name, circuit, contact = sites.get(slug, (slug, "", ""))
        out.append(SiteVerdict(slug, name, root is None, root, fs, circuit, contact))
    return sorted(out, key=lambda v: (("failed", "degraded", "ok").index(v.status), v.site))
