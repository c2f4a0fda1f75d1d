"""`provnet rollout --wave N`: a canary, then waves of N, each against the inventory without the later waves'
sites; the first failing wave stops the rest; one summary record. The rollout of each wave is replaced here
(its steps need the lab: tests/integration/test_80_rollout.py); the grouping, the overlays, the stop and
the summary are the real ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet import history, lock, model, rollout_cli
from provnet.cli import app

REPO = Path(__file__).resolve().parents[2]
NEW = [f"thu-{n}" for n in ("mot", "hai", "ba", "bon", "nam")]


@pytest.fixture
def inv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(lock.ENV, raising=False)
    monkeypatch.delenv("PROVNET_INVENTORY", raising=False)
    dest = tmp_path / "lab"
    shutil.copytree(REPO / "inventory" / "lab", dest)
    for n, slug in enumerate(NEW):
        name = "Xã Thử " + slug.split("-")[1].capitalize()
        res = CliRunner().invoke(app, ["site", "add", "-i", str(dest), "--name", name, "--kind", "xa",
                                       "--code", f"9999{n}", "--slug", slug, "--district", "huyen-cao-loc",
                                       "--circuit", f"LAB-{slug.upper()}", "--contact-name", "Nguyễn Văn An",
                                       "--contact-phone", "0912 000 00" + str(n)])
        assert res.exit_code == 0, res.output
    return dest


def test_a_canary_then_waves_of_n() -> None:
    assert rollout_cli.waves(NEW, 2) == [("thu-mot",), ("thu-hai", "thu-ba"), ("thu-bon", "thu-nam")]
    assert rollout_cli.waves(NEW, 10) == [("thu-mot",), ("thu-hai", "thu-ba", "thu-bon", "thu-nam")]
    assert rollout_cli.waves(NEW[:1], 3) == [("thu-mot",)]


def fake_execute(calls: list[dict[str, Any]], fail_at: int | None = None):  # type: ignore[no-untyped-def]
    def execute(root: Path, shown: str, p: Any, plan_seconds: float, as_json: bool,
                env: dict[str, str] | None = None) -> dict[str, Any]:
        calls.append({"sites": set(model.load(root).sites), "wave": p.sites, "env": env})
        ok = len(calls) != fail_at
        return {"slugs": list(p.sites), "ok": ok, "outcome": "rollout completed" if ok else
                "rollout failed at step 4: provnet verify", "seconds": 1.0, "run_id": len(calls),
                "files": {"html": f"/tmp/{len(calls)}.html"}}
    return execute


def test_each_wave_sees_only_itself_and_the_waves_before(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(rollout_cli, "_execute", fake_execute(calls))
    base = set(model.load(REPO / "inventory" / "lab").sites)
    res = CliRunner().invoke(app, ["rollout", *NEW, "-i", str(inv), "--wave", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert [c["wave"] for c in calls] == [("thu-mot",), ("thu-hai", "thu-ba"), ("thu-bon", "thu-nam")]
    assert calls[0]["sites"] == base | {"thu-mot"}
    assert calls[1]["sites"] == base | {"thu-mot", "thu-hai", "thu-ba"}
    assert calls[2]["sites"] == base | set(NEW) and calls[2]["env"] is None  # the last wave: the inventory itself
    assert calls[0]["env"]["PROVNET_VAULT_DIR"]  # overlays read the inventory's own vault
    summary = json.loads(res.stdout)
    assert summary["ok"] and summary["not_started"] == [] and len(summary["waves"]) == 3
    assert summary["outcome"] == "5 site(s) rolled out in 3 wave(s)"
    with history.open_store() as store:
        (run,) = store.last_runs("rollout-waves", ",".join(NEW), n=1)
    assert run.summary["waves"][1]["sites"] == ["thu-hai", "thu-ba"]
    assert Path(summary["files"]["json"]).is_file()


def test_the_first_failing_wave_stops_the_rest(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(rollout_cli, "_execute", fake_execute(calls, fail_at=2))
    res = CliRunner().invoke(app, ["rollout", *NEW, "-i", str(inv), "--wave", "2", "--json"])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert len(calls) == 2 and not summary["ok"]
    assert summary["not_started"] == ["thu-bon", "thu-nam"]
    assert summary["outcome"] == "wave 2 failed: rollout failed at step 4: provnet verify"
    assert [w["ok"] for w in summary["waves"]] == [True, False]


def test_a_site_not_ready_refuses_every_wave(inv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(rollout_cli, "_execute", fake_execute(calls))
    path = inv / "sites" / "thu-ba.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("LAB-THU-BA", "PENDING-99992"), encoding="utf-8")
    res = CliRunner().invoke(app, ["rollout", *NEW, "-i", str(inv), "--wave", "2", "--json"])
    assert res.exit_code == 2 and calls == []
    assert "thu-ba" in res.stdout
