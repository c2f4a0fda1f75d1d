"""`provnet site …`: add a site to the source of truth, retire one, check one is ready for a rollout.

Registered by provnet.cli; the work is done by :mod:`provnet.siteops`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.table import Table

from provnet.cli_common import (InventoryOpt, JsonOpt, emit_json, err, error_object, fail, inventory_path, json_mode,
                                load_model, out)
from provnet.errors import InventoryError, Problem, ProvnetError

site_app = typer.Typer(help="Sites in the source of truth: add one (from the official data), retire one, "
                       "check one is ready for a rollout.", no_args_is_help=True)


def _refused(problems: Sequence[Problem], what: str, tail: str = "; nothing was written") -> NoReturn:
    """Every problem line, then one summary; exit 2 (one JSON object with --json)."""
    summary = f"{len(problems)} problem(s): {what}{tail}" if tail else what
    if json_mode():
        emit_json(error_object(summary, problems))
    else:
        for problem in problems:
            err.print(str(problem), markup=False, highlight=False)
        err.print(f"provnet: {summary}", markup=False, highlight=False)
    raise typer.Exit(2)


def _root(inventory: Optional[Path]) -> Path:
    """The inventory folder, validated first so that a broken one is reported like every command's."""
    load_model(inventory)
    return inventory_path(inventory)


def _addresses_table(data: dict[str, Any]) -> Table:
    table = Table(title=f"{data['name']} ({data['slug']}) — id {data['id']}, code {data['code']}")
    table.add_column("what")
    table.add_column("address")
    if data["wan"] is not None:
        table.add_row("ASN", str(data["asn"]))
        table.add_row("loopback", f"{data['loopback']}/32")
        table.add_row("WAN /31", f"{data['wan']} (PE {data['pe']}, CE {data['ce']})")
    else:
        table.add_row("uplink", f"province-level: its VLANs end on {data['router']} (no CE, no carrier circuit)")
    for name, lan in data["lans"].items():
        table.add_row(f"VLAN {lan['vlan']} {name}", f"{lan['subnet']} (gateway {lan['gateway']})")
    if data["oob"]:
        table.add_row("out-of-band block", data["oob"])
    for dev in data["devices"]:
        addrs = [f"{name} {addr}" for name, addr in dev["interfaces"].items()]
        addrs += [f"oob {dev['oob']}"] if dev["oob"] else []
        table.add_row(f"{dev['hostname']} ({dev['role']})", ", ".join(addrs))
    for acct in data["sip_accounts"]:
        table.add_row("SIP account", f"{acct['aor']} (extension {acct['extension']})")
    return table


@site_app.command("add")
def site_add(
    official: Optional[str] = typer.Option(None, "--official", help="The commune or ward's official name, e.g. "
                                           "'Xã Mẫu Sơn' (diacritics and the type word optional), or its code."),
    name: Optional[str] = typer.Option(None, "--name", help="By hand: the name with its type word, "
                                       "e.g. 'Huyện Cao Lộc'."),
    kind: Optional[str] = typer.Option(None, "--kind", help="By hand: xa, phuong, thi_tran, dac_khu (a commune); "
                                       "huyen, thi_xa, thanh_pho, quan, khu_vuc (a district); ubnd_tinh, tinh_uy, "
                                       "hdnd_tinh, so_nganh (a province-level hall, reached from the DC)."),
    code: Optional[str] = typer.Option(None, "--code", help="By hand: the official administrative code (digits; "
                                       "a hall: the province's, the default)."),
    district: Optional[str] = typer.Option(None, "--district", help="Parent district: the slug of a site of "
                                           "level district."),
    slug: Optional[str] = typer.Option(None, "--slug", help="Another slug than the one derived from the name."),
    circuit: Optional[str] = typer.Option(None, "--circuit", help="The carrier's circuit id "
                                          "[default: PENDING-<code>]."),
    contact_name: Optional[str] = typer.Option(None, "--contact-name", help="Who to call at the site "
                                               "[default: Văn phòng UBND <name>]."),
    contact_phone: Optional[str] = typer.Option(None, "--contact-phone", help="Their phone [default: chưa cập nhật]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the site and its addresses; write nothing."),
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add a commune, ward, district or province-level hall: write sites/<slug>.yml and update ids.yml.

    The site comes from the official data (--official: the vietnam-provinces package, 2025
    structure, in the inventory's province.code) or is given by hand (--name, --kind, --code).
    It takes the next free id (never a retired one) and the slug the importer would give it;
    prints the addresses it gets (ASN, loopback, WAN /31, VLAN subnets, device addresses,
    SIP account), all derived from the id, so no other site moves.

    Without --circuit or --contact-* the file holds the importer's placeholders: the inventory
    stays valid, and `provnet site check SLUG` (and the rollout) names what is still missing.

    Nothing is written when the inventory would be invalid with the new site (an unknown
    name, a unit of another province, a slug or code already there, an unknown district,
    exhausted pools): one line per problem, exit 2.
    """
    from provnet import siteops

    root = _root(inventory)
    try:
        plan = siteops.plan_add(root, official=official, name=name, kind=kind, code=code, district=district,
                                slug=slug, circuit=circuit, contact_name=contact_name, contact_phone=contact_phone)
        if not dry_run:
            siteops.apply_add(plan)
    except InventoryError as exc:
        _refused(exc.problems, "the inventory would not be valid with the new site")
    except ProvnetError as exc:
        fail(str(exc))
    data = siteops.site_addresses(plan.model, plan.slug)
    pending = plan.pending()
    if as_json:
        emit_json({"ok": True, "written": not dry_run, "file": plan.shown_file, "matched": plan.matched,
                   "next_id": plan.model.source.ids.next_id if plan.model.source.ids else None, "site": data,
                   "pending": [p.__dict__ for p in pending]})
        return
    if plan.matched:
        out.print(f"matched: {plan.matched}", markup=False)
    out.print(_addresses_table(data))
    verb = "would write" if dry_run else "wrote"
    out.print(f"{verb} {plan.shown_file} and {plan.model.source.shown(plan.ids_path)} "
              f"(next id {plan.model.source.ids.next_id if plan.model.source.ids else '?'})", markup=False)
    if pending:
        out.print(f"before `provnet rollout {plan.slug}`:", markup=False)
        for problem in pending:
            out.print(f"  {problem.obj}: {problem.message} — fix: {problem.fix}", markup=False)


@site_app.command("retire")
def site_retire(
    slug: str = typer.Argument(..., help="The site's slug."),
    date: Optional[str] = typer.Option(None, "--date", help="The day it was merged away, YYYY-MM-DD [default: today]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan (what the DC loses, with diffs); write nothing."),
    push: bool = typer.Option(True, "--push/--no-push",
                              help="Converge the DC devices that lose the site [default]; --no-push: the source of "
                                   "truth only, push later."),
    diff: bool = typer.Option(True, "--diff/--no-diff", help="Show each DC change's unified diff."),
    wait: float = typer.Option(0.0, "--wait", metavar="SECONDS",
                               help="Wait this long for the inventory's lock (default: fail at once)."),
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Retire a site (a commune merged away): source of truth, DC, lab — plan first.

    1. Plan: the DC devices that lose the site, each with its diff (the registrar's account and the
       bridge's dial-plan entry, firewall flows, NTP/SOC sources), and the carrier's cease order for
       a production inventory. --dry-run stops here.
    2. Source of truth: sites/<slug>.yml moves to retired/<slug>.yml and its ids.yml entry to
       retired: with retired_on; next_id is kept. Its id, ASN and addresses are reserved for ever:
       validation refuses a site that reuses the id.
    3. Push: ansible-playbook playbooks/site.yml --limit over those DC devices (the rollout's push:
       backups, commit-confirm). If it fails, the site's files are put back and the same devices are
       re-converged with it; exit 1.
    4. Lab: when this inventory's lab runs here (root), the site's nodes leave it and the PE's
       neighbour goes (a reload: no other session restarts).

    Refused (exit 2, nothing written) while province.yml still names the site — vc.chair,
    vc.recorders, a meeting's chair or sites — or while communes sit under the district, or while
    another run holds the inventory's lock.
    """
    from provnet import lock, siteops
    from provnet.rollout import plan as rplan
    from provnet.rollout import retire

    root = _root(inventory)
    shown = str(inventory) if inventory is not None else str(root)
    say = (lambda line: err.print(line, markup=False, highlight=False)) if as_json else \
        (lambda line: out.print(line, markup=False, highlight=False))
    result: dict[str, Any] = {}
    try:
        with lock.hold(root, wait=wait, shown=shown) if not dry_run else _nothing():
            plan = siteops.plan_retire(root, slug, date)
            p = rplan.plan(root, retire=[slug], shown=shown)
            if not dry_run:
                if not as_json:
                    out.print(p.text(diffs=diff), markup=False, highlight=False, end="")
                result = retire.execute(root, shown, plan, p, say, push=push)
    except InventoryError as exc:
        _refused(exc.problems, f"site '{slug}' cannot be retired yet")
    except ProvnetError as exc:
        fail(str(exc))
    losses = plan.losses()
    s = plan.site
    if as_json:
        emit_json({"ok": result.get("ok", True), "written": not dry_run and result.get("put_back") is None,
                   "slug": slug, "retired_on": plan.date, "file": plan.shown_file, "retired_file": plan.shown_retired,
                   **losses, "plan": p.as_dict(), **({k: v for k, v in result.items() if k != "ok"})})
        if result and not result["ok"]:
            raise typer.Exit(1)
        return
    if dry_run:
        out.print(p.text(diffs=diff), markup=False, highlight=False, end="")
    if result and not result["ok"]:
        fail(f"retire of {slug} failed: {result.get('reason', '')}"
             + ("; the site was put back and the DC re-converged with it" if result.get("put_back") else ""), code=1)
    verb = "would retire" if dry_run else "retired"
    out.print(f"{verb} {s.name} ({slug}), id {s.id}, on {plan.date}: {plan.shown_file} → {plan.shown_retired}",
              markup=False)
    pushed = bool(result.get("push"))
    out.print("the DC " + ("lost" if pushed else "loses, at its next push") + ":", markup=False)
    for acct in losses["registrar_accounts"]:
        out.print(f"  registrar account {acct['aor']} (extension {acct['extension']}) and its bridge dial-plan entry",
                  markup=False)
    pe = losses["pe_neighbour"]
    if pe is not None:
        out.print(f"  PE neighbour {pe['ce']} (AS {pe['asn']}) on {pe['wan']}", markup=False)
    else:
        out.print(f"  its VLANs on {s.router} and the DC core's static routes to them", markup=False)
    out.print(f"  firewall flows and NTP/SOC sources: {', '.join(losses['prefixes'])}", markup=False)
    r = losses["reserved"]
    lans = ", ".join(f"{n} {net}" for n, net in r["lans"].items())
    wan = f"AS {r['asn']}, loopback {r['loopback']}, WAN {r['wan']}, " if r["wan"] else ""
    out.print(f"reserved for ever with id {r['id']}: {wan}"
              f"{lans}" + (f", out-of-band {r['oob']}" if r["oob"] else ""), markup=False)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@site_app.command("check")
def site_check(
    slugs: Optional[list[str]] = typer.Argument(None, help="Site slugs [default: every site]."),
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Is a site ready for a rollout? Its circuit id and contact must not be placeholders.

    `provnet inventory validate` accepts the placeholders `site add` and the importer write
    (PENDING-<code>, phone chưa cập nhật); a rollout does not. One line per missing fact;
    exit 2 when any.
    """
    from provnet import siteops

    m = load_model(inventory)
    chosen = list(slugs or sorted(m.sites, key=lambda s: m.sites[s].id))
    unknown = [s for s in chosen if s not in m.sites]
    if unknown:
        fail(f"no site {', '.join(repr(s) for s in unknown)} in {m.root}; `provnet inventory ipplan` lists the sites")
    problems = [p for s in chosen for p in siteops.rollout_problems(m, s)]
    if problems:
        blocked = len({p.obj.split(".")[0] for p in problems})
        _refused(problems, f"{blocked} of {len(chosen)} site(s) not ready for a rollout", tail="")
    if as_json:
        emit_json({"ok": True, "ready": chosen})
    else:
        out.print(f"{len(chosen)} site(s) ready for a rollout: circuit id and contact filled in", markup=False)
