"""Baseline rules as data (issue 22): every rule file loads, rules are complete, broken files and
waivers are refused with exact messages."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from provnet import model
from provnet.compliance import rules as R
from provnet.compliance.waivers import WAIVERS_FILE, load_waivers

FAMILIES = {"ssh", "access", "accounts", "services", "snmp", "time", "logging", "firewall",
            "cisco_ios", "fortios", "cisco_tp"}


@pytest.fixture(scope="module")
def rules() -> dict[str, R.Rule]:
    return R.load_rules()


def test_every_family_loads_with_at_least_40_rules(rules: dict[str, R.Rule]) -> None:
    assert {r.family for r in rules.values()} == FAMILIES
    assert {p.stem for p in R.RULES_DIR.glob("*.yml")} == FAMILIES
    assert len(rules) >= 40


def test_every_rule_is_complete(rules: dict[str, R.Rule]) -> None:
    for rule in rules.values():
        assert rule.title.vi.strip() and rule.title.en.strip(), rule.id
        assert rule.title.vi != rule.title.en, rule.id
        assert rule.clause.startswith("TCVN 11930:2017 cấp độ 3"), rule.id
        assert rule.remediation.strip(), rule.id


def test_vietnamese_titles_carry_diacritics(rules: dict[str, R.Rule]) -> None:
    plain = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()/,.-_:'\"+")
    assert all(set(r.title.vi) - plain for r in rules.values())


def test_linux_rules_carry_cis_ids_only_where_mapped(rules: dict[str, R.Rule]) -> None:
    assert rules["ssh-001"].cis == "5.1.20"
    assert all(r.cis is None for r in rules.values() if r.family in ("cisco_ios", "fortios", "cisco_tp"))


def test_shipped_waivers_load(rules: dict[str, R.Rule]) -> None:
    # the DC servers sit behind dc-fw by design (issue 22): their host-firewall rule is waived, nothing else
    waivers = load_waivers(WAIVERS_FILE, rules, model.load("inventory/lab"))
    assert {(w.rule, w.role) for w in waivers} == {("firewall-006", r) for r in ("ntp", "soc", "sip_registrar",
                                                                                  "vc_bridge")}


# ------------------------------------------------------------------ broken rule files

GOOD = """\
  - id: ssh-001
    title: {vi: "Cấm root", en: "No root"}
    clause: "TCVN 11930:2017 cấp độ 3 — Yêu cầu kỹ thuật › Bảo đảm an toàn máy chủ › Xác thực"
    applies_to: {platforms: [linux]}
    check: {type: command, command: /usr/sbin/sshd -T, expect: [{regex: '^permitrootlogin no$'}]}
    severity: critical
    remediation: converge the base role
"""


def problems(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(R.ComplianceInputError) as exc:
        R.load_rules(tmp_path)
    return [f"{p.obj}: {p.message} — fix: {p.fix}" for p in exc.value.problems]


def test_good_file_loads(tmp_path: Path) -> None:
    (tmp_path / "ssh.yml").write_text("rules:\n" + GOOD, encoding="utf-8")
    assert list(R.load_rules(tmp_path)) == ["ssh-001"]


def test_empty_folder(tmp_path: Path) -> None:
    assert problems(tmp_path, {}) == [
        "folder: holds no rule file (*.yml) — fix: add compliance/rules/<family>.yml (docs/compliance.md)"]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    got = problems(tmp_path, {"ssh.yml": "rules:\n  - id: [ssh-001\n"})
    assert len(got) == 1 and got[0].startswith("file: YAML syntax error at line 3")


def test_not_a_rules_file(tmp_path: Path) -> None:
    assert problems(tmp_path, {"ssh.yml": "- id: ssh-001\n"}) == [
        "file: must hold one key, 'rules', a list of rules — fix: write `rules:` followed by "
        "`- id: ssh-001 …` entries (docs/compliance.md)"]


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    got = problems(tmp_path, {"ssh.yml": "rules:\n" + GOOD + GOOD.replace("ssh-001", "ssh-002"),
                              "time.yml": "rules:\n" + GOOD})
    assert got == ["rule ssh-001: id belongs to family 'ssh', not to this file's 'time' — fix: "
                   "rename it time-NNN or move it to ssh.yml"]
    got = problems(tmp_path, {"ssh.yml": "rules:\n" + GOOD + GOOD, "time.yml": "rules: []\n"})
    assert got == ["rule ssh-001: duplicate id (also in " + str(tmp_path / "ssh.yml") +
                   ") — fix: give the rule the next free number of its family"]


def test_unknown_platform_role_and_bad_regex_all_reported(tmp_path: Path) -> None:
    bad = (GOOD.replace("[linux]", "[linux, junos], roles: [router]")
           .replace("'^permitrootlogin no$'", "'^permitrootlogin (no$'"))
    got = problems(tmp_path, {"ssh.yml": "rules:\n" + bad})
    assert got == [
        "rule ssh-001.applies_to.platforms: unknown platform 'junos' (known: frr, nftables, linux_switch, "
        "baresip, linux, cisco_ios, fortios, cisco_tp) — fix: use a name listed (provnet/schema.py PLATFORMS, ROLES)",
        "rule ssh-001.applies_to.roles: unknown role 'router' (known: ce, endpoint, core, firewall, switch, "
        "ntp, soc, sip_registrar, vc_bridge) — fix: use a name listed (provnet/schema.py PLATFORMS, ROLES)",
        "rule ssh-001.check.expect[0].regex: invalid regular expression (missing ), unterminated subpattern "
        "at position 17) — fix: correct the pattern (Python re syntax; a literal . ( [ { needs a backslash)",
    ]


def test_missing_fields_unknown_key_bad_severity(tmp_path: Path) -> None:
    bad = GOOD.replace("    severity: critical\n", "    severity: urgent\n    owner: netops\n").replace(
        '    clause: "TCVN 11930:2017 cấp độ 3 — Yêu cầu kỹ thuật › Bảo đảm an toàn máy chủ › Xác thực"\n', "")
    got = problems(tmp_path, {"ssh.yml": "rules:\n" + bad})
    assert got == [
        "rule ssh-001.clause: missing required field 'clause' — fix: add 'clause' (docs/compliance.md)",
        "rule ssh-001.owner: unknown key 'owner' — fix: remove it or rename it to a key of the format "
        "(docs/compliance.md)",
        "rule ssh-001.severity: 'urgent' is not allowed — fix: use one of 'low', 'medium', 'high' or 'critical'",
    ]


def test_bad_check_type_and_empty_config_check(tmp_path: Path) -> None:
    bad = GOOD.replace("{type: command, command: /usr/sbin/sshd -T, expect: [{regex: '^permitrootlogin no$'}]}",
                       "{type: shell, command: x}")
    assert problems(tmp_path, {"ssh.yml": "rules:\n" + bad}) == [
        "rule ssh-001.check: check.type must be config, command or fact — fix: set check.type to one of "
        "config, command, fact"]
    bad = GOOD.replace("{type: command, command: /usr/sbin/sshd -T, expect: [{regex: '^permitrootlogin no$'}]}",
                       "{type: config, platform: cisco_ios}")
    assert problems(tmp_path, {"ssh.yml": "rules:\n" + bad}) == [
        "rule ssh-001.check: checks nothing: give must_match, must_not_match or each_line — fix: correct the value "
        "(docs/compliance.md)"]


def test_bad_id_and_clause(tmp_path: Path) -> None:
    bad = GOOD.replace("id: ssh-001", "id: SSH_1").replace('clause: "TCVN', 'clause: "ISO 27001 / TCVN')
    assert problems(tmp_path, {"ssh.yml": "rules:\n" + bad}) == [
        "rule SSH_1.clause: must cite the standard, starting 'TCVN 11930:2017' — fix: correct the value "
        "(docs/compliance.md)",
        "rule SSH_1.id: must look like <family>-NNN, e.g. ssh-001 — fix: correct the value (docs/compliance.md)",
    ]


# ------------------------------------------------------------------ broken waivers

def waiver_problems(tmp_path: Path, text: str, rules: dict[str, R.Rule]) -> list[str]:
    path = tmp_path / "waivers.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(R.ComplianceInputError) as exc:
        load_waivers(path, rules, model.load("inventory/lab"))
    return [f"{p.obj}: {p.message} — fix: {p.fix}" for p in exc.value.problems]


def test_waiver_without_expiry(tmp_path: Path, rules: dict[str, R.Rule]) -> None:
    text = "waivers:\n  - {rule: accounts-001, role: ntp, reason: later, ticket: CHG-1}\n"
    assert waiver_problems(tmp_path, text, rules) == [
        "waivers[0] (accounts-001).expires: has no expiry date — fix: add 'expires: YYYY-MM-DD': every waiver "
        "ends (renew it with a new ticket when it must last longer)"]


def test_waiver_unknown_rule_device_site(tmp_path: Path, rules: dict[str, R.Rule]) -> None:
    text = ("waivers:\n"
            "  - {rule: ssh-999, device: dc-ntp, reason: r, ticket: T, expires: 2027-01-31}\n"
            "  - {rule: ssh-001, device: dc-nope, reason: r, ticket: T, expires: 2027-01-31}\n"
            "  - {rule: ssh-001, site: atlantis, reason: r, ticket: T, expires: 2027-01-31}\n"
            "  - {rule: ssh-001, role: router, reason: r, ticket: T, expires: 2027-01-31}\n")
    assert waiver_problems(tmp_path, text, rules) == [
        "waivers[0] (ssh-999): unknown rule id 'ssh-999' — fix: use the id of a rule in compliance/rules/*.yml",
        "waivers[1] (ssh-001): unknown device 'dc-nope' — fix: use a hostname of the inventory "
        "(provnet inventory show)",
        "waivers[2] (ssh-001): unknown site 'atlantis' — fix: use a site slug of the inventory",
        "waivers[3] (ssh-001): unknown role 'router' — fix: use one of ce, endpoint, core, firewall, switch, "
        "ntp, soc, sip_registrar, vc_bridge",
    ]


def test_waiver_needs_exactly_one_target_and_a_date(tmp_path: Path, rules: dict[str, R.Rule]) -> None:
    text = ("waivers:\n"
            "  - {rule: ssh-001, device: dc-ntp, role: ntp, reason: r, ticket: T, expires: 2027-01-31}\n"
            "  - {rule: ssh-001, role: ntp, reason: r, ticket: T, expires: next spring}\n")
    got = waiver_problems(tmp_path, text, rules)
    assert got[0] == ("waivers[0] (ssh-001): needs exactly one of device, site, role (got device, role) — "
                      "fix: correct the value (docs/compliance.md)")
    assert got[1].startswith("waivers[1] (ssh-001).expires: Input should be a valid date")


def test_waiver_file_shape(tmp_path: Path, rules: dict[str, R.Rule]) -> None:
    assert waiver_problems(tmp_path, "- rule: ssh-001\n", rules) == [
        "file: must hold one key, 'waivers', a list — fix: write `waivers: []` or a list of waivers "
        "(docs/compliance.md)"]
    assert load_waivers(tmp_path / "absent.yml", rules) == []
    (tmp_path / "w.yml").write_text("waivers:\n  - {rule: ssh-001, site: dong-dang, reason: r, ticket: T, "
                                    "expires: 2027-01-31}\n", encoding="utf-8")
    (w,) = load_waivers(tmp_path / "w.yml", rules, model.load("inventory/lab"))
    assert w.expires == date(2027, 1, 31) and w.target == "site dong-dang"
