"""Backup history in git: runs, diffs by run id and by date, masking, modes, an interrupted run."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from provnet.compliance import backups
from provnet.compliance.backups import BackupError, BackupRepo

SECRET = "Zq8-very-secret-admin-pw"
SECRETS = {"admin_password": SECRET}
NIGHT1, NIGHT2 = "2026-11-14T19:00:05Z", "2026-11-15T19:00:04Z"  # 02:00 on 15 and 16 Nov, Asia/Ho_Chi_Minh


def _run(repo: BackupRepo, run_id: int, when: str, files: dict[tuple[str, str], str]) -> str:
    with repo.begin(run_id, SECRETS, when, "inventory/lab") as run:
        for (host, platform), text in files.items():
            run.write(host, platform, text)
        return run.commit()


@pytest.fixture
def repo(tmp_path: Path) -> BackupRepo:
    r = BackupRepo.open("inventory/lab", tmp_path / "backups")
    _run(r, 7, NIGHT1, {("ce-a", "frr"): f"hostname ce-a\nusername admin password {SECRET}\nrouter bgp 65001\n",
                        ("ce-a", "nftables"): "table inet filter {}\n", ("dc-fw", "nftables"): "policy drop\n"})
    _run(r, 8, NIGHT2, {("ce-a", "frr"): f"hostname ce-a\nusername admin password {SECRET}\nrouter bgp 65001\n"
                                         " network 198.18.9.0/24\n",
                        ("ce-a", "nftables"): "table inet filter {}\n"})
    return r


def _git(repo: BackupRepo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo.path), *args], capture_output=True, text=True, check=True,
                          env={**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
                               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}).stdout


def test_one_commit_per_run_with_run_id_and_time(repo: BackupRepo) -> None:
    commits = repo.commits()
    assert [(c.run_id, c.complete) for c in commits] == [(8, True), (7, True)]
    assert commits[0].local == "2026-11-16 02:00:04 (giờ VN)"
    log = _git(repo, "log", "--format=%an <%ae>%n%B")
    assert "Provnet-Run: 8" in log and "Provnet-Time: 2026-11-15T19:00:04Z" in log
    assert log.count("provnet compliance <provnet@localhost>") == 2
    assert (repo.path / "ce-a" / "frr.txt").is_file() and (repo.path / "dc-fw" / "nftables.txt").is_file()


def test_diff_between_runs_by_id_and_by_date(repo: BackupRepo) -> None:
    by_id = repo.diff("ce-a", from_=7, to=8)
    assert "+ network 198.18.9.0/24" in by_id and "--- a/ce-a/frr.txt" in by_id
    assert "nftables" not in by_id  # unchanged files are not in the diff
    assert repo.diff("ce-a", from_="2026-11-15", to="2026-11-16") == by_id  # local dates: that day's 02:00 run
    assert repo.diff("ce-a") == by_id  # default: the last run against the one before
    assert repo.diff("dc-fw", from_=7, to=8) == ""  # not in run 8's scope: kept, not deleted
    assert repo.resolve("2026-11-15T23:59").run_id == 7
    assert repo.resolve("2026-11-16T01:59").run_id == 7  # before run 8's 02:00:04 local
    assert "+policy drop" in repo.diff("dc-fw", to=7)  # the first run against nothing
    assert repo.show("ce-a", "frr", at=7).startswith("hostname ce-a\n")


def test_unknown_run_or_date_is_a_clear_error(repo: BackupRepo) -> None:
    with pytest.raises(BackupError, match=r"no backup of run 99 \(runs here: 7–8\)"):
        repo.diff("ce-a", from_=99)
    with pytest.raises(BackupError, match="no backup at or before 2026-11-01"):
        repo.diff("ce-a", from_="2026-11-01")
    with pytest.raises(BackupError, match="cannot name a backup file"):
        repo.diff("../etc", from_=7)


def test_secret_never_reaches_a_file_or_the_history(repo: BackupRepo) -> None:
    for path in repo.path.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert SECRET not in path.read_text(encoding="utf-8")
    history = _git(repo, "log", "-p", "--all")
    assert SECRET not in history and "password vault:admin_password" in history
    assert subprocess.run(["grep", "-r", "-q", SECRET, str(repo.path)]).returncode == 1  # packed or loose


def test_vendor_secret_forms_are_masked() -> None:
    text = ("username admin privilege 15 secret 9 $9$abc\n enable password 7 0822455D0A16\n"
            "    set password ENC SH2nlSm9QL9tapcHPXIqAXvX7vBJuuIt\nsnmp-server community public RO\n")
    masked = backups.mask(text, ["unused"])
    assert "$9$abc" not in masked and "0822455D0A16" not in masked and "SH2nl" not in masked
    assert "secret 9 ********" in masked and "set password ENC ********" in masked
    assert "snmp-server community ******** RO" in masked
    assert backups.mask("a=xyz", ["xyz"]) == "a=********"


def test_repo_and_files_are_private(repo: BackupRepo) -> None:
    assert stat.S_IMODE(repo.path.stat().st_mode) == 0o700
    assert stat.S_IMODE((repo.path / "ce-a" / "frr.txt").stat().st_mode) == 0o600


def test_default_path_is_per_inventory_under_provnet_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    a, b = backups.default_path("inventory/lab"), backups.default_path("inventory/thanhhoa-lab")
    assert a.parent == b.parent == tmp_path / "home" / "backups" and a.name.startswith("lab-") and a != b
    assert BackupRepo.open("inventory/lab").path == a


def test_no_global_git_config_is_needed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Someone Else\n[commit]\n\tgpgsign = true\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # an inherited GIT_* must not redirect us
    r = BackupRepo.open("x", tmp_path / "b")
    _run(r, 1, NIGHT1, {("h", "frr"): "x\n"})
    assert _git(r, "log", "--format=%an") == "provnet compliance\n"


def test_interrupted_run_is_committed_as_incomplete_and_reported(repo: BackupRepo) -> None:
    run = repo.begin(9, SECRETS, "2026-11-16T19:00:00Z", "inventory/lab")
    with run:
        run.write("ce-a", "frr", "hostname ce-a\n half written\n")
        (repo.git_dir / "index.lock").write_text("")  # as if git itself was killed mid-commit
        (repo.git_dir / "provnet-tmp-x").write_text("half")  # and a write before its rename
        # the process dies here: no commit
    with repo.begin(10, SECRETS, "2026-11-17T19:00:00Z", "inventory/lab") as nxt:
        assert nxt.interrupted is not None and nxt.interrupted.run_id == 9
        assert nxt.interrupted.files == ["ce-a/frr.txt"]
        assert "run 9 (started 2026-11-17 02:00:00 (giờ VN)) did not finish" in str(nxt.interrupted)
        nxt.write("ce-a", "frr", "hostname ce-a\n")
        nxt.commit()
    assert [(c.run_id, c.complete) for c in repo.commits()[:3]] == [(10, True), (9, False), (8, True)]
    assert "+ half written" in repo.diff("ce-a", from_=8, to=9)
    assert _git(repo, "status", "--porcelain") == "" and not list(repo.git_dir.glob("provnet-tmp-*"))
    with repo.begin(11, SECRETS, "2026-11-18T19:00:00Z") as again:  # reported once, not every night
        assert again.interrupted is None


def test_a_run_that_wrote_nothing_before_dying_still_resolves(repo: BackupRepo) -> None:
    with repo.begin(9, SECRETS, "2026-11-16T19:00:00Z"):
        pass
    with repo.begin(10, SECRETS, "2026-11-17T19:00:00Z") as nxt:
        assert nxt.interrupted is not None and nxt.interrupted.files == []
        nxt.commit()
    assert repo.resolve(9).complete is False and repo.diff("ce-a", from_=8, to=9) == ""


def test_two_runs_at_once_are_refused(repo: BackupRepo) -> None:
    with repo.begin(9, SECRETS):
        with pytest.raises(BackupError, match="another compliance run"):
            with repo.begin(10, SECRETS):
                pass
