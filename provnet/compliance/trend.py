"""Compliance runs in the history store, and what changed since the last one.

A run is a history run of kind ``compliance``; each finding is one result with subject
``<device>:<rule id>`` (a drift's rule id names its platform or file), verdict = the status,
layer = the finding's kind (``rule``/``drift``), reason = its first line, and figures =
severity, title, site, the evidence's SHA-256 and, for what is not passing, the evidence
itself (cut at :data:`EVIDENCE_KEPT` characters; it arrives masked). No migration: the
existing columns hold all of it.

*Open* means ``fail``, ``error`` or ``unreachable`` (an unreachable device is not fixed, we
just could not look); ``waived`` and ``not_applicable`` are not open. A trend compares a run
with the previous *finished* run of the same inventory and scope.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping, Protocol

from provnet import history as hist
from provnet.history import Result, Run, Store

KIND = "compliance"
STATUSES = ("pass", "fail", "waived", "error", "not_applicable", "unreachable")
OPEN = frozenset({"fail", "error", "unreachable"})
EVIDENCE_KEPT = 2000


class FindingLike(Protocol):
    device: str
    rule_id: str
    status: str
    evidence: str


@dataclass(frozen=True)
class Finding:
    """What the evaluator hands over per device × rule or drift (the report reads the same fields)."""

    device: str
    rule_id: str
    status: str
    evidence: str = ""
    kind: str = "rule"
    title: str = ""
    severity: str = "medium"
    site: str = ""
    reason: str = ""  # the evaluator's note: a waiver's ticket and expiry, a missing fact
    clause: str = ""
    remediation: str = ""


def from_evaluation(findings: Iterable[Any], rules: Mapping[str, Any],
                    site_of: Mapping[str, str | None]) -> list[Finding]:
    """The evaluator's findings (``rule``, ``note``) with their rule's title, severity, clause and
    remediation and the device's site; a rule id not among ``rules`` is a drift (``drift:<platform>``)."""
    out = []
    for f in findings:
        rule_id = str(attr(f, "rule_id") or attr(f, "rule"))
        rule = rules.get(rule_id)
        title = getattr(getattr(rule, "title", None), "vi", "") if rule is not None else ""
        kind = "rule" if rule is not None else str(attr(f, "kind", "drift"))
        severity = str(getattr(rule, "severity", "") or attr(f, "severity", "medium"))
        out.append(Finding(f.device, rule_id, f.status, str(attr(f, "evidence")), kind,
                           title or str(attr(f, "title")), severity,
                           site_of.get(f.device) or "", str(attr(f, "note") or attr(f, "reason")),
                           str(getattr(rule, "clause", "") or ""), str(getattr(rule, "remediation", "") or "")))
    return out

def attr(f: object, name: str, default: Any = "") -> Any:
    """A finding's field, tolerant of evaluators that leave optional ones out."""
    value = getattr(f, name, default)
    return default if value is None else value


def subject(f: FindingLike) -> str:
    return f"{f.device}:{f.rule_id}"


def split_subject(s: str) -> tuple[str, str]:
    device, _, rule = s.partition(":")  # host names never hold ':'; a rule id may
    return device, rule


def is_open(status: str | None) -> bool:
    return status in OPEN


# ---------------------------------------------------------------- recording

def start_run(store: Store, inventory: str, scope: str, started_at: str | None = None) -> int:
    return store.start_run(KIND, scope, inventory, started_at)


def record(store: Store, run_id: int, findings: Iterable[FindingLike]) -> None:
    """One result per finding (safe to call from the run's worker threads)."""
    for f in findings:
        evidence = str(attr(f, "evidence"))
        figures: dict[str, Any] = {"kind": attr(f, "kind", "rule"), "severity": attr(f, "severity", ""),
                                   "title": attr(f, "title"), "site": attr(f, "site"),
                                   "evidence_sha256": hashlib.sha256(evidence.encode()).hexdigest()}
        if f.status != "pass" and evidence:
            figures["evidence"] = evidence[:EVIDENCE_KEPT]
        reason = str(attr(f, "reason")) or (evidence.strip().splitlines() or [""])[0]
        store.add_result(run_id, subject(f), f.status, str(figures["kind"]), reason[:300], figures)


def summary(findings: Iterable[FindingLike]) -> dict[str, Any]:
    counts = {s: 0 for s in STATUSES}
    devices: set[str] = set()
    for f in findings:
        counts[f.status] = counts.get(f.status, 0) + 1
        devices.add(f.device)
    return {"counts": counts, "devices": len(devices), "open": sum(counts[s] for s in OPEN),
            "compliant": not any(counts[s] for s in OPEN)}


def finish_run(store: Store, run_id: int, findings: Iterable[FindingLike], **extra: Any) -> dict[str, Any]:
    """Close the run with its counts (``extra``: anything else worth keeping, e.g. the backup commit)."""
    s = summary(findings) | extra
    store.finish_run(run_id, s)
    return s


def record_run(store: Store, inventory: str, scope: str, findings: list[FindingLike],
               started_at: str | None = None, **extra: Any) -> int:
    """A whole run at once: start, one result per finding, finish."""
    run_id = start_run(store, inventory, scope, started_at)
    record(store, run_id, findings)
    finish_run(store, run_id, findings, **extra)
    return run_id


# ---------------------------------------------------------------- trend

@dataclass(frozen=True)
class Item:
    """One subject in a trend: its status now and before, and since when it has been open."""

    subject: str
    status: str | None
    previous: str | None
    reason: str = ""
    open_since: Run | None = None

    @property
    def device(self) -> str:
        return split_subject(self.subject)[0]

    @property
    def rule_id(self) -> str:
        return split_subject(self.subject)[1]

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "device": self.device, "rule_id": self.rule_id, "status": self.status,
                "previous": self.previous, "reason": self.reason,
                "open_since": None if self.open_since is None else
                {"run": self.open_since.id, "started_at": self.open_since.started_at,
                 "local": self.open_since.started_local}}


@dataclass(frozen=True)
class Trend:
    run: Run
    previous: Run | None
    new: list[Item] = field(default_factory=list)
    fixed: list[Item] = field(default_factory=list)
    still_open: list[Item] = field(default_factory=list)
    gone: list[Item] = field(default_factory=list)  # open last time, not checked any more
    interrupted: list[Run] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run.id, "previous": None if self.previous is None else self.previous.id,
                **{k: [i.as_dict() for i in getattr(self, k)] for k in ("new", "fixed", "still_open", "gone")},
                "interrupted": [{"run": r.id, "started_at": r.started_at, "local": r.started_local}
                                for r in self.interrupted]}


def _run(store: Store, run_id: int) -> Run:
    run = store.run(run_id)
    if run is None or run.kind != KIND:
        raise hist.HistoryError(f"{store.path}: no compliance run {run_id}")
    return run


def previous_run(store: Store, run: Run) -> Run | None:
    """The last finished compliance run of the same inventory and scope before ``run``."""
    earlier = hist.runs_of(store, KIND, run.inventory, run.scope, before_id=run.id)
    return earlier[0] if earlier else None


def interrupted_before(store: Store, run: Run) -> list[Run]:
    """Runs of this inventory that started after the previous finished one and never finished."""
    prev = previous_run(store, run)
    floor = prev.id if prev else 0
    return [r for r in store.unfinished_runs(KIND, run.inventory) if floor < r.id < run.id]


def open_since(store: Store, run: Run, subjects: Iterable[str]) -> dict[str, Run]:
    """For each subject open in ``run``: the first run of the unbroken series of finished runs
    (same inventory and scope) in which it was open."""
    since = {s: run for s in subjects}
    remaining = set(since)
    for earlier in hist.runs_of(store, KIND, run.inventory, run.scope, before_id=run.id):
        if not remaining:
            break
        results = hist.results_for(store, earlier.id, remaining)
        for s in list(remaining):
            r = results.get(s)
            if r is not None and is_open(r.verdict):
                since[s] = earlier
            else:
                remaining.discard(s)
    return since


def compare(store: Store, run_id: int) -> Trend:
    """New, fixed, still open (and since when) against the previous finished run; interrupted runs."""
    run = _run(store, run_id)
    prev = previous_run(store, run)
    now = {r.subject: r for r in store.results(run.id)}
    before = {r.subject: r for r in store.results(prev.id)} if prev else {}
    open_now = [s for s, r in now.items() if is_open(r.verdict)]
    since = open_since(store, run, open_now)
    new, fixed, still, gone = [], [], [], []
    for s in sorted(now.keys() | before.keys()):
        a, b = now.get(s), before.get(s)
        status, previous = (a.verdict if a else None), (b.verdict if b else None)
        item = Item(s, status, previous, a.reason if a else b.reason if b else "",
                    since.get(s) if is_open(status) else None)
        if is_open(status):
            (still if is_open(previous) else new).append(item)
        elif is_open(previous):
            (fixed if a is not None else gone).append(item)
    return Trend(run, prev, new, fixed, still, gone, interrupted_before(store, run))


# ---------------------------------------------------------------- history at a date

@dataclass(frozen=True)
class Answer:
    """``history`` at a date: the run that answers it, its matching results, and the verdict."""

    at: datetime
    run: Run | None
    results: list[Result]

    @property
    def compliant(self) -> bool | None:
        if self.run is None or not self.results:
            return None
        return not any(is_open(r.verdict) for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "compliant": self.compliant,
                "run": None if self.run is None else {"id": self.run.id, "scope": self.run.scope,
                                                      "started_at": self.run.started_at,
                                                      "local": self.run.started_local},
                "results": [{"subject": r.subject, "status": r.verdict, "reason": r.reason,
                             "severity": r.figures.get("severity", "")} for r in self.results]}


def _matches(s: str, device: str | None, rule: str | None) -> bool:
    d, r = split_subject(s)
    return (device is None or d == device) and (rule is None or r == rule)


def history(store: Store, device: str | None = None, rule: str | None = None,
               at: str | date | datetime | None = None, inventory: str | None = None) -> Answer:
    """"Was this device compliant on 2026-11-15?": the last finished compliance run started at or
    before ``at`` (a local date means the end of that day; default now) that checked the device
    (and rule), with its matching results. Runs of any scope count: a site run answers for its devices."""
    limit = hist.cutoff(at) if at is not None else hist.cutoff(datetime.now(hist.LOCAL_TZ))
    for run in hist.runs_of(store, KIND, inventory):
        if hist.parse_time(run.started_at) > limit:
            continue
        results = [r for r in store.results(run.id) if _matches(r.subject, device, rule)]
        if results:
            return Answer(limit, run, results)
    return Answer(limit, None, [])


__all__ = ["KIND", "STATUSES", "OPEN", "Finding", "FindingLike", "from_evaluation", "subject", "split_subject",
           "is_open",
           "start_run", "record", "summary", "finish_run", "record_run", "Item", "Trend", "previous_run",
           "interrupted_before", "open_since", "compare", "Answer", "history"]
