"""Debian packages present, apt asked only for the missing ones (provnet_packages, provnet_host)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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


def module_runner(module: Any) -> Run:
    """An AnsibleModule's run_command with the program found on the node's PATH (dpkg-query, apt-get)."""
    return lambda cmd: module.run_command([module.get_bin_path(cmd[0], required=True), *cmd[1:]])
