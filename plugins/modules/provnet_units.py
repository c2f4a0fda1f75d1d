#!/usr/bin/python
"""Ansible module: the state of many systemd units, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_units
short_description: Enable/start or disable/stop many systemd units in one module call
description:
  - One task instead of one C(systemd_service) task per unit (fleet scale, task x host pairs).
  - Reads every unit's state with a single C(systemctl show), then changes only what differs.
  - Units listed in C(unneeded) are disabled and stopped when they exist and left alone when not
    (the "unneeded services" list of a baseline).
options:
  units:
    description: Entries with C(name), C(enabled) (bool) and C(state) (started, stopped or omitted).
    type: list
    elements: dict
    default: []
  unneeded:
    description: Units to disable and stop if they are installed.
    type: list
    elements: str
    default: []
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (unit files written by an earlier task).
    type: bool
    default: false
"""

RETURN = r"""
changed_units:
  description: "C(unit: action) for each change made (or that would be, in check mode)."
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.provnet_unitset import ENABLED, UnitError, converge, plan  # noqa: F401 (compliance, tests)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"units": {"type": "list", "elements": "dict", "default": []},
                       "unneeded": {"type": "list", "elements": "str", "default": []},
                       "daemon_reload": {"type": "bool", "default": False}},
        supports_check_mode=True)
    try:
        done = converge(module.run_command, module.params["units"], module.params["unneeded"],
                        module.params["daemon_reload"], module.check_mode)
    except UnitError as exc:
        module.fail_json(msg=str(exc), changed_units=[])
    module.exit_json(changed=bool(done), changed_units=done)


if __name__ == "__main__":
    main()
