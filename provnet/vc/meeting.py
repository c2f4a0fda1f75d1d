"""Meetings: templates from the model, readiness first, dial-out in tiers, live roll-call, record.

A meeting is a history run (kind ``vc-meeting``): its summary holds the template, the bridge's
conference id and the state (``active`` until ``end``); its results hold one row per site —
verdict ``joined`` / ``failed`` / ``not ready`` / ``left`` / ``dropped`` / ``no endpoint``,
the reason, and the figures (tier, attempts, times, media). ``provnet vc meeting status``
and the other commands find the active meeting there, so they work from any shell.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from provnet import history
from provnet.errors import ProvnetError
from provnet.model import Model
from provnet.vc import readiness
from provnet.vc.bridge import IN_FLIGHT, Bridge, BridgeError, Participant

KIND = "vc-meeting"
TIERS = ("chair", "province", "district", "commune")
POLL_S = 0.5
RETRY_BACKOFF_S = 2.0


class MeetingError(ProvnetError):
    pass


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    chair: str | None
    members: tuple[tuple[str, str], ...]  # (site slug, tier), chair first, then halls, districts, communes

    def sites(self) -> list[str]:
        return [slug for slug, _ in self.members]


def templates(m: Model) -> dict[str, Template]:
    """``toan-tinh``, one ``huyen-<slug>`` per district, and the inventory's ad hoc meetings."""
    out: dict[str, Template] = {}

    def order(slugs: list[str]) -> list[str]:
        return sorted(slugs, key=lambda s: m.sites[s].id)

    def build(name: str, title: str, chair: str | None, others: list[str]) -> Template:
        members: list[tuple[str, str]] = [(chair, "chair")] if chair else []
        rest = [s for s in others if s != chair]
        for tier in TIERS[1:]:  # a site's tier is its level
            members += [(s, tier) for s in order([s for s in rest if m.sites[s].level == tier])]
        return Template(name, title, chair, tuple(members))

    out["toan-tinh"] = build("toan-tinh", f"Họp trực tuyến toàn tỉnh {m.name}", m.vc.chair, list(m.sites))
    for d in m.districts():
        name = d.slug if d.slug.startswith("huyen-") else f"huyen-{d.slug}"  # district slugs often carry it
        out[name] = build(name, f"Họp trực tuyến {d.name}", d.slug,
                                       [s.slug for s in m.communes() if s.district == d.slug])
    for name, adhoc in m.vc.meetings.items():
        out[name] = build(name, adhoc.title, adhoc.chair, list(adhoc.sites))
    return out


def inventory_key(m: Model) -> str:
    """How meetings name their inventory in the history: its absolute folder, however it was given."""
    return str(Path(m.root).resolve())


def template(m: Model, name: str) -> Template:
    found = templates(m)
    if name not in found:
        raise MeetingError(f"no meeting template '{name}' in {m.root} — use one of: {', '.join(found)} "
                           "(ad hoc ones go under vc.meetings in province.yml)")
    return found[name]


def parse_at(text: str, now: datetime | None = None) -> datetime:
    """``HH:MM`` (Vietnam time, today or tomorrow if already past) or an ISO 8601 time."""
    now = now or datetime.now(history.LOCAL_TZ)
    try:
        if re.fullmatch(r"\d{1,2}:\d{2}", text):
            hh, mm = (int(x) for x in text.split(":"))
            at = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
            return at if at > now else at + timedelta(days=1)
        at = datetime.fromisoformat(text)
        return at if at.tzinfo else at.replace(tzinfo=history.LOCAL_TZ)
    except ValueError:
        raise MeetingError(f"--at {text!r}: expected HH:MM (giờ VN) or an ISO time like 2026-11-23T08:00") from None


@dataclass
class Row:
    """One site's line in the roll-call."""

    site: str
    site_name: str
    district: str | None
    tier: str
    endpoint: str | None
    state: str                    # waiting, not ready, no endpoint, or a bridge state
    reason: str = ""
    layer: str = ""               # readiness layer for a not-ready site
    attempts: int = 0
    dialed_at: float | None = None
    joined_at: float | None = None
    left_at: float | None = None
    muted: bool = False
    media: dict[str, Any] = field(default_factory=dict)
    readiness: str = ""

    def verdict(self) -> str:
        return {"waiting": "never dialled", "dialing": "failed", "ringing": "failed"}.get(self.state, self.state)

    def duration(self) -> float | None:
        """Seconds in the meeting (until now while still in it)."""
        if not self.joined_at:
            return None
        return round((self.left_at or time.time()) - self.joined_at, 1)

    def as_figures(self) -> dict[str, Any]:
        dur = self.duration()
        return {"site_name": self.site_name, "district": self.district, "tier": self.tier, "endpoint": self.endpoint,
                "state": self.state, "attempts": self.attempts, "dialed_at": self.dialed_at,
                "joined_at": self.joined_at, "left_at": self.left_at, "duration_s": dur, "muted": self.muted,
                "media": self.media, "readiness": self.readiness}


class Meeting:
    """One meeting on one bridge, recorded in the history store."""

    def __init__(self, m: Model, bridge: Bridge, store: history.Store, run_id: int, summary: dict[str, Any],
                 rows: dict[str, Row]) -> None:
        self.m, self.bridge, self.store, self.id = m, bridge, store, run_id
        self.summary, self.rows = summary, rows

    # ------------------------------------------------------------ starting

    @classmethod
    def start(cls, m: Model, tpl: Template, bridge: Bridge, store: history.Store, probes: readiness.Probes | None,
              *, until: str = "media", at: datetime | None = None, concurrency: int | None = None,
              retries: int | None = None, join_timeout: float | None = None,
              on_update: Callable[["Meeting", str], None] | None = None) -> "Meeting":
        """Readiness on the scope, then dial every ready site, tier by tier; returns when all are settled."""
        rows: dict[str, Row] = {}
        eps: list[readiness.Endpoint] = []
        for slug, tier in tpl.members:
            site = m.sites[slug]
            ep_host = next((h for h in site.devices if m.devices[h].role == "endpoint" and m.devices[h].sip), None)
            rows[slug] = Row(slug, site.name, site.district if site.level != "district" else slug, tier, ep_host,
                             "waiting" if ep_host else "no endpoint",
                             "" if ep_host else "the site has no video-conference endpoint in the inventory")
            if ep_host:
                eps.append(readiness.endpoint_of(m, ep_host))
        run_id = store.start_run(KIND, tpl.name, inventory_key(m))
        summary: dict[str, Any] = {"template": tpl.name, "title": tpl.title, "chair": tpl.chair, "state": "readiness",
                                   "bridge": bridge.name, "conference": None,
                                   "at": at.isoformat() if at else None}
        store.set_summary(run_id, summary)
        meeting = cls(m, bridge, store, run_id, summary, rows)
        if probes is not None and eps:
            result = readiness.run_scope(m, eps, probes, until=until)
            for r in result.results:
                row = rows[r.endpoint.site]
                row.readiness = r.verdict
                if not r.ready:
                    row.state, row.layer = "not ready", r.layer
                    row.reason = f"readiness: {r.layer}: {r.reason}"
            summary["readiness"] = result.summary()
        meeting.save()
        if on_update:
            on_update(meeting, "readiness")
        if at is not None:
            delay = (at - datetime.now(history.LOCAL_TZ)).total_seconds()
            if delay > 0:
                summary["state"] = "scheduled"
                meeting.save()
                time.sleep(delay)
        summary["conference"] = bridge.create_conference(tpl.name, tpl.title)
        summary["state"], summary["started_at"] = "dialling", history.utc_now()
        meeting.save()
        meeting.dial_all(concurrency=concurrency or m.vc.dial_concurrency,
                         retries=m.vc.dial_retries if retries is None else retries,
                         join_timeout=join_timeout or m.vc.join_timeout_s, on_update=on_update)
        summary["state"] = "active"
        summary["all_settled_at"] = history.utc_now()
        meeting.save()
        return meeting

    @property
    def conference(self) -> str:
        conf = self.summary.get("conference")
        if not conf:
            raise MeetingError(f"meeting {self.id} has no conference on the bridge")
        return str(conf)

    def dial_all(self, *, concurrency: int, retries: int, join_timeout: float,
                 on_update: Callable[["Meeting", str], None] | None = None) -> None:
        """Tier by tier: at most ``concurrency`` legs in flight, failed legs redialled ``retries`` times."""
        for tier in TIERS:
            todo = [r for r in self.rows.values() if r.tier == tier and r.state == "waiting"]
            if not todo:
                continue
            pending = list(todo)
            retry_at: dict[str, float] = {}
            started: dict[str, float] = {}
            unread_since: float | None = None
            while True:
                try:
                    self.refresh(media=False)  # states only: media figures cost the bridge a query per leg
                    unread_since = None
                except BridgeError:
                    # a loaded bridge can miss one roll-call read; the legs keep their last known state
                    unread_since = unread_since or time.time()
                    if time.time() - unread_since > join_timeout:
                        raise
                now = time.time()
                flight = [r for r in todo if r.state in IN_FLIGHT]
                for r in flight:  # a leg that neither joins nor fails in time is hung up
                    if now - started.get(r.site, now) > join_timeout:
                        self._safe(lambda r=r: self.bridge.disconnect(self.conference, r.site, "join timeout"))
                        r.state, r.reason = "failed", f"did not join within {join_timeout:.0f} s"
                for r in todo:
                    if (r.state == "failed" and r.attempts <= retries and r.site not in retry_at
                            and r not in pending):
                        retry_at[r.site] = now + RETRY_BACKOFF_S
                for site, when in list(retry_at.items()):
                    if now >= when and self.rows[site].state == "failed":
                        pending.append(self.rows[site])
                        del retry_at[site]
                flight = [r for r in todo if r.state in IN_FLIGHT]
                while pending and len(flight) < concurrency:
                    r = pending.pop(0)
                    ep = self.m.devices[r.endpoint] if r.endpoint else None
                    if ep is None or ep.sip is None:
                        continue
                    try:
                        p = self.bridge.dial(self.conference, r.site, ep.sip.user, f"{r.site_name} ({r.site})",
                                             muted=r.tier in self.m.vc.join_muted)
                        self._apply(r, p)
                    except BridgeError as exc:
                        r.state, r.reason = "failed", str(exc)
                        r.attempts += 1
                    started[r.site] = time.time()
                    flight.append(r)
                if on_update:
                    on_update(self, tier)
                settled = not pending and not retry_at and not any(r.state in IN_FLIGHT for r in todo)
                if settled:
                    break
                time.sleep(POLL_S)
            self.save()
        self._safe(self.refresh)  # the media figures, once; `meeting status` reads them again

    @staticmethod
    def _safe(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BridgeError:
            pass

    @staticmethod
    def _apply(row: Row, p: Participant, media: bool = True) -> None:
        row.state, row.reason, row.attempts = p.state, p.reason, p.attempts
        row.dialed_at, row.joined_at, row.left_at = p.dialed_at, p.joined_at or row.joined_at, p.left_at
        row.muted = p.muted
        if media:
            row.media = {**p.media, "codec": p.codec} if p.codec else p.media
        if p.state == "joined" and p.in_room is False and p.media:
            row.reason = "answered, but the bridge does not list it in the room"

    def refresh(self, media: bool = True) -> None:
        """Pull every participant's state (and, with ``media``, its media figures) from the bridge."""
        if not self.summary.get("conference") or self.summary.get("state") == "ended":
            return
        for p in self.bridge.participants(self.conference, media=media):
            if p.key in self.rows:
                self._apply(self.rows[p.key], p, media)

    def save(self) -> None:
        for r in self.rows.values():
            self.store.add_result(self.id, r.site, r.verdict(), r.layer, r.reason, r.as_figures())
        self.summary["counts"] = self.counts()
        self.store.set_summary(self.id, self.summary)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r.state] = out.get(r.state, 0) + 1
        return out

    # ------------------------------------------------------------ operating

    def row(self, site: str) -> Row:
        if site not in self.rows:
            raise MeetingError(f"site '{site}' is not in meeting {self.id} ({self.summary.get('template')}); "
                               f"participants: {', '.join(self.rows)}")
        return self.rows[site]

    def mute(self, site: str, muted: bool = True) -> Row:
        r = self.row(site)
        self._apply(r, self.bridge.mute(self.conference, site, muted))
        self.save()
        return r

    def drop(self, site: str) -> Row:
        r = self.row(site)
        self._apply(r, self.bridge.disconnect(self.conference, site, "dropped by the operator"))
        self.save()
        return r

    def redial(self, site: str, *, join_timeout: float | None = None) -> Row:
        r = self.row(site)
        if r.endpoint is None:
            raise MeetingError(f"{site} has no endpoint to dial")
        ep = self.m.devices[r.endpoint]
        assert ep.sip is not None
        self._apply(r, self.bridge.dial(self.conference, site, ep.sip.user, f"{r.site_name} ({site})",
                                        muted=r.tier in self.m.vc.join_muted))
        deadline = time.time() + (join_timeout or self.m.vc.join_timeout_s)
        while r.state in IN_FLIGHT and time.time() < deadline:
            time.sleep(POLL_S)
            self.refresh(media=False)
        self.refresh()
        self.save()
        return r

    def end(self) -> None:
        self.refresh()
        now = time.time()
        for r in self.rows.values():
            if r.state == "joined":
                r.left_at = now
                r.state = "left"
                r.reason = "meeting ended"
        if self.summary.get("conference"):
            self.bridge.end(self.conference)
        self.summary["state"] = "ended"
        self.summary["ended_at"] = history.utc_now()
        self.save()
        self.store.finish_run(self.id, self.summary)

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, m: Model, bridge: Bridge, store: history.Store, run_id: int | None = None) -> "Meeting":
        """A recorded meeting: the given id, or the newest one still running for this inventory."""
        if run_id is None:
            active = store.unfinished_runs(KIND, inventory_key(m))
            if not active:
                raise MeetingError(f"no meeting in progress for {m.root} — start one with "
                                   "`provnet vc meeting start toan-tinh`")
            run = active[0]
        else:
            found = store.run(run_id)
            if found is None or found.kind != KIND:
                raise MeetingError(f"no meeting {run_id} in {store.path}")
            run = found
        rows = {}
        for res in store.results(run.id):
            f = res.figures
            rows[res.subject] = Row(res.subject, f.get("site_name", res.subject), f.get("district"),
                                    f.get("tier", ""), f.get("endpoint"), f.get("state", res.verdict), res.reason,
                                    res.layer, int(f.get("attempts") or 0), f.get("dialed_at"), f.get("joined_at"),
                                    f.get("left_at"), bool(f.get("muted")), f.get("media") or {},
                                    f.get("readiness", ""))
        order = {t: i for i, t in enumerate(TIERS)}
        rows = dict(sorted(rows.items(), key=lambda kv: (order.get(kv[1].tier, 9), m.sites[kv[0]].id
                                                         if kv[0] in m.sites else 0)))
        return cls(m, bridge, store, run.id, dict(run.summary), rows)

    @property
    def finished(self) -> bool:
        return self.summary.get("state") == "ended"

