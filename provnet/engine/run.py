"""Run the per-device engine work for many devices in parallel with Nornir.

Nornir's inventory is built from the compiled model (one host per device, its groups
from :mod:`provnet.selection`); one failing host never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nornir.core import Nornir
from nornir.core.inventory import Defaults, Groups, Host, Hosts, Inventory
from nornir.core.task import AggregatedResult, MultiResult, Result, Task
from nornir.plugins.runners import ThreadedRunner

from provnet import selection
from provnet.engine import device
from provnet.model import Model

Progress = Callable[[str, int, int], None]


def nornir_for(m: Model, hostnames: list[str], workers: int = 20) -> Nornir:
    """A Nornir object over the chosen devices of the model."""
    hosts = Hosts()
    for name in hostnames:
        dev = m.devices[name]
        hosts[name] = Host(name=name, hostname=dev.ansible_host, username=m.credentials["admin_user"],
                           platform=dev.platform, data={"site": dev.site, "groups": selection.groups_of(dev)})
    return Nornir(inventory=Inventory(hosts=hosts, groups=Groups(), defaults=Defaults()),
                  runner=ThreadedRunner(num_workers=workers))


class _ProgressProcessor:
    """Nornir processor that reports each finished host."""

    def __init__(self, total: int, progress: Progress | None, stage: str) -> None:
        self.total, self.done, self.progress, self.stage = total, 0, progress, stage

    def task_started(self, task: Task) -> None: ...
    def task_completed(self, task: Task, result: AggregatedResult) -> None: ...
    def task_instance_started(self, task: Task, host: Host) -> None: ...
    def subtask_instance_started(self, task: Task, host: Host) -> None: ...
    def subtask_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None: ...

    def task_instance_completed(self, task: Task, host: Host, result: MultiResult) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.stage, self.done, self.total)


def run(m: Model, action: str, limit: str | None = None, *, commit: bool = False, revert_in: int | None = 60,
        ticket: str = "", workers: int = 20, progress: Progress | None = None,
        getter: str = "get_facts") -> list[Any]:
    """Run ``action`` (diff, deploy, rollback, backup, get) on every selected device."""
    if action == "get":
        device.check_getter(getter)  # before any device is opened
    hostnames = selection.select(m, limit)
    ctx = device.Context.build(m, ticket)
    nr = nornir_for(m, hostnames, workers).with_processors([_ProgressProcessor(len(hostnames), progress, action)])

    def task(t: Task) -> Result:
        name = t.host.name
        try:
            if action in ("diff", "deploy"):
                out: Any = device.converge(ctx, name, commit=commit and action == "deploy", revert_in=revert_in)
            elif action == "rollback":
                out = device.rollback(ctx, name)
            elif action == "backup":
                out = device.take_backup(ctx, name)
            elif action == "get":
                out = {"host": name, "status": "ok", getter: device.get(ctx, name, getter)}
            else:
                raise ValueError(f"unknown action {action}")
        except Exception as exc:  # noqa: BLE001 - one host's failure is its own result
            out = device.HostResult(name, m.devices[name].site, "failed", m.devices[name].ansible_host,
                                    note=ctx.mask(f"{type(exc).__name__}: {exc}"))
        return Result(host=t.host, result=out)

    agg = nr.run(task=task, name=f"provnet {action}")
    return [agg[name][0].result for name in hostnames]
