"""SOC normalisation (roles/soc_collector, docs/soc.md "Normalisation").

The liblognorm v2 rulebase runs in the real ``lognormalizer`` (Debian's liblognorm-utils, the library
rsyslog's mmnormalize uses) over recorded lines of every source (tests/fixtures/soc/samples, one file
per program, each line "TAG: message" as the program hands it to syslog(3); their headers name the
source code each format comes from). The collector's rsyslog config is rendered with Ansible's own
templar, checked by ``rsyslogd -N1`` and run end to end on the same lines, so the field names are
checked where they are produced: every key is provnet/soc/fields.py's and every event has the
required ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from provnet.soc.fields import FIELDS, REQUIRED

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "soc_collector"
RULEBASE = ROLE / "files" / "provnet.rulebase"
SAMPLES = ROOT / "tests" / "fixtures" / "soc" / "samples"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text(encoding="utf-8"))
LOGNORMALIZER = shutil.which("lognormalizer")
RSYSLOGD = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")

needs_lognormalizer = pytest.mark.skipif(LOGNORMALIZER is None,
                                         reason="no lognormalizer (scripts/bootstrap.sh installs liblognorm-utils)")
needs_rsyslogd = pytest.mark.skipif(RSYSLOGD is None, reason="no rsyslogd here (apt-get install rsyslog)")

#: what liblognorm adds besides the rule's fields (the collector unsets the tags; metadata is -o only)
LIBLOGNORM_META = {"event.tags", "metadata"}
#: a line no rule matched
UNPARSED_KEYS = {"originalmsg", "unparsed-data"}

# ------------------------------------------------------------------------------------- the contract
# docs/soc.md's tables: source → (event.dataset, process.name); action → event.category
DATASET = {"sshd": ("sshd", "sshd"), "sudo": ("sudo", "sudo"), "nftables": ("nftables", "ulogd"),
           "kamailio": ("kamailio", "kamailio"), "chrony": ("chrony", "chronyd"), "systemd": ("systemd", "systemd"),
           "baresip": ("baresip", "baresip"), "provnet-engine": ("provnet.engine", "provnet")}
CATEGORY = {
    "ssh-login": "authentication", "ssh-logout": "session", "ssh-invalid-user": "authentication",
    "ssh-preauth-close": "authentication", "ssh-max-tries": "authentication",
    "sudo-command": "process", "sudo-auth": "authentication",
    "firewall-drop": "network",
    "sip-register": "authentication", "sip-auth": "authentication",
    "time-sync-lost": "host", "time-sync-regained": "host", "time-service-stopped": "host",
    "time-service-started": "host", "time-clock-wrong": "host", "time-clock-stepped": "host",
    "unit-failed": "host",
    "call-started": "session", "call-ended": "session",
    "config-commit": "configuration", "config-revert": "configuration",
}
SHORT = {"user": "user.name", "ip": "source.ip", "port": "source.port", "dst": "destination.ip",
         "dport": "destination.port", "proto": "network.transport", "unit": "service.name",
         "ticket": "provnet.ticket", "digest": "provnet.digest"}


def ev(action: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {"event.action": action, "event.outcome": outcome, **{SHORT[k]: v for k, v in fields.items()}}


A, B, S = "198.18.64.2", "198.18.10.1", "2001:db8:64::2"
#: sample file → what each of its lines (in order) normalises to, besides dataset/process/category
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "sshd": [
        ev("ssh-login", "success", user="netops", ip=B, port=53422),
        ev("ssh-login", "success", user="netops", ip=B, port=53430),
        ev("ssh-login", "failure", user="netops", ip=A, port=40022),
        ev("ssh-invalid-user", "failure", user="admin", ip=A, port=40024),
        ev("ssh-login", "failure", user="admin", ip=A, port=40024),
        ev("ssh-preauth-close", "failure", user="admin", ip=A, port=40024),
        ev("ssh-login", "failure", user="oracle", ip=A, port=40026),
        ev("ssh-max-tries", "failure", user="root", ip=A, port=40030),
        ev("ssh-preauth-close", "failure", user="root", ip=A, port=40032),
        ev("ssh-preauth-close", "failure", user="root", ip=A, port=40034),
        ev("ssh-max-tries", "failure", user="guest", ip=A, port=40036),
        ev("ssh-preauth-close", "failure", user="guest", ip=A, port=40038),
        ev("ssh-logout", "success", user="netops", ip=B, port=53422),
        ev("ssh-login", "failure", user="netops", ip="2001:db8:10::1", port=50022),
        ev("ssh-invalid-user", "failure", user="oracle admin", ip=A, port=40040),
    ],
    "sudo": [
        ev("sudo-command", "success", user="netops"),
        ev("sudo-command", "success", user="netops"),
        ev("sudo-auth", "failure", user="netops"),
        ev("sudo-auth", "failure", user="netops"),
        ev("sudo-auth", "failure", user="netops"),
        ev("sudo-command", "failure", user="guest"),
        ev("sudo-command", "failure", user="netops"),
        ev("sudo-auth", "failure", user="guest"),
        ev("sudo-command", "failure", user="guest2"),
        ev("sudo-command", "success", user="operator-hanoi"),
    ],
    "nftables": [
        ev("firewall-drop", "failure", ip="198.18.64.34", port=40000, dst="198.18.9.12", dport=23, proto="tcp"),
        ev("firewall-drop", "failure", ip=A, port=41022, dst="198.18.2.1", dport=22, proto="tcp"),
        ev("firewall-drop", "failure", ip=A, port=51820, dst="198.18.2.1", dport=161, proto="udp"),
        ev("firewall-drop", "failure", ip="198.18.2.0", dst="198.18.32.5", proto="icmp"),
        ev("firewall-drop", "failure", ip=A, dst="198.18.2.1"),
        ev("firewall-drop", "failure", ip=S, port=40000, dst="2001:db8:2::1", dport=23, proto="tcp"),
        ev("firewall-drop", "failure", ip=S, port=5353, dst="2001:db8:2::1", dport=161, proto="udp"),
        ev("firewall-drop", "failure", ip=S, dst="2001:db8:2::1", proto="icmp"),
        ev("firewall-drop", "failure", ip=S, dst="2001:db8:2::1"),
        ev("firewall-drop", "failure", ip="198.18.64.34", port=20002, dst="198.18.9.13", dport=20000, proto="udp"),
    ],
    "kamailio": [
        ev("sip-register", "success", user="dong-dang", ip="198.18.64.34", port=5060),
        ev("sip-register", "failure", user="dong-dang", ip=A, port=5060),
        ev("sip-auth", "failure", user="quan-son", ip="198.18.64.66", port=5060),
        ev("sip-register", "failure", user="chi-lang", ip="198.18.64.98", port=5060),
    ],
    "chrony": [
        ev("time-sync-regained", "success", dst="198.18.9.10"),
        ev("time-sync-lost", "failure"),
        ev("time-sync-regained", "success", dst="198.18.9.10"),
        ev("time-sync-lost", "failure"),
        ev("time-clock-wrong", "unknown"),
        ev("time-clock-stepped", "unknown"),
        ev("time-sync-regained", "success"),
        ev("time-service-stopped", "unknown"),    # chronyd exiting (stopped or restarting)
        ev("time-service-started", "success"),    # chronyd version 4.3 starting
    ],
    "systemd": [
        ev("unit-failed", "failure", unit="frr.service"),
        ev("unit-failed", "failure", unit="frr.service"),
        ev("unit-failed", "failure", unit="kamailio.service"),
        ev("unit-failed", "failure", unit="kamailio.service"),
        ev("unit-failed", "failure", unit="provnet-apply-frr.service"),
        ev("unit-failed", "failure"),
    ],
    "baresip": [
        ev("sip-register", "success", user="dong-dang"),
        ev("call-started", "success", user="dong-dang"),
        ev("call-ended", "success", user="dong-dang"),
        ev("call-ended", "failure"),
        ev("sip-register", "failure", user="dong-dang"),
        ev("sip-register", "failure", user="dong-dang"),
    ],
    "provnet-engine": [
        ev("config-commit", "success", user="netops", ticket="CHG-2026-118", digest="5f1c9a7e03bd"),
        ev("config-commit", "success", user="hoang", digest="0a9e4c71d2f3"),
        ev("config-commit", "success", user="hoang", ticket="SỰ CỐ 42", digest="e1f2a3b4c5d6"),
        ev("config-commit", "success"),
        ev("config-revert", "success"),
    ],
}
SOURCES = sorted(EXPECTED)


def expected(source: str, i: int) -> dict[str, Any]:
    dataset, process = DATASET[source]
    e = EXPECTED[source][i]
    return {"event.dataset": dataset, "process.name": process, "event.category": CATEGORY[e["event.action"]], **e}


# ------------------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class Sample:
    source: str
    lineno: int
    tag: str   # "sshd[2591]", "sudo", "/usr/sbin/kamailio[1187]"
    msg: str   # the message part as syslog(3) got it (sudo's padding, ulogd's trailing space kept)

    @property
    def program(self) -> str:
        return self.tag.split("[", 1)[0]

    @property
    def pid(self) -> str:
        return self.tag.split("[", 1)[1].rstrip("]") if "[" in self.tag else "-"

    @property
    def line(self) -> str:
        """What the collector hands mmnormalize and keeps as ``message``: ltrim($msg)."""
        return self.msg.lstrip(" ")


@cache
def samples(source: str) -> tuple[Sample, ...]:
    out = []
    for n, raw in enumerate((SAMPLES / f"{source}.log").read_text(encoding="utf-8").split("\n"), 1):
        if not raw or raw.startswith("#"):
            continue
        tag, sep, msg = raw.partition(": ")
        assert sep, f"{source}.log:{n}: not 'TAG: message'"
        out.append(Sample(source, n, tag, msg))
    return tuple(out)


def lognormalize(lines: list[str]) -> list[dict[str, Any]]:
    assert LOGNORMALIZER
    res = subprocess.run([LOGNORMALIZER, "-r", str(RULEBASE), "-e", "json", "-T", "-oaddRuleLocation"],
                         input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert len(out) == len(lines), res.stdout
    return out


@cache
def normalised(source: str) -> tuple[dict[str, Any], ...]:
    return tuple(lognormalize([s.line for s in samples(source)]))


def fields_of(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in LIBLOGNORM_META}


# ------------------------------------------------------------------------------------- the rulebase
RULEBASE_TEXT = RULEBASE.read_text(encoding="utf-8")
ANNOTATIONS = [m.groups() for m in re.finditer(r'^annotate=([^:]+):\+([^=]+)="([^"]*)"$', RULEBASE_TEXT, re.M)]
RULES = [(n, line) for n, line in enumerate(RULEBASE_TEXT.splitlines(), 1) if line.startswith("rule=")]


def tags_setting(field: str) -> set[str]:
    return {tag for tag, name, _ in ANNOTATIONS if name == field}


def test_the_rulebase_is_liblognorm_v2() -> None:
    # the v2 engine only when this is the very first line, exactly
    assert RULEBASE_TEXT.split("\n", 1)[0] == "version=2"
    assert RULES


def test_every_name_the_rulebase_gives_is_a_field() -> None:
    named = set(re.findall(r"%([A-Za-z0-9@._-]+):", RULEBASE_TEXT)) - {"-", ".", ".."}
    annotated = {name for _, name, _ in ANNOTATIONS}
    assert named and annotated
    assert named | annotated <= set(FIELDS), (named | annotated) - set(FIELDS)


def test_every_rule_carries_one_dataset_action_and_outcome_tag() -> None:
    dataset, action, outcome = (tags_setting(f) for f in ("event.dataset", "event.action", "event.outcome"))
    transport = tags_setting("network.transport")
    assert action == tags_setting("event.category")  # each action has its category
    values = {(tag, name): value for tag, name, value in ANNOTATIONS}
    assert {values[(t, "event.action")] for t in action} == set(CATEGORY)
    assert {values[(t, "event.category")] for t in action} <= {"authentication", "network", "configuration",
                                                                 "host", "process", "session"}
    assert {values[(t, "event.outcome")] for t in outcome} == {"success", "failure", "unknown"}
    for t in action:
        assert values[(t, "event.category")] == CATEGORY[values[(t, "event.action")]], t
    for t in dataset:
        assert (values[(t, "event.dataset")], values[(t, "process.name")]) in DATASET.values(), t
    for n, rule in RULES:
        tags = set(rule[len("rule="):].split(":", 1)[0].split(","))
        assert "" not in tags and not any("-" in t for t in tags), f"line {n}: liblognorm annotates no tag with '-'"
        assert tags <= dataset | action | outcome | transport, f"line {n}: {tags}"
        assert [len(tags & g) for g in (dataset, action, outcome)] == [1, 1, 1], f"line {n}: {tags}"
        assert len(tags & transport) <= 1, f"line {n}"


@needs_lognormalizer
@pytest.mark.parametrize("source", SOURCES)
def test_each_sample_line_normalises_to_its_event(source: str) -> None:
    lines = samples(source)
    assert len(lines) == len(EXPECTED[source]), f"{source}.log has {len(lines)} lines"
    for i, (sample, result) in enumerate(zip(lines, normalised(source))):
        assert not UNPARSED_KEYS & set(result), f"{source}.log:{sample.lineno} unparsed: {sample.line!r}"
        assert fields_of(result) == expected(source, i), f"{source}.log:{sample.lineno}: {sample.line!r}"


@needs_lognormalizer
def test_every_rule_has_a_sample_line() -> None:
    hit = {r["metadata"]["rule"]["location"]["line"] for s in SOURCES for r in normalised(s)}
    assert {n for n, _ in RULES} - hit == set(), [line for n, line in RULES if n not in hit]


@needs_lognormalizer
def test_ports_are_integers() -> None:
    ports = [(k, v) for s in SOURCES for r in normalised(s) for k, v in r.items() if k.endswith(".port")]
    assert ports and all(type(v) is int and 0 < v < 65536 for _, v in ports), ports


@needs_lognormalizer
def test_a_line_no_rule_knows_is_reported_unparsed() -> None:
    lines = samples("unparsed")
    assert len(lines) >= 5
    for sample, result in zip(lines, lognormalize([s.line for s in lines])):
        assert set(result) == UNPARSED_KEYS and result["originalmsg"] == sample.line, (sample, result)


@needs_lognormalizer
def test_near_misses_are_unparsed_not_misread() -> None:
    lines = ["Accepted password for root from 198.18.64.2",            # no port
             "Failed password for root from 198.18.64.2 port 99999 ssh2",  # not a port
             "Selected source",
             "provnet-drop-in  IN=wan0 OUT= MAC= SRC=300.1.1.1 DST=198.18.2.1 LEN=1",
             "frr.service: Failed with result exit-code"]
    assert all(set(r) == UNPARSED_KEYS for r in lognormalize(lines))


# ------------------------------------------------------------------------------------- the rsyslog side
def templar(**overrides: Any) -> Templar:
    variables = {**DEFAULTS, "ansible_managed": "Ansible managed",
                 "provnet_interfaces": [{"name": "servers0", "address": "198.18.9.11/24"}], **overrides}
    return Templar(loader=DataLoader(), variables=variables)


def render(name: str, **overrides: Any) -> str:
    """As the template action renders it (no conversion of the result, backslashes as written)."""
    text = (ROLE / "templates" / name).read_text(encoding="utf-8")
    return str(templar(**overrides).do_template(text, preserve_trailing_newlines=True, escape_backslashes=False))


COLLECTOR = render("collector.conf.j2")
#: what the collector's rsyslog sets on every event, and on a line no rule knows
SET_ALWAYS = {"@timestamp", "host.name", "labels.site", "message"}
SET_UNPARSED = {"event.dataset", "event.category", "event.action", "event.outcome"}


def test_the_collector_sets_only_fields_and_unsets_liblognorms_own() -> None:
    sets = set(re.findall(r"\bset \$!([A-Za-z0-9@._-]+) =", COLLECTOR))
    unsets = set(re.findall(r"\bunset \$!([A-Za-z0-9@._-]+);", COLLECTOR))
    assert sets == SET_ALWAYS - {"@timestamp"} | SET_UNPARSED | {"process.name"}
    assert sets <= set(FIELDS)
    assert unsets == UNPARSED_KEYS | {"event.tags"}
    assert 'constant(value="{\\"@timestamp\\":\\"")' in COLLECTOR and "$!all-json-plain" in COLLECTOR
    for field in SET_UNPARSED:  # the four values the brief and docs/soc.md give a line no rule knows
        value = {"event.dataset": "unparsed", "event.category": "host", "event.action": "unparsed",
                 "event.outcome": "unknown"}[field]
        assert f'set $!{field} = "{value}";' in COLLECTOR


@needs_lognormalizer
def test_every_event_has_the_required_fields_and_no_other_names() -> None:
    events = [set(fields_of(r)) | SET_ALWAYS for s in SOURCES for r in normalised(s)]
    events += [SET_ALWAYS | SET_UNPARSED | {"process.name"}]
    for keys in events:
        assert keys <= set(FIELDS), keys - set(FIELDS)
        assert set(REQUIRED) <= keys, set(REQUIRED) - keys


def test_the_per_host_files_stay_as_they_were() -> None:
    # other code (provnet/compliance/socview.py, the integration tests) reads them
    for line in ['template(name="provnetPerHost" type="string"\n'
                 '         string="/var/log/remote/%HOSTNAME:::secpath-replace%/syslog.log")',
                 'action(type="omfile" dynaFile="provnetPerHost" dynaFileCacheSize="1000"\n'
                 '         dirCreateMode="0750" fileCreateMode="0640" fileGroup="adm" dirGroup="adm")',
                 'action(type="omfile" dynaFile="provnetPerHost" dirCreateMode="0750" fileCreateMode="0640" '
                 'fileGroup="adm" dirGroup="adm")',
                 'input(type="imudp" address="198.18.9.11" port="514" ruleset="provnet_remote")',
                 'input(type="imtcp" address="198.18.9.11" port="514" ruleset="provnet_remote")']:
        assert line in COLLECTOR
    remote = COLLECTOR.split('ruleset(name="provnet_remote") {', 1)[1].split("}", 1)[0]
    assert remote.index("provnetPerHost") < remote.index("call provnetNormalise") < remote.index("stop")
    assert 'string="/var/log/provnet-events/events-%$year-utc%-%$month-utc%-%$day-utc%.json"' in COLLECTOR
    assert 'ruleBase="/etc/rsyslog.d/provnet.rulebase"' in COLLECTOR
    assert 'lookup_table(name="provnetSites" file="/etc/rsyslog.d/provnet-sites.json")' in COLLECTOR
    assert "call provnetNormalise" not in render("collector.conf.j2", soc_collector_include_local=False).split(
        'ruleset(name="provnet_remote")', 1)[1].split("stop", 1)[1]


def sites_table(**overrides: Any) -> dict[str, Any]:
    return json.loads(render("sites.json.j2", **overrides))


def test_the_site_table_comes_from_provnet_soc_sites() -> None:
    table = sites_table(provnet_soc_sites={"Dong-Dang-CE": "dong-dang", "dc-soc": "dc", "quan-son-vc": "quan-son"})
    assert table == {"version": 1, "nomatch": "unknown", "type": "string", "table": [
        {"index": "dc-soc", "value": "dc"}, {"index": "dong-dang-ce", "value": "dong-dang"},
        {"index": "quan-son-vc", "value": "quan-son"}]}
    assert sites_table()["table"] == []  # no hostvar: every host "unknown"
    assert sites_table(soc_collector_sites={"a": "b"})["table"] == [{"index": "a", "value": "b"}]


def tasks() -> dict[str, dict[str, Any]]:
    """The role's file entries (its one provnet_host call), by the role file their content comes from, else
    their dest."""
    (task,) = yaml.safe_load((ROLE / "tasks/host.yml").read_text(encoding="utf-8"))
    out = {}
    for entry in task["provnet_host"]["files"]:
        m = re.search(r"lookup\('ansible\.builtin\.(?:file|template)', '([^']+)'", str(entry.get("content", "")))
        out[m.group(1) if m else str(entry["dest"])] = entry
    return out


def test_the_role_installs_the_rulebase_and_the_table_before_the_config() -> None:
    t = tasks()
    order = list(t)
    assert order.index("provnet.rulebase") < order.index("collector.conf.j2")
    assert order.index("sites.json.j2") < order.index("collector.conf.j2")
    assert t["provnet.rulebase"]["dest"] == "{{ soc_collector_rulebase }}"
    assert "rstrip=false" in t["provnet.rulebase"]["content"]  # the role's file byte for byte
    assert t["sites.json.j2"]["dest"] == "{{ soc_collector_sites_file }}"
    assert "convert_data=false" in t["sites.json.j2"]["content"]  # JSON stays text, not data
    # the collector's own check loads both: they are in place (and put back if it fails) before it runs
    assert t["collector.conf.j2"]["previous_in_place"] is True
    events = t["{{ soc_collector_events_dir }}"]
    assert (events["state"], events["mode"], events["group"]) == ("directory", "0750", "adm")
    for src in ("provnet.rulebase", "sites.json.j2", "collector.conf.j2"):
        assert t[src]["on_change"] == "systemctl restart rsyslog"
    assert templar().template("{{ soc_collector_events_dir }}") == "/var/log/provnet-events"


def validate(src: str, path: Path) -> subprocess.CompletedProcess[str]:
    """An entry's ``validate:`` as Ansible and provnet_fileset run it: ``%s`` → the file, split like run_command does."""
    command = tasks()[src]["validate"] % str(path)
    return subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60)


@needs_rsyslogd
def test_the_tasks_validate_the_rulebase_and_the_table_with_rsyslogd(tmp_path: Path) -> None:
    assert validate("provnet.rulebase", RULEBASE).returncode == 0
    broken = tmp_path / "broken.rulebase"
    broken.write_text("version=2\nrule=a:%broken\n")
    assert validate("provnet.rulebase", broken).returncode != 0
    table = tmp_path / "sites.json"
    table.write_text(render("sites.json.j2", provnet_soc_sites={"dc-soc": "dc"}))
    assert validate("sites.json.j2", table).returncode == 0
    table.write_text('{"version": 1, "nomatch": "unknown", "type": "string", "table": [{"index": "a"}]}')
    assert validate("sites.json.j2", table).returncode != 0


def collector_in(tmp: Path, **overrides: Any) -> Path:
    """The collector's config rendered for a temporary directory: files there, the real rulebase."""
    (tmp / "sites.json").write_text(render("sites.json.j2", **overrides))
    conf = tmp / "collector.conf"
    conf.write_text(render("collector.conf.j2", soc_collector_dir=str(tmp / "remote"),
                           soc_collector_events_dir=str(tmp / "remote" / "events"), soc_collector_sites_file=str(tmp / "sites.json"), soc_collector_rulebase=str(RULEBASE),
                           **overrides))
    return conf


@needs_rsyslogd
@pytest.mark.parametrize("include_local", [True, False])
def test_the_collector_config_validates(tmp_path: Path, include_local: bool) -> None:
    conf = collector_in(tmp_path, soc_collector_include_local=include_local)
    res = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "End of config validation run" in res.stderr + res.stdout, res.stderr
    # the check loads the rulebase: a broken one fails it
    text = conf.read_text().replace(str(RULEBASE), str(tmp_path / "missing.rulebase"))
    conf.write_text(text)
    assert subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, timeout=60).returncode != 0


# ------------------------------------------------------------------------------------- end to end
HOSTS = {"sshd": "dong-dang-ce", "sudo": "dc-fw", "nftables": "DC-FW.langson.lab", "kamailio": "dc-sip",
         "chrony": "quan-son-ce", "systemd": "chi-lang-ce", "baresip": "dong-dang-vc",
         "provnet-engine": "dong-dang-ce", "unparsed": "stranger-01"}
SITES = {"dong-dang-ce": "dong-dang", "dong-dang-vc": "dong-dang", "dc-fw": "dc", "dc-sip": "dc",
         "quan-son-ce": "quan-son", "chi-lang-ce": "chi-lang"}
#: the senders' clock: +07:00, early morning, so the UTC day is the day before
T0 = datetime(2026, 12, 5, 6, 30, 0, 123456, tzinfo=timezone(timedelta(hours=7)))
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def read_events(directory: Path) -> list[dict[str, Any]]:
    lines = [line for f in sorted(directory.glob("events-*.json")) for line in f.read_text("utf-8").splitlines()]
    return [json.loads(line) for line in lines]


@needs_rsyslogd
@pytest.mark.skipif(os.geteuid() != 0, reason="rsyslogd's omfile sets group adm on the files it creates: root only")
def test_rsyslog_writes_one_json_event_per_message(tmp_path: Path) -> None:
    """The rendered config in a real rsyslogd: every sample line sent as a node forwards it (RFC 5424
    over TCP, RSYSLOG_SyslogProtocol23Format) comes out once per host file and once as an event."""
    port = free_port()
    conf = collector_in(tmp_path, soc_collector_listen=["127.0.0.1"], soc_collector_port=port,
                        soc_collector_sites=SITES)
    # rsyslogd's own messages through its default ruleset (a systemd build sends them to syslog(3)
    # otherwise; on the SOC they come back through imuxsock): the local path is exercised too
    conf.write_text('global(processInternalMessages="on")\n' + conf.read_text())
    sent: list[tuple[str, Sample, str]] = []
    frames = []
    for source in [*SOURCES, "unparsed"]:
        for sample in samples(source):
            when = T0 + timedelta(seconds=len(sent))
            frames.append(f"<30>1 {when.isoformat()} {HOSTS[source]} {sample.program} {sample.pid} - - {sample.msg}\n")
            sent.append((HOSTS[source], sample, when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")))
    local = socket.gethostname().split(".")[0].lower()
    log = (tmp_path / "rsyslogd.out").open("w")
    days = {datetime.now(timezone.utc).date()}
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TZ": "Asia/Ho_Chi_Minh"})
    events_dir = tmp_path / "remote" / "events"
    try:
        def connect() -> socket.socket | None:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                return None
        conn = wait_for(connect, 15)
        assert conn, (tmp_path / "rsyslogd.out").read_text()
        with conn:
            conn.sendall("".join(frames).encode())
        wait_for(lambda: events_dir.is_dir() and len([e for e in read_events(events_dir)
                                                      if e["host.name"] != local]) >= len(sent), 20)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()
    days.add(datetime.now(timezone.utc).date())
    events = read_events(events_dir)
    remote = [e for e in events if e["host.name"] != local]
    assert len(remote) == len(sent), (tmp_path / "rsyslogd.out").read_text()

    # the file: named for the UTC day of reception (rsyslogd ran at +07:00), 0640 root:adm in a 0750 dir
    assert {p.name for p in events_dir.iterdir()} <= {f"events-{d.isoformat()}.json" for d in days}
    assert events_dir.stat().st_mode & 0o777 == 0o750
    for f in events_dir.iterdir():
        assert f.stat().st_mode & 0o777 == 0o640 and f.stat().st_gid == 4  # adm
    # one object per line, flat keys, every key a field, the required ones always
    for raw in (line for f in events_dir.iterdir() for line in f.read_text("utf-8").splitlines()):
        assert raw.startswith('{"@timestamp":"') and raw.endswith("}") and "event.tags" not in raw
    for e in events:
        assert set(e) <= set(FIELDS) and set(REQUIRED) <= set(e), e
        assert EVENT_TIME.match(e["@timestamp"]), e
    assert any(e["process.name"] == "rsyslogd" for e in events if e["host.name"] == local)  # the local path

    # each event is the sample's normalised event plus what the collector adds
    by_message: dict[tuple[str, str], dict[str, Any]] = {(e["host.name"], e["message"]): e for e in remote}
    counts = {source: 0 for source in [*SOURCES, "unparsed"]}
    for host, sample, utc in sent:
        name = host.split(".")[0].lower()
        got = by_message[(name, sample.line)]
        if sample.source == "unparsed":
            want: dict[str, Any] = {"event.dataset": "unparsed", "event.category": "host", "event.action": "unparsed",
                                    "event.outcome": "unknown", "process.name": sample.program}
        else:
            want = expected(sample.source, counts[sample.source])
        counts[sample.source] += 1
        want.update({"@timestamp": utc, "host.name": name, "labels.site": SITES.get(name, "unknown"),
                     "message": sample.line})
        assert got == want, sample
    # and the per-host files as before: every message in <dir>/<HOSTNAME>/syslog.log
    for host in set(HOSTS.values()):
        lines = (tmp_path / "remote" / host / "syslog.log").read_text("utf-8").splitlines()
        assert len(lines) == sum(1 for h, _, _ in sent if h == host), host


# ------------------------------------------------------------------------------------- docs, bootstrap
def test_the_docs_field_table_is_fields_py() -> None:
    text = (ROOT / "docs" / "soc.md").read_text(encoding="utf-8")
    section = text.split("\n## Normalisation", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([^`]+)` \|", section.split("### Fields", 1)[1].split("\n### ", 1)[0], re.M)
    assert table == list(FIELDS)


def test_bootstrap_installs_lognormalizer() -> None:
    debs = re.search(r'^DEBS="([^"]*)"', (ROOT / "scripts" / "bootstrap.sh").read_text(), re.M)
    assert debs and "liblognorm-utils" in debs.group(1).split()
