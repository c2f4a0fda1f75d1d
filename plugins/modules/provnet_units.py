#!/usr/bin/python
"""Ansible module: the state of many systemd units, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_units
short_description: Enable/start or disable/stop many systemd units in one module call
description:
  - One task instead of one C(systemd_service) task per unit (fleet scale: task x host pairs).
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

from typing import Any

from ansible.module_utils.basic import AnsibleModule

ENABLED = {"enabled", "enabled-runtime", "alias", "static", "indirect", "generated", "transient"}


def show(module: AnsibleModule, names: list[str]) -> dict[str, dict[str, str]]:
    """LoadState, ActiveState and UnitFileState of each unit (one systemctl call)."""
    if not names:
        return {}
    rc, out, err = module.run_command(["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState",
                                       "--", *names])
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed (exit {rc}): {err.strip()}")
    # systemctl prints one block per argument, in order
    return {name: dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            for name, block in zip(names, out.strip().split("\n\n"))}


def plan(units: list[dict[str, Any]], off: list[str], states: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(verb, unit) pairs that bring the units to their wanted state."""
    steps: list[tuple[str, str]] = []
    for u in units:
        st = states[u["name"]]
        if st.get("LoadState") == "not-found":
            raise ValueError(f"unit {u['name']} is not installed here (is its package in the role's packages?)")
        enabled = st.get("UnitFileState", "") in ENABLED
        if u.get("enabled") is True and not enabled:
            steps.append(("enable", u["name"]))
        if u.get("enabled") is False and enabled:
            steps.append(("disable", u["name"]))
        active = st.get("ActiveState") in ("active", "activating", "reloading")
        if u.get("state") == "started" and not active:
            steps.append(("start", u["name"]))
        if u.get("state") == "stopped" and active:
            steps.append(("stop", u["name"]))
    for name in off:
        st = states[name]
        if st.get("LoadState") in ("not-found", "masked"):
            continue
        if st.get("UnitFileState", "") in ENABLED - {"static", "generated", "transient", "indirect"}:
            steps.append(("disable", name))
        if st.get("ActiveState") in ("active", "activating", "reloading"):
            steps.append(("stop", name))
    return steps


def main() -> None:
    module = AnsibleModule(
        argument_spec={"units": {"type": "list", "elements": "dict", "default": []},
                       "unneeded": {"type": "list", "elements": "str", "default": []},
                       "daemon_reload": {"type": "bool", "default": False}},
        supports_check_mode=True)
    units, off = module.params["units"], module.params["unneeded"]
    for i, u in enumerate(units):
        if not u.get("name") or u.get("state") not in (None, "started", "stopped") or \
                u.get("enabled") not in (None, True, False):
            module.fail_json(msg=f"units[{i}] {u!r}: give name, enabled (true/false), state (started/stopped)")
    if module.params["daemon_reload"] and not module.check_mode:
        rc, _, err = module.run_command(["systemctl", "daemon-reload"])
        if rc != 0:
            module.fail_json(msg=f"systemctl daemon-reload failed: {err.strip()}")
    names = list(dict.fromkeys([u["name"] for u in units] + off))
    try:
        steps = plan(units, off, show(module, names))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if not module.check_mode:
        for verb, name in steps:
            rc, out, err = module.run_command(["systemctl", verb, "--", name])
            if rc != 0:
                module.fail_json(msg=f"systemctl {verb} {name} failed (exit {rc}): {(err or out).strip()[-600:]}",
                                 changed_units=[f"{n}: {v}" for v, n in steps])
    module.exit_json(changed=bool(steps), changed_units=[f"{n}: {v}" for v, n in steps])


if __name__ == "__main__":
    main()
