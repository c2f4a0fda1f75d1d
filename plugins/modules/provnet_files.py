#!/usr/bin/python
"""Ansible module: a role's configuration files, all in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_files
short_description: Write many files (and directories) on a host in one module call
description:
  - One task instead of one C(template)/C(copy)/C(file) task per file; at fleet scale the cost
    of a playbook is its task x host pairs, and each pair is a remote Python start.
  - Each file is compared with what is on disk (content, mode, owner, group) and replaced
    atomically only when it differs; a C(validate) command checks the new content first.
  - Returns C(changed_paths) so that later tasks can act on the files that changed;
    C(on_change) commands replace handlers (a handler is one more task x host pass).
  - Check mode and --diff are supported; the values given in C(secrets) are masked in every
    diff (and, being no_log, in Ansible's own output).
options:
  files:
    description: >-
      Entries with C(dest) and either C(content) (a file; render templates with
      C(lookup('template', ...))) or C(state=directory). Optional C(mode), C(owner), C(group),
      C(validate) (a command with C(%s) for the candidate file), C(manage) (false: leave alone) and
      C(on_change) (a command, or a list of them, run once the files are in place when this one changed, e.g. a
      restart; if it fails, every file this call changed is put back and the commands run again).
    type: list
    elements: dict
    required: true
  secrets:
    description: Values that must never appear in a diff or a message.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
changed_paths:
  description: Paths written or whose mode/owner changed (would be, in check mode).
  type: list
  elements: str
ran:
  description: The on_change commands run, in order.
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.provnet_fileset import MASK, FileError, apply, check, on_change  # noqa: F401 (tests)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True},
                       "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True}},
        supports_check_mode=True)
    backups: dict[str, bytes | None] = {}
    ran: list[str] = []
    try:
        check(module.params["files"])
        changed, diffs = apply(module.params["files"], module.params["secrets"], module.check_mode, backups)
        if not module.check_mode:
            ran = on_change(module.params["files"], changed, backups, module.params["secrets"])
    except (FileError, OSError) as exc:
        module.fail_json(msg=str(exc), changed_paths=[])
    result: dict[str, Any] = {"changed": bool(changed), "changed_paths": changed, "ran": ran}
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
