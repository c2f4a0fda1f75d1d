"""The rollout after its plan, without a lab: steps in order, the first failure stops and puts the DC back
(against an overlay without the site), the record (history store, files, one printable page), overlays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet import history, lock, model
from provnet.cli import app
from provnet.rollout import overlay, record, steps

REPO = Path(__file__).resolve().parents[2]
NEW = "cao-loc"  # named by no meeting, chair or recorder: an overlay without it validates

RECAP = """PLAY RECAP *********************************************************************
dc-sip                     : ok=22   changed=2    unreachable=0    failed=0    skipped=12   rescued=0    ignored=0
cao-loc-ce                : ok=13   changed=0    unreachable=0    failed=0    skipped=7    rescued=0    ignored=0
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(lock.ENV, raising=False)
    return tmp_path / "home"


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    dest = tmp_path / "lab"
    shutil.copytree(REPO / "inventory" / "lab", dest)
    return dest


def fake_steps(monkeypatch: pytest.MonkeyPatch, fail_at: int | None, calls: list[Any]) -> None:
    def make(n: int):  # type: ignore[no-untyped-def]
        def step(ctx: steps.Context) -> dict[str, Any]:
            calls.append(steps.NAMES[n])
            if n == fail_at:
                raise steps.StepFailed(f"{steps.NAMES[n]} broke", {"n": n})
            if n == 3:
                return {"hosts": {h: {"changed": 1, "failed": 0} for h in ctx.plan.hostnames},
                        "digests": {h: steps.digest(ctx.model, h) for h in ctx.plan.hostnames}}
            return {"n": n}
        return step

    monkeypatch.setattr(steps, "STEPS", [(n, make(n)) for n in (2, 3, 4, 5)])

    def playbook(ctx: steps.Context, inventory: Path, hosts: list[str], env: dict[str, str], log: Path) -> dict:
        small = model.load(inventory)  # the overlay without the site loads and validates
        calls.append(("put-back", sorted(hosts), NEW in small.sites, env.get("PROVNET_VAULT_DIR")))
        return {"rc": 0, "hosts": {h: {"changed": 1} for h in hosts}, "changed": len(hosts)}

    monkeypatch.setattr(steps, "playbook", playbook)


def test_every_step_passes_and_the_record_is_kept(inv: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fake_steps(monkeypatch, None, calls)
    res = CliRunner().invoke(app, ["rollout", NEW, "-i", str(inv), "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert calls == ["lab", "push", "verify", "test-call"]
    assert rec["ok"] and [s["status"] for s in rec["steps"]] == ["passed"] * 6 and rec["put_back"] is None
    assert rec["sites"][0]["slug"] == NEW and rec["sites"][0]["circuit_id"]
    assert Path(rec["files"]["json"]).parent == home / "rollouts"
    with history.open_store() as store:
        (run,) = store.last_runs("rollout", NEW, n=1)
        assert [r.subject for r in store.results(run.id)] == ["1-plan", "2-lab", "3-push", "4-verify", "5-test-call",
                                                             "6-record"]
    again = CliRunner().invoke(app, ["rollout", "report", NEW, "--format", "json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["run_id"] == rec["run_id"]
    page = CliRunner().invoke(app, ["rollout", "report", NEW])
    assert page.exit_code == 0 and "Biên bản nghiệm thu" in page.stdout


def test_a_failed_step_stops_puts_the_dc_back_and_exits_1(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fake_steps(monkeypatch, 4, calls)
    res = CliRunner().invoke(app, ["rollout", NEW, "-i", str(inv), "--json"])
    assert res.exit_code == 1, res.output
    rec = json.loads(res.stdout)
    assert calls[:3] == ["lab", "push", "verify"] and "test-call" not in calls
    (put_back,) = [c for c in calls if isinstance(c, tuple)]
    m = model.load(inv)
    from provnet import secrets

    assert put_back == ("put-back", ["dc-sip", "dc-soc"], False, str(secrets.vault_paths(m).directory))
    assert rec["outcome"] == "rollout failed at step 4: verify broke" and rec["failed_step"] == 4
    assert [s["status"] for s in rec["steps"]][:4] == ["passed", "passed", "passed", "failed"]
    assert "KHÔNG ĐẠT" in record.html(rec)


def test_a_failure_before_the_push_changes_nothing_at_the_dc(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fake_steps(monkeypatch, 2, calls)
    res = CliRunner().invoke(app, ["rollout", NEW, "-i", str(inv)])
    assert res.exit_code == 1 and "rollout failed at step 2: lab broke" in res.stdout
    assert calls == ["lab"]


def test_the_page_escapes_and_fits_one_a4_page(inv: Path) -> None:
    m = model.load(inv)
    res = [steps.StepResult(1, "plan", "passed", 0.1, {"devices": [], "carrier": []}),
           steps.StepResult(4, "verify", "failed", 1.0, {}, "<script>alert(1)</script>")]
    rec = record.build(m, str(inv), (NEW,), history.utc_now(), res, None)
    rec["run_id"] = 1
    page = record.html(rec)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "@page { size: A4" in page and "http" not in page.replace('lang="vi"', "")
    weasyprint = pytest.importorskip("weasyprint")
    assert len(weasyprint.HTML(string=page).render().pages) == 1


def test_recap_and_digest(inv: Path) -> None:
    assert steps.recap(RECAP) == {"dc-sip": {"ok": 22, "changed": 2, "unreachable": 0, "failed": 0, "skipped": 12},
                                  "cao-loc-ce": {"ok": 13, "changed": 0, "unreachable": 0, "failed": 0,
                                                  "skipped": 7}}
    m = model.load(inv)
    assert steps.digest(m, "dc-sip").startswith("hostvars:")  # a role-managed server: its hostvars
    assert len(steps.digest(m, "cao-loc-ce")) == 64 and steps.digest(m, "cao-loc-ce") == steps.digest(m, "cao-loc-ce")


def test_an_overlay_without_a_site_validates_and_keeps_its_id_reserved(inv: Path, tmp_path: Path) -> None:
    ov = overlay.build(inv, tmp_path / "ov", exclude={NEW})
    assert (ov / "sites" / "chi-lang.yml").is_symlink() and not (ov / "sites" / f"{NEW}.yml").exists()
    small, big = model.load(ov), model.load(inv)
    assert NEW not in small.sites and set(small.sites) == set(big.sites) - {NEW}
    assert small.sites["chi-lang"].loopback == big.sites["chi-lang"].loopback
    # an overlay of an overlay is flattened (sot reads one base)
    ov2 = overlay.build(ov, tmp_path / "ov2", exclude={"chi-lang"})
    assert "base:" in (ov2 / "province.yml").read_text() and str(inv) in (ov2 / "province.yml").read_text()


# ------------------------------------------------------------------ a wave's verify and test call


def wave_ctx(tmp_path: Path, slugs: tuple[str, ...]) -> steps.Context:
    from provnet.rollout.plan import Plan

    m = model.load(REPO / "inventory" / "lab")
    p = Plan(inventory=str(REPO / "inventory" / "lab"), action="add", sites=slugs, production=False, devices=())
    return steps.Context(root=REPO / "inventory" / "lab", shown="inventory/lab", model=m, plan=p,
                         log_dir=tmp_path / "logs")


def test_a_wave_is_verified_sites_at_once_and_test_called_in_one_readiness_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import threading
    import time

    slugs = ("dong-dang", "cao-loc", "quan-son", "chi-lang")
    ctx = wave_ctx(tmp_path, slugs)
    seen: list[list[str]] = []
    logs: list[str] = []
    inflight = {"now": 0, "max": 0}
    lock_ = threading.Lock()

    def run(argv: list[str], env: dict[str, str], timeout: float, log: Path | None = None) -> Any:
        seen.append(argv)
        logs.append(log.name if log else "")
        if argv[1] == "verify":
            with lock_:
                inflight["now"] += 1
                inflight["max"] = max(inflight["max"], inflight["now"])
            time.sleep(0.2)
            with lock_:
                inflight["now"] -= 1
            s = argv[argv.index("--site") + 1]
            ok = s != "quan-son"
            row = {"site": s, "ok": ok, "findings": [{"check": "c", "ok": ok, "layer": "registration"}],
                   "root_cause": None if ok else {"host": f"{s}-vc", "layer": "registration", "check": "registered",
                                                  "message": "no binding"}}
            return subprocess.CompletedProcess(argv, 0 if ok else 1, json.dumps([row]), "")
        eps = [{"endpoint": f"{s}-vc", "verdict": "ready", "figures": {"media": {"loss_pct": 0.0}}} for s in slugs]
        return subprocess.CompletedProcess(argv, 0, json.dumps({"run_id": 7, "endpoints": eps}), "")

    monkeypatch.setattr(steps, "_run", run)
    monkeypatch.setattr(steps, "_bgp", lambda ctx: [{"site": s, "state": "Established"} for s in ctx.slugs])
    monkeypatch.setattr(steps, "test_conference", lambda ctx, s: {"site": s, "heard": True, "state": "joined",
                                                                  "reason": ""})
    with pytest.raises(steps.StepFailed, match="verify --site quan-son: quan-son-vc registration"):
        steps.step_verify(ctx, deadline_s=0.0)
    assert inflight["max"] > 1                                    # sites verified at once
    assert sorted(a[a.index("--site") + 1] for a in seen) == sorted(slugs)
    seen.clear()
    logs.clear()
    ev = steps.step_test_call(ctx)
    assert [a[a.index("--scope") + 1] for a in seen] == ["site dong-dang,cao-loc,quan-son,chi-lang"]
    assert [e["endpoint"] for e in ev["endpoints"]] == [f"{s}-vc" for s in slugs]
    assert logs == ["readiness-wave.json"]
