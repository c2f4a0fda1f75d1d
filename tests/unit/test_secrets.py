"""Secrets: generated for the lab into a 0600 vault outside the repo, never printed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provnet import model, secrets
from provnet.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_lab_vault_is_generated_encrypted_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path))
    m = model.load(REPO / "inventory" / "lab")
    values = secrets.ensure(m)
    assert set(values) == set(m.secret_refs()) and all(len(v) >= 20 for v in values.values())
    paths = secrets.vault_paths(m)
    assert tmp_path in paths.vault.parents and REPO not in paths.vault.parents
    for f in (paths.vault, paths.password_file):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    raw = paths.vault.read_text()
    assert raw.startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert not any(v in raw for v in values.values())
    assert secrets.ensure(m) == values  # stable once generated

    result = CliRunner().invoke(app, ["inventory", "vault", "-i", str(REPO / "inventory" / "lab")])
    assert result.exit_code == 0 and "sip_dong_dang_vc" in result.stdout
    assert not any(v in result.stdout for v in values.values())


def test_production_vault_is_never_invented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path))
    m = model.load(REPO / "inventory" / "thanhhoa")
    assert m.production
    with pytest.raises(secrets.SecretError, match="ansible-vault edit"):
        secrets.ensure(m)


def test_masker_hides_every_value() -> None:
    mask = secrets.Masker({"a": "s3cret-value", "b": "other"})
    assert mask("pw=s3cret-value other") == f"pw={secrets.MASK} {secrets.MASK}"


def test_engine_context_takes_the_runs_opened_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.engine import device

    monkeypatch.setenv("PROVNET_HOME", str(tmp_path))
    m = model.load(REPO / "inventory" / "lab")
    values = secrets.ensure(m)
    opened = {**values, "something_else": "x"}
    calls: list[int] = []
    real = secrets.ensure
    monkeypatch.setattr(secrets, "ensure", lambda model_: calls.append(1) or real(model_))
    ctx = device.Context.build(m, loaded=opened)
    assert ctx.secrets == values and calls == []           # no second decryption
    assert ctx.mask(f"pw {values['admin_password']}") == f"pw {secrets.MASK}"
    incomplete = {k: v for k, v in values.items() if k != "admin_password"}
    assert device.Context.build(m, loaded=incomplete).secrets == values and calls == [1]
    assert device.Context.build(m).secrets == values and calls == [1, 1]
