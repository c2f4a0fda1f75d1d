"""The history store: schema versioning, WAL, runs and results, compare, local time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from provnet import history


def test_default_path_is_under_provnet_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    assert history.default_path() == tmp_path / "home" / "history.sqlite"
    with history.open_store() as store:
        assert store.path == tmp_path / "home" / "history.sqlite"
    assert (tmp_path / "home" / "history.sqlite").exists()


def test_new_file_is_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    with history.open_store(tmp_path / "h.sqlite") as store:
        assert store.version == history.SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with history.open_store(tmp_path / "h.sqlite") as store:  # reopening migrates nothing twice
        assert store.version == history.SCHEMA_VERSION


def test_a_file_from_a_newer_provnet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {history.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(history.HistoryError, match="newer than this provnet knows"):
        history.open_store(path)


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.sqlite"
    history.open_store(path).close()
    monkeypatch.setattr(history, "MIGRATIONS", history.MIGRATIONS + (("CREATE TABLE t (a)", "THIS IS NOT SQL"),))
    monkeypatch.setattr(history, "SCHEMA_VERSION", len(history.MIGRATIONS))
    with pytest.raises(history.HistoryError, match="from version 1 to 2 failed"):
        history.open_store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None


def test_runs_results_and_last_runs(tmp_path: Path) -> None:
    with history.open_store(tmp_path / "h.sqlite") as store:
        r1 = store.start_run("vc-readiness", "province", "inventory/lab", "2025-03-01T01:00:00Z")
        store.add_result(r1, "a-vc", "ready", "media", "", {"ping_ms": 0.4, "site": "Xã Đồng Đăng"})
        store.add_result(r1, "b-vc", "not ready", "wan", "no route")
        store.finish_run(r1, {"ready": 1, "not ready": 1})
        unfinished = store.start_run("vc-readiness", "province", "inventory/lab")
        other = store.start_run("vc-readiness", "site a", "inventory/lab")
        store.finish_run(other, {})
        r2 = store.start_run("vc-readiness", "province", "inventory/lab")
        store.finish_run(r2, {"ready": 2})
        runs = store.last_runs("vc-readiness", "province")
        assert [r.id for r in runs] == [r2, r1]  # newest first, unfinished and other scopes skipped
        assert unfinished not in [r.id for r in store.last_runs("vc-readiness", "province", n=10)]
        assert runs[1].summary == {"ready": 1, "not ready": 1}
        assert runs[1].started_local == "2025-03-01 08:00:00 (giờ VN)"
        res = store.results(r1)
        assert [(x.subject, x.verdict, x.layer) for x in res] == [("a-vc", "ready", "media"),
                                                                  ("b-vc", "not ready", "wan")]
        assert res[0].figures == {"ping_ms": 0.4, "site": "Xã Đồng Đăng"}
        assert store.last_runs("vc-readiness", "province", inventory="inventory/other") == []


def test_compare_reports_changed_new_and_gone_subjects(tmp_path: Path) -> None:
    with history.open_store(tmp_path / "h.sqlite") as store:
        a = store.start_run("k", "s", "i")
        for subject, verdict, layer in (("same", "ready", "media"), ("broke", "ready", "media"),
                                        ("moved", "not ready", "wan"), ("gone", "ready", "media")):
            store.add_result(a, subject, verdict, layer)
        store.finish_run(a, {})
        b = store.start_run("k", "s", "i")
        for subject, verdict, layer, reason in (("same", "ready", "media", ""),
                                                ("broke", "not ready", "registration", "not registered"),
                                                ("moved", "not ready", "router", "CE down"),
                                                ("new", "ready", "media", "")):
            store.add_result(b, subject, verdict, layer, reason)
        store.finish_run(b, {})
        changes = {c.subject: c for c in store.compare(a, b)}
    assert set(changes) == {"broke", "moved", "gone", "new"}
    assert (changes["broke"].before_verdict, changes["broke"].after_layer, changes["broke"].after_reason) == \
        ("ready", "registration", "not registered")
    assert changes["moved"].kind == "changed" and changes["moved"].before_layer == "wan"
    assert changes["gone"].kind == "gone" and changes["gone"].after_verdict is None
    assert changes["new"].kind == "new"
    assert changes["new"].as_dict()["before"] is None


def test_local_time_is_ho_chi_minh() -> None:
    assert history.local_time("2025-12-31T17:30:00Z") == "2026-01-01 00:30:00 (giờ VN)"
    assert history.local_time("2025-12-31T17:30:00+00:00", "%H:%M") == "00:30 (giờ VN)"
    assert history.local_time(None) == ""
    assert history.utc_now().endswith("Z")


def test_store_is_shared_between_threads(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with history.open_store(tmp_path / "h.sqlite") as store:
        run = store.start_run("k", "s", "i")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: store.add_result(run, f"e{n:03d}", "ready", "media"), range(100)))
        store.finish_run(run, {})
        assert len(store.results(run)) == 100
