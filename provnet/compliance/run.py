"""`provnet compliance run`: every device of a scope, in parallel, through the engine's drivers.

Per device (one Nornir task, as the engine runs its own): open each platform's driver
(:func:`provnet.engine.device.reach`, so every address passes the address guard), read its
running config into the backup history, load the intended candidate and take the engine's
diff (a non-empty diff is a ``drift:<platform>`` finding), then evaluate the baseline rules
on that evidence. Rule commands run as root over the same SSH session the driver opened
(:meth:`provnet.drivers.ssh.SSH.run`), each command once per device. A Linux server without an
engine driver (platform ``linux``) is reached over the project's SSH with the engine's
credentials; its backup is the base and service roles' managed files the driver-less node has.

On every Linux node (servers and the engine's Linux devices alike) the files, units and packages the
roles of ``site.yml`` manage are compared with what those roles would write (:mod:`provnet.compliance.roledrift`:
rendered in-process with Ansible's templating, read with one shell command over the same session):
``drift:file:<path>``, ``drift:unit:<name>``, ``drift:package:<name>``.

With ``soc=True`` (the CLI's default; ``--no-soc`` skips it) the run also reads the SOC's last 24 h
once, beside the device checks: one command on the SOC host over the same SSH
(:func:`collect_soc`, :mod:`provnet.compliance.socview`); the report's ``soc`` section.

Bad input (rules, waivers, scope) is refused before any device is touched
(:class:`provnet.compliance.rules.ComplianceInputError`, an :class:`InventoryError`).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from provnet import guard, history, hostvars, render
from provnet.compliance import backups, evaluate, report, roledrift, rules as rules_mod, socview, trend, waivers as waivers_mod
from provnet.compliance.rules import ComplianceInputError, Rule
from provnet.compliance.waivers import Waiver
from provnet.drivers import DRIVERS
from provnet.engine import device as engine
from provnet.errors import Problem
from provnet.model import Device, Model

WAIVERS_FILE = Path(__file__).resolve().parent.parent.parent / "compliance" / "waivers.yml"
Progress = Callable[[str, int, int], None]
Opener = Callable[[engine.Context, Device, str], tuple[Any, str]]
Shell = Callable[[engine.Context, Device], Any]

# Files a driver-less Linux server holds from the roles (backed up as its ``linux`` section; the
# role's own templates stay their one home: this is only what to read, never what to expect).
SERVER_FILES = (
    "/etc/hostname", "/etc/ssh/sshd_config.d/00-provnet-base.conf", "/etc/sudoers.d/provnet-admin",
    "/etc/security/faillock.conf", "/etc/pam.d/common-auth", "/etc/pam.d/common-account",
    "/etc/sysctl.d/50-provnet-base.conf", "/etc/chrony/chrony.conf", "/etc/rsyslog.d/90-provnet-forward.conf",
    "/etc/snmp/snmpd.conf", "/etc/systemd/journald.conf.d/syslog.conf",
)
ROLE_FILES: dict[str, tuple[str, ...]] = {
    "soc": ("/etc/rsyslog.d/10-provnet-collector.conf", "/etc/logrotate.d/provnet-remote"),
    "sip_registrar": ("/etc/kamailio/kamailio.cfg", "/etc/default/kamailio"),
    "vc_bridge": ("/etc/systemd/system/janus.service.d/provnet.conf", "/etc/systemd/system/provnet-bridged.service"),
}


@dataclass(frozen=True)
class Scope:
    """``all``, ``site SLUG`` or ``district SLUG``: the devices it selects and its label in the history."""

    kind: str
    slug: str | None = None

    @property
    def label(self) -> str:
        return self.kind if self.slug is None else f"{self.kind} {self.slug}"

    def hosts(self, m: Model) -> list[str]:
        if self.kind == "all":
            return list(m.devices)
        key = "site" if self.kind == "site" else "district"
        return [h for h, d in m.devices.items() if getattr(d, key) == self.slug]


def parse_scope(text: str | None, m: Model) -> Scope:
    """``all`` (also ``province``), ``site SLUG``, ``district SLUG`` (``site:SLUG`` too); ComplianceInputError else."""
    t = (text or "all").strip()
    for sep in (":", "="):
        head = t.split(sep, 1)[0]
        if head in ("site", "district"):
            t = t.replace(sep, " ", 1)
    parts = t.split()
    if parts in (["all"], ["province"]):
        return Scope("all")
    if len(parts) == 2 and parts[0] in ("site", "district"):
        scope = Scope(parts[0], parts[1])
        if not scope.hosts(m):
            raise ComplianceInputError([Problem(str(m.root), f"--scope {text}", f"no {parts[0]} '{parts[1]}'",
                                                "give a slug from `provnet inventory show`")])
        return scope
    raise ComplianceInputError([Problem("--scope", text, "expected 'all', 'site SLUG' or 'district SLUG'",
                                        "e.g. --scope 'site dong-dang'")])


@dataclass(frozen=True)
class Inputs:
    """What a run checks against, loaded (and refused when broken) before any device is touched."""

    rules: dict[str, Rule]
    waivers: list[Waiver]


def load_inputs(m: Model, rules_dir: Path | str = rules_mod.RULES_DIR,
                waivers_file: Path | str = WAIVERS_FILE) -> Inputs:
    loaded = rules_mod.load_rules(rules_dir)
    return Inputs(loaded, waivers_mod.load_waivers(waivers_file, loaded, m))


def special(device: str, rule_id: str, status: str, evidence: str = "", *, kind: str = "drift",
            title: str = "", severity: str = "high", note: str = "") -> trend.Finding:
    """A finding that is no baseline rule: a drift or an unreachable device, in the trend's own shape."""
    return trend.Finding(device, rule_id, status, evidence, kind, title, severity, reason=note)


class CachedRunner:
    """``run(command) -> (rc, stdout)`` over one SSH session, each command executed once per device."""

    def __init__(self, ssh: Any) -> None:
        self.ssh = ssh
        self.cache: dict[str, tuple[int, str]] = {}
        self.lock = threading.Lock()

    def __call__(self, command: str) -> tuple[int, str]:
        with self.lock:
            if command not in self.cache:
                res = self.ssh.run(command)
                self.cache[command] = (res.rc, res.out)
            return self.cache[command]


def open_shell(ctx: engine.Context, dev: Device) -> Any:
    """The project's SSH to a driver-less Linux server, with the credentials the Linux drivers use."""
    from provnet.drivers.ssh import SSH, lab_key

    addr = guard.check(dev.ansible_host, production=ctx.model.production, purpose=f"check {dev.hostname} at")
    users = (ctx.model.credentials["admin_user"], *(() if ctx.model.production else ("root",)))
    return SSH(addr, tuple(dict.fromkeys(users)), lab_key(), None, ctx.model.production, timeout=15).open()


def _server_backup(runner: CachedRunner, dev: Device) -> str:
    """The role-managed files of a driver-less server, as one ``### file:`` bundle (absent files left out)."""
    from provnet.drivers.linux import make_bundle

    files: dict[str, str] = {}
    for path in (*SERVER_FILES, *ROLE_FILES.get(dev.role, ())):
        rc, out = runner(f"cat {shlex.quote(path)} 2>/dev/null")
        if rc == 0:
            files[path] = out
    return make_bundle(files)


def _unreachable(dev: Device, reason: str) -> trend.Finding:
    return special(dev.hostname, "reachability", "unreachable", reason, kind="reachability",
                   title="Không kết nối được thiết bị", severity="high", note=reason.splitlines()[0][:300])


SOC_TIMEOUT = 600.0  # seconds the SOC's one command may stay silent (it prints once it has read every file)


def collect_soc(ctx: engine.Context, hosts: list[str] | None, now: datetime, shell: Shell = open_shell,
                timeout: float = SOC_TIMEOUT) -> socview.SocView:
    """The SOC's last 24 h of ``hosts`` (None: every folder it holds): one command over the project's SSH
    to ``services.syslog``; whatever goes wrong is the view's ``error``, never an exception."""
    m = ctx.model
    name = m.services.get("syslog")
    if not name or name not in m.devices:
        return socview.SocView(str(name or ""), now, error="the model names no SOC host (services.syslog)")
    try:
        ssh = shell(ctx, m.devices[name])
    except Exception as exc:  # noqa: BLE001 - an unreachable SOC is reported in its section
        return socview.collect(m, None, now, hosts, reason=ctx.mask(engine._reason(exc)))
    try:
        def runner(command: str) -> tuple[int, str]:
            res = ssh.run(command, timeout=timeout)
            return res.rc, res.out

        view = socview.collect(m, runner, now, hosts)
    finally:
        try:
            ssh.close()
        except Exception:  # noqa: BLE001 - closing never masks the result
            pass
    view.error = ctx.mask(view.error) if view.error else ""
    for c in view.commits:
        c.message = ctx.mask(c.message)
    return view


@dataclass
class DeviceResult:
    host: str
    findings: list[Any] = field(default_factory=list)
    backed_up: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _role_drift(ctx: engine.Context, dev: Device, runner: CachedRunner, plan: roledrift.Plan | None) -> list[Any]:
    """The roles' files, units and packages on a Linux node against what the roles would write (one command)."""
    try:
        return roledrift.check(plan or roledrift.Plan(), ctx.model, dev.hostname, ctx.masking(), runner, ctx.mask)
    except Exception as exc:  # noqa: BLE001 - a transport failure or an unreadable playbook: this device's error
        return [special(dev.hostname, "drift:roles", "error", ctx.mask(engine._reason(exc)),
                        title=roledrift.TITLE_FILE, note="could not compare the role-managed state")]


def load_role_plan() -> roledrift.Plan | None:
    """site.yml's plays and roles, read once per run (None: unreadable; each device then reports why)."""
    try:
        return roledrift.Plan()
    except Exception:  # noqa: BLE001
        return None


def check_device(ctx: engine.Context, host: str, inputs: Inputs, today: date,
                 backup: backups.BackupRun | None = None, opener: Opener = engine.reach,
                 shell: Shell = open_shell, plan: roledrift.Plan | None = None) -> DeviceResult:
    """Back up, diff and evaluate one device; never raises for the device's own faults."""
    t0 = time.monotonic()
    m, dev = ctx.model, ctx.model.devices[host]
    out = DeviceResult(host)
    try:
        variables = hostvars.device_vars(m, dev)
        intended = evaluate.intended_texts(m, dev)
        candidates = {r.platform: r.sections for r in render.render_device(m, host, secrets=ctx.secrets)}
    except Exception as exc:  # noqa: BLE001 - a render failure is this device's error, not the run's
        out.findings.append(special(host, "drift:render", "error", ctx.mask(str(exc)), note="render failed"))
        return out
    running: dict[str, str] = {}
    opened: list[Any] = []
    runner: CachedRunner | None = None
    facts: dict[str, Any] = {}
    try:
        for platform in dev.platforms:
            if platform not in DRIVERS:
                continue
            try:
                drv, _ = opener(ctx, dev, platform)
            except Exception as exc:  # noqa: BLE001 - NAPALM/Netmiko raise their own
                if not opened:  # the device itself does not answer: one finding, nothing else
                    out.findings = [_unreachable(dev, ctx.mask(engine._reason(exc)))]
                    return out
                out.findings.append(special(host, f"drift:{platform}", "error", ctx.mask(engine._reason(exc)),
                                            note=f"{platform}: could not open the driver"))
                continue
            opened.append(drv)
            try:
                text = drv.get_config()["running"]
                running[platform] = text
                if backup is not None:
                    backup.write(host, platform, text)
                    out.backed_up.append(platform)
                if platform in candidates:
                    drv.load_replace_candidate(config=drv.build_candidate(candidates[platform]))
                    diff = drv.compare_config()
                    engine._discard(drv)
                    # a pass too, so a drift put back reads "fixed" in the trend, not "gone"
                    out.findings.append(special(host, f"drift:{platform}", "fail" if diff else "pass",
                                                ctx.mask(diff), title=f"Cấu hình {platform} khớp cấu hình dự kiến",
                                                note=f"{platform}: running config differs from intended "
                                                     "(provnet net diff)" if diff else ""))
                if runner is None and getattr(drv, "ssh", None) is not None:
                    runner = CachedRunner(drv.ssh)
                if not facts:
                    facts["get_facts"] = drv.get_facts()
            except Exception as exc:  # noqa: BLE001
                out.findings.append(special(host, f"drift:{platform}", "error", ctx.mask(engine._reason(exc)),
                                            note=f"{platform}: could not read or diff the config"))
        if not opened and "linux" in dev.platforms:
            try:
                ssh = shell(ctx, dev)
            except Exception as exc:  # noqa: BLE001
                out.findings = [_unreachable(dev, ctx.mask(engine._reason(exc)))]
                return out
            opened.append(ssh)
            runner = CachedRunner(ssh)
            try:
                running["linux"] = _server_backup(runner, dev)
                if backup is not None:
                    backup.write(host, "linux", running["linux"])
                    out.backed_up.append("linux")
                rc, name = runner("hostname")
                facts["get_facts"] = {"hostname": name.strip()}
            except Exception as exc:  # noqa: BLE001
                out.findings.append(special(host, "drift:linux", "error", ctx.mask(engine._reason(exc)),
                                            note="could not read the managed files"))
        if runner is not None and roledrift.applies(dev):
            out.findings += _role_drift(ctx, dev, runner, plan)
        ev = evaluate.Evidence(vars=variables, intended=intended, running=running, run=runner, facts=facts,
                               secrets=ctx.masking())
        out.findings += evaluate.evaluate_device(inputs.rules.values(), dev, ev, inputs.waivers, today)
    finally:
        for drv in opened:
            try:
                drv.close()
            except Exception:  # noqa: BLE001 - closing never masks the result
                pass
        out.seconds = time.monotonic() - t0
    return out


@dataclass
class RunResult:
    run_id: int
    started_at: str
    findings: list[trend.Finding]
    report: report.Report
    backup_commit: str
    seconds: float
    devices: list[DeviceResult]

    @property
    def exit_code(self) -> int:
        return report.exit_code(self.findings)


def run(m: Model, scope: Scope, inputs: Inputs, *, workers: int = 20, progress: Progress | None = None,
        store: history.Store | None = None, repo: backups.BackupRepo | None = None, ctx: engine.Context | None = None,
        today: date | None = None, opener: Opener = engine.reach, shell: Shell = open_shell,
        soc: bool = False, soc_shell: Shell | None = None) -> RunResult:
    """One compliance run over the scope: backups, drift, rules, history, trend and the report.

    ``soc``: also the SOC's last 24 h (:func:`collect_soc`, once per run, in a thread beside the devices;
    reached with ``soc_shell``, default ``shell``)."""
    from provnet.engine.run import _ProgressProcessor, nornir_for
    from nornir.core.task import Result, Task

    t0 = time.monotonic()
    hosts = scope.hosts(m)
    ctx = ctx or engine.Context.build(m)
    store = store or history.open_store()
    repo = repo or backups.BackupRepo.open(m.root)
    started_at = history.utc_now()
    run_id = trend.start_run(store, str(m.root), scope.label, started_at)
    today = today or date.today()
    notes: list[str] = []
    results: dict[str, DeviceResult] = {}
    soc_box: list[socview.SocView] = []
    soc_thread: threading.Thread | None = None
    soc_now = history.parse_time(started_at)
    if soc:
        soc_hosts = None if scope.kind == "all" else hosts

        def soc_task() -> None:
            try:
                soc_box.append(collect_soc(ctx, soc_hosts, soc_now, soc_shell or shell))
            except Exception as exc:  # noqa: BLE001 - never the run's failure
                soc_box.append(socview.SocView(str(m.services.get("syslog", "")), soc_now,
                                               error=ctx.mask(f"{type(exc).__name__}: {exc}")))

        soc_thread = threading.Thread(target=soc_task, name="provnet-compliance-soc", daemon=True)
    with repo.begin(run_id, ctx.masking(), started_at, str(m.root)) as brun:
        if brun.interrupted:
            notes.append(str(brun.interrupted))
        if soc_thread is not None:  # once this run holds the backup lock: a refused run touches nothing
            soc_thread.start()
        nr = nornir_for(m, hosts, workers).with_processors([_ProgressProcessor(len(hosts), progress, "compliance")])
        plan = load_role_plan()

        def task(t: Task) -> Result:
            name = t.host.name
            try:
                res = check_device(ctx, name, inputs, today, brun, opener, shell, plan)
            except Exception as exc:  # noqa: BLE001 - one device's failure is its own finding
                res = DeviceResult(name, [special(name, "reachability", "error",
                                                  ctx.mask(f"{type(exc).__name__}: {exc}"), kind="reachability",
                                                  note="the check of this device failed")])
            return Result(host=t.host, result=res)

        agg = nr.run(task=task, name="provnet compliance")
        for name in hosts:
            results[name] = agg[name][0].result
        sha = brun.commit()
    notes.append(f"backup commit {sha[:12]} ({repo.path})")
    soc_view: socview.SocView | None = None
    if soc_thread is not None:
        soc_thread.join(SOC_TIMEOUT + 60)
        soc_view = soc_box[0] if soc_box else socview.SocView(
            str(m.services.get("syslog", "")), soc_now, error=f"no answer from the SOC within {SOC_TIMEOUT:.0f} s")
    evaluated = [f for name in hosts for f in results[name].findings]
    findings = trend.from_evaluation(evaluated, inputs.rules, {h: d.site for h, d in m.devices.items()})
    trend.record(store, run_id, findings)
    seconds = time.monotonic() - t0
    trend.finish_run(store, run_id, findings, backup_commit=sha, seconds=round(seconds, 2))
    rep = report.Report(findings, run_id, started_at, str(m.root), scope.label, m.name,
                        report.site_names(m), trend.compare(store, run_id), notes, soc_view)
    return RunResult(run_id, started_at, findings, rep, sha, seconds, [results[h] for h in hosts])


# ---------------------------------------------------------------- remediation

@dataclass
class Action:
    """What fixes one device's open findings: the engine for its configs, the roles for the rest."""

    host: str
    engine_platforms: tuple[str, ...] = ()
    roles: bool = False
    subjects: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # open, but nothing provnet owns fixes it (unreachable, error)
    diff: dict[str, str] = field(default_factory=dict)  # platform → the engine's diff (the plan)
    result: str = ""  # after --commit: the engine's status, and the roles' exit

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "engine": list(self.engine_platforms), "roles": self.roles,
                "subjects": self.subjects, "skipped": self.skipped, "diff": self.diff, "result": self.result}


def plan_remediation(m: Model, store: history.Store, inputs: Inputs, scope: Scope,
                     devices: tuple[str, ...] = (), rule: str | None = None) -> tuple[history.Run, list[Action]]:
    """From the last finished run of this inventory and scope: per device, what would fix its open findings.

    ``drift:<platform>`` and a config rule of an engine platform → the engine (that platform);
    any other rule on a Linux node → its roles (``site.yml --limit HOST``); unreachable and
    error findings are listed as skipped (nothing to apply until the device can be checked)."""
    runs = history.runs_of(store, trend.KIND, str(m.root), scope.label)
    if not runs:
        raise ComplianceInputError([Problem(str(store.path), f"scope {scope.label}", "no finished compliance run",
                                            "run `provnet compliance run` first")])
    actions: dict[str, Action] = {}
    for r in store.results(runs[0].id):
        host, rule_id = trend.split_subject(r.subject)
        if not trend.is_open(r.verdict) or host not in m.devices or (devices and host not in devices) \
                or (rule and rule_id != rule):
            continue
        a = actions.setdefault(host, Action(host))
        dev = m.devices[host]
        r_obj = inputs.rules.get(rule_id)
        platform = rule_id.split(":", 1)[1] if rule_id.startswith("drift:") else \
            getattr(getattr(r_obj, "check", None), "platform", None)
        if r.verdict != "fail":
            a.skipped.append(r.subject)
        elif platform in DRIVERS and platform in dev.platforms:
            a.engine_platforms = tuple(dict.fromkeys((*a.engine_platforms, platform)))
            a.subjects.append(r.subject)
        elif set(dev.platforms) - {"cisco_ios", "fortios", "cisco_tp"}:
            a.roles = True
            a.subjects.append(r.subject)
        else:
            a.skipped.append(r.subject)
    return runs[0], [actions[h] for h in m.devices if h in actions]


def remediate(ctx: engine.Context, actions: list[Action], *, commit: bool = False, revert_in: int = 60,
              playbook: Path | None = None) -> bool:
    """The plan's diffs (always), and with ``commit`` the changes: the engine per device (backup,
    commit-confirm), then one ``site.yml --limit`` for every device that needs its roles. True when
    everything applied."""
    import os
    import subprocess
    import sys

    ok = True
    for a in actions:
        if not a.engine_platforms:
            continue
        res = engine.converge(ctx, a.host, commit=commit, revert_in=revert_in, platforms=a.engine_platforms)
        a.diff = {p.platform: p.diff or p.error for p in res.platforms}
        a.result = res.status
        ok = ok and res.status in ("changed", "unchanged", "would-change")
    role_hosts = [a.host for a in actions if a.roles]
    if commit and role_hosts:
        repo = Path(__file__).resolve().parent.parent.parent
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(ctx.model.root),
               str(playbook or repo / "playbooks" / "site.yml"), "--limit", ",".join(role_hosts)]
        env = {**os.environ, "ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(repo / "ansible.cfg"))}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env=env, timeout=1800)
        for a in actions:
            if a.roles:
                a.result = (a.result + "; " if a.result else "") + f"roles: site.yml exit {proc.returncode}"
        if proc.returncode != 0:
            ok = False
            tail = ctx.mask(proc.stdout[-1500:] + proc.stderr[-500:])
            for a in actions:
                if a.roles:
                    a.diff["roles"] = tail
    return ok


__all__ = ["Action", "plan_remediation", "remediate", "Scope", "parse_scope", "Inputs", "load_inputs", "special", "CachedRunner", "open_shell", "check_device", "load_role_plan",
           "collect_soc", "SOC_TIMEOUT", "DeviceResult", "RunResult", "run", "WAIVERS_FILE", "ComplianceInputError"]
