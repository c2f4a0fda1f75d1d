"""The ``provnet`` command line: one entry point for engineers and for scripts.

Every command reads the compiled model of one inventory (``-i``, default
``$PROVNET_INVENTORY`` or ``inventory/lab``); every command that prints a table
also takes ``--json`` for machines, failures included (see :mod:`provnet.cli_common`).
The sub-CLIs (lab, net, vc, verify) are registered here.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from provnet import compliance_cli, lab_cli, net_cli, rollout_cli, site_cli, vc_cli, verify_cli
from provnet import soc_cli
from provnet.cli_common import (ErrorHandlingGroup, InventoryOpt, JsonOpt, emit_json, fail, inventory_failed,
                                inventory_path, load_model, out)
from provnet.errors import InventoryError, ProvnetError

HELP = """provnet — infrastructure-as-code and video-conference orchestration for a
province's government network.

The source of truth lives in inventory/<province>/ (see docs/inventory.md). Every
command compiles it into one model first and refuses to go on when it is invalid.

Exit status: 0 success; 1 a device, site or check failed; 2 invalid input.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None, add_completion=False,
                  cls=ErrorHandlingGroup)
inventory_app = typer.Typer(help="Source of truth: validate, IP plan, import, vault.", no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")


# ---------------------------------------------------------------- inventory


@inventory_app.command("validate")
def inventory_validate(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Check the inventory; print one line per problem (file: object: problem — fix).

    Exit 0 when valid, 2 when not. Nothing downstream runs on an invalid model.
    """
    from provnet import model

    shown = str(inventory)
    try:
        path = inventory_path(inventory)
        shown = str(path)
        m = model.load(path, shown)
    except InventoryError as exc:
        inventory_failed(exc, shown, tail="")
    summary = {"valid": True, "inventory": shown, "province": m.name, "halls": len(m.halls()),
               "districts": len(m.districts()), "communes": len(m.communes()),
               "devices": len(m.devices), "production": m.production}
    if as_json:
        emit_json(summary)
    else:
        halls = f"{summary['halls']} province-level sites, " if summary["halls"] else ""
        out.print(f"{shown}: valid — {m.name}: {halls}{summary['districts']} districts, "
                  f"{summary['communes']} communes/wards, {summary['devices']} devices", markup=False)


def ipplan_rows(m: Any) -> list[dict[str, Any]]:
    """One row per site: the addresses provnet allocated to it."""
    rows = []
    for site in sorted(m.sites.values(), key=lambda s: s.id):
        row: dict[str, Any] = {
            "id": site.id, "slug": site.slug, "name": site.name, "level": site.level,
            "district": site.district or "", "asn": site.asn or "",
            "loopback": str(site.loopback or ""), "wan": str(site.wan or f"(from the DC: {site.router})"),
            "pe": str(site.wan_pe.ip) if site.wan_pe else "", "ce": str(site.wan_ce.ip) if site.wan_ce else "",
        }
        for name, lan in site.lans.items():
            row[f"{name}_vlan"] = lan.vlan
            row[name] = str(lan.subnet)
        row["oob"] = str(site.oob_block) if site.oob_block else ""
        rows.append(row)
    return rows


@inventory_app.command("ipplan")
def inventory_ipplan(
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (one row per site)."),
) -> None:
    """Print the IP plan: per site its ASN, loopback, WAN /31 and one subnet per VLAN.

    Addresses derive from each site's id, so adding or removing a site never moves another.
    """
    m = load_model(inventory)
    rows = ipplan_rows(m)
    if as_json:
        emit_json({"province": m.name, "dc_asn": m.dc_asn, "carrier_asn": m.carrier_asn,
                   "dc_prefixes": [str(p) for p in m.dc_prefixes], "sites": rows})
        return
    if as_csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(buf.getvalue())
        return
    table = Table(title=f"IP plan — {m.name}", show_lines=False)
    cols = ["id", "name", "slug", "asn", "loopback", "wan", *[k for k in (rows[0] if rows else {})
                                                           if k in m.sites[rows[0]["slug"]].lans], "oob"]
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(row[c]) for c in cols])
    out.print(table)


@inventory_app.command("show")
def inventory_show(
    host: Optional[str] = typer.Argument(None, help="A device hostname or a site slug."),
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show the compiled model: the whole province, one site, or one device's slice."""
    from provnet import hostvars

    m = load_model(inventory)
    if host is None:
        data: Any = {"province": m.name, "production": m.production,
                     "sites": {s.slug: hostvars.site_vars(s) for s in m.sites.values()},
                     "devices": sorted(m.devices)}
    elif host in m.devices:
        data = hostvars.device_vars(m, m.devices[host])
    elif host in m.sites:
        data = hostvars.site_vars(m.sites[host])
    else:
        fail(f"no device or site named '{host}' in {m.root}; see `provnet inventory show --json`")
        return
    if as_json:
        emit_json(data)
    else:
        from provnet.yamlio import dump
        out.print(dump(data), markup=False, highlight=False)


@inventory_app.command("next-id")
def inventory_next_id(inventory: Optional[Path] = InventoryOpt) -> None:
    """Print the next free site id (never a retired one)."""
    m = load_model(inventory)
    ids = m.source.ids
    used = [s.id for s in m.sites.values()] + [r.id for r in (ids.retired if ids else [])]
    print(max([ids.next_id - 1 if ids else 0, *used]) + 1)


@inventory_app.command("vault")
def inventory_vault(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Show where the inventory's vault lives and which secrets it holds (names only).

    For a lab inventory, missing secrets are generated; values are never printed.
    """
    from provnet import secrets

    m = load_model(inventory)
    try:
        values = secrets.ensure(m)
    except secrets.SecretError as exc:
        fail(str(exc))
        return
    paths = secrets.vault_paths(m)
    data = {"vault": str(paths.vault), "password_file": str(paths.password_file),
            "secrets": {name: m.secret_refs()[name] for name in sorted(values)}}
    if as_json:
        emit_json(data)
    else:
        out.print(f"vault: {paths.vault}\npassword file: {paths.password_file}", markup=False)
        for name, what in data["secrets"].items():
            out.print(f"  {name}: {what}", markup=False)


@inventory_app.command("import")
def inventory_import(
    province: str = typer.Option(..., "--province", help="Province name (e.g. 'Lạng Sơn') or official code (20)."),
    output: Path = typer.Option(..., "--output", "-o", help="Inventory folder to create or update."),
    lab: bool = typer.Option(False, "--lab", help="Address into the lab range 198.18.0.0/15 instead of 10.x."),
    as_json: bool = JsonOpt,
) -> None:
    """Write an inventory for every commune and ward of a province (2025 structure).

    Data: the vietnam-provinces package (34 provinces, 3,321 communes and wards).
    Re-importing keeps every existing site's id, adds new sites with new ids, and
    retires vanished ones (their ids are never reused).
    """
    from provnet import importer

    try:
        report = importer.import_province(province, output, lab=lab)
    except ProvnetError as exc:
        fail(str(exc), problems=getattr(exc, "problems", ()))
        return
    data = {"output": str(output), "province": report.province, "matched": report.matched, "added": report.added,
            "kept": report.kept, "restored": report.restored, "retired": report.retired, "next_id": report.next_id}
    if as_json:
        load_model(output)  # first, so that a failure prints one JSON object, not two
        emit_json(data)
        return
    if report.matched:
        out.print(f"province: {report.matched}", markup=False)
    restored = f"{len(report.restored)} restored from ids.yml, " if report.restored else ""
    out.print(f"{output}: {report.province}: {len(report.added)} added, {len(report.kept)} kept, "
              f"{restored}{len(report.retired)} retired; next id {report.next_id}", markup=False)
    load_model(output)


@app.command("status")
def status(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """One line per site: eBGP to the carrier PE, endpoint registration, last log at the SOC."""
    from provnet import status as st

    m = load_model(inventory)
    rows = st.collect(m)
    if as_json:
        emit_json([r.__dict__ for r in rows])
        return
    table = Table(title=f"{m.name} — province status")
    for col in ("site", "eBGP to PE", "endpoint", "last log at SOC"):
        table.add_column(col)
    for r in rows:
        table.add_row(f"{r.name} ({r.site})", r.bgp, r.registration, r.last_log)
    out.print(table)


# Registered last: `provnet --help` lists commands and groups in this order.
app.command("verify")(verify_cli.verify)
app.add_typer(lab_cli.lab_app, name="lab")
app.add_typer(net_cli.net_app, name="net")
app.add_typer(vc_cli.vc_app, name="vc")
app.add_typer(site_cli.site_app, name="site")
app.command("rollout")(rollout_cli.rollout)
app.add_typer(compliance_cli.compliance_app, name="compliance")
app.add_typer(soc_cli.soc_app, name="soc")


def main() -> None:
    """Console entry point; the root group turns every error into a report, never a traceback."""
    app()


if __name__ == "__main__":
    main()
