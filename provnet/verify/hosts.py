"""testinfra hosts for the site checks: one per device per run, over the Ansible inventory."""

from __future__ import annotations

import shlex
from typing import Any

import testinfra

_HOSTS: dict[tuple[str, str], Any] = {}


def get(name: str, inventory: str) -> Any:
    """The testinfra host for a device (cached: its SSH ControlMaster is reused by every command)."""
    key = (name, inventory)
    if key not in _HOSTS:
        _HOSTS[key] = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
    return _HOSTS[key]


_IS_ROOT: dict[int, bool] = {}


def root_run(h: Any, command: str) -> Any:
    """Run as root: through ``sudo -n`` when the inventory logs in as the admin user."""
    key = id(h)
    if key not in _IS_ROOT:
        _IS_ROOT[key] = h.run("id -u").stdout.strip() == "0"
    if not _IS_ROOT[key]:
        command = "sudo -n sh -c " + shlex.quote(command)
    return h.run(command)


def tcp_probe(h: Any, address: str, port: int, source: str | None = None) -> str:
    """open | refused | dropped — a real TCP connection attempt from the node ``h``."""
    bind = f"s.bind(('{source}',0));" if source else ""
    res = root_run(h, "timeout 4 python3 -c \"import socket,sys;s=socket.socket();s.settimeout(3);" + bind +
                   f"r=s.connect_ex(('{address}',{port}));print(r)\"")
    code = res.stdout.strip()
    return {"0": "open", "111": "refused"}.get(code, "dropped")
