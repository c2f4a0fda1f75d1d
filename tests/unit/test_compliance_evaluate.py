"""The evaluator (issue 22): vendor rules on the project's rendered configs and on recorded-style
compliant / non-compliant running configs, Linux rules on recorded command output, facts,
masking and waivers with a fixed date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from provnet import hostvars, model
from provnet.compliance import evaluate as ev
from provnet.compliance.rules import CommandCheck, ConfigCheck, Rule, load_rules
from provnet.compliance.waivers import Waiver, apply_waivers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compliance"
VENDOR = {"cisco_ios": "ham-rong-ce", "fortios": "dc-fw", "cisco_tp": "ham-rong-vc"}


@pytest.fixture(scope="module")
def rules() -> dict[str, Rule]:
    return load_rules()


@pytest.fixture(scope="module")
def prod() -> model.Model:
    return model.load("inventory/thanhhoa")


@pytest.fixture(scope="module")
def lab() -> model.Model:
    return model.load("inventory/lab")


def fixture(platform: str, kind: str) -> str:
    (path,) = (FIXTURES / platform).glob(f"{kind}-*.txt")
    return path.read_text(encoding="utf-8")


def config_rules(rules: dict[str, Rule], platform: str) -> list[Rule]:
    return [r for r in rules.values() if isinstance(r.check, ConfigCheck) and r.check.platform == platform]


def evidence(m: model.Model, host: str, running: dict[str, str] | None = None, **kw: object) -> ev.Evidence:
    dev = m.devices[host]
    intended = ev.intended_texts(m, dev)
    return ev.Evidence(vars=hostvars.device_vars(m, dev), intended=intended,
                       running=intended if running is None else running, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------ vendor configs

@pytest.mark.parametrize("host", ["ham-rong-ce", "dc-core", "dc-sw", "dc-fw", "ham-rong-vc", "an-nong-vc"])
def test_vendor_rules_pass_on_rendered_production_configs(rules: dict[str, Rule], prod: model.Model,
                                                          host: str) -> None:
    dev = prod.devices[host]
    e = evidence(prod, host)
    checked = [ev.evaluate(r, dev, e) for r in config_rules(rules, dev.platform)]
    assert [(f.rule, f.evidence) for f in checked if f.status != "pass"] == []
    assert len(checked) >= 8


@pytest.mark.parametrize("platform", sorted(VENDOR))
def test_vendor_rules_pass_on_compliant_running_config(rules: dict[str, Rule], prod: model.Model,
                                                       platform: str) -> None:
    host = VENDOR[platform]
    e = evidence(prod, host, {platform: fixture(platform, "compliant")})
    found = {r.id: ev.evaluate(r, prod.devices[host], e) for r in config_rules(rules, platform)}
    assert {i: f.evidence for i, f in found.items() if f.status not in ("pass", "not_applicable")} == {}
    assert all(f.source == "intended and running" for f in found.values() if f.status == "pass")


@pytest.mark.parametrize("platform", sorted(VENDOR))
def test_every_vendor_rule_fails_on_the_noncompliant_config(rules: dict[str, Rule], prod: model.Model,
                                                            platform: str) -> None:
    host = VENDOR[platform]
    e = evidence(prod, host, {platform: fixture(platform, "noncompliant")})
    found = {r.id: ev.evaluate(r, prod.devices[host], e) for r in config_rules(rules, platform)}
    assert {i for i, f in found.items() if f.status not in ("fail", "not_applicable")} == set()
    assert all(f.source == "running" and f.evidence.startswith("[running] ") for f in found.values()
               if f.status == "fail")


def test_failure_evidence_names_the_offending_lines(rules: dict[str, Rule], prod: model.Model) -> None:
    e = evidence(prod, "ham-rong-ce", {"cisco_ios": fixture("cisco_ios", "noncompliant")})
    dev = prod.devices["ham-rong-ce"]
    assert ev.evaluate(rules["cisco_ios-001"], dev, e).evidence == (
        "[running] missing: /^no ip http server$/\npresent: ip http server")
    assert ev.evaluate(rules["cisco_ios-006"], dev, e).evidence == (
        "[running] line vty 5 15: missing: /^\\s*transport input ssh$/")
    assert ev.evaluate(rules["cisco_ios-013"], dev, e).evidence == (
        "[running] not /^ntp server 10.38.251.10( prefer)?$/: ntp server 203.0.113.123")
    fos = evidence(prod, "dc-fw", {"fortios": fixture("fortios", "noncompliant")})
    assert ev.evaluate(rules["fortios-001"], prod.devices["dc-fw"], fos).evidence == (
        '[running] edit "netops": present: set trusthost1 0.0.0.0 0.0.0.0')


def test_intended_failure_is_reported_too(rules: dict[str, Rule], prod: model.Model) -> None:
    bad = fixture("cisco_ios", "noncompliant")
    e = ev.Evidence(vars=hostvars.device_vars(prod, prod.devices["ham-rong-ce"]),
                    intended={"cisco_ios": bad}, running={"cisco_ios": bad})
    f = ev.evaluate(rules["cisco_ios-003"], prod.devices["ham-rong-ce"], e)
    assert (f.status, f.source) == ("fail", "intended and running")


def test_missing_running_config_is_an_error_not_a_pass(rules: dict[str, Rule], prod: model.Model) -> None:
    f = ev.evaluate(rules["cisco_ios-004"], prod.devices["dc-core"], evidence(prod, "dc-core", {}))
    assert f.status == "error" and "live device was not checked" in f.note


def test_rule_applies_by_platform_role_and_model_fact(rules: dict[str, Rule], prod: model.Model,
                                                      lab: model.Model) -> None:
    vc = prod.devices["ham-rong-vc"]
    assert ev.evaluate(rules["cisco_ios-001"], vc, evidence(prod, "ham-rong-vc")).status == "not_applicable"
    # SIP over TLS applies where the model says so: inventory/thanhhoa sets sip.transport: tls
    assert prod.sip_transport == "tls"
    assert ev.evaluate(rules["cisco_tp-007"], vc, evidence(prod, "ham-rong-vc")).status == "pass"
    udp = dict(hostvars.device_vars(prod, vc))
    udp["provnet_voice"] = {**udp["provnet_voice"], "transport": "udp"}
    plain = fixture("cisco_tp", "noncompliant")
    e = ev.Evidence(vars=udp, intended={"cisco_tp": plain}, running={"cisco_tp": plain})
    assert ev.evaluate(rules["cisco_tp-007"], vc, e).status == "not_applicable"
    tls = evidence(prod, "ham-rong-vc", {"cisco_tp": plain})
    f = ev.evaluate(rules["cisco_tp-007"], vc, tls)
    assert f.status == "fail" and "SIP DefaultTransport: TLS" in f.evidence, f.evidence
    ntp = lab.devices["dc-ntp"]
    assert not ev.applies(rules["time-001"], ntp, {})          # except_roles
    assert ev.applies(rules["logging-003"], lab.devices["dc-soc"], {})
    assert not ev.applies(rules["logging-003"], ntp, {})


# ------------------------------------------------------------------ nftables (lab)

def test_nftables_rules_on_lab_ce(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dong-dang-ce"]
    nft = config_rules(rules, "nftables")
    good = evidence(lab, "dong-dang-ce", {"nftables": fixture("nftables", "compliant")})
    assert {r.id: ev.evaluate(r, dev, good).status for r in nft} == {r.id: "pass" for r in nft
                                                                     if r.id != "access-003"} | {
        "access-003": "not_applicable"}
    bad = evidence(lab, "dong-dang-ce", {"nftables": fixture("nftables", "noncompliant")})
    assert {r.id for r in nft if ev.evaluate(r, dev, bad).status == "fail"} == {
        "access-001", "firewall-002", "firewall-003", "firewall-004", "firewall-005"}


def test_nftables_rules_on_rendered_lab_firewall(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dc-fw"]
    e = evidence(lab, "dc-fw")
    assert {ev.evaluate(r, dev, e).status for r in config_rules(rules, "nftables")} == {"pass"}


def test_nftables_rules_without_a_management_zone(rules: dict[str, Rule]) -> None:
    # inventory/thanhhoa-lab has no dc.controller_zone (management over out-of-band only): the rules
    # that allow the management zone still evaluate — found at full scale, 168 errors before
    wide = model.load("inventory/thanhhoa-lab")
    assert wide.controller_data is None
    for host in ("dc-fw", "ham-rong-ce"):
        dev = wide.devices[host]
        e = evidence(wide, host)
        found = {r.id: ev.evaluate(r, dev, e) for r in config_rules(rules, "nftables")}
        assert {i: f.note or f.evidence for i, f in found.items() if f.status not in ("pass", "not_applicable")} == {}
    # an SSH accept from anywhere else is still a failure
    ce = wide.devices["ham-rong-ce"]
    text = ev.intended_texts(wide, ce)["nftables"].replace(
        'iifname "oob0" ip saddr', 'ip saddr 198.18.200.0/24 tcp dport 22 accept\n\t\tiifname "oob0" ip saddr', 1)
    bad = ev.Evidence(vars=hostvars.device_vars(wide, ce), intended={"nftables": text}, running={"nftables": text})
    assert ev.evaluate(rules["access-001"], ce, bad).status == "fail"


def test_an_optional_fact_fills_a_regex_that_never_matches() -> None:
    assert ev.fill("a({{ x.y? }}|b)", {"x": {"y": None}}) == "a((?!)|b)"
    assert ev.fill("a({{ x.y? }}|b)", {"x": {"y": "1.2"}}) == "a(1\\.2|b)"
    with pytest.raises(ev.MissingFact):
        ev.fill("{{ x.y }}", {"x": {}})


# ------------------------------------------------------------------ commands

class Shell:
    """A recorded device: command → (exit status, output)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.ran: list[str] = []

    def __call__(self, command: str) -> tuple[int, str]:
        self.ran.append(command)
        for prefix, name in self.answers.items():
            if command.startswith(prefix):
                return 0, (FIXTURES / "linux" / name).read_text(encoding="utf-8")
        return 1, ""


SSH = [i for i in ("ssh-001", "ssh-002", "ssh-003", "ssh-004", "ssh-005", "ssh-006", "ssh-007", "ssh-008",
                   "ssh-009", "ssh-010", "ssh-011")]


def test_ssh_rules_on_recorded_sshd_output(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dong-dang-vc"]
    hv = hostvars.device_vars(lab, dev)
    good = ev.Evidence(vars=hv, run=Shell({"/usr/sbin/sshd -T": "sshd-T-compliant.txt"}))
    bad = ev.Evidence(vars=hv, run=Shell({"/usr/sbin/sshd -T": "sshd-T-noncompliant.txt"}))
    assert {i: ev.evaluate(rules[i], dev, good).evidence for i in SSH
            if ev.evaluate(rules[i], dev, good).status != "pass"} == {}
    assert {i: ev.evaluate(rules[i], dev, bad).status for i in SSH} == {i: "fail" for i in SSH}
    assert ev.evaluate(rules["ssh-008"], dev, bad).evidence == "0 not >= 1 and <= 300"
    assert ev.evaluate(rules["ssh-005"], dev, bad).evidence == (
        "present: ciphers chacha20-poly1305@openssh.com,aes128-ctr,aes256-cbc,3des-cbc")


def test_soc_retention_reads_the_real_logrotate_file(rules: dict[str, Rule], lab: model.Model) -> None:
    soc = lab.devices["dc-soc"]
    hv = hostvars.device_vars(lab, soc)
    ok = ev.evaluate(rules["logging-003"], soc, ev.Evidence(vars=hv, run=Shell({"cat /etc/logrotate.d/provnet-remote": "logrotate-compliant.txt"})))
    assert (ok.status, ok.source) == ("pass", "command")
    short = ev.evaluate(rules["logging-003"], soc, ev.Evidence(vars=hv, run=Shell({"cat /etc/logrotate.d/provnet-remote": "logrotate-noncompliant.txt"})))
    assert (short.status, short.evidence) == ("fail", "30 not >= 90\n30 not >= 90")


def test_unexpected_listener(rules: dict[str, Rule], lab: model.Model) -> None:
    ce = lab.devices["dong-dang-ce"]
    hv = hostvars.device_vars(lab, ce)
    good = ev.Evidence(vars=hv, run=Shell({"ss -Hlntup": "ss-ce-compliant.txt"}))
    bad = ev.Evidence(vars=hv, run=Shell({"ss -Hlntup": "ss-ce-noncompliant.txt"}))
    assert ev.evaluate(rules["services-010"], ce, good).status == "pass"
    f = ev.evaluate(rules["services-010"], ce, bad)
    assert (f.status, f.evidence) == ("fail", 'unexpected: tcp 0.0.0.0:9999 users:(("nc",pid=901,fd=3))')


def test_placeholders_are_quoted_in_commands(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dong-dang-ce"]
    shell = Shell({})
    hv = dict(hostvars.device_vars(lab, dev), provnet_admin_user="x; reboot")
    rule = rules["ssh-001"].model_copy(update={"check": CommandCheck(
        type="command", command="id -nG {{ provnet_admin_user }}", expect=[{"regex": "sudo"}])})
    ev.evaluate(rule, dev, ev.Evidence(vars=hv, run=shell))
    assert shell.ran == ["id -nG 'x; reboot'"]


def test_transport_failure_and_no_shell_are_errors(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dong-dang-ce"]
    hv = hostvars.device_vars(lab, dev)

    def down(command: str) -> tuple[int, str]:
        raise ConnectionError("198.19.0.49: connection refused")

    f = ev.evaluate(rules["ssh-001"], dev, ev.Evidence(vars=hv, run=down))
    assert (f.status, f.note) == ("error", "ConnectionError: 198.19.0.49: connection refused")
    assert ev.evaluate(rules["ssh-001"], dev, ev.Evidence(vars=hv)).status == "error"


def test_exit_status_is_checked(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dc-ntp"]
    f = ev.evaluate(rules["firewall-006"], dev, ev.Evidence(vars=hostvars.device_vars(lab, dev), run=Shell({})))
    assert f.status == "fail" and f.note == "`nft list chain inet provnet input` exited 1 (expected 0)"


def test_missing_model_fact_is_an_error(rules: dict[str, Rule], prod: model.Model) -> None:
    dev = prod.devices["ham-rong-ce"]
    hv = {k: v for k, v in hostvars.device_vars(prod, dev).items() if k != "provnet_services"}
    text = fixture("cisco_ios", "compliant")
    f = ev.evaluate(rules["cisco_ios-011"], dev, ev.Evidence(vars=hv, intended={"cisco_ios": text},
                                                            running={"cisco_ios": text}))
    assert (f.status, f.note) == ("error", "the model has no 'provnet_services.syslog.address'")


# ------------------------------------------------------------------ facts and masking

def test_hostname_fact(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dong-dang-ce"]
    hv = hostvars.device_vars(lab, dev)
    ok = ev.evaluate(rules["logging-006"], dev, ev.Evidence(vars=hv, facts={"get_facts": {"hostname": "dong-dang-ce"}}))
    bad = ev.evaluate(rules["logging-006"], dev, ev.Evidence(vars=hv, facts={"get_facts": {"hostname": "Router"}}))
    none = ev.evaluate(rules["logging-006"], dev, ev.Evidence(vars=hv))
    assert (ok.status, bad.status, bad.evidence, none.status) == (
        "pass", "fail", "get_facts.hostname = 'Router'", "error")


def test_evidence_is_masked(rules: dict[str, Rule], prod: model.Model) -> None:
    dev = prod.devices["ham-rong-ce"]
    secret = "Zq8s-very-secret-admin"
    text = fixture("cisco_ios", "noncompliant").replace("password 7 0822455D0A16", f"password 0 {secret}")
    e = ev.Evidence(vars=hostvars.device_vars(prod, dev), intended={"cisco_ios": text},
                    running={"cisco_ios": text}, secrets={"admin_password": secret})
    f = ev.evaluate(rules["cisco_ios-010"], dev, e)
    assert f.status == "fail" and secret not in f.evidence and "password 0 ********" in f.evidence
    f7 = ev.evaluate(rules["cisco_ios-010"], dev, evidence(prod, "ham-rong-ce",
                                                          {"cisco_ios": fixture("cisco_ios", "noncompliant")}))
    assert "0822455D0A16" not in f7.evidence and "password 7 ********" in f7.evidence


def test_command_evidence_shows_vault_references(rules: dict[str, Rule], lab: model.Model,
                                                 tmp_path: Path) -> None:
    dev = lab.devices["dc-ntp"]
    conf = 'createUser provnet MD5 "k3y-auth-value" DES "k3y-priv-value"\nrouser -s usm provnet auth\n'

    def run(command: str) -> tuple[int, str]:
        return 0, conf

    e = ev.Evidence(vars=hostvars.device_vars(lab, dev), run=run,
                    secrets={"snmp_auth_key": "k3y-auth-value", "snmp_priv_key": "k3y-priv-value"})
    f = ev.evaluate(rules["snmp-002"], dev, e)
    assert f.status == "fail" and "k3y" not in f.evidence
    assert 'unexpected: createUser provnet MD5 "vault:snmp_auth_key" DES "vault:snmp_priv_key"' in f.evidence


# ------------------------------------------------------------------ waivers

def finding(status: str = "fail") -> ev.Finding:
    return ev.Finding("dc-ntp", "firewall-006", status, "missing", "command")  # type: ignore[arg-type]


def waiver(**kw: object) -> Waiver:
    data = {"rule": "firewall-006", "role": "ntp", "reason": "behind dc-fw", "ticket": "CHG-7",
            "expires": date(2026, 12, 31)} | kw
    return Waiver.model_validate(data)


def test_waiver_applies_until_its_expiry_day(lab: model.Model) -> None:
    dev = lab.devices["dc-ntp"]
    w = waiver()
    on_day = apply_waivers(finding(), dev, [w], date(2026, 12, 31))
    assert (on_day.status, on_day.waiver, on_day.note) == ("waived", w, "waived until 2026-12-31 (CHG-7): behind dc-fw")
    after = apply_waivers(finding(), dev, [w], date(2027, 1, 1))
    assert (after.status, after.note) == ("fail", "waiver CHG-7 expired on 2026-12-31: behind dc-fw")


def test_waiver_scope_device_site_role(lab: model.Model) -> None:
    today = date(2026, 12, 3)
    ce = lab.devices["dong-dang-ce"]
    f = ev.Finding("dong-dang-ce", "firewall-006", "fail")
    assert apply_waivers(f, ce, [waiver(role=None, site="dong-dang")], today).status == "waived"
    assert apply_waivers(f, ce, [waiver(role=None, device="dong-dang-ce")], today).status == "waived"
    assert apply_waivers(f, ce, [waiver(role=None, device="dc-ntp")], today).status == "fail"
    assert apply_waivers(f, ce, [waiver()], today).status == "fail"          # role ntp, not ce
    assert apply_waivers(ev.Finding("dong-dang-ce", "ssh-001", "fail"), ce,
                         [waiver(role=None, site="dong-dang")], today).status == "fail"


def test_waiver_leaves_pass_and_error_alone_and_prefers_a_current_one(lab: model.Model) -> None:
    dev = lab.devices["dc-ntp"]
    today = date(2026, 12, 3)
    assert apply_waivers(finding("pass"), dev, [waiver()], today).status == "pass"
    assert apply_waivers(finding("error"), dev, [waiver()], today).status == "error"
    old, new = waiver(expires=date(2026, 1, 1), ticket="CHG-1"), waiver(expires=date(2027, 6, 30), ticket="CHG-9")
    assert apply_waivers(finding(), dev, [old, new], today).waiver == new


def test_evaluate_device_applies_waivers_with_the_given_date(rules: dict[str, Rule], lab: model.Model) -> None:
    dev = lab.devices["dc-ntp"]
    e = ev.Evidence(vars=hostvars.device_vars(lab, dev), run=Shell({}))
    rule = rules["firewall-006"]
    (waived,) = ev.evaluate_device([rule], dev, e, [waiver()], today=date(2026, 12, 3))
    (expired,) = ev.evaluate_device([rule], dev, e, [waiver()], today=date(2027, 2, 1))
    assert (waived.status, expired.status) == ("waived", "fail")
