"""Role conventions: layout, every default documented in argument_specs, README."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provnet.plugin_modules import utils

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())


def test_the_roles_exist() -> None:
    assert set(ROLES) >= {"base", "ntp_server", "soc_collector", "sip_registrar", "vc_bridge", "vc_endpoint"}


@pytest.mark.parametrize("role", ROLES)
def test_layout(role: str) -> None:
    for rel in ("defaults/main.yml", "tasks/main.yml", "handlers/main.yml", "meta/argument_specs.yml", "README.md"):
        assert (ROLES_DIR / role / rel).is_file(), f"{role}: {rel} missing"
    assert any((ROLES_DIR / role / "templates").iterdir()), f"{role}: no templates"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_in_argument_specs_and_prefixed(role: str) -> None:
    defaults = yaml.safe_load((ROLES_DIR / role / "defaults/main.yml").read_text()) or {}
    spec = yaml.safe_load((ROLES_DIR / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) <= set(spec), f"{role}: not in argument_specs: {set(defaults) - set(spec)}"
    assert all(name.startswith(f"{role}_") for name in spec), role
    for name, opt in spec.items():
        assert opt.get("description"), f"{role}: {name} has no description"
        if name not in defaults:  # a variable without a default is required, and documented in defaults as a comment
            assert opt.get("required"), f"{role}: {name} has no default and is not required"
            assert f"# {name}:" in (ROLES_DIR / role / "defaults/main.yml").read_text(), f"{role}: {name} undocumented"


@pytest.mark.parametrize("role", ROLES)
def test_config_files_a_daemon_can_check_are_validated(role: str) -> None:
    checkers = {"chrony.conf": "chronyd -p", "kamailio.cfg": "kamailio -c", "sshd": "sshd -t",
                "rsyslog": "rsyslogd -N1", "sudoers": "visudo -c", "logrotate": "logrotate -d"}
    fileset = utils("provnet_fileset")
    for path in (ROLES_DIR / role / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            mod = task.get("ansible.builtin.template") or task.get("ansible.builtin.copy") or {}
            # and the file entries of a provnet_host/provnet_files call (given as a list)
            files = (task.get("provnet_host") or task.get("provnet_files") or {}).get("files")
            for entry in [mod, *(files if isinstance(files, list) else [])]:
                dest = str(entry.get("dest", ""))
                for needle, checker in checkers.items():
                    if needle in dest and entry.get("state") != "absent":
                        assert checker in str(entry.get("validate", "")), f"{role}: {dest} not validated with {checker}"
                if entry is not mod and entry.get("validate"):
                    # provnet_fileset reads %s and %% as Ansible's validate does (python's %)
                    assert fileset._validation(entry["validate"], "/c") == entry["validate"] % "/c", (role, dest)


@pytest.mark.parametrize("role", ROLES)
def test_every_notify_reaches_a_handler_of_the_role(role: str) -> None:
    handlers = yaml.safe_load((ROLES_DIR / role / "handlers/main.yml").read_text()) or []
    topics = {h["name"] for h in handlers} | {h["listen"] for h in handlers if "listen" in h}
    for path in (ROLES_DIR / role / "tasks").glob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            notify = task.get("notify", [])
            for topic in [notify] if isinstance(notify, str) else notify:
                # topics are global to a play: the role's name keeps them apart
                assert topic in topics and topic.startswith(f"{role} "), f"{path}: notify {topic!r}"
