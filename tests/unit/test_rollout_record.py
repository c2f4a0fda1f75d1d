"""`provnet rollout report SLUG`: the last record of a site, also when it was rolled out in a wave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet.cli import app
from provnet.rollout import record


def _rec(slugs: list[str], started: str, ok: bool = True) -> dict[str, Any]:
    return {"kind": record.KIND, "inventory": "inventory/lab", "province": "Lạng Sơn", "sites": [], "slugs": slugs,
            "started_at": started, "finished_at": started, "ok": ok, "failed_step": None if ok else 4,
            "outcome": "rollout completed" if ok else "rollout failed at step 4: verify", "seconds": 1.0,
            "steps": [], "put_back": None}


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_site_of_a_wave_is_found_in_its_waves_record(home: Path) -> None:
    store = home / "history.sqlite"
    record.save(_rec(["mau-son", "na-sam", "van-quan"], "2026-12-04T10:00:00Z"), store)
    record.save(_rec(["na-sam"], "2026-12-04T09:00:00Z", ok=False), store)   # an older record of it alone
    record.save(_rec(["tan-lang", "na-sam"], "2026-12-04T11:00:00Z"), store)
    assert record.last(["van-quan"], store_path=store)["slugs"] == ["mau-son", "na-sam", "van-quan"]
    # a record of exactly the scope asked for wins; then the newest wave holding them all
    assert record.last(["na-sam"], store_path=store)["ok"] is False
    assert record.last(["tan-lang"], store_path=store)["slugs"] == ["tan-lang", "na-sam"]
    assert record.last(["mau-son", "van-quan"], store_path=store)["started_at"] == "2026-12-04T10:00:00Z"
    assert record.last(["mau-son", "tan-lang"], store_path=store) is None     # never in one record together
    assert record.last(["mau"], store_path=store) is None                      # a slug, not a substring


def test_the_cli_prints_it_again(home: Path) -> None:
    record.save(_rec(["mau-son", "na-sam"], "2026-12-04T10:00:00Z"))
    result = CliRunner().invoke(app, ["rollout", "report", "na-sam", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["slugs"] == ["mau-son", "na-sam"]
    html = CliRunner().invoke(app, ["rollout", "report", "na-sam"])
    assert html.exit_code == 0 and "BIÊN BẢN" in html.stdout.upper()
    missing = CliRunner().invoke(app, ["rollout", "report", "tan-lang", "--json"])
    assert missing.exit_code == 2 and "no rollout of tan-lang" in missing.stdout + missing.stderr
