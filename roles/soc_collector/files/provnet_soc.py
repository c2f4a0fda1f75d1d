#!/usr/bin/env python3
"""provnet-soc — the SOC node's event store, detections, alerts and archive (Python 3.11, stdlib only).

Installed on the SOC host by the soc_collector role; the controller compiles the Sigma rules
(``provnet/soc/sigma.py``) into ``compiled.json``, so this program needs no pySigma.

  ingest          new lines of <events>/events-YYYY-MM-DD.json (since the saved offsets) into
                  <store>/YYYY/MM/events-YYYY-MM-DD.sqlite (UTC day of @timestamp); a line that is
                  not a JSON object with a valid @timestamp goes to the day's ``rejects`` table
  detect          compiled.json's queries and built-in checks over the recent window; each new
                  alert once into <store>/alerts.sqlite and syslog ("provnet-soc-alert …")
  alerts          the alerts (--since, --site, --json)
  events          a site's events (--site, --category, --since, --json)
  archive         each closed day's database and raw events file hashed (SHA-256), chained with the
                  previous day's entry in <store>/archive-chain.jsonl
  verify-archive  recompute the chain; the first broken day is reported and the exit code is 1
  prune           remove days older than --days (default 180; fewer than 90 is refused)

Exit codes: 0 done, 1 verify-archive found a broken day, 2 refused (bad arguments, a missing file).
Formats and meaning: docs/soc.md in the provnet repository.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

try:
    import syslog
except ImportError:  # pragma: no cover - not on Linux
    syslog = None  # type: ignore[assignment]

#: provnet/soc/fields.py's FIELDS, in its order (a unit test keeps the two the same)
FIELDS: tuple[str, ...] = (
    "@timestamp", "host.name", "labels.site", "event.dataset", "event.category", "event.action",
    "event.outcome", "event.id", "source.ip", "source.port", "destination.ip", "destination.port",
    "network.transport", "user.name", "process.name", "service.name", "provnet.ticket", "provnet.digest",
    "message",
)
INTEGER_FIELDS = frozenset({"source.port", "destination.port"})
RETENTION_DAYS = 180
MIN_RETENTION_DAYS = 90  # TCVN 11930 level 3
ALERT_PREFIX = "provnet-soc-alert"
COMPILED_FORMAT = 1
EVENTS_FILE = re.compile(r"^events-(\d{4}-\d{2}-\d{2})\.json$")
DAY_DB = re.compile(r"^events-(\d{4}-\d{2}-\d{2})\.sqlite$")
SPAN = re.compile(r"^(\d+)([smhd])$")
UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PRIORITY = {"critical": "LOG_CRIT", "high": "LOG_ERR", "medium": "LOG_WARNING", "low": "LOG_NOTICE",
            "informational": "LOG_INFO"}


class Refused(Exception):
    """A refusal reported as one line (exit 2), never a traceback."""


# ---------------------------------------------------------------------------------------------- time


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; without one, UTC) as an aware UTC datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    """UTC, RFC 3339 with Z (microseconds only when there are some)."""
    moment = moment.astimezone(timezone.utc)
    frac = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def span_seconds(value: str) -> int:
    m = SPAN.match(value.strip())
    if not m:
        raise Refused(f"'{value}' is not a time span (write 30m, 24h or 7d)")
    return int(m.group(1)) * UNIT[m.group(2)]


def since_time(value: str, now: datetime) -> datetime:
    """``--since``: a span back from now (24h, 7d) or an RFC 3339 time."""
    if SPAN.match(value.strip()):
        return now - timedelta(seconds=span_seconds(value))
    moment = parse_time(value)
    if moment is None:
        raise Refused(f"--since '{value}' is neither a span (24h, 7d) nor an RFC 3339 time")
    return moment


def days_between(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


# --------------------------------------------------------------------------------------------- store


class Store:
    """``<store>/YYYY/MM/events-YYYY-MM-DD.sqlite`` day partitions, alerts, the archive chain."""

    def __init__(self, root: Path, events_dir: Path) -> None:
        self.root = root
        self.events_dir = events_dir
        self.chain = root / "archive-chain.jsonl"
        self.state = root / "ingest-state.json"
        self.alerts_db = root / "alerts.sqlite"

    def day_db(self, day: date) -> Path:
        return self.root / f"{day:%Y}" / f"{day:%m}" / f"events-{day.isoformat()}.sqlite"

    def events_file(self, day: date) -> Path:
        return self.events_dir / f"events-{day.isoformat()}.json"

    def days(self) -> list[date]:
        """Every day with a database in the store."""
        out = []
        for path in self.root.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/events-*.sqlite"):
            m = DAY_DB.match(path.name)
            if m:
                out.append(date.fromisoformat(m.group(1)))
        return sorted(out)

    def all_days(self) -> set[date]:
        """Every day the store knows: a database, or a raw events file not ingested yet."""
        days = set(self.days())
        if self.events_dir.is_dir():
            for path in self.events_dir.iterdir():
                m = EVENTS_FILE.match(path.name)
                if m:
                    days.add(date.fromisoformat(m.group(1)))
        return days

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time (ingest, detect, archive and prune run from timers)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def read(self, day: date) -> sqlite3.Connection | None:
        """A day's database opened read-only (so reading never changes an archived file), or None."""
        path = self.day_db(day)
        if not path.exists():
            return None
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)

    def write(self, day: date) -> sqlite3.Connection:
        path = self.day_db(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        create_events_schema(conn)
        return conn

    def archived_through(self) -> date | None:
        """The last day in the archive chain: its database no longer takes events."""
        last = None
        for entry in read_chain(self.chain):
            if isinstance(entry, dict) and isinstance(entry.get("day"), str):
                day = date.fromisoformat(entry["day"])
                last = day if last is None or day > last else last
        return last


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def events_columns() -> str:
    cols = [f"{quote(f)} {'INTEGER' if f in INTEGER_FIELDS else 'TEXT COLLATE NOCASE'}" for f in FIELDS]
    return ", ".join([*cols, "raw TEXT NOT NULL"])


def create_events_schema(conn: sqlite3.Connection, schema: str = "main") -> None:
    conn.executescript(f"""
        CREATE TABLE IF NOT EXISTS {schema}.events ({events_columns()});
        CREATE UNIQUE INDEX IF NOT EXISTS {schema}.events_id ON events ("event.id");
        CREATE INDEX IF NOT EXISTS {schema}.events_time ON events ("@timestamp");
        CREATE INDEX IF NOT EXISTS {schema}.events_site ON events ("labels.site", "@timestamp");
        CREATE TABLE IF NOT EXISTS {schema}.rejects (file TEXT NOT NULL, offset INTEGER NOT NULL,
            received TEXT NOT NULL, reason TEXT NOT NULL, line TEXT NOT NULL, UNIQUE (file, offset));
        CREATE TABLE IF NOT EXISTS {schema}.ingest_counts (file TEXT NOT NULL, at TEXT NOT NULL,
            lines INTEGER, inserted INTEGER, unparsed INTEGER, rejected INTEGER);
    """)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# -------------------------------------------------------------------------------------------- ingest


def event_row(obj: dict[str, Any], moment: datetime, event_id: str, raw: str) -> list[Any]:
    row: list[Any] = []
    for name in FIELDS:
        value = obj.get(name)
        if name == "@timestamp":
            value = iso(moment)
        elif name == "event.id":
            value = event_id
        elif value is None:
            pass
        elif name in INTEGER_FIELDS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                value = None
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        else:
            value = str(value)
        row.append(value)
    row.append(raw)
    return row


def cmd_ingest(store: Store, args: argparse.Namespace, now: datetime) -> int:
    if not store.events_dir.is_dir():
        raise Refused(f"{store.events_dir}: no events folder (the normaliser writes events-YYYY-MM-DD.json there)")
    state: dict[str, Any] = {}
    if store.state.exists():
        try:
            state = json.loads(store.state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
    files_state: dict[str, Any] = state.setdefault("files", {})
    archived = store.archived_through()
    totals = {"lines": 0, "inserted": 0, "duplicates": 0, "unparsed": 0, "rejected": 0, "late": 0}
    conns: dict[date, sqlite3.Connection] = {}

    def conn_for(day: date) -> sqlite3.Connection:
        if day not in conns:
            conns[day] = store.write(day)
            conns[day].execute("BEGIN")
        return conns[day]

    received = iso(now)
    pending: dict[str, dict[str, int]] = {}
    for path in sorted(store.events_dir.iterdir()):
        m = EVENTS_FILE.match(path.name)
        if not m or not path.is_file():
            continue
        file_day = date.fromisoformat(m.group(1))
        st = path.stat()
        known = files_state.get(path.name) or {}
        offset = int(known.get("offset", 0))
        if known.get("inode") != st.st_ino or offset > st.st_size:
            offset = 0  # a new or truncated file: from its start (event ids are stable, no duplicates)
        if offset == st.st_size:
            continue
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            continue  # a line still being written
        counts = {"lines": 0, "inserted": 0, "unparsed": 0, "rejected": 0}
        position = offset
        for line in data[: end + 1].split(b"\n")[:-1]:
            line_offset, position = position, position + len(line) + 1
            if not line.strip():
                continue
            counts["lines"] += 1
            reason, obj, moment = None, None, None
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text, reason = line.decode("utf-8", "replace"), "not UTF-8"
            if reason is None:
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    reason = f"malformed JSON: {exc}"
            if reason is None and not isinstance(obj, dict):
                reason = "not a JSON object"
            if reason is None:
                moment = parse_time(obj.get("@timestamp"))  # type: ignore[union-attr]
                if moment is None:
                    reason = "no valid @timestamp"
            if reason is None and archived is not None and moment.date() <= archived:  # type: ignore[union-attr]
                reason = f"late: its day {moment.date()} is already archived"  # type: ignore[union-attr]
                totals["late"] += 1
            if reason is not None:
                day = file_day if archived is None or file_day > archived else now.date()
                conn_for(day).execute("INSERT OR IGNORE INTO rejects VALUES (?, ?, ?, ?, ?)",
                                      (path.name, line_offset, received, reason, text))
                counts["rejected"] += 1
                continue
            event_id = hashlib.sha256(f"{path.name}:{line_offset}".encode()).hexdigest()[:20]
            row = event_row(obj, moment, event_id, text)  # type: ignore[arg-type]
            cur = conn_for(moment.date()).execute(  # type: ignore[union-attr]
                f"INSERT OR IGNORE INTO events VALUES ({', '.join('?' * (len(FIELDS) + 1))})", row)
            if cur.rowcount:
                counts["inserted"] += 1
            else:
                totals["duplicates"] += 1
            if obj.get("event.dataset") == "unparsed":  # type: ignore[union-attr]
                counts["unparsed"] += 1
        pending[path.name] = {"inode": st.st_ino, "offset": offset + end + 1}
        conn_for(now.date() if archived is not None and file_day <= archived else file_day).execute(
            "INSERT INTO ingest_counts VALUES (?, ?, ?, ?, ?, ?)",
            (path.name, received, counts["lines"], counts["inserted"], counts["unparsed"], counts["rejected"]))
        for key, value in counts.items():
            totals[key] += value
    for conn in conns.values():
        conn.commit()
        conn.close()
    files_state.update(pending)
    store.root.mkdir(parents=True, exist_ok=True)
    atomic_write(store.state, json.dumps(state, indent=1, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(totals))
    else:
        print("ingest: " + ", ".join(f"{v} {k}" for k, v in totals.items()))
    return 0


# -------------------------------------------------------------------------------------------- detect


def load_compiled(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Refused(f"{path}: cannot read the compiled rules ({exc.strerror}); the role installs them") from None
    except ValueError as exc:
        raise Refused(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != COMPILED_FORMAT or not isinstance(doc.get("rules"), list):
        raise Refused(f"{path}: not a compiled.json of format {COMPILED_FORMAT} (recompile with provnet.soc.sigma)")
    return doc


def window_connection(store: Store, start: datetime, end: datetime) -> sqlite3.Connection:
    """An in-memory database whose temp ``events`` holds the window's events of every day partition."""
    conn = sqlite3.connect(":memory:", uri=True)
    conn.row_factory = sqlite3.Row
    create_events_schema(conn, "temp")
    for i, day in enumerate(days_between(start.date(), end.date())):
        path = store.day_db(day)
        if not path.exists():
            continue
        conn.execute(f"ATTACH DATABASE ? AS d{i}", (f"{path.resolve().as_uri()}?mode=ro",))
        conn.execute(f'INSERT OR IGNORE INTO temp.events SELECT * FROM d{i}.events '
                     f'WHERE "@timestamp" >= ? AND "@timestamp" <= ?', (iso(start), iso(end)))
        conn.commit()
        conn.execute(f"DETACH DATABASE d{i}")
    return conn


def event_details(conn: sqlite3.Connection, ids: list[str]) -> list[dict[str, Any]]:
    rows = conn.execute('SELECT "event.id", "@timestamp", "labels.site", "host.name" FROM temp.events '
                        'WHERE "event.id" IN (SELECT value FROM json_each(?)) ORDER BY "@timestamp"',
                        (json.dumps(ids),)).fetchall()
    return [{"id": r[0], "time": r[1], "site": r[2], "host": r[3]} for r in rows]


def candidate(rule: dict[str, Any], group: dict[str, Any], events: list[dict[str, Any]], gap: float,
              metric: Any = None) -> dict[str, Any] | None:
    events = [e for e in events if parse_time(e["time"])]
    if not events:
        return None
    events.sort(key=lambda e: e["time"])
    return {"rule": rule, "group": group, "events": events, "gap": gap, "metric": metric,
            "first": parse_time(events[0]["time"]), "last": parse_time(events[-1]["time"])}


def run_sigma(conn: sqlite3.Connection, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A plain rule: its matching events grouped by ``group_by``, split where they are ``merge_seconds`` apart."""
    rows = [dict(r) for r in conn.execute(rule["sql"])]
    gap = float(rule.get("merge_seconds", 3600))
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = json.dumps({f: r.get(f) for f in rule.get("group_by", [])}, sort_keys=True)
        groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        members.sort(key=lambda r: r["@timestamp"])
        cluster: list[dict[str, Any]] = []
        last: datetime | None = None
        for r in members:
            t = parse_time(r["@timestamp"])
            if t is None:
                continue
            if cluster and last is not None and (t - last).total_seconds() > gap:
                out.append(_sigma_candidate(rule, key, cluster, gap))
                cluster = []
            cluster.append(r)
            last = t
        if cluster:
            out.append(_sigma_candidate(rule, key, cluster, gap))
    return [c for c in out if c]


def _sigma_candidate(rule: dict[str, Any], key: str, rows: list[dict[str, Any]], gap: float) -> dict[str, Any] | None:
    events = [{"id": r["event.id"], "time": r["@timestamp"], "site": r["labels.site"], "host": r["host.name"]}
              for r in rows]
    return candidate(rule, json.loads(key), events, gap)


def run_correlation(conn: sqlite3.Connection, rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A correlation: one candidate per qualifying window the backend's SQL returns."""
    out = []
    gap = float(rule.get("merge_seconds", 0))
    for r in conn.execute(rule["sql"]):
        row = dict(r)
        ids = [str(i).split(":", 1)[1] if ":" in str(i) else str(i) for i in json.loads(row["event_ids"] or "[]")]
        group = json.loads(row["group_keys"] or "{}")
        c = candidate(rule, group, event_details(conn, ids), gap, row.get("metric_value"))
        if c:
            out.append(c)
    return out


def run_silence(store: Store, rule: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Built-in ``silence``: a site seen in ``history_seconds`` whose last event is older than its threshold."""
    history = float(rule.get("history_seconds", 7 * 86400))
    default = float(rule["threshold_seconds"])
    per_site = {k: float(v) for k, v in (rule.get("thresholds") or {}).items()}
    last: dict[str, dict[str, Any]] = {}
    for day in days_between((now - timedelta(seconds=history)).date(), now.date()):
        conn = store.read(day)
        if conn is None:
            continue
        with contextlib.closing(conn):
            # SQLite: the bare columns of a MAX() aggregate come from the row holding the maximum
            q = ('SELECT "labels.site", MAX("@timestamp"), "event.id", "host.name" FROM events '
                 'WHERE "@timestamp" <= ? AND "labels.site" IS NOT NULL GROUP BY "labels.site"')
            for site, ts, eid, host in conn.execute(q, (iso(now),)):
                if site not in last or ts > last[site]["time"]:
                    last[site] = {"id": eid, "time": ts, "site": site, "host": host}
    out = []
    for site, event in sorted(last.items()):
        seen = parse_time(event["time"])
        if seen is None or (now - seen).total_seconds() > history:
            continue
        if (now - seen).total_seconds() > per_site.get(site, default):
            c = candidate(rule, {"labels.site": site}, [event], 0.0,
                          int((now - seen).total_seconds()))
            if c:
                out.append(c)
    return out


def rows_between(store: Store, first: date, last: date, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` in every day database from ``first`` to ``last`` (days without one skipped)."""
    out: list[dict[str, Any]] = []
    for day in days_between(first, last):
        conn = store.read(day)
        if conn is None:
            continue
        with contextlib.closing(conn):
            conn.row_factory = sqlite3.Row
            out.extend(dict(r) for r in conn.execute(sql))
    return out


def event_ref(e: dict[str, Any]) -> dict[str, Any]:
    """An event row as an alert's candidates hold it."""
    return {"id": e["event.id"], "time": e["@timestamp"], "site": e["labels.site"], "host": e["host.name"]}


def run_new_value(store: Store, rule: dict[str, Any], start: datetime, now: datetime) -> list[dict[str, Any]]:
    """Built-in ``new-value``: an event of the rule in the window whose ``field`` value its group (host)
    had no event with in the previous ``history_seconds`` — when the group had any event in that time."""
    history = float(rule["history_seconds"])
    field = rule["field"]
    group_by = list(rule.get("group_by", []))
    events = rows_between(store, (start - timedelta(seconds=history)).date(), now.date(), rule["sql"])
    groups: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for e in events:
        t = parse_time(e["@timestamp"])
        if t is not None and e.get(field) is not None:
            groups.setdefault(json.dumps([e.get(f) for f in group_by]), []).append((t, e))
    out = []
    for key, members in groups.items():
        members.sort(key=lambda m: m[0])
        for i, (t, e) in enumerate(members):
            if t < start or t > now:
                continue
            earlier = {str(p[field]).lower() for pt, p in members[:i]
                       if pt < t and (t - pt).total_seconds() <= history}
            if earlier and str(e[field]).lower() not in earlier:
                group = {**dict(zip(group_by, json.loads(key))), field: e[field]}
                c = candidate(rule, group, [event_ref(e)], 0.0)
                if c:
                    out.append(c)
    return out


def run_unanswered(store: Store, rule: dict[str, Any], start: datetime, now: datetime) -> list[dict[str, Any]]:
    """Built-in ``unanswered``: an event of ``sql`` in the window that no event of ``answer_sql`` of the same
    group followed within ``within_seconds`` (a service stopped and not started again — a restart is both).
    Judged only once that time has passed."""
    within = float(rule["within_seconds"])
    group_by = list(rule.get("group_by", []))
    stops = rows_between(store, start.date(), now.date(), rule["sql"])
    answers = rows_between(store, start.date(), now.date(), rule["answer_sql"])
    after: dict[str, list[datetime]] = {}
    for a in answers:
        t = parse_time(a["@timestamp"])
        if t is not None:
            after.setdefault(json.dumps([a.get(f) for f in group_by]), []).append(t)
    out = []
    for e in stops:
        t = parse_time(e["@timestamp"])
        if t is None or t < start or (now - t).total_seconds() < within:
            continue
        key = json.dumps([e.get(f) for f in group_by])
        if not any(0 <= (at - t).total_seconds() <= within for at in after.get(key, [])):
            c = candidate(rule, dict(zip(group_by, json.loads(key))), [event_ref(e)], 0.0)
            if c:
                out.append(c)
    return out


def alerts_connection(store: Store) -> sqlite3.Connection:
    store.root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(store.alerts_db)
    conn.row_factory = sqlite3.Row
    conn.executescript("""
        CREATE TABLE IF NOT EXISTS alerts (
            alert_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, rule_name TEXT, title TEXT NOT NULL,
            level TEXT, kind TEXT, site TEXT, hosts TEXT NOT NULL, group_key TEXT NOT NULL,
            first_event TEXT NOT NULL, last_event TEXT NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
            count INTEGER NOT NULL, event_ids TEXT NOT NULL, metric TEXT, detected_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule_id, group_key, last_ts);
        CREATE INDEX IF NOT EXISTS alerts_time ON alerts (last_event);
    """)
    return conn


def record(conn: sqlite3.Connection, c: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Write a candidate: merged into the same rule's alert for the same group whose events overlap it
    (within its merge gap), else a new alert (returned, to be logged once)."""
    rule = c["rule"]
    group_key = json.dumps(c["group"], sort_keys=True)
    first, last = c["first"].timestamp(), c["last"].timestamp()
    existing = conn.execute("SELECT * FROM alerts WHERE rule_id = ? AND group_key = ? AND first_ts <= ? "
                            "AND last_ts >= ? ORDER BY first_ts LIMIT 1",
                            (rule["id"], group_key, last + c["gap"], first - c["gap"])).fetchone()
    events = {e["id"]: e for e in c["events"]}
    if existing is not None:
        ids = json.loads(existing["event_ids"])
        new_ids = [i for i in events if i not in ids]
        if not new_ids:
            return None
        merged = ids + new_ids
        hosts = sorted(set(json.loads(existing["hosts"])) | {e["host"] for e in c["events"] if e["host"]})
        f_ts, l_ts = min(existing["first_ts"], first), max(existing["last_ts"], last)
        conn.execute("UPDATE alerts SET event_ids = ?, count = ?, hosts = ?, first_ts = ?, last_ts = ?, "
                     "first_event = ?, last_event = ?, updated_at = ? WHERE alert_id = ?",
                     (json.dumps(merged), len(merged), json.dumps(hosts), f_ts, l_ts,
                      existing["first_event"] if existing["first_ts"] <= first else iso(c["first"]),
                      existing["last_event"] if existing["last_ts"] >= last else iso(c["last"]),
                      iso(now), existing["alert_id"]))
        return None
    sites = sorted({e["site"] for e in c["events"] if e["site"]})
    hosts = sorted({e["host"] for e in c["events"] if e["host"]})
    alert = {
        "alert_id": hashlib.sha256(f"{rule['id']}|{group_key}|{iso(c['first'])}".encode()).hexdigest()[:16],
        "rule_id": rule["id"], "rule_name": rule.get("name"), "title": rule["title"], "level": rule.get("level"),
        "kind": rule.get("kind"), "site": ",".join(sites), "hosts": hosts, "group": c["group"],
        "first_event": iso(c["first"]), "last_event": iso(c["last"]), "count": len(events),
        "event_ids": list(events), "metric": c.get("metric"), "detected_at": iso(now),
    }
    conn.execute("INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (alert["alert_id"], rule["id"], rule.get("name"), rule["title"], rule.get("level"), rule.get("kind"),
                  alert["site"], json.dumps(hosts), group_key, alert["first_event"], alert["last_event"], first, last,
                  alert["count"], json.dumps(alert["event_ids"]),
                  None if c.get("metric") is None else str(c["metric"]), alert["detected_at"], alert["detected_at"]))
    return alert


def alert_line(alert: dict[str, Any]) -> str:
    """The syslog line of a new alert; the prefix is stable (the SOC view and dashboards match it)."""
    group = ",".join(f"{k}={v}" for k, v in sorted(alert["group"].items()))
    return (f"{ALERT_PREFIX} level={alert['level']} rule={alert['rule_name']} site={alert['site'] or '-'} "
            f"hosts={','.join(alert['hosts']) or '-'} first={alert['first_event']} last={alert['last_event']} "
            f"count={alert['count']} group={group or '-'} alert={alert['alert_id']} title=\"{alert['title']}\"")


def send_syslog(alert: dict[str, Any]) -> None:
    if syslog is None:  # pragma: no cover
        return
    syslog.openlog("provnet-soc", 0, syslog.LOG_AUTH)
    syslog.syslog(getattr(syslog, PRIORITY.get(str(alert["level"]), "LOG_WARNING")), alert_line(alert))
    syslog.closelog()


def cmd_detect(store: Store, args: argparse.Namespace, now: datetime) -> int:
    compiled = load_compiled(Path(args.compiled))
    lookback = int(compiled.get("lookback_seconds", 3600))
    window = span_seconds(args.window) if args.window else lookback + 3600
    if window < lookback:
        raise Refused(f"--window {args.window} is shorter than the longest rule timespan ({lookback} s)")
    start = now - timedelta(seconds=window)
    conn = window_connection(store, start, now)
    found: list[dict[str, Any]] = []
    failed: list[str] = []
    for rule in compiled["rules"]:
        try:
            kind = rule.get("kind")
            if kind == "sigma":
                found.extend(run_sigma(conn, rule))
            elif kind == "correlation":
                found.extend(run_correlation(conn, rule))
            elif kind == "builtin" and rule.get("check") == "silence":
                found.extend(run_silence(store, rule, now))
            elif kind == "builtin" and rule.get("check") == "new-value":
                found.extend(run_new_value(store, rule, start, now))
            elif kind == "builtin" and rule.get("check") == "unanswered":
                found.extend(run_unanswered(store, rule, start, now))
            else:
                failed.append(f"{rule.get('name')}: unknown kind {kind}/{rule.get('check')}")
        except sqlite3.Error as exc:
            failed.append(f"{rule.get('name')}: {exc}")
    conn.close()
    found.sort(key=lambda c: (c["first"], c["rule"]["id"]))
    new: list[dict[str, Any]] = []
    with contextlib.closing(alerts_connection(store)) as adb:
        for c in found:
            alert = record(adb, c, now)
            if alert:
                new.append(alert)
        adb.commit()
        for alert in new:  # as merged by the later windows of this run
            row = adb.execute("SELECT * FROM alerts WHERE alert_id = ?", (alert["alert_id"],)).fetchone()
            alert.update(first_event=row["first_event"], last_event=row["last_event"], count=row["count"],
                         hosts=json.loads(row["hosts"]), event_ids=json.loads(row["event_ids"]))
    for alert in new:
        print(alert_line(alert))
        if not args.no_syslog:
            send_syslog(alert)
    for problem in failed:
        print(f"detect: rule {problem}", file=sys.stderr)
    print(f"detect: {len(compiled['rules'])} rules over {iso(start)} .. {iso(now)}, {len(new)} new alerts"
          + (f", {len(failed)} rules failed" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------- reading


def cmd_alerts(store: Store, args: argparse.Namespace, now: datetime) -> int:
    since = since_time(args.since, now)
    rows: list[dict[str, Any]] = []
    if store.alerts_db.exists():
        conn = sqlite3.connect(f"{store.alerts_db.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        with contextlib.closing(conn):
            for r in conn.execute("SELECT * FROM alerts WHERE last_ts >= ? ORDER BY first_ts, alert_id",
                                  (since.timestamp(),)):
                row = dict(r)
                if args.site and args.site not in row["site"].split(","):
                    continue
                row["hosts"] = json.loads(row["hosts"])
                row["group"] = json.loads(row.pop("group_key"))
                row["event_ids"] = json.loads(row["event_ids"])
                for key in ("first_ts", "last_ts"):
                    row.pop(key)
                rows.append(row)
    if args.json:
        print(json.dumps({"since": iso(since), "alerts": rows}, ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        print(f"{r['first_event']}  {r['level']:<8} {r['site'] or '-':<16} {','.join(r['hosts']) or '-':<24} "
              f"{r['count']:>5}  {r['title']}")
    print(f"{len(rows)} alerts since {iso(since)}" + (f" at {args.site}" if args.site else ""), file=sys.stderr)
    return 0


def cmd_events(store: Store, args: argparse.Namespace, now: datetime) -> int:
    since = since_time(args.since, now)
    rows: list[dict[str, Any]] = []
    sql = 'SELECT * FROM events WHERE "labels.site" = ? AND "@timestamp" >= ?'
    params: list[Any] = [args.site, iso(since)]
    if args.category:
        sql += ' AND "event.category" = ?'
        params.append(args.category)
    sql += ' ORDER BY "@timestamp"'
    for day in days_between(since.date(), now.date()):
        conn = store.read(day)
        if conn is None:
            continue
        conn.row_factory = sqlite3.Row
        with contextlib.closing(conn):
            for r in conn.execute(sql, params):
                row = {k: r[k] for k in FIELDS if r[k] is not None}
                rows.append(row)
    truncated = len(rows) > args.limit
    rows = rows[-args.limit:]
    if args.json:
        print(json.dumps({"site": args.site, "since": iso(since), "truncated": truncated, "events": rows},
                         ensure_ascii=False, indent=1))
        return 0
    for r in rows:
        print(f"{r.get('@timestamp')}  {r.get('host.name', '-'):<20} {r.get('event.dataset', '-'):<14} "
              f"{r.get('event.action', '-')}/{r.get('event.outcome', '-')} {r.get('source.ip', '')}  "
              f"{r.get('message', '')}")
    print(f"{len(rows)} events at {args.site} since {iso(since)}" + (" (the newest shown)" if truncated else ""),
          file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- archive


def sha256_file(path: Path) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def read_chain(path: Path) -> list[Any]:
    if not path.exists():
        return []
    out: list[Any] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)  # kept: verify-archive reports it
    return out


def append_chain(store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    chain = read_chain(store.chain)
    prev = chain[-1].get("hash") if chain and isinstance(chain[-1], dict) else "0" * 64
    entry = {**entry, "prev": prev}
    entry["hash"] = entry_hash(entry)
    with open(store.chain, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return entry


def cmd_archive(store: Store, args: argparse.Namespace, now: datetime) -> int:
    grace = span_seconds(args.grace)
    archived = store.archived_through()
    closed = (now - timedelta(seconds=grace)).date() - timedelta(days=1)
    days = store.all_days()
    done = 0
    for day in sorted(days):
        if day > closed or (archived is not None and day <= archived):
            continue
        db, raw = store.day_db(day), store.events_file(day)
        entry = {"day": day.isoformat(), "db": str(db.relative_to(store.root)), "db_sha256": sha256_file(db),
                 "events": raw.name, "events_sha256": sha256_file(raw), "archived_at": iso(now)}
        entry = append_chain(store, entry)
        print(f"archive: {day} db {entry['db_sha256'] or 'none'} events {entry['events_sha256'] or 'none'}")
        done += 1
    print(f"archive: {done} days added, closed through {closed}", file=sys.stderr)
    return 0


def cmd_verify_archive(store: Store, args: argparse.Namespace, now: datetime) -> int:
    chain = read_chain(store.chain)
    pruned: set[str] = set()
    for entry in chain:
        if isinstance(entry, dict) and isinstance(entry.get("pruned"), list):
            pruned.update(str(d) for d in entry["pruned"])
    prev = "0" * 64
    days = 0
    for number, entry in enumerate(chain, start=1):
        what = entry.get("day", "prune record") if isinstance(entry, dict) else f"line {number}"
        broken = None
        if not isinstance(entry, dict):
            broken = f"line {number} of {store.chain.name} is not JSON"
        elif entry.get("prev") != prev:
            broken = f"its link to the previous entry is broken (line {number}: an entry removed or reordered)"
        elif entry.get("hash") != entry_hash(entry):
            broken = f"its entry was edited (line {number}: the recorded hash does not match its content)"
        elif "day" in entry and entry["day"] not in pruned:
            for kind, name, recorded in (("database", store.root / entry["db"], entry.get("db_sha256")),
                                         ("raw events file", store.events_dir / entry["events"],
                                          entry.get("events_sha256"))):
                actual = sha256_file(name)
                if actual != recorded:
                    broken = (f"the {kind} {name} " + ("is missing" if actual is None else
                              f"has SHA-256 {actual}, the chain recorded {recorded}") + " (changed after archiving)")
                    break
        if broken:
            print(f"verify-archive: {what}: {broken}")
            return 1
        prev = entry["hash"]
        days += "day" in entry
    print(f"verify-archive: {days} days verified" + (f", chain head {prev}" if chain else " (the chain is empty)"))
    return 0


def cmd_prune(store: Store, args: argparse.Namespace, now: datetime) -> int:
    if args.days < MIN_RETENTION_DAYS:
        raise Refused(f"prune --days {args.days}: refused, at least {MIN_RETENTION_DAYS} days are kept "
                      "(TCVN 11930 level 3)")
    cutoff = now.date() - timedelta(days=args.days)
    removed: list[str] = []
    days = store.all_days()
    for day in sorted(d for d in days if d < cutoff):
        for path in (store.day_db(day), store.events_file(day)):
            if path.exists():
                path.unlink()
        with contextlib.suppress(OSError):
            store.day_db(day).parent.rmdir()
            store.day_db(day).parent.parent.rmdir()
        removed.append(day.isoformat())
    if removed:
        append_chain(store, {"pruned": removed, "days_kept": args.days, "pruned_at": iso(now)})
    print(f"prune: {len(removed)} days older than {cutoff} removed ({args.days} days kept)")
    return 0


# ----------------------------------------------------------------------------------------------- CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="provnet-soc", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", default="/var/lib/provnet-soc", help="the store (day databases, alerts, chain)")
    p.add_argument("--events", default="/var/log/provnet-events", help="the normaliser's events-YYYY-MM-DD.json")
    p.add_argument("--now", help="the time to run at, RFC 3339 (default: the clock; for replays and tests)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ingest", help="new event lines into the day databases")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("detect", help="run the compiled rules and built-in checks")
    s.add_argument("--compiled", default="/etc/provnet-soc/compiled.json")
    s.add_argument("--window", help="how far back to look (default: the longest rule timespan + 1h)")
    s.add_argument("--no-syslog", action="store_true", help="print new alerts only")
    s = sub.add_parser("alerts", help="list alerts")
    s.add_argument("--since", default="7d")
    s.add_argument("--site")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("events", help="list a site's events")
    s.add_argument("--site", required=True)
    s.add_argument("--category")
    s.add_argument("--since", default="24h")
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("archive", help="hash closed days into the archive chain")
    s.add_argument("--grace", default="1h", help="how long after midnight UTC a day counts as closed")
    sub.add_parser("verify-archive", help="recompute the archive chain")
    s = sub.add_parser("prune", help="remove days older than --days")
    s.add_argument("--days", type=int, default=RETENTION_DAYS)
    return p


COMMANDS = {"ingest": cmd_ingest, "detect": cmd_detect, "alerts": cmd_alerts, "events": cmd_events,
            "archive": cmd_archive, "verify-archive": cmd_verify_archive, "prune": cmd_prune}
WRITERS = {"ingest", "detect", "archive", "prune"}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        now = datetime.now(timezone.utc)
        if args.now:
            parsed = parse_time(args.now)
            if parsed is None:
                raise Refused(f"--now '{args.now}' is not an RFC 3339 time")
            now = parsed
        store = Store(Path(args.store), Path(args.events))
        if args.command in WRITERS:
            with store.lock():
                return COMMANDS[args.command](store, args, now)
        return COMMANDS[args.command](store, args, now)
    except Refused as exc:
        print(f"provnet-soc {args.command}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"provnet-soc {args.command}: SQLite error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"provnet-soc {args.command}: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
