"""Per-device engine work: one device, every platform it runs, in the model's order.

Results are plain data so the CLI, ``--json``, Nornir and Ansible all read the same
thing; every text that leaves here is passed through the secrets masker first.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from provnet import render, secrets
from provnet.drivers import get_network_driver
from provnet.drivers.base import DriverError
from provnet.drivers.ssh import ConnectError
from provnet.errors import ProvnetError
from provnet.model import Device, Model

LINUX_PLATFORMS = ("frr", "nftables", "linux_switch", "baresip")


@dataclass
class PlatformResult:
    platform: str
    status: str  # unchanged | changed | would-change | failed | rolled-back | skipped
    diff: str = ""
    error: str = ""
    backup: str = ""


@dataclass
class HostResult:
    host: str
    site: str | None
    status: str
    address: str = ""
    platforms: list[PlatformResult] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What every device task needs, built once per run."""

    model: Model
    secrets: dict[str, str]
    mask: secrets.Masker
    backup_dir: Path
    audit_log: Path
    ticket: str = ""
    user: str = field(default_factory=lambda: os.environ.get("SUDO_USER") or getpass.getuser())

    @classmethod
    def build(cls, m: Model, ticket: str = "", loaded: Mapping[str, str] | None = None) -> "Context":
        """``loaded``: the vault's values already opened by the caller (a playbook run opens it once;
        the engine's Ansible action gets them from there instead of decrypting the vault per host)."""
        names = m.secret_refs()
        if loaded is not None and all(isinstance(loaded.get(n), str) for n in names):
            values = {n: str(loaded[n]) for n in names}
        else:
            values = secrets.ensure(m)
        home = secrets.home()
        backup = Path(os.environ.get("PROVNET_BACKUP_DIR", Path.cwd() / "backups"))
        return cls(m, values, secrets.Masker(values), backup, home / "audit.log", ticket)


def driver_for(ctx: Context, dev: Device, platform: str, address: str | None = None) -> Any:
    cls = get_network_driver(platform)
    addr = address or dev.ansible_host
    if platform in LINUX_PLATFORMS:
        fallback = () if ctx.model.production else ("root",)
        return cls(addr, ctx.model.credentials["admin_user"], timeout=30,
                   optional_args={"fallback_users": fallback, "production": ctx.model.production})
    password = secrets.resolve(ctx.secrets, ctx.model.credentials["admin_password"])
    return cls(addr, ctx.model.credentials["admin_user"], password, timeout=30,
               optional_args={"production": ctx.model.production})


def reach(ctx: Context, dev: Device, platform: str) -> tuple[Any, str]:
    """Open a driver; a lab device managed in-band falls back to out-of-band while unreachable in-band."""
    drv = driver_for(ctx, dev, platform)
    try:
        drv.open()
        return drv, dev.ansible_host
    except ConnectError:
        if dev.management != "inband" or dev.oob_address is None or ctx.model.production:
            raise
    oob = str(dev.oob_address.ip)
    drv = driver_for(ctx, dev, platform, oob)
    drv.open()
    return drv, oob


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def backup(ctx: Context, dev: Device, platform: str, running: str, stamp: str) -> Path:
    """``backups/<host>/<UTC timestamp>/<platform>``: plain text, mode 0600 (running configs hold secrets)."""
    path = ctx.backup_dir / dev.hostname / stamp / platform
    _write_private(path, running)
    return path


def audit(ctx: Context, dev: Device, platform: str, diff: str, action: str) -> str:
    digest = hashlib.sha256(diff.encode()).hexdigest()
    record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": ctx.user,
              "ticket": ctx.ticket, "host": dev.hostname, "platform": platform, "action": action,
              "diff_sha256": digest}
    ctx.audit_log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(ctx.audit_log, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return digest


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def converge(ctx: Context, hostname: str, *, commit: bool = False, revert_in: int | None = 60,
             platforms: tuple[str, ...] | None = None) -> HostResult:
    """Diff (and with ``commit``, apply) every platform of one device. Never raises for device errors."""
    dev = ctx.model.devices[hostname]
    result = HostResult(hostname, dev.site, "unchanged", dev.ansible_host)
    try:
        rendered = render.render_device(ctx.model, hostname, secrets=ctx.secrets)
    except render.RenderError as exc:
        result.status = "failed"
        result.platforms.append(PlatformResult("render", "failed", error=ctx.mask(str(exc))))
        return result
    when = stamp()
    for r in rendered:
        if platforms and r.platform not in platforms:
            continue
        pr = PlatformResult(r.platform, "unchanged")
        result.platforms.append(pr)
        drv = None
        try:
            drv, address = reach(ctx, dev, r.platform)
            if address != dev.ansible_host:
                result.note = f"reached over out-of-band {address} (in-band {dev.ansible_host} not answering yet)"
            drv.load_replace_candidate(config=render.bundle(r) if r.platform in LINUX_PLATFORMS else r.text())
            diff = drv.compare_config()
            pr.diff = ctx.mask(diff)
            if not diff:
                drv.discard_config()
                continue
            if not commit:
                pr.status = "would-change"
                drv.discard_config()
                continue
            pr.backup = str(backup(ctx, dev, r.platform, drv.get_config()["running"], when))
            digest = audit(ctx, dev, r.platform, pr.diff, "commit")
            message = f"user={ctx.user} ticket={ctx.ticket or '-'} diff={digest[:12]}"
            drv.commit_config(message=message, revert_in=revert_in)
            if revert_in:
                try:
                    drv.confirm_commit()
                except ConnectError as exc:
                    pr.status = "rolled-back"
                    pr.error = ctx.mask(f"confirmation over a fresh connection failed ({exc}): the change cut "
                                        f"management off; the device restores its previous config within "
                                        f"{revert_in} s by itself")
                    continue
            pr.status = "changed"
        except (DriverError, ProvnetError, OSError) as exc:
            pr.status = "failed"
            pr.error = ctx.mask(str(exc))
        finally:
            if drv is not None:
                try:
                    drv.close()
                except Exception:  # noqa: BLE001 - closing must never mask the real result
                    pass
    statuses = {p.status for p in result.platforms}
    for worst in ("failed", "rolled-back", "changed", "would-change"):
        if worst in statuses:
            result.status = worst
            break
    return result


def rollback(ctx: Context, hostname: str, platforms: tuple[str, ...] | None = None) -> HostResult:
    """Restore each platform's config from before provnet's last commit (the device-side snapshot)."""
    dev = ctx.model.devices[hostname]
    result = HostResult(hostname, dev.site, "changed", dev.ansible_host)
    for plat in dev.platforms:
        if platforms and plat not in platforms:
            continue
        pr = PlatformResult(plat, "changed")
        result.platforms.append(pr)
        try:
            drv, _ = reach(ctx, dev, plat)
            try:
                drv.rollback()
                audit(ctx, dev, plat, "", "rollback")
            finally:
                drv.close()
        except (DriverError, ProvnetError, OSError, NotImplementedError) as exc:
            pr.status, pr.error = "failed", ctx.mask(str(exc))
            result.status = "failed"
    return result


def get(ctx: Context, hostname: str, getter: str) -> dict[str, Any]:
    """Run a NAPALM getter on the device's primary platform."""
    dev = ctx.model.devices[hostname]
    drv, _ = reach(ctx, dev, dev.platform)
    try:
        data = getattr(drv, getter)()
    finally:
        drv.close()
    return json.loads(ctx.mask(json.dumps(data)))


def take_backup(ctx: Context, hostname: str) -> HostResult:
    """Save every platform's running config under backups/<host>/<stamp>/."""
    dev = ctx.model.devices[hostname]
    result = HostResult(hostname, dev.site, "unchanged", dev.ansible_host)
    when = stamp()
    for plat in dev.platforms:
        pr = PlatformResult(plat, "unchanged")
        result.platforms.append(pr)
        try:
            drv, _ = reach(ctx, dev, plat)
            try:
                pr.backup = str(backup(ctx, dev, plat, drv.get_config()["running"], when))
            finally:
                drv.close()
        except (DriverError, ProvnetError, OSError) as exc:
            pr.status, pr.error = "failed", ctx.mask(str(exc))
            result.status = "failed"
    return result
