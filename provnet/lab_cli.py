"""`provnet lab …`: the virtual province on this machine (registered by provnet.cli)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from provnet.cli_common import InventoryOpt, JsonOpt, emit_json, fail, load_model, out, progress_bar
from provnet.lab.node import STOP_GRACE

lab_app = typer.Typer(help="The lab: a virtual province from real parts (root).", no_args_is_help=True)


def _lab():  # type: ignore[no-untyped-def]
    from provnet.lab import province

    return province


@lab_app.command("image")
def lab_image(force: bool = typer.Option(False, "--force", help="Rebuild even when cached.")) -> None:
    """Build (or reuse) the Debian 12 node image; cached outside the repo by package-list hash."""
    from provnet.lab import image

    if os.geteuid() != 0:
        fail("lab image needs root (debootstrap)")
    path = image.build_image(force=force)
    manifest = image.read_manifest(path)
    size = manifest.get("size_bytes")
    shown = f"{int(size) / 1e6:.0f} MB" if isinstance(size, (int, float)) else "size unknown"
    out.print(f"{path} ({shown}, built in {manifest.get('build_seconds', '?')} s)", markup=False)


@lab_app.command("up")
def lab_up(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Boot one system container per device plus the carrier's PE, wired as the model says.

    Refuses an inventory with any address outside 198.18.0.0/15, refuses to run
    without root or without a kernel feature it needs. Re-running changes nothing.
    """
    prov = _lab()
    m = load_model(inventory)
    try:
        prov.check_range(m)
        with progress_bar(as_json) as progress:
            rows = prov.up(m, progress)
    except prov.LabError as exc:
        fail(str(exc))
        return
    _print_status(rows, as_json)


def _print_status(rows, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        emit_json([r.__dict__ for r in rows])
        return
    table = Table(title="lab status")
    for col in ("node", "role", "state", "management", "uptime"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, r.role, r.state, r.address, f"{r.uptime_s:.0f} s" if r.uptime_s else "-")
    out.print(table)


@lab_app.command("status")
def lab_status(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Show every lab node: state, management address, uptime."""
    prov = _lab()
    st = prov._state(prov.lab_dir())
    m = load_model(Path(st["inventory"]) if st.get("inventory") and inventory is None else inventory)
    rows = prov.status(m)
    if not rows and not as_json:
        out.print("no lab is running", markup=False)
        return
    _print_status(rows, as_json)
    if any(r.state != "running" for r in rows):
        raise typer.Exit(1)


@lab_app.command("prune")
def lab_prune(inventory: Optional[Path] = InventoryOpt, as_json: bool = JsonOpt) -> None:
    """Take out the nodes the inventory no longer has (a retired site's) and reload the PE without them.

    Every other node keeps running and every other BGP session stays up. Only for the inventory
    whose lab runs here; `provnet site retire` does this by itself when run as root.
    """
    prov = _lab()
    m = load_model(inventory)
    st = prov._state(prov.lab_dir())
    running = set(st.get("nodes", [])) if st else set()
    if not running:
        out.print("no lab is running", markup=False)
        return
    if st.get("inventory") != str(m.root.resolve()):
        fail(f"the running lab is {st.get('inventory')}, not {m.root}: prune with -i {st.get('inventory')}")
        return
    try:
        removed, pe = prov.prune(m, running - {d.hostname for d in m.nodes()})
    except prov.LabError as exc:
        fail(str(exc), code=1)
        return
    if as_json:
        emit_json({"removed": removed, "pe": pe})
    else:
        out.print(f"lab prune: {len(removed)} node(s) removed{': ' + ', '.join(removed) if removed else ''}; "
                  f"PE {pe}", markup=False)


@lab_app.command("down")
def lab_down(
    inventory: Optional[Path] = typer.Option(
        None, "-i", "--inventory",
        help="Inventory folder whose lab to take down [default: whichever lab runs here]."),
    force: bool = typer.Option(False, "--force", help="Also sweep leftovers of a crashed run."),
    grace: float = typer.Option(STOP_GRACE, "--grace", min=0, metavar="SECONDS",
                                help="How long nodes may take to power off before they are killed by PID."),
) -> None:
    """Stop every node; remove namespaces, mounts, veths, the bridge and the state (safe to run twice).

    Every node is told to power off at once; one still running after --grace seconds is killed
    by its PID and named. With -i, only that inventory's lab (the folder given to `lab up -i`, or
    an overlay of it): refused, nothing stopped, when the lab here was brought up from another
    inventory, or when the inventory does not validate (as `lab up` refuses it; without -i,
    whichever lab runs here is taken down). Exits 1 when anything of the lab is left behind.
    """
    prov = _lab()
    if inventory is not None:
        root = load_model(inventory).root
        running = prov.running_inventory()
        if running is not None and running not in prov.family(root):
            fail(f"the lab running here is {running}'s, not {root}'s: nothing stopped; "
                 f"take it down with -i {running}")
    try:
        done = prov.teardown(force=force, grace=grace)
    except prov.LabError as exc:
        fail(str(exc))
        return
    if done.killed:
        out.print(f"killed by PID after {grace:g} s: {', '.join(done.killed)}", markup=False)
    left = [f"node {n} (still running after SIGKILL)" for n in done.stuck]
    left += prov.leftovers() if os.geteuid() == 0 else []
    if left:
        fail("left behind: " + ", ".join(left), code=1)
    out.print(f"lab down: {len(done.removed)} node(s) removed in {done.seconds:.1f} s", markup=False)


station_app = typer.Typer(help="The management station: the controller with a systemd of its own (for its timers).",
                          no_args_is_help=True)
lab_app.add_typer(station_app, name="station")


@station_app.command("up")
def station_up() -> None:
    """Boot the lab's management station (idempotent).

    A system container sharing this machine's network (the controller's addresses, no
    CAP_NET_ADMIN), with the checkout, $PROVNET_HOME and the lab's key mounted. Install the
    nightly run in it: provnet lab exec provnet-station -- sh -c 'cd CHECKOUT &&
    .venv/bin/ansible-playbook playbooks/compliance_runner.yml'.
    """
    from provnet.lab import station

    prov = _lab()
    try:
        pid = station.up()
    except prov.LabError as exc:
        fail(str(exc))
        return
    out.print(f"station {station.NAME} running (PID 1 = {pid}); checkout {station.project_root()}", markup=False)


@station_app.command("down")
def station_down() -> None:
    """Stop the management station (the rest of the lab keeps running)."""
    from provnet.lab import station

    if os.geteuid() != 0:
        fail("lab station down needs root")
    station.down()
    out.print(f"station {station.NAME} stopped", markup=False)


@lab_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_exec(ctx: typer.Context, name: str = typer.Argument(..., help="Node hostname.")) -> None:
    """Run a command inside a node: provnet lab exec NODE -- CMD [ARGS…]."""
    from provnet.lab import node

    prov = _lab()
    argv = list(ctx.args) or ["/bin/bash"]
    if not node.valid_name(name):
        fail(f"{name!r} is not a node name (lowercase letters, digits and '-'); usage: "
             "provnet lab exec NODE -- CMD [ARGS…] — the node list: provnet lab status")
    if not node.is_running(name, prov.lab_dir()):
        fail(f"node {name} is not running (provnet lab status)")
    os.execvp("nsenter", [*node.exec_argv(name, prov.lab_dir()), *argv])


@lab_app.command("ssh")
def lab_ssh(name: str = typer.Argument(..., help="Node hostname."), inventory: Optional[Path] = InventoryOpt) -> None:
    """Open an SSH session to a node at its management address, with the lab key."""
    from provnet import guard

    prov = _lab()
    m = load_model(inventory)
    dev = next((d for d in m.nodes() if d.hostname == name), None)
    if dev is None or dev.oob_address is None:
        fail(f"no lab node named {name}")
        return
    address = guard.check(str(dev.oob_address.ip), purpose="ssh to")
    argv = prov.ssh_argv(address, prov.login_user(m, address))
    i = argv.index("BatchMode=yes")
    del argv[i - 1:i + 1]  # interactive: let ssh prompt if it must
    os.execvp("ssh", argv)


@lab_app.command("export")
def lab_export(
    fmt: str = typer.Argument("containerlab", help="Only 'containerlab' for now."),
    inventory: Optional[Path] = InventoryOpt,
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="File to write (default: stdout)."),
) -> None:
    """Write the lab province as a containerlab topology (same nodes and links)."""
    from provnet.lab.export import containerlab
    from provnet.yamlio import dump

    if fmt != "containerlab":
        fail(f"unknown export format '{fmt}': use containerlab")
    text = dump(containerlab(load_model(inventory)))
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@lab_app.command("fault")
def lab_fault(
    kind: str = typer.Argument(..., help="A fault name (listed below) or clear."),
    site: Optional[str] = typer.Argument(None, help="Site slug."),
    percent: int = typer.Option(10, "--percent", help="Packet loss for the 'loss' fault."),
    inventory: Optional[Path] = InventoryOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Break one site in one precise way (for demos and tests), or `clear` every recorded fault.

    Faults: frr-stop, wan-down, fw-rule-delete, endpoint-stop, endpoint-host-stop, sip-password,
    rsyslog-stop, rtp-block, loss. Each prints its repair.
    """
    from provnet.lab import faults

    prov = _lab()
    m = load_model(inventory)
    try:
        if kind == "clear":
            done = faults.clear(m)
            if as_json:
                emit_json([f.__dict__ for f in done])
            else:
                out.print(f"cleared {len(done)} fault(s)", markup=False)
            return
        if site is None:
            fail("give a site slug: provnet lab fault KIND SITE")
            return
        f = faults.inject(m, kind, site, percent)
    except prov.LabError as exc:
        fail(str(exc))
        return
    if as_json:
        emit_json(f.__dict__)
    else:
        out.print(f"{kind} injected on {f.host} ({site}); repair: {f.repair}", markup=False)
