"""Every package a role names is in the lab image: lab nodes reach no mirror, so nothing may be missing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provnet.lab.image import PACKAGES

ROLES = Path(__file__).resolve().parents[2] / "roles"


def role_packages() -> list[tuple[str, str]]:
    out = []
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        role = defaults.parent.parent.name
        data = yaml.safe_load(defaults.read_text()) or {}
        for key, value in data.items():
            if key.endswith("_packages"):
                out.extend((role, pkg) for pkg in value)
    return out


def test_roles_name_packages() -> None:
    assert {role for role, _ in role_packages()} >= {"base", "ntp_server", "soc_collector", "sip_registrar",
                                                     "vc_bridge", "vc_endpoint"}


@pytest.mark.parametrize(("role", "package"), role_packages())
def test_every_role_package_is_in_the_lab_image(role: str, package: str) -> None:
    # logrotate comes with rsyslog (Depends), so the image holds it without naming it
    implied = {"logrotate": "rsyslog"}
    assert package in PACKAGES or implied.get(package) in PACKAGES, f"{role}: {package} is not in the lab image"


def test_no_role_refreshes_apt_caches_unless_asked() -> None:
    for path in ROLES.glob("*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            apt = (task.get("provnet_packages") or (task.get("provnet_host") or {}).get("packages")
                   or task.get("ansible.builtin.apt") or task.get("apt") or task.get("ansible.builtin.package"))
            if apt:
                assert str(apt.get("update_cache", "false")).startswith("{{"), f"{path}: update_cache must be a variable"


def test_every_role_installs_through_provnet_packages_or_its_host_call() -> None:
    for role in sorted({role for role, _ in role_packages()}):
        want = {"names": f"{{{{ {role}_packages }}}}", "update_cache": f"{{{{ {role}_apt_update_cache }}}}"}
        host = ROLES / role / "tasks" / "host.yml"
        if host.exists():  # one provnet_host call for the whole role: its packages section
            (task,) = yaml.safe_load(host.read_text())
            assert {k: v for k, v in task["provnet_host"]["packages"].items() if k != "tags"} == want, role
            continue
        tasks = yaml.safe_load((ROLES / role / "tasks" / "install.yml").read_text())
        assert [t["provnet_packages"] for t in tasks] == [want], role
