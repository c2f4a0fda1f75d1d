"""Compliance runs in the history store: trend over three runs, history at a date, interrupted runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from provnet import history
from provnet.compliance import trend
from provnet.compliance.trend import Finding

INV, SCOPE = "inventory/lab", "all"


def F(device: str, rule: str, status: str, evidence: str = "") -> Finding:
    return Finding(device, rule, status, evidence, title=f"title of {rule}", severity="high", site="xa-dong-dang")


@pytest.fixture
def store(tmp_path: Path) -> history.Store:
    with history.open_store(tmp_path / "h.sqlite") as s:
        yield s


def _three_runs(store: history.Store) -> list[int]:
    # 02:00 local on 14, 15, 16 Nov 2026
    nights = ("2026-11-13T19:00:00Z", "2026-11-14T19:00:00Z", "2026-11-15T19:00:00Z")
    runs = [
        [F("ce-a", "ssh.root_login", "fail", "PermitRootLogin yes"), F("ce-a", "ntp.dc", "pass"),
         F("dc-fw", "fw.default_drop", "fail", "policy accept"), F("ep-a", "ssh.banner", "pass")],
        [F("ce-a", "ssh.root_login", "fail", "PermitRootLogin yes"), F("ce-a", "ntp.dc", "pass"),
         F("dc-fw", "fw.default_drop", "pass"), F("ep-a", "ssh.banner", "unreachable", "timed out")],
        [F("ce-a", "ssh.root_login", "fail", "PermitRootLogin yes"), F("ce-a", "ntp.dc", "fail", "no peer"),
         F("dc-fw", "fw.default_drop", "pass"), F("ep-a", "ssh.banner", "waived")],
    ]
    return [trend.record_run(store, INV, SCOPE, fs, started_at=t) for fs, t in zip(runs, nights)]


def test_results_are_one_row_per_device_and_rule(store: history.Store) -> None:
    r1, _, _ = _three_runs(store)
    rows = {r.subject: r for r in store.results(r1)}
    assert set(rows) == {"ce-a:ssh.root_login", "ce-a:ntp.dc", "dc-fw:fw.default_drop", "ep-a:ssh.banner"}
    root = rows["ce-a:ssh.root_login"]
    assert (root.verdict, root.layer, root.reason) == ("fail", "rule", "PermitRootLogin yes")
    assert root.figures["severity"] == "high" and root.figures["evidence"] == "PermitRootLogin yes"
    assert len(root.figures["evidence_sha256"]) == 64
    assert "evidence" not in rows["ce-a:ntp.dc"].figures  # a pass keeps only the digest
    run = store.run(r1)
    assert run is not None and run.summary["compliant"] is False and run.summary["counts"]["fail"] == 2


def test_trend_new_fixed_and_still_open_since(store: history.Store) -> None:
    r1, r2, r3 = _three_runs(store)
    t2 = trend.compare(store, r2)
    assert t2.previous is not None and t2.previous.id == r1
    assert [i.subject for i in t2.new] == ["ep-a:ssh.banner"]  # unreachable is open, not fixed
    assert [i.subject for i in t2.fixed] == ["dc-fw:fw.default_drop"]
    assert [(i.subject, i.open_since.id) for i in t2.still_open if i.open_since] == [("ce-a:ssh.root_login", r1)]

    t3 = trend.compare(store, r3)
    assert [i.subject for i in t3.new] == ["ce-a:ntp.dc"] and t3.new[0].open_since.id == r3  # type: ignore[union-attr]
    assert [(i.subject, i.status, i.previous) for i in t3.fixed] == [("ep-a:ssh.banner", "waived", "unreachable")]
    still = t3.still_open[0]
    assert still.subject == "ce-a:ssh.root_login" and still.open_since is not None and still.open_since.id == r1
    assert still.as_dict()["open_since"]["local"] == "2026-11-14 02:00:00 (giờ VN)"
    assert trend.compare(store, r1).previous is None


def test_open_since_restarts_after_a_fix(store: history.Store) -> None:
    ids = [trend.record_run(store, INV, SCOPE, [F("ce-a", "r", s)]) for s in ("fail", "pass", "fail", "fail")]
    assert trend.compare(store, ids[3]).still_open[0].open_since.id == ids[2]  # type: ignore[union-attr]


def test_other_scopes_and_inventories_are_not_compared(store: history.Store) -> None:
    r1, _, r3 = _three_runs(store)
    trend.record_run(store, INV, "site xa-dong-dang", [F("ce-a", "ssh.root_login", "pass")])
    trend.record_run(store, "inventory/other", SCOPE, [F("ce-a", "ssh.root_login", "pass")])
    r4 = trend.record_run(store, INV, SCOPE, [F("ce-a", "ssh.root_login", "fail")])
    t = trend.compare(store, r4)
    assert t.previous is not None and t.previous.id == r3
    assert t.still_open[0].open_since.id == r1  # type: ignore[union-attr]
    assert [i.subject for i in t.gone] == ["ce-a:ntp.dc"]  # open last time, no longer checked


def test_a_previous_run_that_did_not_finish_is_reported_once(store: history.Store) -> None:
    r1 = trend.record_run(store, INV, SCOPE, [F("ce-a", "r", "pass")])
    dead = trend.start_run(store, INV, SCOPE)
    trend.record(store, dead, [F("ce-a", "r", "fail")])  # killed before finish_run
    r3 = trend.record_run(store, INV, SCOPE, [F("ce-a", "r", "pass")])
    t = trend.compare(store, r3)
    assert [r.id for r in t.interrupted] == [dead] and t.previous is not None and t.previous.id == r1
    assert t.new == [] and t.fixed == []  # the unfinished run is never the comparison point
    r4 = trend.record_run(store, INV, SCOPE, [F("ce-a", "r", "pass")])
    assert trend.compare(store, r4).interrupted == []


def test_history_at_a_date(store: history.Store) -> None:
    r1, r2, r3 = _three_runs(store)
    on_15 = trend.history(store, device="ce-a", at="2026-11-15")  # the 02:00 run of the 15th
    assert on_15.run is not None and on_15.run.id == r2 and on_15.compliant is False
    ntp = trend.history(store, device="ce-a", rule="ntp.dc", at="2026-11-15")
    assert ntp.compliant is True and [r.subject for r in ntp.results] == ["ce-a:ntp.dc"]
    assert trend.history(store, device="dc-fw", at="2026-11-14").compliant is False
    assert trend.history(store, device="dc-fw", at="2026-11-15T01:59").run.id == r1  # type: ignore[union-attr]
    assert trend.history(store, device="dc-fw").run.id == r3  # type: ignore[union-attr]
    before = trend.history(store, device="ce-a", at="2026-11-01")
    assert before.run is None and before.compliant is None
    assert trend.history(store, device="nobody").compliant is None
    by_rule = trend.history(store, rule="ssh.banner", at="2026-11-16")
    assert [(r.subject, r.verdict) for r in by_rule.results] == [("ep-a:ssh.banner", "waived")]
    assert by_rule.compliant is True and by_rule.as_dict()["run"]["id"] == r3


def test_a_site_run_answers_for_its_devices(store: history.Store) -> None:
    _three_runs(store)
    site = trend.record_run(store, INV, "site xa-dong-dang", [F("ce-a", "ssh.root_login", "pass")],
                            started_at="2026-11-16T05:00:00Z")
    assert trend.history(store, device="ce-a", at="2026-11-16").run.id == site  # type: ignore[union-attr]
    assert trend.history(store, device="dc-fw", at="2026-11-16").run.scope == SCOPE  # type: ignore[union-attr]


def test_bad_date_is_a_clear_error(store: history.Store) -> None:
    with pytest.raises(history.HistoryError, match="is not a date"):
        trend.history(store, at="15/11/2026")


def test_summary_and_exit_meaning() -> None:
    s = trend.summary([F("a", "r", "pass"), F("a", "s", "waived"), F("b", "r", "not_applicable")])
    assert s["compliant"] is True and s["devices"] == 2 and s["open"] == 0
    assert trend.summary([F("a", "r", "error")])["compliant"] is False


def test_from_evaluation_adds_the_rule_and_the_site() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Evaluated:  # the evaluator's shape: rule, not rule_id; a note
        device: str
        rule: str
        status: str
        evidence: str = ""
        note: str = ""

    class Title:
        vi, en = "Cấm đăng nhập root", "No root login"

    class Rule:
        title, severity, clause, remediation = Title(), "high", "TCVN 11930:2017 8.1.3", "PermitRootLogin no"

    out = trend.from_evaluation([Evaluated("ce-a", "ssh-001", "waived", "PermitRootLogin yes", "waived until …"),
                                 Evaluated("dc-fw", "drift:nftables", "fail", "+chain x")],
                                {"ssh-001": Rule()}, {"ce-a": "xa-dong-dang", "dc-fw": None})
    assert out[0] == Finding("ce-a", "ssh-001", "waived", "PermitRootLogin yes", "rule", "Cấm đăng nhập root", "high",
                             "xa-dong-dang", "waived until …", "TCVN 11930:2017 8.1.3", "PermitRootLogin no")
    assert (out[1].kind, out[1].site, out[1].rule_id) == ("drift", "", "drift:nftables")
