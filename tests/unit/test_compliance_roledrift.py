"""provnet.compliance.roledrift: what the roles would write on the lab's hosts, the one shell command
that reads a node's state, and the findings. No device, no SSH: the node's answers are built here
(and the command itself runs on a temporary folder of this machine); Ansible's own template action
renders the same files on localhost (connection local) for comparison."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from provnet import model, plugin_modules, secrets
from provnet.compliance import roledrift as rd
from provnet.compliance import run as crun
from provnet.compliance.report import exit_code
from provnet.drivers.ssh import Result
from provnet.engine import device as engine

ROOT = Path(__file__).resolve().parents[2]
SERVERS = ["dc-ntp", "dc-soc", "dc-sip", "dc-mcu"]
MASK = secrets.MASK


@pytest.fixture(scope="module")
def lab() -> model.Model:
    return model.load(ROOT / "inventory" / "lab")


@pytest.fixture(scope="module")
def plan() -> rd.Plan:
    return rd.Plan()


@pytest.fixture(scope="module")
def vault(lab: model.Model) -> dict[str, str]:
    # distinctive values, so that a leak is easy to find
    return {name: f"Vv{i:02d}-{name.replace('_', '-')}-k3y" for i, name in enumerate(sorted(lab.secret_refs()))}


@pytest.fixture(scope="module")
def exps(plan: rd.Plan, lab: model.Model, vault: dict[str, str]) -> dict[str, rd.Expected]:
    return {h: rd.expected(plan, lab, h, vault) for h in [*SERVERS, "dc-fw", "dc-sw", "dc-core", "dong-dang-ce",
                                                           "dong-dang-vc"]}


def masker(vault: dict[str, str]) -> secrets.Masker:
    return secrets.Masker(vault)


def findings(exp: rd.Expected, answer: str, vault: dict[str, str]) -> list[Any]:
    return rd.compare(exp, rd.parse(answer, exp), masker(vault))


def swap(answer: str, dest: str, new: str | None = None, kind: str | None = None, mode: int | None = None) -> str:
    """The answer with one file's content, type or mode changed."""
    import base64

    lines = answer.split("\n")
    i = lines.index(f"=F {dest}")
    head = lines[i + 1].split()
    if kind == "absent":
        return "\n".join(lines[:i + 1] + ["T absent"] + lines[i + 3:])
    if mode is not None:
        head[2] = f"{mode:o}"
    if new is not None:
        data = new.encode()
        head[5] = str(len(data))
        lines[i + 2] = base64.b64encode(data).decode()
    lines[i + 1] = " ".join(head)
    return "\n".join(lines)


def content(exp: rd.Expected, dest: str) -> str:
    return (exp.files[dest].content or b"").decode()


# ----------------------------------------------------------------------------------------------- the plan

def test_the_roles_come_from_the_playbooks(plan: rd.Plan, lab: model.Model) -> None:
    roles = {h: [r.name for _, r in plan.roles_for(lab, h)] for h in lab.devices}
    assert roles["dc-ntp"] == ["base", "ntp_server"]
    assert roles["dc-soc"] == ["base", "soc_collector"]
    assert roles["dc-sip"] == ["base", "sip_registrar"]
    assert roles["dc-mcu"] == ["base", "vc_bridge", "vc_probe"]
    assert roles["dc-fw"] == roles["dc-core"] == roles["dc-sw"] == ["base"]
    assert roles["dong-dang-vc"] == ["vc_endpoint", "base"]
    assert roles["dong-dang-ce"] == ["base"]


def test_inventory_vars_are_what_the_inventory_plugin_gives(lab: model.Model) -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(ROOT / "inventory/lab"),
                          "--host", "dc-sip"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}, timeout=120)
    assert out.returncode == 0, out.stderr
    group_all, own = rd.inventory_vars(lab, lab.devices["dc-sip"])
    assert json.loads(out.stdout) == json.loads(json.dumps({**group_all, **own}))


def test_what_the_lab_servers_get(exps: dict[str, rd.Expected]) -> None:
    for host in SERVERS:
        e = exps[host]
        assert not e.error
        ne = {d for d, f in e.files.items() if f.not_evaluated}
        # the admin's keys are root's, read with slurp during the run: only a real run knows them; the
        # registrar's db_text tables are its registrations (runtime state, first copied on the node)
        runtime = {"/var/lib/kamailio/db/location", "/var/lib/kamailio/db/version"} if host == "dc-sip" else set()
        assert ne == {"/home/netops/.ssh/authorized_keys"} | runtime, (host, ne)
        assert "/root/.ssh/authorized_keys" in e.files["/home/netops/.ssh/authorized_keys"].not_evaluated
        assert {"/etc/hostname", "/etc/ssh/sshd_config.d/00-provnet-base.conf", "/etc/snmp/snmpd.conf",
                "/etc/systemd/network/50-provnet-servers0.network"} <= set(e.files)
        assert {"openssh-server", "chrony", "rsyslog", "snmpd"} <= set(e.packages)
        assert e.units["rsyslog.service"].enabled is True and e.units["telnet.socket"].unneeded
        assert content(e, "/etc/hostname") == f"{host}\n"
    ntp, soc, sip, mcu = (exps[h] for h in SERVERS)
    # base leaves chrony.conf to ntp_server on the NTP server, and forwarding to no one on the SOC
    assert exps["dc-ntp"].files["/etc/chrony/chrony.conf"].role == "ntp_server"
    assert "local stratum 8" in content(ntp, "/etc/chrony/chrony.conf")
    assert "/etc/rsyslog.d/90-provnet-forward.conf" not in soc.files
    assert {"/etc/rsyslog.d/10-provnet-collector.conf", "/etc/logrotate.d/provnet-remote"} <= set(soc.files)
    assert soc.files["/var/log/remote"].kind == "directory" and soc.files["/var/log/remote"].mode == 0o750
    # the lab image's mask (a link to /dev/null) is removed, then the timer enabled
    assert soc.files["/etc/systemd/system/logrotate.timer"].kind == "absent"
    assert soc.units["logrotate.timer"].enabled is True and soc.packages["logrotate"] == "soc_collector"
    k = sip.files["/etc/kamailio/kamailio.cfg"]
    assert (k.mode, k.owner, k.group) == (0o640, "root", "kamailio")
    assert content(sip, "/etc/default/kamailio").endswith("CFGFILE=/etc/kamailio/kamailio.cfg\n")
    assert sip.units["kamailio.service"].state == "started"
    assert mcu.files["/etc/provnet/bridge/secret"].hidden and mcu.files["/etc/janus/janus.jcfg"].hidden
    assert any(s in content(mcu, "/etc/provnet/bridge/secret") for s in mcu.secrets)  # masked everywhere
    assert not mcu.files["/etc/janus/janus.transport.http.jcfg"].hidden
    assert mcu.files["/usr/local/lib/provnet/provnet-bridged.py"].kind == "absent"
    assert (mcu.files["/usr/local/lib/provnet/provnet-bridged/provnet/vc/sipmsg.py"].content
            == (ROOT / "provnet/vc/sipmsg.py").read_bytes())
    assert {f"provnet-probe@{i}.service" for i in range(4)} <= set(mcu.units)
    assert "rtp_ports\t\t10980-10999\n" in content(mcu, "/etc/provnet/probe/3/config")
    assert "<sip:probe-3@" in content(mcu, "/etc/provnet/probe/3/accounts")
    # vc_probe's files are one template for the whole list; instances beyond vc_probe_instances (up to the
    # role's bound) are removed, stopped and disabled: everything is evaluated
    assert "vc_probe" not in mcu.tasks_not_evaluated
    assert mcu.files["/etc/provnet/probe/4"].kind == mcu.files["/etc/provnet/probe/49"].kind == "absent"
    assert mcu.units["provnet-probe@4.service"].unneeded and mcu.units["provnet-probe@3.service"].state == "started"


def test_copy_content_adds_no_newline_and_templates_keep_theirs(exps: dict[str, rd.Expected]) -> None:
    sip = exps["dc-sip"]
    trusted = content(sip, "/etc/kamailio/provnet-trusted.list")
    assert trusted.startswith("# managed by provnet (sip_registrar role)") and trusted.endswith(" trusted-1\n")
    assert not trusted.endswith("\n\n")
    chrony = content(exps["dc-ntp"], "/etc/chrony/chrony.conf")
    assert chrony.startswith("# Ansible managed") and chrony.endswith("\n") and not chrony.endswith("\n\n")
    assert "{%" not in chrony and "\n\n" not in chrony  # trim_blocks: no blank line per block tag


def test_the_engine_devices_get_the_base_role(exps: dict[str, rd.Expected]) -> None:
    for host in ("dc-fw", "dc-sw", "dc-core", "dong-dang-ce", "dong-dang-vc"):
        e = exps[host]
        assert not e.error and "/etc/sudoers.d/provnet-admin" in e.files
        assert not any(d.startswith("/etc/systemd/network/") for d in e.files)  # the engine's, not base's
    assert "/etc/systemd/system/baresip.service" in exps["dong-dang-vc"].files


def test_a_files_list_that_is_one_template(tmp_path: Path, plan: rd.Plan, lab: model.Model, vault: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``files: "{{ … }}"`` (per-instance entries built in Jinja) is rendered whole, then read as is; one that
    needs a real run, or is no list of entries, is reported as not evaluated, and the call's units still are."""
    role = tmp_path / "rd_fake"
    (role / "tasks").mkdir(parents=True)
    built = ("{%- set out = [] -%}{%- for i in range(2) -%}{%- set _ = out.append({'dest': '/etc/fake/' ~ i, "
             "'content': 'n={{ i }}\n' ~ i, 'mode': 'o+r', 'owner': omit}) -%}{%- endfor -%}"
             "{%- set _ = out.append({'dest': '/etc/fake/9', 'state': 'absent'}) -%}{{ out }}")
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"name": "host | From a fact", "provnet_host": {"files": "{{ _fake_registered.files }}",
                                                         "units": {"units": [{"name": "fake", "enabled": True}]}}},
        {"name": "host | Built", "provnet_host": {"files": "{{ _fake_files }}"}, "vars": {"_fake_files": built}},
        {"name": "host | Not a list", "provnet_files": {"files": "{{ 'text' }}"}},
    ]))
    fake = rd.RoleRef("rd_fake", {}, ())
    play = rd.Play("fake", "dc-ntp", (fake,), {}, "fake.yml")
    monkeypatch.setattr(plan, "role_dir", lambda name: role if name == "rd_fake" else rd.ROLES_DIR / name)
    monkeypatch.setattr(plan, "roles_for", lambda m, host: [(play, fake)])
    e = rd.expected(plan, lab, "dc-ntp", vault)
    assert not e.error and e.units["fake.service"].enabled is True
    assert e.tasks_not_evaluated["rd_fake"] == [
        "host | From a fact: files not evaluated (_fake_registered is known only during a real run)",
        "host | Not a list: files is not a list of entries once rendered (str)"]
    # rendered once: the literal "{{ i }}" inside a content is the file's, not a template; omit drops the key
    f0 = e.files["/etc/fake/0"]
    assert (f0.kind, f0.content, f0.mode, f0.owner) == ("file", b"n={{ i }}\n0", None, None)
    assert e.files["/etc/fake/9"].kind == "absent"


# ----------------------------------------------------------------------------------------------- compare

@pytest.mark.parametrize("host", SERVERS)
def test_a_converged_server_passes(exps: dict[str, rd.Expected], vault: dict[str, str], host: str) -> None:
    e = exps[host]
    out = findings(e, rd.answer_for(e), vault)
    assert {f.status for f in out} <= {"pass", "not_applicable"}
    assert {f.rule_id for f in out if f.status == "not_applicable"} == {
        "drift:file:/home/netops/.ssh/authorized_keys",
        # the registrar's registrations (db_text tables): runtime state, not a configuration
        *([f"drift:file:/var/lib/kamailio/db/{t}" for t in ("location", "version")] if host == "dc-sip" else [])}
    assert len([f for f in out if f.rule_id.startswith("drift:file:")]) == len(e.files)
    assert len([f for f in out if f.rule_id.startswith("drift:unit:")]) == len(e.units)
    assert len([f for f in out if f.rule_id.startswith("drift:package:")]) == len(e.packages)
    assert all(f.kind == "drift" for f in out)


def test_a_changed_line_is_one_finding_with_its_diff(exps: dict[str, rd.Expected], vault: dict[str, str]) -> None:
    e = exps["dc-ntp"]
    dest = "/etc/chrony/chrony.conf"
    text = content(e, dest).replace("local stratum 8", "local stratum 3")
    out = [f for f in findings(e, swap(rd.answer_for(e), dest, text), vault) if f.status == "fail"]
    assert [f.rule_id for f in out] == [f"drift:file:{dest}"]
    ev = out[0].evidence
    assert ev.startswith(f"{dest} (role ntp_server): content differs")
    assert "-local stratum 3\n" in ev and "+local stratum 8\n" in ev
    assert f"--- {dest} on dc-ntp" in ev and f"+++ {dest} as role ntp_server writes it" in ev
    assert out[0].reason.startswith(dest)


def test_missing_file_wrong_mode_disabled_unit_missing_package(exps: dict[str, rd.Expected],
                                                              vault: dict[str, str]) -> None:
    e = exps["dc-sip"]
    answer = rd.answer_for(e)
    answer = swap(answer, "/etc/default/kamailio", kind="absent")
    answer = swap(answer, "/etc/kamailio/kamailio.cfg", mode=0o644)
    units = rd._units(e)
    lines = answer.split("\n")
    start = lines.index("=U") + 1
    block = units.index("kamailio.service") * 4 + start
    assert lines[block + 2] == "UnitFileState=enabled"
    lines[block + 2] = "UnitFileState=disabled"
    answer = "\n".join(ln for ln in lines if ln != "kamailio ii ")
    out = {f.rule_id: f for f in findings(e, answer, vault) if f.status == "fail"}
    assert sorted(out) == ["drift:file:/etc/default/kamailio", "drift:file:/etc/kamailio/kamailio.cfg",
                           "drift:package:kamailio", "drift:unit:kamailio.service"]
    assert "missing" in out["drift:file:/etc/default/kamailio"].evidence
    assert "mode 0644, the role sets 0640" in out["drift:file:/etc/kamailio/kamailio.cfg"].evidence
    assert "content differs" not in out["drift:file:/etc/kamailio/kamailio.cfg"].evidence
    assert "not enabled (disabled)" in out["drift:unit:kamailio.service"].evidence
    assert "not installed" in out["drift:package:kamailio"].evidence


def test_a_vault_secret_never_reaches_the_evidence(exps: dict[str, rd.Expected], vault: dict[str, str]) -> None:
    e = exps["dc-sip"]
    auth = vault["snmp_auth_key"]
    snmpd = content(e, "/etc/snmp/snmpd.conf")
    assert auth in snmpd  # what the role writes holds the clear key …
    drifted = snmpd.replace("rouser -s usm provnet priv", "rouser -s usm provnet auth")
    kam = content(e, "/etc/kamailio/kamailio.cfg")
    sip_pw = next(v for k, v in vault.items() if k.startswith("sip_") and v in kam)
    answer = swap(rd.answer_for(e), "/etc/snmp/snmpd.conf", drifted)
    answer = swap(answer, "/etc/kamailio/kamailio.cfg", kam.replace(sip_pw, "an-old-password"))
    out = [f for f in findings(e, answer, vault) if f.status == "fail"]
    assert len(out) == 2
    for f in out:
        assert auth not in f.evidence and sip_pw not in f.evidence and not any(v in f.evidence for v in vault.values())
        assert MASK in f.evidence
    # … and a file whose task hides its diff (janus.jcfg holds the bridge secret) shows none
    m = exps["dc-mcu"]
    jcfg = content(m, "/etc/janus/janus.jcfg")
    out = [f for f in findings(m, swap(rd.answer_for(m), "/etc/janus/janus.jcfg", jcfg.replace("debug_level", "x")),
                               vault) if f.status == "fail"]
    assert [f.rule_id for f in out] == ["drift:file:/etc/janus/janus.jcfg"]
    assert "diff withheld" in out[0].evidence and "debug_level" not in out[0].evidence


def test_an_incomplete_answer_is_one_error(exps: dict[str, rd.Expected], vault: dict[str, str]) -> None:
    e = exps["dc-ntp"]
    answer = rd.answer_for(e)
    out = findings(e, answer[: len(answer) // 2], vault)
    assert [(f.rule_id, f.status) for f in out] == [("drift:roles", "error")]


def test_unneeded_units_pass_when_absent_or_off_and_fail_when_running() -> None:
    u = rd.ExpectedUnit("cups.service", "base", unneeded=True)
    assert rd._unit_problems(u, {"LoadState": "not-found"}) == []
    assert rd._unit_problems(u, {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"}) == []
    assert len(rd._unit_problems(u, {"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"})) == 2
    # the same notion of "enabled" as the module that set it
    assert rd.ENABLED == frozenset(plugin_modules.load("provnet_units").ENABLED)


# ----------------------------------------------------------------------------------------------- the command

def test_the_command_reads_a_real_folder(tmp_path: Path) -> None:
    """The shell side, run on this machine against files of a temporary folder."""
    (tmp_path / "a.conf").write_bytes(b"line one\n\x00binary\xff\n")
    (tmp_path / "a.conf").chmod(0o640)
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    (tmp_path / "link").symlink_to(tmp_path / "a.conf")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    e = rd.Expected("here")
    e.files = {
        str(tmp_path / "a.conf"): rd.ExpectedFile(str(tmp_path / "a.conf"), "file", "r", "t",
                                                  content=b"line one\n\x00binary\xff\n", mode=0o640, owner=user),
        str(tmp_path / "d"): rd.ExpectedFile(str(tmp_path / "d"), "directory", "r", "t", mode=0o750, group=group),
        str(tmp_path / "gone"): rd.ExpectedFile(str(tmp_path / "gone"), "absent", "r", "t"),
        str(tmp_path / "link"): rd.ExpectedFile(str(tmp_path / "link"), "file", "r", "t", content=b"x"),
        str(tmp_path / "it's here"): rd.ExpectedFile(str(tmp_path / "it's here"), "file", "r", "t", content=b""),
    }
    cmd = rd.command(e)
    assert cmd.startswith(rd.COMMAND_HEAD)
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = {f.rule_id.removeprefix("drift:file:" + str(tmp_path) + "/"): f
           for f in rd.compare(e, rd.parse(proc.stdout, e), lambda s: s)}
    assert {k: f.status for k, f in out.items()} == {"a.conf": "pass", "d": "pass", "gone": "pass", "link": "fail",
                                                     "it's here": "fail"}
    assert "is a link" in out["link"].evidence and "missing" in out["it's here"].evidence


def test_a_big_file_is_read_only_so_far(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (rd.MAX_BYTES * 3))
    e = rd.Expected("here")
    e.files = {str(big): rd.ExpectedFile(str(big), "file", "r", "t", content=b"x\n")}
    proc = subprocess.run(["sh", "-c", rd.command(e)], capture_output=True, text=True, timeout=30)
    assert len(proc.stdout) < rd.MAX_BYTES * 2
    (f,) = rd.compare(e, rd.parse(proc.stdout, e), lambda s: s)
    assert f.status == "fail" and "larger than" in f.evidence


# ----------------------------------------------------------------------------------------------- in the run

class Shell:
    def __init__(self, answer: str) -> None:
        self.answer, self.commands = answer, []

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        self.commands.append(command)
        if command.startswith(rd.COMMAND_HEAD):
            return Result(0, self.answer, "")
        return Result(0, "dc-ntp\n" if command == "hostname" else "", "")

    def close(self) -> None: ...


def test_the_run_checks_a_server_with_one_command(tmp_path: Path, lab: model.Model, plan: rd.Plan,
                                                  vault: dict[str, str], exps: dict[str, rd.Expected]) -> None:
    e = exps["dc-ntp"]
    dest = "/etc/chrony/chrony.conf"
    sh = Shell(swap(rd.answer_for(e), dest, content(e, dest) + "server pool.ntp.org iburst\n"))
    ctx = engine.Context(lab, dict(vault), secrets.Masker(vault), tmp_path / "b", tmp_path / "audit.log")
    inputs = crun.Inputs({}, [])
    res = crun.check_device(ctx, "dc-ntp", inputs, date(2026, 12, 3), None, shell=lambda c, d: sh, plan=plan)
    fails = [f for f in res.findings if f.status == "fail"]
    assert [f.rule_id for f in fails] == [f"drift:file:{dest}"] and "+server pool.ntp.org" not in fails[0].evidence
    assert "-server pool.ntp.org iburst" in fails[0].evidence
    assert len([c for c in sh.commands if c.startswith(rd.COMMAND_HEAD)]) == 1
    assert exit_code(res.findings) == 1
    # the remediation of such a finding is the roles (site.yml --limit), not the engine
    assert "file:/etc/chrony/chrony.conf" not in crun.DRIVERS


# ----------------------------------------------------------------------------------------------- Ansible itself

def _flat(role: Path, path: Path, when: list[Any]) -> list[tuple[dict[str, Any], list[Any]]]:
    out = []
    for task in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
        w = when + ([task["when"]] if "when" in task and not isinstance(task["when"], list) else task.get("when", []))
        imp = task.get("ansible.builtin.import_tasks")
        if imp:
            out += _flat(role, path.parent / imp, w)
        else:
            out.append((task, w))
    return out


def _flat_dest(dest: str) -> str:
    """The dest as one file of {{ rd_out }}/<host>/ ('/' → '%'), the dest's own expressions kept."""
    parts = []
    for i, piece in enumerate(re.split(r"\{\{(.*?)\}\}", dest)):
        if piece:
            parts.append(f"({piece})" if i % 2 else json.dumps(piece))
    return "{{ rd_out }}/{{ inventory_hostname }}/{{ (%s) | replace('/', '%%') }}" % " ~ ".join(parts)


def _redirected(role: Path) -> list[dict[str, Any]]:
    """The role's template/copy tasks and provnet_files/provnet_host file entries, each writing under {{ rd_out }} instead."""
    keep = ("when", "loop", "loop_control", "vars", "no_log")
    tasks: list[dict[str, Any]] = []

    def add(task: dict[str, Any], action: str, args: dict[str, Any]) -> None:
        tasks.append({**task, action: {**args, "dest": _flat_dest(args["dest"])}})
    for task, when in _flat(role, role / "tasks" / "main.yml", []):
        base = {k: v for k, v in task.items() if k in keep}
        base["when"] = when
        base["ignore_errors"] = True
        for action in ("ansible.builtin.template", "ansible.builtin.copy"):
            if action in task and "src" in task[action] and action.endswith("copy"):
                continue  # a role file copied as is (compared byte for byte below): no rendering to check
            if action in task:
                add({**base, "name": task.get("name", "")}, action,
                    {k: v for k, v in task[action].items() if k in ("src", "content", "dest")})
        files = (task.get("provnet_files") or task.get("provnet_host") or {}).get("files", [])
        if isinstance(files, str):
            # one template for the whole list: rendered by Ansible as the module's argument, every file entry
            # written by provnet_files itself under {{ rd_out }} (content only: no owner, validation or on_change)
            expr = files.strip()
            assert expr.startswith("{{") and expr.endswith("}}") and expr.count("{{") == 1, (role, files)
            redirect = (
                "{%- set out = [] -%}{%- for f in (" + expr[2:-2].strip() + ") -%}"
                "{%- if f.content is defined and f.state | default('file') == 'file' and f.manage | default(true) "
                "| bool and f.force | default(true) | bool -%}"
                "{%- set _ = out.append({'dest': rd_out ~ '/' ~ inventory_hostname ~ '/' ~ (f.dest | replace('/', '%')),"
                " 'content': f.content}) -%}{%- endif -%}{%- endfor -%}{{ out }}")
            tasks.append({**base, "name": f"{task.get('name', '')} (files)", "provnet_files": {"files": redirect}})
            continue
        for entry in files:
            if entry.get("state") in ("directory", "absent") or "content" not in entry:
                continue
            manage = entry.get("manage")
            cond = [str(manage).strip().removeprefix("{{").removesuffix("}}").strip()] if manage is not None else []
            add({**base, "name": entry["dest"], "when": when + cond}, "ansible.builtin.copy",
                {"content": entry["content"], "dest": entry["dest"]})
    return tasks


needs_ansible = pytest.mark.skipif(shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) is None,
                                   reason="no ansible-playbook in the venv")


@needs_ansible
def test_ansibles_own_template_and_copy_write_the_same_files(tmp_path: Path, plan: rd.Plan, lab: model.Model,
                                                              vault: dict[str, str],
                                                              exps: dict[str, rd.Expected]) -> None:
    """The roles' template/copy tasks and provnet_files contents, run by ansible-playbook itself on this machine
    (connection local, dests under a temporary folder) for the four lab servers, give byte for byte what
    roledrift computed: ansible_managed, trim_blocks, trailing newlines, lookups, vault, loops and whens, and a
    ``files`` list that is one template (vc_probe's instances, vc_bridge's controller) rendered whole."""
    roles = tmp_path / "roles"
    plays: list[dict[str, Any]] = [{
        "name": "vault", "hosts": "localhost", "gather_facts": False, "connection": "local",
        "tasks": [{"ansible.builtin.set_fact": {"_provnet_vault": "{{ rd_vault }}"}}]}]
    for host in SERVERS:
        (tmp_path / "out" / host).mkdir(parents=True)
    for p in plan.plays:
        if not p.roles:
            continue
        refs = []
        for r in p.roles:
            src = ROOT / "roles" / r.name
            dst = roles / f"rd_{r.name}"
            (dst / "tasks").mkdir(parents=True, exist_ok=True)
            for sub in ("defaults", "vars", "templates", "files", "filter_plugins"):
                if (src / sub).exists() and not (dst / sub).exists():
                    (dst / sub).symlink_to(src / sub)
            (dst / "tasks" / "main.yml").write_text(yaml.safe_dump(_redirected(src), sort_keys=False), encoding="utf-8")
            refs.append({"role": f"rd_{r.name}", **({"vars": json.loads(json.dumps(r.vars))} if r.vars else {})})
        plays.append({"name": p.name, "hosts": p.hosts, "gather_facts": False, "roles": refs})
    (tmp_path / "group_vars").symlink_to(ROOT / "playbooks" / "group_vars")
    (tmp_path / "pb.yml").write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"
    (tmp_path / "extra.json").write_text(json.dumps({"rd_vault": vault, "rd_out": str(out),
                                                     "ansible_python_interpreter": sys.executable}), encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(roles),
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORKS": "4", "ANSIBLE_CACHE_PLUGIN": "memory",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_REMOTE_TEMP": str(tmp_path / "rtmp")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ROOT / "inventory/lab"),
                           str(tmp_path / "pb.yml"), "-c", "local", "--limit", ",".join([*SERVERS, "localhost"]),
                           "-e", f"@{tmp_path / 'extra.json'}"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for host in SERVERS:
        e = exps[host]
        written = {p.name.replace("%", "/"): p.read_bytes() for p in (out / host).iterdir()}
        # (role files given as lookup('file') contents are rendered too: vc_bridge's controller, the SOC rulebase)
        ours = {d: f.content for d, f in e.files.items() if f.kind == "file" and not f.not_evaluated}
        assert set(written) == set(ours), (host, set(written) ^ set(ours))
        for dest, data in written.items():
            assert ours[dest] == data, (host, dest)
