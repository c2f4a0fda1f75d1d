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

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.provnet_packageset import APT_ENV, PackageError, ensure, missing, module_runner  # noqa: F401


def main() -> None:
    module = AnsibleModule(
        argument_spec={"names": {"type": "list", "elements": "str", "required": True},
                       "update_cache": {"type": "bool", "default": False}},
        supports_check_mode=True)
    module.run_command_environ_update = APT_ENV
    names = list(dict.fromkeys(module.params["names"]))

    try:
        todo = ensure(module_runner(module), names, module.params["update_cache"], module.check_mode)
    except PackageError as exc:
        module.fail_json(msg=str(exc), missing=[])
    result = {"changed": bool(todo), "missing": todo}
    if module._diff and todo:
        result["diff"] = {"before_header": "installed packages", "after_header": "installed packages",
                          "before": "", "after": "".join(f"{n}\n" for n in todo)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
