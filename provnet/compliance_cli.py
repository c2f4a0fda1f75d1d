"""`provnet compliance run | diff | history` (registered by provnet.cli; issue 22, docs/compliance.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from provnet.cli_common import (InventoryOpt, JsonOpt, emit_json, err, fail, inventory_failed, load_model, out,
                                progress_bar)
from provnet.errors import InventoryError, ProvnetError

compliance_app = typer.Typer(
    help="Nightly compliance: backups into a git history, drift against intended, the security baseline "
         "(TCVN 11930:2017 level 3, CIS Debian 12), waivers, the history store and the report.",
    no_args_is_help=True)


@compliance_app.command("run")
def run_cmd(
    inventory: Optional[Path] = InventoryOpt,
    scope: str = typer.Option("all", "--scope", metavar="all|site SLUG|district SLUG",
                              help="Which devices: all (default), one site, or a district and its communes."),
    html_out: Optional[Path] = typer.Option(None, "--html", metavar="FILE", help="Write the A4-printable HTML report."),
    md_out: Optional[Path] = typer.Option(None, "--md", metavar="FILE", help="Write the Markdown report (for mail)."),
    junit_out: Optional[Path] = typer.Option(None, "--junit", metavar="FILE", help="Write JUnit XML (for CI)."),
    workers: int = typer.Option(20, "--workers", "-n", help="Devices checked at the same time."),
    no_soc: bool = typer.Option(False, "--no-soc",
                                help="Skip the SOC's view (last 24 h of logs received at the SOC)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check every device of the scope: is it still what we intended, and still secure?

    For each device, in parallel, through the engine's drivers: its running config goes into the
    backup history (a git repository under $PROVNET_HOME/backups, secrets masked); the engine's diff
    against the intended config is a drift finding; every baseline rule of compliance/rules/ that
    applies is checked on the live device; compliance/waivers.yml is applied. The run is recorded in
    the history store and compared with the previous run of the same scope (new, fixed, still open).

    The report also carries the SOC's view of the last 24 h (unless --no-soc): per site, the last log
    received at the SOC, failed admin logins, firewall drops and every engine commit, read by one
    command on the SOC host (services.syslog). An unreachable SOC is said in that section; it does not
    change the exit status.

    An unreachable device is one 'unreachable' finding with the reason; the run goes on.
    A broken rule file, waiver or scope is refused before any device is touched.

    Progress goes to stderr; the summary (or with --json the whole report) to stdout.

    Exit status: 0 compliant, 1 open findings (fail, error, unreachable), 2 bad input.

    Example: provnet compliance run --scope 'site dong-dang' --html /var/lib/provnet/report.html
    """
    from provnet.compliance import report
    from provnet.compliance import run as crun
    from provnet.compliance.backups import BackupError

    m = load_model(inventory)
    try:
        sc = crun.parse_scope(scope, m)
        inputs = crun.load_inputs(m)
    except InventoryError as exc:
        inventory_failed(exc, str(m.root), tail="; no device was touched.")
    try:
        with progress_bar(as_json) as progress:
            res = crun.run(m, sc, inputs, workers=workers, progress=progress, soc=not no_soc)
    except BackupError as exc:
        fail(str(exc))
    for path, render in ((html_out, report.as_html), (md_out, report.as_markdown), (junit_out, report.as_junit)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(res.report), encoding="utf-8")
    if as_json:
        emit_json(report.as_json(res.report) | {"seconds": round(res.seconds, 2)})
    else:
        _summary(res)
    raise typer.Exit(res.exit_code)


def _summary(res: "object") -> None:
    from provnet.compliance import trend

    r = res.report  # type: ignore[attr-defined]
    s = trend.summary(r.findings)
    c = s["counts"]
    verdict = "compliant" if s["compliant"] else f"{s['open']} open finding(s)"
    out.print(f"compliance run {r.run_id} ({r.scope}, {s['devices']} devices, {res.seconds:.1f} s): {verdict} — "  # type: ignore[attr-defined]
              f"{c['pass']} pass, {c['fail']} fail, {c['unreachable']} unreachable, {c['error']} error, "
              f"{c['waived']} waived", markup=False, highlight=False)
    for f in r.findings:
        if trend.is_open(f.status):
            first = (f.reason or f.evidence).strip().splitlines()
            out.print(f"  {f.status:<11} {f.device:<20} {f.rule_id:<16} {first[0][:100] if first else ''}",
                      markup=False, highlight=False)
    t = r.trend
    if t is not None and t.previous is not None:
        out.print(f"since run {t.previous.id}: {len(t.new)} new, {len(t.fixed)} fixed, {len(t.still_open)} still open",
                  markup=False, highlight=False)
        for item in t.fixed:
            out.print(f"  fixed       {item.device:<20} {item.rule_id}", markup=False, highlight=False)
    for note in r.notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    v = r.soc
    if v is not None:
        if v.error:
            out.print(f"soc ({v.soc}): not read — {v.error}", markup=False, highlight=False)
        if v.sites:
            silent = [s.site or "dc" for s in v.silent_sites]
            which = f" ({', '.join(silent[:10])}{' …' if len(silent) > 10 else ''})" if silent else ""
            out.print(f"soc ({v.soc}, last 24 h): {len(silent)} of {len(v.sites)} site(s) silent{which}, "
                      f"{sum(s.failed_logins for s in v.sites)} failed admin login(s), "
                      f"{sum(s.drops for s in v.sites)} firewall drop(s), {len(v.commits)} commit(s)",
                      markup=False, highlight=False)


@compliance_app.command("remediate")
def remediate_cmd(
    inventory: Optional[Path] = InventoryOpt,
    scope: str = typer.Option("all", "--scope", metavar="all|site SLUG|district SLUG",
                              help="Whose last run to fix (the same scope as that run)."),
    devices: list[str] = typer.Option([], "--device", metavar="HOST", help="Only this device (repeatable)."),
    rule: Optional[str] = typer.Option(None, "--rule", metavar="ID", help="Only this rule (ssh-010, drift:frr, …)."),
    commit: bool = typer.Option(False, "--commit", help="Apply the plan (default: print it and change nothing)."),
    revert_in: int = typer.Option(60, "--revert-in", metavar="SECONDS", help="Engine commit-confirm window."),
    as_json: bool = JsonOpt,
) -> None:
    """Fix what the last compliance run found: the plan first, then (with --commit) the change.

    Reads the open findings of the last finished run of the scope. A drift, or a config rule of a
    platform the engine drives (frr, nftables, linux_switch, baresip, vendors), is fixed by the engine
    (the diff is the plan; with --commit: backup, commit with a confirmed revert, as `provnet net
    deploy`); any other rule on a Linux node by its roles (`ansible-playbook playbooks/site.yml --limit
    HOST`). Unreachable devices and errors are listed, never acted on. What no role owns (an extra
    sshd drop-in, a process someone started by hand) stays open: the next run says so.

    Run `provnet compliance run` afterwards: what was fixed reads "fixed".

    Exit status: 0 plan printed or everything applied, 1 something failed, 2 bad input (no run yet).

    Example: provnet compliance remediate --device dong-dang-ce --commit
    """
    from provnet import history
    from provnet.compliance import run as crun
    from provnet.engine.device import Context

    m = load_model(inventory)
    for d in devices:
        if d not in m.devices:
            fail(f"no device '{d}' in {m.root}")
    try:
        sc = crun.parse_scope(scope, m)
        inputs = crun.load_inputs(m)
        run, actions = crun.plan_remediation(m, history.open_store(), inputs, sc, tuple(devices), rule)
    except InventoryError as exc:
        inventory_failed(exc, str(m.root), tail="; nothing was changed.")
    ok = crun.remediate(Context.build(m, ticket="compliance remediate"), actions, commit=commit,
                        revert_in=revert_in) if actions else True
    if as_json:
        emit_json({"run": run.id, "commit": commit, "ok": ok, "actions": [a.as_dict() for a in actions]})
    else:
        out.print(f"from compliance run {run.id} ({run.scope}, {run.started_local}): {len(actions)} device(s)"
                  f"{'' if commit else ' — plan only, nothing changed (give --commit)'}", markup=False, highlight=False)
        for a in actions:
            how = ", ".join([*(f"engine {p}" for p in a.engine_platforms), *(["roles (site.yml)"] if a.roles else [])])
            out.print(f"  {a.host:<20} {how or 'nothing to apply'}  {a.result}", markup=False, highlight=False)
            for subj in a.subjects:
                out.print(f"      fixes    {subj}", markup=False, highlight=False)
            for subj in a.skipped:
                out.print(f"      skipped  {subj} (unreachable or not evaluated: check the device)",
                          markup=False, highlight=False)
            for platform, text in a.diff.items():
                if text:
                    out.print(f"      --- {platform}\n" + "\n".join("      " + l for l in text.splitlines()[:40]),
                              markup=False, highlight=False)
    raise typer.Exit(0 if ok else 1)


@compliance_app.command("diff")
def diff_cmd(
    host: str = typer.Argument(..., metavar="HOST", help="The device (its hostname in the model)."),
    inventory: Optional[Path] = InventoryOpt,
    from_: Optional[str] = typer.Option(None, "--from", metavar="RUN|DATE",
                                        help="A run id (42) or a local date/time (2026-11-15, '2026-11-15 02:00'); "
                                             "default: the run before --to."),
    to: Optional[str] = typer.Option(None, "--to", metavar="RUN|DATE", help="Same forms; default: the last run."),
) -> None:
    """What changed on a device between two compliance runs: the unified diff of its backed-up configs.

    Dates are read in Asia/Ho_Chi_Minh and mean the last run at or before them; a bare date means
    the end of that day (that night's run). Secrets were masked before they were backed up.

    Exit status: 0 (also when nothing changed), 2 for an unknown host, run or date.

    Example: provnet compliance diff dong-dang-ce --from 2026-11-14 --to 2026-11-15
    """
    from provnet.compliance.backups import BackupRepo

    m = load_model(inventory)
    if host not in m.devices:
        fail(f"no device '{host}' in {m.root}")
    try:
        text = BackupRepo.open(m.root).diff(host, from_=_ref(from_), to=_ref(to))
    except ProvnetError as exc:
        fail(str(exc))
    sys.stdout.write(text if text else f"{host}: no change\n")


def _ref(value: Optional[str]) -> Optional[int | str]:
    return int(value) if value is not None and value.isdigit() else value


@compliance_app.command("history")
def history_cmd(
    inventory: Optional[Path] = InventoryOpt,
    device: Optional[str] = typer.Option(None, "--device", metavar="HOST", help="Only this device."),
    rule: Optional[str] = typer.Option(None, "--rule", metavar="ID", help="Only this rule (ssh-001, drift:frr, …)."),
    at: Optional[str] = typer.Option(None, "--at", metavar="DATE",
                                     help="Answer for this local date/time (default: now)."),
    as_json: bool = JsonOpt,
) -> None:
    """Was this device (rule) compliant at that date? Answered from the history store.

    Takes the last finished compliance run started at or before --at (a bare date: the end of that
    day, Asia/Ho_Chi_Minh) that checked the device (and rule), whatever its scope, and lists its
    results that are not passing.

    Exit status: 0 compliant, 1 not compliant, 2 no run answers (or bad input).

    Example: provnet compliance history --device dong-dang-ce --at 2026-11-15
    """
    from provnet import history
    from provnet.compliance import trend

    m = load_model(inventory)
    if device is not None and device not in m.devices:
        fail(f"no device '{device}' in {m.root}")
    try:
        ans = trend.history(history.open_store(), device=device, rule=rule, at=at, inventory=str(m.root))
    except (ProvnetError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(ans.as_dict())
    elif ans.run is None:
        err.print(f"no finished compliance run at or before {history.local_time(ans.at)} checked "
                  f"{device or 'any device'}{f' for {rule}' if rule else ''}", markup=False, highlight=False)
    else:
        verdict = "compliant" if ans.compliant else "NOT compliant"
        out.print(f"{device or 'all devices'}{f' / {rule}' if rule else ''} at {history.local_time(ans.at)}: {verdict} "
                  f"(run {ans.run.id}, {ans.run.scope}, {ans.run.started_local})", markup=False, highlight=False)
        for r in ans.results:
            if r.verdict != "pass" and r.verdict != "not_applicable":
                out.print(f"  {r.verdict:<11} {r.subject:<40} {r.reason[:90]}", markup=False, highlight=False)
    raise typer.Exit(2 if ans.compliant is None else 0 if ans.compliant else 1)
