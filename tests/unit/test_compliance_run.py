"""provnet.compliance.run with fake drivers and shells: no device, no SSH."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from provnet import history, model, secrets
from provnet.compliance import backups, roledrift, run as crun
from provnet.compliance.rules import ComplianceInputError
from provnet.drivers.ssh import ConnectError, Result
from provnet.engine import device as engine

RULES = """\
rules:
  - id: ssh-001
    title: {vi: "Cấm đăng nhập SSH bằng root", en: "SSH: root login disabled"}
    clause: "TCVN 11930:2017 cấp độ 3 — Yêu cầu kỹ thuật › Bảo đảm an toàn máy chủ › Xác thực"
    applies_to: {platforms: [linux, frr, nftables, linux_switch, baresip]}
    check: {type: command, command: /usr/sbin/sshd -T, expect: [{regex: '^permitrootlogin no$'}]}
    severity: critical
    remediation: "Converge the base role."
"""
UNREACHABLE = "dong-dang-vc"
DRIFTING = "cao-loc-ce"
SECRETS = {"admin_password": "s3cret-Value"}
# every Linux node answers the role-drift command as a node the roles just converged would
CONVERGED: dict[str, Any] = {}


class FakeSSH:
    def __init__(self, host: str, calls: list[tuple[str, str]], weak: set[str]) -> None:
        self.host, self.calls, self.weak = host, calls, weak

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        self.calls.append((self.host, command))
        if "sshd -T" in command:
            return Result(0, "permitrootlogin yes\n" if self.host in self.weak else "permitrootlogin no\n", "")
        if command == "hostname":
            return Result(0, self.host + "\n", "")
        if command.startswith(roledrift.COMMAND_HEAD):
            exp = roledrift.expected(CONVERGED["plan"], CONVERGED["lab"], self.host, SECRETS)
            return Result(0, roledrift.answer_for(exp), "")
        return Result(1, "", "")

    def close(self) -> None: ...


class FakeDriver:
    def __init__(self, host: str, platform: str, ssh: FakeSSH, drifting: set[str]) -> None:
        self.host, self.platform, self.ssh, self.drifting = host, platform, ssh, drifting

    @classmethod
    def build_candidate(cls, sections: dict[str, str]) -> str:
        return "".join(sections.values())

    def get_config(self) -> dict[str, str]:
        return {"running": f"! {self.platform} of {self.host}\n", "candidate": "", "startup": ""}

    def load_replace_candidate(self, config: str | None = None, filename: str | None = None) -> None: ...

    def compare_config(self) -> str:
        return "+ip route 198.18.200.0/24 Null0\n" if self.host in self.drifting and self.platform == "frr" else ""

    def discard_config(self) -> None: ...

    def get_facts(self) -> dict[str, Any]:
        return {"hostname": self.host}

    def close(self) -> None: ...


@pytest.fixture(scope="module")
def lab() -> model.Model:
    m = model.load("inventory/lab")
    CONVERGED.update(lab=m, plan=roledrift.Plan())
    return m


@pytest.fixture()
def env(tmp_path: Path, lab: model.Model) -> dict[str, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ssh.yml").write_text(RULES, encoding="utf-8")
    waivers = tmp_path / "waivers.yml"
    waivers.write_text("waivers: []\n", encoding="utf-8")
    calls: list[tuple[str, str]] = []
    opened: list[tuple[str, str]] = []
    weak: set[str] = set()
    drifting = {DRIFTING}

    def opener(ctx: engine.Context, dev: Any, platform: str) -> tuple[Any, str]:
        opened.append((dev.hostname, platform))
        if dev.hostname == UNREACHABLE:
            raise ConnectError(f"{dev.ansible_host}: unreachable over SSH (timed out)")
        return FakeDriver(dev.hostname, platform, FakeSSH(dev.hostname, calls, weak), drifting), dev.ansible_host

    def shell(ctx: engine.Context, dev: Any) -> FakeSSH:
        opened.append((dev.hostname, "shell"))
        return FakeSSH(dev.hostname, calls, weak)

    ctx = engine.Context(lab, dict(SECRETS), secrets.Masker({"a": "s3cret-Value"}),
                         tmp_path / "engine-backups", tmp_path / "audit.log")
    store = history.open_store(tmp_path / "history.sqlite")
    repo = backups.BackupRepo.open(lab.root, path=tmp_path / "backups")

    def go(scope: str = "all") -> crun.RunResult:
        inputs = crun.load_inputs(lab, rules, waivers)
        return crun.run(lab, crun.parse_scope(scope, lab), inputs, workers=4, store=store, repo=repo, ctx=ctx,
                        today=date(2026, 12, 3), opener=opener, shell=shell)

    return {"go": go, "calls": calls, "opened": opened, "weak": weak, "drifting": drifting, "store": store, "repo": repo,
            "rules": rules, "waivers": waivers}


def _open(res: crun.RunResult) -> list[tuple[str, str, str]]:
    return sorted((f.device, f.rule_id, f.status) for f in res.findings if f.status in ("fail", "error", "unreachable"))


def test_a_run_checks_every_device_and_an_unreachable_one_is_one_finding(env: dict[str, Any],
                                                                        lab: model.Model) -> None:
    res = env["go"]()
    assert {f.device for f in res.findings} == set(lab.devices)
    assert _open(res) == [(DRIFTING, "drift:frr", "fail"), (UNREACHABLE, "reachability", "unreachable")]
    unreachable = [f for f in res.findings if f.device == UNREACHABLE]
    assert len(unreachable) == 1 and "timed out" in unreachable[0].evidence
    assert res.exit_code == 1
    drift = next(f for f in res.findings if f.rule_id == "drift:frr" and f.device == DRIFTING)
    assert drift.kind == "drift" and "198.18.200.0/24" in drift.evidence
    # DC servers have no engine driver: reached over the shell, checked and backed up all the same
    assert ("dc-ntp", "shell") in env["opened"]
    assert any(f.device == "dc-ntp" and f.rule_id == "ssh-001" and f.status == "pass" for f in res.findings)


def test_each_command_runs_once_per_device(env: dict[str, Any]) -> None:
    env["go"]()
    per = [c for c in env["calls"] if c[0] == "dc-core"]
    assert len(per) == len(set(per))


def test_backups_are_committed_per_run_and_masked(env: dict[str, Any]) -> None:
    res = env["go"]()
    repo: backups.BackupRepo = env["repo"]
    assert repo.show(DRIFTING, "frr", at=res.run_id).startswith("! frr of cao-loc-ce")
    assert repo.show("dc-ntp", "linux", at=res.run_id) is not None
    assert not (repo.path / UNREACHABLE).exists()


def test_the_trend_says_what_is_new_and_what_was_fixed(env: dict[str, Any]) -> None:
    first = env["go"]()
    env["weak"].add("dong-dang-ce")
    second = env["go"]()
    assert [i.subject for i in second.report.trend.new] == ["dong-dang-ce:ssh-001"]
    env["weak"].clear()
    third = env["go"]()
    assert [i.subject for i in third.report.trend.fixed] == ["dong-dang-ce:ssh-001"]
    assert first.run_id < second.run_id < third.run_id


def test_a_site_scope_touches_only_its_devices(env: dict[str, Any], lab: model.Model) -> None:
    res = env["go"]("site chi-lang")
    assert {f.device for f in res.findings} == {h for h, d in lab.devices.items() if d.site == "chi-lang"}
    assert {h for h, _ in env["opened"]} == {h for h, d in lab.devices.items() if d.site == "chi-lang"}
    assert res.exit_code == 0


def test_a_broken_rule_file_is_refused_before_any_device(env: dict[str, Any]) -> None:
    (env["rules"] / "ssh.yml").write_text(RULES.replace("'^permitrootlogin no$'", "'(unclosed'"), encoding="utf-8")
    with pytest.raises(ComplianceInputError):
        env["go"]()
    assert env["opened"] == []


def test_a_waiver_without_expiry_is_refused_before_any_device(env: dict[str, Any]) -> None:
    env["waivers"].write_text("waivers:\n  - {rule: ssh-001, role: ntp, reason: x, ticket: T-1}\n", encoding="utf-8")
    with pytest.raises(ComplianceInputError):
        env["go"]()
    assert env["opened"] == []


@pytest.mark.parametrize("text,kind,slug", [("all", "all", None), ("province", "all", None),
                                            ("site dong-dang", "site", "dong-dang"),
                                            ("district:huyen-cao-loc", "district", "huyen-cao-loc")])
def test_scopes(lab: model.Model, text: str, kind: str, slug: str | None) -> None:
    sc = crun.parse_scope(text, lab)
    assert (sc.kind, sc.slug) == (kind, slug)


@pytest.mark.parametrize("text", ["site nowhere", "sites", "district"])
def test_bad_scopes(lab: model.Model, text: str) -> None:
    with pytest.raises(ComplianceInputError):
        crun.parse_scope(text, lab)


def test_a_drift_put_back_reads_fixed(env: dict[str, Any]) -> None:
    env["go"]()
    env["drifting"].clear()
    res = env["go"]()
    assert (DRIFTING, "drift:frr") in {(i.device, i.rule_id) for i in res.report.trend.fixed}


def test_the_remediation_plan_sends_configs_to_the_engine_and_the_rest_to_the_roles(env: dict[str, Any],
                                                                                    lab: model.Model) -> None:
    env["weak"].add("dong-dang-ce")
    env["go"]()
    inputs = crun.load_inputs(lab, env["rules"], env["waivers"])
    run, actions = crun.plan_remediation(lab, env["store"], inputs, crun.Scope("all"))
    how = {a.host: (a.engine_platforms, a.roles, a.subjects, a.skipped) for a in actions}
    assert how == {
        "dong-dang-ce": ((), True, ["dong-dang-ce:ssh-001"], []),
        DRIFTING: (("frr",), False, [f"{DRIFTING}:drift:frr"], []),
        UNREACHABLE: ((), False, [], [f"{UNREACHABLE}:reachability"]),
    }
    _, only = crun.plan_remediation(lab, env["store"], inputs, crun.Scope("all"), devices=(DRIFTING,))
    assert [a.host for a in only] == [DRIFTING]
    _, by_rule = crun.plan_remediation(lab, env["store"], inputs, crun.Scope("all"), rule="ssh-001")
    assert [a.host for a in by_rule] == ["dong-dang-ce"]


def test_no_run_yet_is_bad_input(env: dict[str, Any], lab: model.Model) -> None:
    inputs = crun.load_inputs(lab, env["rules"], env["waivers"])
    with pytest.raises(ComplianceInputError):
        crun.plan_remediation(lab, env["store"], inputs, crun.Scope("site", "chi-lang"))
