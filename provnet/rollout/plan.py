"""The rollout's plan: every device that changes because sites join (or leave) an inventory.

The inventory already holds the sites (``site add`` wrote them; a retire has not moved them yet).
The model is compiled with them and without them — a :class:`provnet.sot.Source` with those sites
dropped — and every device of both models is compared: its hostvars (what roles read, e.g. the
registrar's accounts) and its intended config per platform and section (vault references stay text).
Adding and retiring are the same comparison in opposite directions.

The carrier's PE is not a managed device: in the lab its node's FRR config changes
(:func:`provnet.lab.province.pe_config`); for a production inventory the plan carries a carrier
work order instead, for the engineer to send.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from provnet import hostvars, model, render, sot
from provnet.errors import Problem, ProvnetError
from provnet.model import HALL_INTERFACE, Device, Interface, Model, Site

Action = Literal["add", "retire"]


class PlanError(ProvnetError):
    """The plan cannot be made as asked (unknown site, a district still named, a renumbered model)."""


@dataclass(frozen=True)
class Change:
    """One thing that changes on a device: a config section or a hostvar, with its unified diff."""

    kind: Literal["section", "hostvar"]
    name: str                   # section name, or hostvar key
    diff: str
    platform: str | None = None  # for a section

    @property
    def label(self) -> str:
        return f"{self.platform}/{self.name}" if self.kind == "section" else self.name

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DeviceChange:
    """A device the plan touches: ``new`` (joins), ``changed`` or ``removed`` (leaves)."""

    hostname: str
    role: str
    status: Literal["new", "changed", "removed"]
    site: str | None = None
    platforms: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()

    @property
    def sections(self) -> list[str]:
        return [c.label for c in self.changes if c.kind == "section"]

    @property
    def hostvars(self) -> list[str]:
        return [c.name for c in self.changes if c.kind == "hostvar"]

    def as_dict(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "role": self.role, "status": self.status, "site": self.site,
                "platforms": list(self.platforms), "sections": self.sections, "hostvars": self.hostvars,
                "changes": [c.as_dict() for c in self.changes]}


@dataclass(frozen=True)
class WorkOrder:
    """What the carrier must do on its PE for one site (production: provnet does not manage the PE)."""

    action: Literal["provision", "cease"]
    province: str
    carrier: str
    carrier_asn: int
    circuit_id: str
    site: str
    site_name: str
    site_code: str
    wan: str            # the /31
    pe_address: str     # the carrier's side, with its prefix
    ce_address: str     # the CE's side
    ce_asn: int
    prefixes: tuple[str, ...]
    bandwidth_mbps: int
    contact_name: str
    contact_phone: str

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prefixes"] = list(self.prefixes)
        return d

    def text(self) -> str:
        verb = ("Provision the circuit and an eBGP session on the PE" if self.action == "provision"
                else "Cease the circuit and remove its eBGP session from the PE")
        return "\n".join([
            f"Carrier work order ({self.action}) — {self.carrier}, province {self.province}",
            f"  {verb}.",
            f"  circuit id     {self.circuit_id}",
            f"  site           {self.site_name} ({self.site}, code {self.site_code})",
            f"  WAN /31        {self.wan}: PE side {self.pe_address}, CE side {self.ce_address}",
            f"  eBGP           carrier AS {self.carrier_asn} ↔ CE AS {self.ce_asn}",
            f"  CE announces   {', '.join(self.prefixes)}",
            f"  bandwidth      {self.bandwidth_mbps} Mbit/s",
            f"  site contact   {self.contact_name}, {self.contact_phone}",
        ])


@dataclass(frozen=True)
class Plan:
    """Every device that changes because ``sites`` are added or retired, and what the carrier must do."""

    inventory: str
    action: Action
    sites: tuple[str, ...]
    production: bool
    devices: tuple[DeviceChange, ...]
    carrier: DeviceChange | None = None               # the lab's PE node (not the engine's)
    work_orders: tuple[WorkOrder, ...] = ()           # production: for the carrier
    notes: tuple[str, ...] = field(default=())
    problems: tuple[Problem, ...] = ()                # what a site still needs before its rollout

    @property
    def hostnames(self) -> list[str]:
        """Managed devices to push (removed ones leave instead)."""
        return [d.hostname for d in self.devices if d.status != "removed"]

    def device(self, hostname: str) -> DeviceChange:
        return next(d for d in self.devices if d.hostname == hostname)

    def as_dict(self) -> dict[str, Any]:
        return {"inventory": self.inventory, "action": self.action, "sites": list(self.sites),
                "production": self.production, "devices": [d.as_dict() for d in self.devices],
                "carrier": self.carrier.as_dict() if self.carrier else None,
                "work_orders": [w.as_dict() for w in self.work_orders], "notes": list(self.notes),
                "problems": [dataclasses.asdict(x) for x in self.problems]}

    def text(self, diffs: bool = True) -> str:
        verb = "adds" if self.action == "add" else "retires"
        lines = [f"Plan: {self.inventory} {verb} {', '.join(self.sites)} — {len(self.devices)} device(s)"
                 + (" and the carrier PE" if self.carrier or self.work_orders else "")]
        for d in self.devices:
            what = ", ".join(d.sections + d.hostvars) or "-"
            lines.append(f"  {d.status:<8} {d.hostname:<24} {d.role:<14} {what}")
        if self.carrier is not None:
            lines.append(f"  {'carrier':<8} {self.carrier.hostname:<24} {'pe':<14} {', '.join(self.carrier.sections)}"
                         " (the lab's PE node)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        for problem in self.problems:
            lines.append(f"  not ready: {problem}")
        for w in self.work_orders:
            lines += ["", w.text()]
        if diffs:
            for d in (*self.devices, *((self.carrier,) if self.carrier else ())):
                for c in d.changes:
                    lines += ["", f"### {d.hostname} {c.label}", c.diff.rstrip("\n")]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- comparing two models


def without(src: sot.Source, slugs: set[str]) -> sot.Source:
    """The source of truth as it was before ``slugs`` joined (or will be once they leave)."""
    return dataclasses.replace(src, sites=tuple(s for s in src.sites if s.slug not in slugs),
                               site_files={k: v for k, v in src.site_files.items() if k not in slugs})


def _diff(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def _sections(m: Model, hostname: str) -> dict[tuple[str, str], str]:
    return {(r.platform, name): text for r in render.render_device(m, hostname) for name, text in r.sections.items()}


def _device_changes(before: Model, after: Model, hostname: str, full: bool) -> tuple[Change, ...]:
    vb, va = (hostvars.device_vars(x, x.devices[hostname]) for x in (before, after))
    changes = [Change("hostvar", k, _diff(_dump(vb.get(k)), _dump(va.get(k)), f"{hostname}/hostvars/{k}"))
               for k in sorted(set(vb) | set(va)) if vb.get(k) != va.get(k)]
    # a template sees the hostvars and secret() only (render.context), so equal hostvars render equal
    # configs: a 300-device province is not rendered twice for the few devices that change
    if changes or full:
        sb, sa = _sections(before, hostname), _sections(after, hostname)
        for plat, name in sorted(set(sb) | set(sa)):
            if sb.get((plat, name)) != sa.get((plat, name)):
                changes.append(Change("section", name, _diff(sb.get((plat, name), ""), sa.get((plat, name), ""),
                                                             f"{hostname}/{plat}/{name}"), plat))
    return tuple(changes)


def _whole(m: Model, dev: Device, joining: bool) -> tuple[Change, ...]:
    """A device that joins (or leaves): its whole intended config, from (or to) nothing."""
    out = []
    for (plat, name), text in sorted(_sections(m, dev.hostname).items()):
        path = f"{dev.hostname}/{plat}/{name}"
        out.append(Change("section", name, _diff("", text, path) if joining else _diff(text, "", path), plat))
    return tuple(out)


def _check_stable(small: Model, big: Model) -> None:
    """Every site and device of both models keeps its id and addresses (the model's ids are stable)."""
    def own(ifaces: tuple[Interface, ...]) -> tuple[Interface, ...]:
        # the DC firewall gains (or loses) the interfaces of a hall that joins (or leaves): not a renumbering
        return tuple(i for i in ifaces if not HALL_INTERFACE.match(i.name) or i.segment[4:].rsplit("-", 1)[0]
                     in small.sites.keys() & big.sites.keys())

    bad = [f"site {slug}" for slug, s in small.sites.items() if big.sites.get(slug) != s]
    for host, d in small.devices.items():
        o = big.devices.get(host)
        if o is None or (own(d.interfaces), d.loopback, d.asn, d.oob_address) != (own(o.interfaces), o.loopback,
                                                                                  o.asn, o.oob_address):
            bad.append(f"device {host}")
    if bad:
        raise PlanError(f"{small.root}: the model renumbers {', '.join(bad[:5])}"
                        f"{' …' if len(bad) > 5 else ''} when the sites change — a bug: report it, push nothing")


def _work_order(m: Model, s: Site, action: Literal["provision", "cease"]) -> WorkOrder:
    return WorkOrder(action=action, province=m.name, carrier=m.carrier_name, carrier_asn=m.carrier_asn,
                     circuit_id=s.circuit_id, site=s.slug, site_name=s.name, site_code=s.code, wan=str(s.wan),
                     pe_address=str(s.wan_pe), ce_address=str(s.wan_ce), ce_asn=s.asn,
                     prefixes=tuple(str(p) for p in s.prefixes), bandwidth_mbps=s.bandwidth_mbps,
                     contact_name=s.contact_name, contact_phone=s.contact_phone)


def _vc_notes(m: Model, slugs: set[str]) -> list[str]:
    vc = m.vc
    notes = [f"{slug} chairs province-wide meetings (vc.chair)" for slug in slugs if vc.chair == slug]
    notes += [f"{slug} records calls (vc.recorders)" for slug in slugs if slug in vc.recorders]
    for name, meeting in vc.meetings.items():
        named = sorted(slugs & ({meeting.chair} | set(meeting.sites)))
        notes += [f"meeting {name} names {slug}" for slug in named]
    return notes


def plan(root: Path | str, add: list[str] | tuple[str, ...] = (), retire: list[str] | tuple[str, ...] = (),
         shown: str | None = None, full: bool = False) -> Plan:
    """Compare the inventory with and without the sites: ``add`` them (they join) or ``retire`` them (they leave).

    ``full`` renders every device, not only those whose hostvars change (for tests of that shortcut).
    """
    if bool(add) == bool(retire):
        raise PlanError("plan: name the sites to add or the sites to retire (one of the two)")
    action: Action = "add" if add else "retire"
    slugs = tuple(dict.fromkeys(add or retire))
    shown = shown or str(root)
    src = sot.read(root, shown)
    unknown = [s for s in slugs if s not in {x.slug for x in src.sites}]
    if unknown:
        raise PlanError(f"{shown}: no site {', '.join(unknown)} in sites/ — "
                        + ("write it first (`provnet site add`)" if action == "add" else "check the slug"))
    drop = set(slugs)
    orphans = [f"{s.slug} (district {s.district})" for s in src.sites if s.slug not in drop and s.district in drop]
    if orphans:
        raise PlanError(f"{shown}: {', '.join(orphans)} still belong to a district being "
                        f"{'added' if action == 'add' else 'retired'} — include those sites too")
    with_sites = model.compile_source(src)
    without_sites = model.compile_source(without(src, drop))
    _check_stable(without_sites, with_sites)
    before, after = (without_sites, with_sites) if action == "add" else (with_sites, without_sites)

    devices: list[DeviceChange] = []
    for host in [*after.devices, *(h for h in before.devices if h not in after.devices)]:
        dev = after.devices.get(host) or before.devices[host]
        if host in before.devices and host in after.devices:
            changes = _device_changes(before, after, host, full)
            if changes:
                devices.append(DeviceChange(host, dev.role, "changed", dev.site, dev.platforms, changes))
        elif host in after.devices:
            devices.append(DeviceChange(host, dev.role, "new", dev.site, dev.platforms, _whole(after, dev, True)))
        else:
            devices.append(DeviceChange(host, dev.role, "removed", dev.site, dev.platforms,
                                        _whole(before, dev, False)))

    carrier = None
    orders: tuple[WorkOrder, ...] = ()
    if with_sites.production:
        orders = tuple(_work_order(with_sites, with_sites.sites[s], "provision" if action == "add" else "cease")
                       for s in slugs if with_sites.sites[s].via_carrier)  # a hall needs no carrier
    else:
        from provnet.lab.province import pe_config

        pe_diff = _diff(pe_config(before), pe_config(after), f"{before.pe.hostname}/frr/frr.conf")
        if pe_diff:
            carrier = DeviceChange(before.pe.hostname, "pe", "changed", None, ("frr",),
                                   (Change("section", "frr.conf", pe_diff, "frr"),))
    notes = _vc_notes(with_sites, drop) if action == "retire" else []
    problems: list[Problem] = []
    if action == "add":
        from provnet.siteops import rollout_problems

        for slug in slugs:
            problems += rollout_problems(with_sites, slug)
    return Plan(shown, action, slugs, with_sites.production, tuple(devices), carrier, orders, tuple(notes),
                tuple(problems))
