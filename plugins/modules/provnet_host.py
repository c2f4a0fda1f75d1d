#!/usr/bin/python
"""Ansible module: everything a role declares for a host, applied in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_host
short_description: A role's packages, groups, users, lines, files and units on a host, in one module call
description:
  - >-
    At fleet scale a playbook's cost is its remote task x host pairs (each a Python start on the node,
    ~0.1-0.25 CPU-s); a role that declares its state here costs one pair per host, not one per task.
  - >-
    In order, each step only when something differs - C(packages) (one dpkg-query; apt only for the
    missing), C(groups) and C(users) (groupadd/useradd/usermod), C(lines) and C(files) (compared,
    validated, replaced atomically, all validations before any file moves; C(on_change) commands run
    once the files are in place and put every file back if one fails), C(units) (one systemctl show).
  - >-
    Check mode and --diff for every step; C(secrets) and every user's C(password) are masked in every
    diff and message.
  - >-
    C(tags) on a section or a file entry limit it to runs whose C(run_tags)/C(skip_tags) name it
    (pass C(ansible_run_tags) and C(ansible_skip_tags)), so C(--tags ssh) applies only what is tagged ssh;
    a broader tag (the role's, the play's) applies everything.
options:
  packages:
    description: "C(names) (Debian packages), C(update_cache) (bool), C(tags)."
    type: dict
  groups:
    description: "Entries with C(name), C(system) (bool), C(tags)."
    type: list
    elements: dict
    default: []
  users:
    description: >-
      Entries with C(name), C(comment), C(shell), C(group) (primary), C(groups), C(append) (default true),
      C(system), C(home), C(create_home) (default true), C(password) (a crypt(3) hash, or C(!) locked),
      C(tags).
    type: list
    elements: dict
    default: []
  lines:
    description: >-
      As lineinfile: C(path), C(line), C(regexp) (the last matching line is replaced), C(insertafter)
      (a regex, or EOF), C(tags).
    type: list
    elements: dict
    default: []
  files:
    description: >-
      As provnet_files (C(dest), C(content), C(state=directory) or C(state=absent), C(mode) (octal or symbolic),
      C(owner), C(group), C(validate), C(manage), C(force), C(diff), C(previous_in_place), C(on_change)), plus
      C(content_from) (copy another file of the host, e.g. root's authorized_keys; with C(force=false) read
      only when the destination is missing) and C(tags).
    type: list
    elements: dict
    default: []
  units:
    description: "As provnet_units: C(units), C(unneeded), C(daemon_reload), C(tags)."
    type: dict
  secrets:
    description: Values that must never appear in a diff or a message.
    type: list
    elements: str
    default: []
  run_tags:
    description: The run's C(--tags) (C(ansible_run_tags)).
    type: list
    elements: str
    default: [all]
  skip_tags:
    description: The run's C(--skip-tags) (C(ansible_skip_tags)).
    type: list
    elements: str
    default: []
"""

RETURN = r"""
missing:
  description: Packages that were missing (installed, or would be in check mode).
  type: list
accounts:
  description: Groups and users created or changed (never a password).
  type: list
changed_paths:
  description: Paths written or whose mode/owner changed.
  type: list
ran:
  description: The on_change commands run, in order.
  type: list
changed_units:
  description: "C(unit: verb) per unit change."
  type: list
"""

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.provnet_accounts import AccountError
from ansible.module_utils.provnet_accounts import converge as accounts_converge
from ansible.module_utils.provnet_fileset import KEYS, FileError, apply, check, on_change
from ansible.module_utils.provnet_lines import as_files
from ansible.module_utils.provnet_packageset import APT_ENV, PackageError, ensure, module_runner
from ansible.module_utils.provnet_unitset import UnitError
from ansible.module_utils.provnet_unitset import converge as units_converge

USER = {"name": {"type": "str", "required": True}, "comment": {"type": "str"}, "shell": {"type": "str"},
        "group": {"type": "str"}, "groups": {"type": "list", "elements": "str", "default": []},
        "append": {"type": "bool", "default": True}, "system": {"type": "bool", "default": False},
        "home": {"type": "str"}, "create_home": {"type": "bool", "default": True},
        "password": {"type": "str", "no_log": True}, "tags": {"type": "list", "elements": "str", "default": []}}
GROUP = {"name": {"type": "str", "required": True}, "system": {"type": "bool", "default": False},
         "tags": {"type": "list", "elements": "str", "default": []}}
LINE = {"path": {"type": "path", "required": True}, "line": {"type": "str", "required": True},
        "regexp": {"type": "str"}, "insertafter": {"type": "str"},
        "tags": {"type": "list", "elements": "str", "default": []}}
PACKAGES = {"names": {"type": "list", "elements": "str", "default": []}, "update_cache": {"type": "bool", "default": False},
            "tags": {"type": "list", "elements": "str", "default": []}}
UNITS = {"units": {"type": "list", "elements": "dict", "default": []},
         "unneeded": {"type": "list", "elements": "str", "default": []},
         "daemon_reload": {"type": "bool", "default": False}, "tags": {"type": "list", "elements": "str", "default": []}}
SPEC: dict[str, Any] = {
    "packages": {"type": "dict", "options": PACKAGES},
    "groups": {"type": "list", "elements": "dict", "options": GROUP, "default": []},
    "users": {"type": "list", "elements": "dict", "options": USER, "default": []},
    "lines": {"type": "list", "elements": "dict", "options": LINE, "default": []},
    "files": {"type": "list", "elements": "dict", "default": []},
    "units": {"type": "dict", "options": UNITS},
    "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
    "run_tags": {"type": "list", "elements": "str", "default": ["all"]},
    "skip_tags": {"type": "list", "elements": "str", "default": []},
}


def narrowing(p: dict[str, Any]) -> set[str] | None:
    """The run's tags that name items of this call (``--tags ssh``), or None when the task was selected by a
    broader one (``all``, the role's, the play's): then every item applies."""
    vocabulary: set[str] = set()
    for section in ("packages", "units"):
        vocabulary |= set((p[section] or {}).get("tags") or [])
    for section in ("groups", "users", "lines", "files"):
        for item in p[section]:
            vocabulary |= set(item.get("tags") or [])
    narrow = set(p["run_tags"]) & vocabulary
    return None if "all" in p["run_tags"] or not narrow else narrow


def selected(tags: list[str] | None, narrow: set[str] | None, skip_tags: list[str]) -> bool:
    """Whether an item with ``tags`` applies: not skipped, and named by the narrowing tags if there are any."""
    if set(tags or []) & set(skip_tags):
        return False
    return narrow is None or bool(set(tags or []) & narrow)


def file_entries(files: list[dict[str, Any]], pick: Any) -> list[dict[str, Any]]:
    """The selected file entries as provnet_fileset takes them: ``content_from`` read, ``tags`` dropped."""
    out = []
    check(files, KEYS | {"content_from", "tags"})
    for entry in files:
        if not pick(entry.get("tags")):
            continue
        entry = {k: v for k, v in entry.items() if k != "tags"}
        source = entry.pop("content_from", None)
        kept = entry.get("force", True) is False and os.path.lexists(entry["dest"])  # never overwritten
        if source is not None and entry.get("content") is None and entry.get("manage", True) and not kept \
                and entry.get("state", "file") in (None, "file"):
            if not os.path.isfile(source):
                raise FileError(f"{entry['dest']}: its content comes from {source}, which does not exist")
            with open(source, encoding="utf-8") as fh:
                entry["content"] = fh.read()
        out.append(entry)
    return out


def main() -> None:
    module = AnsibleModule(argument_spec=SPEC, supports_check_mode=True)
    module.run_command_environ_update = APT_ENV  # apt's, harmless for the other commands (LC_ALL=C)
    p, check_mode = module.params, module.check_mode

    narrow = narrowing(p)

    def pick(tags: list[str] | None) -> bool:
        return selected(tags, narrow, p["skip_tags"])

    secrets = list(p["secrets"]) + [u["password"] for u in p["users"] if u.get("password") not in (None, "", "!")]
    result: dict[str, Any] = {"missing": [], "accounts": [], "changed_paths": [], "ran": [], "changed_units": []}
    diffs: list[dict[str, Any]] = []
    step = "packages"
    try:
        pk = p["packages"]
        if pk and pk["names"] and pick(pk["tags"]):
            result["missing"] = ensure(module_runner(module), list(dict.fromkeys(pk["names"])), pk["update_cache"],
                                       check_mode)
            if result["missing"]:
                diffs.append({"before_header": "installed packages", "after_header": "installed packages",
                              "before": "", "after": "".join(f"{n}\n" for n in result["missing"])})
        step = "accounts"
        result["accounts"] = accounts_converge(module.run_command, [g for g in p["groups"] if pick(g["tags"])],
                                               [u for u in p["users"] if pick(u["tags"])], check_mode)
        if result["accounts"]:
            diffs.append({"before_header": "accounts", "after_header": "accounts", "before": "",
                          "after": "".join(f"{a}\n" for a in result["accounts"])})
        step = "files"
        entries = as_files([ln for ln in p["lines"] if pick(ln["tags"])]) + file_entries(p["files"], pick)
        backups: dict[str, bytes | None] = {}
        result["changed_paths"], file_diffs = apply(entries, secrets, check_mode, backups)
        diffs += file_diffs
        if not check_mode:
            result["ran"] = on_change(entries, result["changed_paths"], backups, secrets)
        step = "units"
        un = p["units"]
        if un and pick(un["tags"]):
            result["changed_units"] = units_converge(module.run_command, un["units"], un["unneeded"],
                                                     un["daemon_reload"], check_mode)
            if result["changed_units"]:
                diffs.append({"before_header": "units", "after_header": "units", "before": "",
                              "after": "".join(f"{u}\n" for u in result["changed_units"])})
    except (PackageError, AccountError, FileError, UnitError, OSError) as exc:
        done = [k for k in ("missing", "accounts", "changed_paths", "changed_units") if result[k]]
        module.fail_json(msg=f"{step}: {exc}" + (f" (already done: {', '.join(done)})" if done else ""), **result)
    result["changed"] = any(result[k] for k in ("missing", "accounts", "changed_paths", "changed_units"))
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
