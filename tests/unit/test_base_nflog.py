"""The base role's ulogd2 (firewall drops → syslog → SOC): rendered with Ansible's own templar from
the role's defaults and the lab's hostvars, checked against the nftables ruleset the engine
renders, the Debian 12 package in the cached lab image, the compliance rule and the SOC's view."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from provnet import hostvars, model
from provnet.compliance import evaluate as ev
from provnet.compliance import socview
from provnet.compliance.rules import Rule, load_rules
from provnet.lab.paths import state_root

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "base"
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text(encoding="utf-8"))
SPECS = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
STACK = ["NFLOG", "BASE", "IFINDEX", "IP2STR", "PRINTPKT", "SYSLOG"]
# ulogd's plugin files are named ulogd_<kind>_<NAME>.so (Debian's ulogd2 package)
PLUGIN_FILE = re.compile(r"^ulogd_(inppkt|raw2packet|filter|output)_([A-Z0-9]+)\.so$")
LINE_LEN = 255  # ulogd's conffile.c reads lines with fgets(line, LINE_LEN): a longer line is split


def _images() -> list[Path]:
    return sorted(p for p in (state_root() / "images").glob("bookworm-*") if (p / "etc/ulogd.conf").is_file())


IMAGE = _images()[-1] if _images() else None
needs_image = pytest.mark.skipif(IMAGE is None, reason="no cached lab image (provnet lab image build)")


@pytest.fixture(scope="module")
def lab() -> model.Model:
    return model.load(ROOT / "inventory" / "lab")


def templar(m: model.Model, host: str, **overrides: Any) -> Templar:
    variables = {**DEFAULTS, **hostvars.device_vars(m, m.devices[host]), "inventory_hostname": host,
                 "ansible_managed": "Ansible managed", **overrides}
    return Templar(loader=DataLoader(), variables=variables)


def render(m: model.Model, host: str, **overrides: Any) -> str:
    text = (ROLE / "templates/ulogd.conf.j2").read_text(encoding="utf-8")
    return templar(m, host, **overrides).template(text, preserve_trailing_newlines=True)


def parse(conf: str) -> dict[str, list[tuple[str, str]]]:
    """ulogd.conf as ulogd reads it: [section] → (key, value) pairs in order; '#' lines skipped."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in conf.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"key outside a section: {line}"
        current.append((key.strip(), value.strip().strip('"')))
    return sections


def stacks(conf: str) -> list[list[tuple[str, str]]]:
    """Each stack= line of [global] as (instance, plugin) pairs."""
    return [[tuple(p.split(":", 1)) for p in v.split(",")] for k, v in parse(conf)["global"] if k == "stack"]


def host_task() -> dict[str, Any]:
    """The role's one provnet_host call."""
    (task,) = yaml.safe_load((ROLE / "tasks/host.yml").read_text(encoding="utf-8"))
    return task["provnet_host"]


def task_files() -> list[dict[str, Any]]:
    return host_task()["files"]


def ulogd_entry() -> dict[str, Any]:
    (entry,) = [f for f in task_files() if f["dest"] == "/etc/ulogd.conf"]
    return entry


# ------------------------------------------------------------------ where it runs

@pytest.mark.parametrize("inventory", ["lab", "thanhhoa"])
def test_enabled_exactly_on_the_nftables_hosts(inventory: str) -> None:
    m = model.load(ROOT / "inventory" / inventory)
    nftables = {h for h, d in m.devices.items() if "nftables" in d.platforms}
    enabled = {h for h in m.devices if templar(m, h).template("{{ base_nflog_enabled | bool }}") is True}
    assert enabled == nftables
    if inventory == "lab":  # the CEs and the DC firewall; not the core, the switch, servers or endpoints
        assert enabled == {h for h, d in m.devices.items() if d.role in ("ce", "firewall")} and "dc-fw" in enabled


def test_the_file_and_the_unit_follow_base_nflog_enabled(lab: model.Model) -> None:
    entry = ulogd_entry()
    assert entry["manage"] == "{{ base_nflog_enabled | bool }}"
    assert (entry["owner"], entry["group"], entry["mode"]) == ("root", "root", "0600")  # as Debian ships it
    assert entry["on_change"][0] == "systemctl restart ulogd2"
    assert "systemctl is-active --quiet ulogd2" in entry["on_change"][1]
    units = host_task()["units"]["units"]
    for host, wanted in (("dong-dang-ce", True), ("dc-fw", True), ("dc-core", False), ("dc-soc", False)):
        got = templar(lab, host).template(units)
        assert ({"name": "ulogd2", "enabled": True, "state": "started"} in got) is wanted, host
        assert templar(lab, host).template(entry["manage"]) is wanted, host
    assert entry["content"] == "{{ lookup('template', 'ulogd.conf.j2') if base_nflog_enabled | bool else '' }}"
    assert templar(lab, "dc-fw", base_nflog_enabled=False).template(entry["manage"]) is False


def test_every_variable_is_documented() -> None:
    names = [k for k in DEFAULTS if k.startswith("base_nflog_")]
    assert sorted(names) == ["base_nflog_enabled", "base_nflog_group", "base_nflog_plugin_dir",
                             "base_nflog_syslog_facility", "base_nflog_syslog_level"]
    assert all(n in SPECS and SPECS[n].get("description") for n in names)
    assert DEFAULTS["base_nflog_syslog_facility"] in SPECS["base_nflog_syslog_facility"]["choices"]
    assert "LOG_KERN" not in SPECS["base_nflog_syslog_facility"]["choices"]  # a process cannot log as kern
    assert DEFAULTS["base_nflog_syslog_level"] == "LOG_NOTICE"


# ------------------------------------------------------------------ the file

def test_one_stack_from_nflog_group_1_to_syslog(lab: model.Model) -> None:
    conf = render(lab, "dong-dang-ce")
    (stack,) = stacks(conf)
    assert [plugin for _, plugin in stack] == STACK
    sections = parse(conf)
    nflog, syslog = stack[0][0], stack[-1][0]
    assert sections[nflog] == [("group", "1")]
    assert sections[syslog] == [("facility", "LOG_DAEMON"), ("level", "LOG_NOTICE")]
    assert set(sections) == {"global"} | {instance for instance, _ in stack if sections.get(instance)}
    assert ("logfile", "syslog") in sections["global"]
    # a stack needs its plugins loaded: every plugin= line comes before the stack= line
    keys = [k for k, _ in sections["global"]]
    assert max(i for i, k in enumerate(keys) if k == "plugin") < keys.index("stack")
    assert all(len(line.encode()) < LINE_LEN - 1 for line in conf.splitlines())
    assert conf.endswith("\n")  # ulogd refuses a last line without its newline ("line N too long")


def test_the_group_is_the_one_the_ruleset_logs_to(lab: model.Model) -> None:
    """The engine's nftables ruleset of every CE and of dc-fw logs its drops to this group."""
    for host, dev in lab.devices.items():
        if "nftables" not in dev.platforms:
            continue
        ruleset = ev.intended_texts(lab, dev)["nftables"]
        groups = set(re.findall(r'\blog group (\d+) prefix "provnet-drop-(?:in|fwd) "', ruleset))
        assert groups == {str(DEFAULTS["base_nflog_group"])}, host
        nflog = stacks(render(lab, host))[0][0][0]
        assert parse(render(lab, host))[nflog] == [("group", groups.pop())], host


def test_every_plugin_of_the_stack_is_loaded_once(lab: model.Model) -> None:
    conf = render(lab, "dc-fw")
    plugins = [v for k, v in parse(conf)["global"] if k == "plugin"]
    names = [PLUGIN_FILE.match(Path(p).name).group(2) for p in plugins]  # type: ignore[union-attr]
    assert sorted(names) == sorted(STACK)
    assert {str(Path(p).parent) for p in plugins} == {DEFAULTS["base_nflog_plugin_dir"]}


def test_the_checks_can_fail(lab: model.Model) -> None:
    """A file with the stack Debian ships enabled (LOGEMU into a file, group 0) is told apart."""
    conf = render(lab, "dc-fw").replace("sys1:SYSLOG", "emu1:LOGEMU").replace("group=1", "group=0")
    assert [p for _, p in stacks(conf)[0]] != STACK
    assert parse(conf)["log1"] == [("group", "0")]


@needs_image
def test_the_plugins_exist_in_the_lab_image(lab: model.Model) -> None:
    assert IMAGE is not None
    conf = render(lab, "dong-dang-ce")
    for path in (v for k, v in parse(conf)["global"] if k == "plugin"):
        assert (IMAGE / path.lstrip("/")).is_file(), f"{path} is not in {IMAGE.name}"
    unit = (IMAGE / "lib/systemd/system/ulogd2.service").read_text()  # the unit the role starts
    assert "ExecStart=/usr/sbin/ulogd --daemon" in unit and "Type=forking" in unit


@needs_image
def test_the_syslog_plugin_knows_every_facility_and_level_allowed() -> None:
    assert IMAGE is not None
    plugin = (IMAGE / DEFAULTS["base_nflog_plugin_dir"].lstrip("/") / "ulogd_output_SYSLOG.so").read_bytes()
    for option in ("base_nflog_syslog_facility", "base_nflog_syslog_level"):
        for name in SPECS[option]["choices"]:
            assert name.encode() + b"\0" in plugin, name
    assert b"LOG_NOPE\0" not in plugin


# ------------------------------------------------------------------ compliance and the SOC

@pytest.fixture(scope="module")
def rules() -> dict[str, Rule]:
    return load_rules()


class Shell:
    def __init__(self, output: str) -> None:
        self.output = output
        self.ran: list[str] = []

    def __call__(self, command: str) -> tuple[int, str]:
        self.ran.append(command)
        rc = 0 if self.output.startswith("active\n") else 3  # systemctl is-active's exit status
        return rc, self.output


def check(rules: dict[str, Rule], lab: model.Model, host: str, output: str) -> ev.Finding:
    dev = lab.devices[host]
    return ev.evaluate(rules["logging-007"], dev, ev.Evidence(vars=hostvars.device_vars(lab, dev), run=Shell(output)))


def test_the_rule_applies_to_the_nftables_hosts(rules: dict[str, Rule], lab: model.Model) -> None:
    applies = {h for h, d in lab.devices.items() if ev.applies(rules["logging-007"], d, {})}
    assert applies == {h for h, d in lab.devices.items() if "nftables" in d.platforms}


def test_the_rule_passes_once_the_role_ran(rules: dict[str, Rule], lab: model.Model) -> None:
    for host in ("dong-dang-ce", "dc-fw"):
        f = check(rules, lab, host, "active\n" + render(lab, host))
        assert f.status == "pass", (host, f.evidence)
        assert "stack=log1:NFLOG" in f.evidence


def test_the_rule_fails_when_ulogd_is_stopped_or_reads_another_group(rules: dict[str, Rule],
                                                                      lab: model.Model) -> None:
    stopped = check(rules, lab, "dc-fw", "failed\n" + render(lab, "dc-fw"))
    assert (stopped.status, stopped.evidence) == ("fail", "missing: /^active$/")
    other = check(rules, lab, "dc-fw", "active\n" + render(lab, "dc-fw", base_nflog_group=2))
    assert other.status == "fail"
    to_file = render(lab, "dc-fw").replace("sys1:SYSLOG", "emu1:LOGEMU")
    assert check(rules, lab, "dc-fw", "active\n" + to_file).status == "fail"
    commented = render(lab, "dc-fw").replace("\nstack=", "\n#stack=")
    assert check(rules, lab, "dc-fw", "active\n" + commented).status == "fail"


@needs_image
def test_the_rule_fails_on_debians_default_file(rules: dict[str, Rule], lab: model.Model) -> None:
    assert IMAGE is not None
    default = (IMAGE / "etc/ulogd.conf").read_text(encoding="utf-8", errors="replace")
    assert "sys1:SYSLOG" in default  # Debian ships the SYSLOG stack, commented out, reading group 2
    assert check(rules, lab, "dong-dang-ce", "active\n" + default).status == "fail"


def test_the_soc_counts_the_line_ulogd_prints(lab: model.Model) -> None:
    """PRINTPKT writes the prefix, a space, then IN= … : with the ruleset's prefix (which ends in a
    space) the SOC stores this line; socview counts it as a drop of its direction."""
    ruleset = ev.intended_texts(lab, lab.devices["dong-dang-ce"])["nftables"]
    prefixes = re.findall(r'log group \d+ prefix "([^"]+)"', ruleset)
    assert prefixes == ["provnet-drop-in ", "provnet-drop-fwd "]
    for prefix, direction in zip(prefixes, ("in", "fwd")):
        line = (f"2026-12-02T06:00:00.123456+07:00 dong-dang-ce ulogd[611]: {prefix} IN=wan0 OUT= MAC= "
                "SRC=198.18.200.7 DST=198.18.2.1 LEN=60 TOS=00 PREC=0x00 TTL=63 ID=4711 DF PROTO=TCP "
                "SPT=51000 DPT=23 SEQ=1 ACK=0 WINDOW=64240 SYN URGP=0 MARK=0")
        assert socview.classify(line) == "drop" and f"provnet-drop-{direction}  IN=wan0 " in line
    assert socview.classify("2026-12-02T06:00:00+07:00 dong-dang-ce ulogd[611]: IN=wan0 OUT= SRC=1.2.3.4") == ""
