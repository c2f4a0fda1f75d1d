"""`provnet net …`: render, diff, deploy, roll back, back up and query network devices (registered by provnet.cli)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from provnet.cli_common import InventoryOpt, JsonOpt, emit_json, fail, load_model, out, progress_bar

net_app = typer.Typer(help="Network devices: render, diff, deploy (commit-confirmed), rollback, backup, get.",
                      no_args_is_help=True)

LimitOpt = typer.Option(None, "--limit", "-l", help="Hosts, sites, districts or groups, comma-separated.")
WorkersOpt = typer.Option(20, "--workers", help="Devices handled in parallel.")
WaitOpt = typer.Option(0.0, "--wait", metavar="SECONDS", help="Wait this long for the inventory's lock "
                       "(held by a rollout, a playbook run or another deploy); default: fail at once.")


def _locked(inventory: Optional[Path], wait: float) -> Any:
    """The inventory's exclusive lock (provnet.lock): one change at a time per inventory."""
    from provnet import lock
    from provnet.cli_common import inventory_path

    root = inventory_path(inventory)
    return lock.hold(root, wait=wait, shown=str(root))


def _run(inventory: Optional[Path], action: str, limit: Optional[str], as_json: bool, **kw: Any) -> list[Any]:
    from provnet.engine import run
    from provnet.errors import ProvnetError

    m = load_model(inventory)
    try:
        with progress_bar(as_json) as progress:
            return run.run(m, action, limit, progress=progress, **kw)
    except (ValueError, ProvnetError) as exc:
        fail(str(exc))
        return []


def _report(results: list[Any], as_json: bool, show_diff: bool = True) -> None:
    if as_json:
        emit_json([r.as_dict() if hasattr(r, "as_dict") else r for r in results])
    else:
        table = Table(title=None)
        for col in ("host", "site", "platform", "result", "detail"):
            table.add_column(col)
        for r in results:
            if not r.platforms:
                table.add_row(r.host, r.site or "DC", "-", r.status, r.note)
            for p in r.platforms:
                detail = p.error or p.note or (p.backup and f"backup {p.backup}") or r.note
                table.add_row(r.host, r.site or "DC", p.platform, p.status, detail)
        out.print(table)
        if show_diff:
            for r in results:
                for p in r.platforms:
                    if p.diff:
                        out.print(f"--- {r.host} {p.platform}", markup=False)
                        out.print(p.diff.rstrip(), markup=False, highlight=False)
    if any(r.status in ("failed", "rolled-back") for r in results):
        raise typer.Exit(1)


@net_app.command("render")
def net_render(
    inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt,
    output: Path = typer.Option(Path("build"), "--output", "-o", help="Build folder (intended/<host>/ inside)."),
    with_secrets: bool = typer.Option(False, "--with-secrets", help="Resolve vault references (files stay 0600)."),
    as_json: bool = JsonOpt,
) -> None:
    """Render intended configs from templates/<platform>/ into build/intended/<host>/<platform>/."""
    from provnet import render, secrets, selection

    m = load_model(inventory)
    values = secrets.ensure(m) if with_secrets else None
    written: dict[str, list[str]] = {}
    try:
        for host in selection.select(m, limit):
            paths = render.write(render.render_device(m, host, secrets=values), output)
            written[host] = [str(p) for p in paths]
    except (render.RenderError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(written)
    else:
        out.print(f"rendered {sum(len(v) for v in written.values())} files for {len(written)} devices into "
                  f"{output}/intended", markup=False)


@net_app.command("diff")
def net_diff(inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt, as_json: bool = JsonOpt,
             workers: int = WorkersOpt) -> None:
    """Show what a deploy would change on each device (running vs intended); changes nothing."""
    _report(_run(inventory, "diff", limit, as_json, workers=workers), as_json)


@net_app.command("deploy")
def net_deploy(
    inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt, as_json: bool = JsonOpt,
    commit: bool = typer.Option(False, "--commit", help="Apply; without it deploy is a dry run."),
    revert_in: int = typer.Option(60, "--revert-in", help="Seconds after which an unconfirmed commit reverts."),
    ticket: str = typer.Option("", "--ticket", help="Change ticket recorded in the audit log."),
    workers: int = WorkersOpt, wait: float = WaitOpt,
) -> None:
    """Converge devices to their intended config.

    Dry run unless --commit. With --commit: back up every running config, arm the revert on
    the device, apply detached from the SSH session, confirm over a fresh connection.
    """
    with _locked(inventory, wait) if commit else contextlib.nullcontext():
        _report(_run(inventory, "deploy", limit, as_json, commit=commit, revert_in=revert_in or None,
                     ticket=ticket, workers=workers), as_json)


@net_app.command("rollback")
def net_rollback(inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt, as_json: bool = JsonOpt,
                 workers: int = WorkersOpt, wait: float = WaitOpt) -> None:
    """Restore each device's config from before provnet's last commit."""
    with _locked(inventory, wait):
        _report(_run(inventory, "rollback", limit, as_json, workers=workers), as_json, show_diff=False)


@net_app.command("backup")
def net_backup(inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt, as_json: bool = JsonOpt,
               workers: int = WorkersOpt) -> None:
    """Save every running config to backups/<host>/<UTC timestamp>/ (mode 0600, not tracked by git)."""
    _report(_run(inventory, "backup", limit, as_json, workers=workers), as_json, show_diff=False)


@net_app.command("get")
def net_get(getter: str = typer.Argument("get_facts", help="A NAPALM getter: get_facts, get_interfaces, "
                                         "get_interfaces_ip, get_bgp_neighbors, get_config; on "
                                         "baresip endpoints also get_registration."),
            inventory: Optional[Path] = InventoryOpt, limit: Optional[str] = LimitOpt, workers: int = WorkersOpt) -> None:
    """Run a getter on each device and print JSON."""
    results = _run(inventory, "get", limit, True, workers=workers, getter=getter)
    emit_json([r.as_dict() if hasattr(r, "as_dict") else r for r in results])
