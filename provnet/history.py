"""The embedded history store: one SQLite file outside the repository.

Every check that is worth comparing over time (``vc readiness`` now; meetings and
nightly compliance later) records a *run* — what was checked (``kind``), over which
``scope``, on which inventory, when — and one *result* per subject (an endpoint, a
site, a device) with its verdict, the layer it reached, a one-line reason and its
figures. ``compare`` says what changed between two runs.

- Where: ``$PROVNET_HOME/history.sqlite`` (default ``~/.local/share/provnet``), never
  inside the repository; ``open_store(path)`` for another file (tests, exports).
- Schema versioned with SQLite's ``user_version``; :data:`MIGRATIONS` is applied in
  order, each step in one transaction, so an old file is brought up to date on open
  and a file written by a newer provnet is refused with a clear message.
- WAL journal: a report can read while a run writes; one writer at a time.
- Times are stored in UTC (ISO 8601, ``…Z``) and shown in Asia/Ho_Chi_Minh
  (:func:`local_time`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from provnet.errors import ProvnetError

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FILENAME = "history.sqlite"

#: Schema steps; MIGRATIONS[i] brings a file from version i to version i + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
               id          INTEGER PRIMARY KEY AUTOINCREMENT,
               kind        TEXT NOT NULL,
               scope       TEXT NOT NULL,
               inventory   TEXT NOT NULL,
               started_at  TEXT NOT NULL,
               finished_at TEXT,
               summary     TEXT NOT NULL DEFAULT '{}'
           )""",
        "CREATE INDEX runs_by_kind_scope ON runs (kind, scope, id)",
        """CREATE TABLE results (
               run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
               subject TEXT NOT NULL,
               verdict TEXT NOT NULL,
               layer   TEXT NOT NULL DEFAULT '',
               reason  TEXT NOT NULL DEFAULT '',
               figures TEXT NOT NULL DEFAULT '{}',
               PRIMARY KEY (run_id, subject)
           )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class HistoryError(ProvnetError):
    """The history file cannot be opened, migrated or written."""


def default_path() -> Path:
    from provnet.secrets import home

    return home() / FILENAME


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(ts: str | datetime) -> datetime:
    if isinstance(ts, datetime):
        dt = ts
    else:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def local_time(ts: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored UTC time as people in the province read it (Asia/Ho_Chi_Minh, UTC+7)."""
    if ts is None or ts == "":
        return ""
    return _parse(ts).astimezone(LOCAL_TZ).strftime(fmt) + " (giờ VN)"


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    scope: str
    inventory: str
    started_at: str
    finished_at: str | None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def started_local(self) -> str:
        return local_time(self.started_at)


@dataclass(frozen=True)
class Result:
    run_id: int
    subject: str
    verdict: str
    layer: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One subject whose verdict or layer differs between two runs (None: absent from that run)."""

    subject: str
    before_verdict: str | None
    before_layer: str | None
    after_verdict: str | None
    after_layer: str | None
    after_reason: str = ""

    @property
    def kind(self) -> str:
        if self.before_verdict is None:
            return "new"
        if self.after_verdict is None:
            return "gone"
        return "changed"

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "change": self.kind,
                "before": None if self.before_verdict is None else
                {"verdict": self.before_verdict, "layer": self.before_layer},
                "after": None if self.after_verdict is None else
                {"verdict": self.after_verdict, "layer": self.after_layer, "reason": self.after_reason}}


class Store:
    """One open history file. Safe to share between threads (writes are serialised)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # ---------------------------------------------------------------- writing

    def start_run(self, kind: str, scope: str, inventory: str, started_at: str | None = None) -> int:
        with self._lock, self.conn:
            cur = self.conn.execute("INSERT INTO runs (kind, scope, inventory, started_at) VALUES (?, ?, ?, ?)",
                                    (kind, scope, inventory, started_at or utc_now()))
            return int(cur.lastrowid)

    def add_result(self, run_id: int, subject: str, verdict: str, layer: str = "", reason: str = "",
                   figures: dict[str, Any] | None = None) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO results (run_id, subject, verdict, layer, reason, figures) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, subject, verdict, layer, reason,
                 json.dumps(figures or {}, ensure_ascii=False, sort_keys=True, default=str)))

    def finish_run(self, run_id: int, summary: dict[str, Any] | None = None, finished_at: str | None = None) -> None:
        with self._lock, self.conn:
            self.conn.execute("UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?",
                              (finished_at or utc_now(),
                               json.dumps(summary or {}, ensure_ascii=False, sort_keys=True, default=str), run_id))

    def set_summary(self, run_id: int, summary: dict[str, Any]) -> None:
        """Replace a run's summary while it is still going (a meeting's live state)."""
        with self._lock, self.conn:
            self.conn.execute("UPDATE runs SET summary = ? WHERE id = ?",
                              (json.dumps(summary, ensure_ascii=False, sort_keys=True, default=str), run_id))

    # ---------------------------------------------------------------- reading

    def unfinished_runs(self, kind: str, inventory: str | None = None) -> list[Run]:
        """Runs of a kind that have not finished (a meeting in progress), newest first."""
        sql = "SELECT * FROM runs WHERE kind = ? AND finished_at IS NULL"
        args: list[Any] = [kind]
        if inventory is not None:
            sql += " AND inventory = ?"
            args.append(inventory)
        return [self._run(r) for r in self.conn.execute(sql + " ORDER BY id DESC", args).fetchall()]

    @staticmethod
    def _run(row: sqlite3.Row) -> Run:
        return Run(row["id"], row["kind"], row["scope"], row["inventory"], row["started_at"], row["finished_at"],
                   json.loads(row["summary"] or "{}"))

    def run(self, run_id: int) -> Run | None:
        row = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def last_runs(self, kind: str, scope: str, n: int = 2, inventory: str | None = None,
                  finished_only: bool = True) -> list[Run]:
        """The newest ``n`` runs of a kind over a scope, newest first (unfinished runs skipped)."""
        sql = "SELECT * FROM runs WHERE kind = ? AND scope = ?"
        args: list[Any] = [kind, scope]
        if inventory is not None:
            sql += " AND inventory = ?"
            args.append(inventory)
        if finished_only:
            sql += " AND finished_at IS NOT NULL"
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(n)
        return [self._run(r) for r in self.conn.execute(sql, args).fetchall()]

    def last_run_covering(self, kind: str, subjects: list[str], inventory: str | None = None) -> Run | None:
        """The newest finished run of a kind whose scope (a comma-separated list) names every subject."""
        sql = "SELECT * FROM runs WHERE kind = ? AND finished_at IS NOT NULL"
        args: list[Any] = [kind]
        if inventory is not None:
            sql += " AND inventory = ?"
            args.append(inventory)
        wanted = set(subjects)
        for row in self.conn.execute(sql + " ORDER BY id DESC", args):
            if wanted <= set(row["scope"].split(",")):
                return self._run(row)
        return None

    def results(self, run_id: int) -> list[Result]:
        rows = self.conn.execute("SELECT * FROM results WHERE run_id = ? ORDER BY subject", (run_id,)).fetchall()
        return [Result(r["run_id"], r["subject"], r["verdict"], r["layer"], r["reason"],
                       json.loads(r["figures"] or "{}")) for r in rows]

    def compare(self, prev_run_id: int, run_id: int) -> list[Change]:
        """Subjects whose verdict or layer changed, appeared or disappeared between two runs."""
        before = {r.subject: r for r in self.results(prev_run_id)}
        after = {r.subject: r for r in self.results(run_id)}
        changes = []
        for subject in sorted(before.keys() | after.keys()):
            b, a = before.get(subject), after.get(subject)
            if b is not None and a is not None and (b.verdict, b.layer) == (a.verdict, a.layer):
                continue
            changes.append(Change(subject, b.verdict if b else None, b.layer if b else None,
                                  a.verdict if a else None, a.layer if a else None, a.reason if a else ""))
        return changes


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise HistoryError(f"{path}: history schema version {version} is newer than this provnet knows "
                           f"({SCHEMA_VERSION}); upgrade provnet, or point PROVNET_HOME elsewhere")
    for step in range(version, SCHEMA_VERSION):
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise HistoryError(f"{path}: migrating the history from version {step} to {step + 1} failed: {exc}; "
                               "the file was left as it was") from None


def open_store(path: Path | str | None = None) -> Store:
    """Open (creating and migrating as needed) the history file; default ``$PROVNET_HOME/history.sqlite``."""
    p = Path(path) if path is not None else default_path()
    try:
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(p, timeout=10, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise HistoryError(f"{p}: cannot open the history store ({exc})") from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, p)
    except sqlite3.Error as exc:
        conn.close()
        raise HistoryError(f"{p}: not a usable history store ({exc})") from None
    except HistoryError:
        conn.close()
        raise
    # `with conn:` in the methods needs an implicit transaction manager: switch it on after migrating
    conn.isolation_level = "DEFERRED"
    return Store(conn, p)


__all__ = ["Store", "Run", "Result", "Change", "open_store", "local_time", "utc_now", "default_path",
           "HistoryError", "SCHEMA_VERSION", "MIGRATIONS"]


# ---------------------------------------------------------------- added for nightly compliance (issue 22)

def cutoff(when: str | date | datetime) -> datetime:
    """The UTC instant a date or time people type means as "at or before", read in Asia/Ho_Chi_Minh.

    A bare date (``2026-11-15``) is the end of that local day, so that night's run counts;
    a time without an offset is local time; ``…Z`` or ``+07:00`` are taken as written.
    """
    if isinstance(when, datetime):
        dt = when
    elif isinstance(when, date):
        dt = datetime.combine(when, time.max)
    else:
        text = when.strip()
        try:
            if len(text) == 10:
                dt = datetime.combine(date.fromisoformat(text), time.max)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise HistoryError(f"'{when}' is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM, "
                               "Asia/Ho_Chi_Minh unless it carries an offset)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=LOCAL_TZ)
    return dt.astimezone(timezone.utc)


def parse_time(ts: str | datetime) -> datetime:
    """A stored time (UTC ISO 8601) as an aware datetime."""
    return _parse(ts)


def runs_of(store: Store, kind: str, inventory: str | None = None, scope: str | None = None,
            finished_only: bool = True, before_id: int | None = None) -> list[Run]:
    """Every run of a kind (optionally one inventory and scope), newest first."""
    sql = "SELECT * FROM runs WHERE kind = ?"
    args: list[Any] = [kind]
    for column, value in (("inventory", inventory), ("scope", scope)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    if finished_only:
        sql += " AND finished_at IS NOT NULL"
    if before_id is not None:
        sql += " AND id < ?"
        args.append(before_id)
    return [store._run(r) for r in store.conn.execute(sql + " ORDER BY id DESC", args).fetchall()]


def results_for(store: Store, run_id: int, subjects: Iterable[str]) -> dict[str, Result]:
    """A run's results for the given subjects only (absent subjects are left out)."""
    wanted = sorted(set(subjects))
    out: dict[str, Result] = {}
    for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
        chunk = wanted[i:i + 500]
        rows = store.conn.execute(f"SELECT * FROM results WHERE run_id = ? AND subject IN "
                                  f"({', '.join('?' * len(chunk))})", (run_id, *chunk)).fetchall()
        for r in rows:
            out[r["subject"]] = Result(r["run_id"], r["subject"], r["verdict"], r["layer"], r["reason"],
                                       json.loads(r["figures"] or "{}"))
    return out


__all__ += ["cutoff", "parse_time", "runs_of", "results_for"]
