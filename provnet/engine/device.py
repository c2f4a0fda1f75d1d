"""Per-device engine work: one device, every platform it runs, in the model's order.

Results are plain data so the CLI, ``--json``, Nornir and Ansible all read the same
thing; every text that leaves here is passed through the secrets masker first.
What differs by platform (login, commit-confirm, how a fresh confirm is made, the
candidate's format, commit messages) is asked of the driver class
(:class:`provnet.drivers.base.PlatformTraits`); the engine names no platform.

The drivers of one device that share sessions (``shares_session``: the Linux ones, e.g. a
CE's frr and nftables) go over one SSH connection, and their commits are confirmed over
one fresh connection opened after the last of them.
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

from provnet import guard, render, secrets
from provnet.drivers import get_network_driver
from provnet.drivers.base import DriverError
from provnet.drivers.ssh import SSH, ConnectError
from provnet.errors import ProvnetError
from provnet.model import Device, Model


@dataclass
class PlatformResult:
    platform: str
    status: str  # unchanged | changed | would-change | failed | rolled-back | skipped
    diff: str = ""
    error: str = ""
    backup: str = ""
    note: str = ""


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
    # every value of the vault, not only the ones this model names: a device may still hold the
    # secret of a site another inventory (an overlay, a rollout) configured there
    known: dict[str, str] = field(default_factory=dict)

    def masking(self) -> dict[str, str]:
        """Name → value of every secret to mask in what leaves the engine (backups, reports)."""
        return {**self.known, **self.secrets}

    @classmethod
    def build(cls, m: Model, ticket: str = "", loaded: Mapping[str, str] | None = None) -> "Context":
        """``loaded``: the vault's values already opened by the caller (a playbook run opens it once;
        the engine's Ansible action gets them from there instead of decrypting the vault per host)."""
        names = m.secret_refs()
        if loaded is not None and all(isinstance(loaded.get(n), str) for n in names):
            values = {n: str(loaded[n]) for n in names}
            known = {n: v for n, v in loaded.items() if isinstance(v, str)}
        else:
            values = secrets.ensure(m)
            known = secrets.read_vault(secrets.vault_paths(m))   # memoised: no second decryption
        home = secrets.home()
        backup = Path(os.environ.get("PROVNET_BACKUP_DIR", Path.cwd() / "backups"))
        return cls(m, values, secrets.Masker({**known, **values}), backup, home / "audit.log", ticket, known=known)


def driver_for(ctx: Context, dev: Device, platform: str, address: str | None = None) -> Any:
    """The platform's driver for the device, not yet opened; refused here for any address outside
    the lab's range (NAPALM's own ios driver knows nothing of provnet's address guard)."""
    cls = get_network_driver(platform)
    addr = guard.check(address or dev.ansible_host, production=ctx.model.production,
                       purpose=f"manage {dev.hostname} ({platform}) at")
    if cls.login == "key":
        fallback = () if ctx.model.production else ("root",)
        return cls(addr, ctx.model.credentials["admin_user"], timeout=30,
                   optional_args={"fallback_users": fallback, "production": ctx.model.production})
    password = secrets.resolve(ctx.secrets, ctx.model.credentials["admin_password"])
    return cls(addr, ctx.model.credentials["admin_user"], password, timeout=30,
               optional_args={"production": ctx.model.production})


def reach(ctx: Context, dev: Device, platform: str, session: SSH | None = None) -> tuple[Any, str]:
    """Open a driver; a lab device managed in-band falls back to out-of-band while unreachable in-band.

    ``session``: an open session to the device (another platform's driver opened it); a driver
    that shares sessions adopts it, at its address, instead of connecting again."""
    if session is not None and session.alive() and getattr(get_network_driver(platform), "shares_session", False):
        drv = driver_for(ctx, dev, platform, session.address)
        drv.optional_args["session"] = session
        drv.open()
        return drv, session.address
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


class Shared:
    """The one SSH session of a device that its session-sharing drivers go over; closed once, by :meth:`close`."""

    def __init__(self) -> None:
        self.session: SSH | None = None

    def reach(self, ctx: Context, dev: Device, platform: str) -> tuple[Any, str]:
        """:func:`reach` over the shared session; the first sharing driver's own session becomes it."""
        drv, address = reach(ctx, dev, platform, self.session)
        if self.session is None and getattr(drv, "shares_session", False):
            self.session = drv.share()
        return drv, address

    def close(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - closing must never mask the real result
                pass
            self.session = None


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


def _reason(exc: BaseException) -> str:
    """An error as the user reads it: our errors speak for themselves, others say what they are."""
    return str(exc) if isinstance(exc, (DriverError, ProvnetError, OSError)) else f"{type(exc).__name__}: {exc}"


def _discard(drv: Any) -> None:
    """Drop a loaded candidate; a failure here changes nothing on the device."""
    try:
        drv.discard_config()
    except Exception:  # noqa: BLE001
        pass


def _cut_off(ctx: Context, pr: PlatformResult, exc: BaseException, armed: int) -> None:
    """A commit whose confirmation could not connect: the device reverts it by itself."""
    pr.status = "rolled-back"
    pr.error = ctx.mask(f"confirmation over a fresh connection failed ({exc}): the change cut management off; "
                        f"the device restores its previous config within {armed} s by itself")


def _failed_armed(ctx: Context, pr: PlatformResult, exc: BaseException, armed: int | None) -> None:
    """A platform that failed; if its revert was armed, whatever was applied reverts by itself."""
    pr.status, pr.error = "failed", ctx.mask(_reason(exc) + (
        f" (whatever was applied reverts by itself within {armed} s: the revert was armed)" if armed else ""))


def _confirm_afresh(ctx: Context, pending: list[tuple[PlatformResult, Any, str, int]]) -> None:
    """Confirm the device's commits whose drivers confirm on a fresh connection: one new connection per
    address (``open_fresh``), opened after the last commit, so it is newer than every change; a driver
    without ``open_fresh`` reconnects itself. One that cannot connect means every change it was to
    confirm cut management off: each reverts by itself."""
    by_address: dict[str, list[tuple[PlatformResult, Any, str, int]]] = {}
    for item in pending:
        by_address.setdefault(item[2], []).append(item)
    for items in by_address.values():
        opener = getattr(items[0][1], "open_fresh", None)
        fresh = None
        try:
            fresh = opener() if opener is not None else None
        except ConnectError as exc:
            for pr, _, _, armed in items:
                _cut_off(ctx, pr, exc, armed)
            continue
        except Exception as exc:  # noqa: BLE001
            for pr, _, _, armed in items:
                _failed_armed(ctx, pr, exc, armed)
            continue
        try:
            for pr, drv, _, armed in items:
                try:
                    drv.confirm_commit(fresh) if fresh is not None else drv.confirm_commit()
                    pr.status = "changed"
                except ConnectError as exc:
                    _cut_off(ctx, pr, exc, armed)
                except Exception as exc:  # noqa: BLE001 - vendor libraries raise their own; never escape
                    _failed_armed(ctx, pr, exc, armed)
        finally:
            if fresh is not None:
                try:
                    fresh.close()
                except Exception:  # noqa: BLE001
                    pass


def _confirm_fresh(ctx: Context, dev: Device, platform: str, drv: Any, address: str) -> None:
    """Confirm a vendor commit over a new driver to the address the commit went to (no out-of-band
    fallback): a reused session, or another path, may survive a change that cut management off."""
    fresh = driver_for(ctx, dev, platform, address)
    try:
        fresh.open()
    except Exception as exc:  # noqa: BLE001 - NAPALM and Netmiko raise their own connection errors
        raise ConnectError(f"{address}: {exc}") from exc
    try:
        fresh.confirm_commit()
    finally:
        fresh.close()


def converge(ctx: Context, hostname: str, *, commit: bool = False, revert_in: int | None = 60,
             platforms: tuple[str, ...] | None = None) -> HostResult:
    """Diff (and with ``commit``, apply) every platform of one device. Never raises for device errors.

    Every platform's candidate is loaded, validated and diffed before any is committed; with
    ``commit``, before a device's first change, every platform's running config is backed up.
    A platform that fails before the commits start means nothing is committed on the device;
    one that fails during the commits stops the platforms after it (``skipped``), so a device is
    never left with a later section applied on top of a failed earlier one. Platforms that confirm
    on a fresh connection are confirmed together after the commits (:func:`_confirm_afresh`): a
    change that cut management off rolls back every one of them (each device-side revert was armed).
    """
    dev = ctx.model.devices[hostname]
    result = HostResult(hostname, dev.site, "unchanged", dev.ansible_host)
    try:
        rendered = render.render_device(ctx.model, hostname, secrets=ctx.secrets)
    except render.RenderError as exc:
        result.status = "failed"
        result.platforms.append(PlatformResult("render", "failed", error=ctx.mask(str(exc))))
        return result
    when = stamp()
    # (result, driver, address) of each platform that was reached
    opened: list[tuple[PlatformResult, Any, str]] = []
    shared = Shared()
    # (result, driver, address, revert_in) of each commit confirmed after the last one
    unconfirmed: list[tuple[PlatformResult, Any, str, int]] = []
    try:
        # 1. load, validate and diff every platform
        for r in rendered:
            if platforms and r.platform not in platforms:
                continue
            pr = PlatformResult(r.platform, "unchanged")
            result.platforms.append(pr)
            try:
                drv, address = shared.reach(ctx, dev, r.platform)
                opened.append((pr, drv, address))
                if address != dev.ansible_host:
                    result.note = f"reached over out-of-band {address} (in-band {dev.ansible_host} not answering yet)"
                drv.load_replace_candidate(config=drv.build_candidate(r.sections))
                diff = drv.compare_config()
                pr.diff = ctx.mask(diff)
                if diff:
                    pr.status = "would-change"
            except Exception as exc:  # noqa: BLE001 - vendor libraries raise their own; never escape
                pr.status, pr.error = "failed", ctx.mask(_reason(exc))
        failed = next((pr.platform for pr in result.platforms if pr.status == "failed"), None)
        if commit and not failed and any(pr.status == "would-change" for pr in result.platforms):
            for pr, drv, _ in opened:  # the whole device, before its first change
                try:
                    pr.backup = str(backup(ctx, dev, pr.platform, drv.get_config()["running"], when))
                except Exception as exc:  # noqa: BLE001
                    pr.status, pr.error = "failed", ctx.mask(f"backup of the running config failed: {_reason(exc)}")
                    failed = failed or pr.platform
        # 2. commit, in the model's order, stopping at the first platform that does not land
        for pr, drv, address in opened:
            if pr.status == "failed":
                continue
            if pr.status == "unchanged" or not commit or failed:
                if commit and failed and pr.status == "would-change":
                    pr.status = "skipped"
                    pr.error = f"not committed: {failed} failed on this device first"
                _discard(drv)
                continue
            armed: int | None = None
            try:
                digest = audit(ctx, dev, pr.platform, pr.diff, "commit")
                # a driver that takes no message (NAPALM ios): the audit record and the device's own
                # logging (``archive log config`` → syslog to the SOC) carry it instead
                message = f"user={ctx.user} ticket={ctx.ticket or '-'} diff={digest[:12]}" \
                    if drv.accepts_commit_message else ""
                armed = revert_in if revert_in and drv.supports_commit_confirm else None
                drv.commit_config(message=message, revert_in=armed)
                if armed and drv.confirms_on_fresh_connection:
                    unconfirmed.append((pr, drv, address, armed))
                    continue
                if armed:
                    try:
                        _confirm_fresh(ctx, dev, pr.platform, drv, address)
                    except ConnectError as exc:
                        _cut_off(ctx, pr, exc, armed)
                        failed = pr.platform
                        continue
                elif revert_in:
                    pr.note = f"committed without revert_in: {pr.platform} has no commit-confirm"
                pr.status = "changed"
            except Exception as exc:  # noqa: BLE001 - vendor libraries raise their own; never escape
                _failed_armed(ctx, pr, exc, armed)
                failed = pr.platform
        _confirm_afresh(ctx, unconfirmed)
    finally:
        for _, drv, _ in opened:
            try:
                drv.close()
            except Exception:  # noqa: BLE001 - closing must never mask the real result
                pass
        shared.close()
    statuses = {p.status for p in result.platforms}
    for worst in ("failed", "rolled-back", "skipped", "changed", "would-change"):
        if worst in statuses:
            result.status = worst
            break
    return result


def rollback(ctx: Context, hostname: str, platforms: tuple[str, ...] | None = None) -> HostResult:
    """Restore each platform's config from before provnet's last commit (the device-side snapshot)."""
    dev = ctx.model.devices[hostname]
    result = HostResult(hostname, dev.site, "changed", dev.ansible_host)
    shared = Shared()
    try:
        for plat in dev.platforms:
            if platforms and plat not in platforms:
                continue
            pr = PlatformResult(plat, "changed")
            result.platforms.append(pr)
            try:
                drv, _ = shared.reach(ctx, dev, plat)
                try:
                    drv.rollback()
                    audit(ctx, dev, plat, "", "rollback")
                finally:
                    drv.close()
            except (DriverError, ProvnetError, OSError, NotImplementedError) as exc:
                pr.status, pr.error = "failed", ctx.mask(str(exc))
                result.status = "failed"
    finally:
        shared.close()
    return result


class NotAGetter(ProvnetError, ValueError):
    """A name given to ``net get`` that is not a getter (a ValueError, as the CLI's other bad input)."""


def check_getter(getter: str) -> None:
    """Refuse anything but a NAPALM getter: ``net get`` must never reach a method that changes a device."""
    if not getter.startswith("get_"):
        raise NotAGetter(f"'{getter}' is not a getter: give a NAPALM getter such as get_facts")


def get(ctx: Context, hostname: str, getter: str) -> dict[str, Any]:
    """Run a NAPALM getter on the device's primary platform (only ``get_*``: never a change)."""
    check_getter(getter)
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
    shared = Shared()
    try:
        for plat in dev.platforms:
            pr = PlatformResult(plat, "unchanged")
            result.platforms.append(pr)
            try:
                drv, _ = shared.reach(ctx, dev, plat)
                try:
                    pr.backup = str(backup(ctx, dev, plat, drv.get_config()["running"], when))
                finally:
                    drv.close()
            except (DriverError, ProvnetError, OSError) as exc:
                pr.status, pr.error = "failed", ctx.mask(str(exc))
                result.status = "failed"
    finally:
        shared.close()
    return result
