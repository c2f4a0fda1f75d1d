#!/usr/bin/python
"""Ansible module: a role's packages are installed; only the missing ones go through apt."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_packages
short_description: Make sure Debian packages are installed, asking apt only for the missing ones
description:
  - One C(dpkg-query) call finds which of C(names) are installed; when all are (always on a lab
    node, whose image holds every package), nothing else runs and nothing changes.
  - Missing packages are installed with one C(apt-get install) (after C(apt-get update) if
    C(update_cache)). When apt cannot fetch them (lab nodes have no apt sources), the task fails
    and names them.
  - Needs no python3-apt (C(ansible.builtin.apt) would try to install it, which a node without
    apt sources cannot). Check mode asks C(apt-get --simulate) whether the install would work;
    --diff lists the packages that would be installed.
options:
  names:
    description: Debian package names (no version or architecture).
    type: list
    elements: str
    required: true
  update_cache:
    description: Run C(apt-get update) before installing missing packages (not in check mode).
    type: bool
    default: false
"""

RETURN = r"""
missing:
  description: The packages that were not installed (and were installed, or would be in check mode).
  type: list
  elements: str
"""

import re
from collections.abc import Callable

from ansible.module_utils.basic import AnsibleModule

Run = Callable[[list[str]], tuple[int, str, str]]
NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy 5.6.1
QUERY = ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"]
# as ansible.builtin.apt: keep locally changed conffiles, take new defaults
APT_GET = ["apt-get", "-q", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "DEBIAN_PRIORITY": "critical", "LC_ALL": "C", "LANG": "C"}


class PackageError(Exception):
    """Packages cannot be checked or installed: the message names them."""


def missing(names: list[str], dpkg_out: str) -> list[str]:
    """The names that ``dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n'`` does not show installed."""
    installed = set()
    for line in dpkg_out.splitlines():
        name, _, status = line.partition(" ")
        # Status-Abbrev: wanted, current, error flag ("ii ", "hi ", "rc ", "iU ", "iiR")
        if len(status) >= 2 and status[1] == "i" and status[2:3] != "R":
            installed.add(name)
    return [n for n in names if n not in installed]


def _tail(out: str, err: str) -> str:
    lines = [ln for ln in (err or out).strip().splitlines() if ln.strip()]
    return " / ".join(lines[-4:])


def ensure(run: Run, names: list[str], update_cache: bool, check: bool) -> list[str]:
    """Install what is missing of ``names`` (in check mode, only simulate it); return the missing."""
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise PackageError(f"not Debian package names: {', '.join(bad)}")
    rc, out, err = run([*QUERY, *names])
    if rc not in (0, 1):  # 1: some name is unknown to dpkg, i.e. not installed
        raise PackageError(f"dpkg-query failed (exit {rc}): {_tail(out, err)}")
    todo = missing(names, out)
    if not todo:
        return []
    if update_cache and not check:
        rc, out, err = run([*APT_GET, "update"])
        if rc != 0:
            raise PackageError(f"apt-get update failed (exit {rc}): {_tail(out, err)}")
    rc, out, err = run([*APT_GET, "install", *(["--simulate"] if check else []), *todo])
    if rc != 0:
        raise PackageError(f"not installed: {', '.join(todo)}; apt-get {'would fail' if check else 'failed'} "
                           f"to install them (exit {rc}): {_tail(out, err)} (a node without apt sources, as "
                           "every lab node, needs them in its image: provnet/lab/image.py PACKAGES)")
    return todo


def main() -> None:
    module = AnsibleModule(
        argument_spec={"names": {"type": "list", "elements": "str", "required": True},
                       "update_cache": {"type": "bool", "default": False}},
        supports_check_mode=True)
    module.run_command_environ_update = APT_ENV
    names = list(dict.fromkeys(module.params["names"]))

    def run(cmd: list[str]) -> tuple[int, str, str]:
        return module.run_command([module.get_bin_path(cmd[0], required=True), *cmd[1:]])

    try:
        todo = ensure(run, names, module.params["update_cache"], module.check_mode)
    except PackageError as exc:
        module.fail_json(msg=str(exc), missing=[])
    result = {"changed": bool(todo), "missing": todo}
    if module._diff and todo:
        result["diff"] = {"before_header": "installed packages", "after_header": "installed packages",
                          "before": "", "after": "".join(f"{n}\n" for n in todo)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
