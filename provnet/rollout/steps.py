"""The rollout's steps after the plan: lab → push → verify → test call; a failure puts the DC back.

Each step runs the project's own front doors — ``provnet.lab.province.up``, ``ansible-playbook
playbooks/site.yml --limit``, ``provnet verify``, ``provnet vc readiness`` — so there is no second path
to a device. The caller holds the inventory's lock; the nested ``ansible-playbook`` inherits its
``PROVNET_LOCK`` marker through the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provnet import model as model_mod
from provnet import hostvars, render, secrets
from provnet.model import Model
from provnet.rollout import overlay
from provnet.rollout.plan import Plan

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
Progress = Callable[[str], None]
NAMES = {1: "plan", 2: "lab", 3: "push", 4: "verify", 5: "test-call"}
_RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                    r"(?:\s+skipped=(\d+))?(?:\s+rescued=(\d+))?(?:\s+ignored=(\d+))?")


class StepFailed(Exception):
    """A step's check did not hold: the rollout stops here."""

    def __init__(self, reason: str, evidence: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence or {}


@dataclass
class StepResult:
    number: int
    name: str
    status: str                       # passed | failed | skipped
    seconds: float
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What the steps share: the inventory, the compiled model with the sites, the plan."""

    root: Path
    shown: str
    model: Model
    plan: Plan
    log_dir: Path
    timeout: float = 900.0
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    action: str = "rollout"           # the ticket's first word: rollout or retire

    @property
    def slugs(self) -> tuple[str, ...]:
        return self.plan.sites

    @property
    def ticket(self) -> str:
        return f"{self.action}-" + "-".join(self.slugs)


def _run(argv: list[str], env: dict[str, str], timeout: float, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n--- stderr\n{proc.stderr}\nrc={proc.returncode}\n")
    return proc


def recap(text: str) -> dict[str, dict[str, int]]:
    """ansible-playbook's PLAY RECAP, per host."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        m = _RECAP.match(line.strip())
        if m:
            out[m.group(1)] = {k: int(m.group(i) or 0) for i, k in
                               enumerate(("ok", "changed", "unreachable", "failed", "skipped"), start=2)}
    return out


def digest(m: Model, hostname: str) -> str:
    """sha256 of a device's intended config: its rendered sections (vault references as text), or for a
    role-managed server (no templates) its hostvars, which are what the roles read."""
    h = hashlib.sha256()
    rendered = sorted(render.render_device(m, hostname), key=lambda r: r.platform)
    if not any(r.sections for r in rendered):
        h.update(json.dumps(hostvars.device_vars(m, m.devices[hostname]), sort_keys=True, default=str).encode())
        return "hostvars:" + h.hexdigest()
    for r in rendered:
        for name in sorted(r.sections):
            h.update(f"### {r.platform}/{name}\n".encode())
            h.update(r.sections[name].encode())
    return h.hexdigest()


def playbook(ctx: Context, inventory: Path, hosts: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """``ansible-playbook playbooks/site.yml --limit HOSTS`` against ``inventory``; the recap of each host."""
    env = {**env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / "site.yml"),
            "--limit", ",".join(hosts), "-e", f"provnet_ticket={ctx.ticket}"]
    t = time.monotonic()
    proc = _run(argv, env, ctx.timeout, log)
    hosts_recap = recap(proc.stdout)
    return {"rc": proc.returncode, "hosts": hosts_recap, "seconds": round(time.monotonic() - t, 1),
            "changed": sum(r["changed"] for r in hosts_recap.values()), "log": str(log),
            "tail": "\n".join(proc.stdout.splitlines()[-25:]) if proc.returncode else ""}


# ---------------------------------------------------------------- the steps


def step_plan(ctx: Context) -> dict[str, Any]:
    p = ctx.plan
    return {"devices": [{"hostname": d.hostname, "role": d.role, "status": d.status,
                         "changes": [c.label for c in d.changes]} for d in p.devices],
            "carrier": [c.label for c in p.carrier.changes] if p.carrier else [],
            "work_orders": [w.as_dict() for w in p.work_orders]}


def step_lab(ctx: Context) -> dict[str, Any]:
    from provnet.lab import province

    m = ctx.model
    running = province.running_inventory()
    if running is not None and running not in province.family(m):
        raise StepFailed(f"the running lab is {running}'s, not {ctx.shown}'s (nor its base's)")
    new_ce = {str(m.sites[s].wan_ce.ip) for s in ctx.slugs if m.sites[s].wan_ce is not None}
    before = province.pe_sessions(m)
    was_up = {r.name for r in province.status() if r.state == "running"}
    province.up(m)
    joined = [d.hostname for d in m.nodes() if d.hostname not in was_up]
    after = province.pe_sessions(m)
    sessions, restarted = [], []
    for addr, b in before.items():
        if addr in new_ce:
            continue
        a = after.get(addr, {})
        kept = a.get("state") == "Established" and float(a.get("uptime_s", 0)) >= float(b.get("uptime_s", 0))
        sessions.append({"peer": addr, "hostname": b.get("hostname"), "state": a.get("state"),
                         "uptime_before_s": b.get("uptime_s"), "uptime_after_s": a.get("uptime_s"), "kept": kept})
        if b.get("state") == "Established" and not kept:
            restarted.append(f"{b.get('hostname') or addr}")
    evidence = {"joined": joined, "pe_neighbours_kept": sessions,
                "pe_new_neighbours": sorted(new_ce & set(after))}
    if restarted:
        raise StepFailed(f"the PE's BGP session restarted with {', '.join(restarted)}", evidence)
    return evidence


def step_push(ctx: Context) -> dict[str, Any]:
    hosts = ctx.plan.hostnames
    res = playbook(ctx, ctx.root, hosts, ctx.env, ctx.log_dir / "push.log")
    res["digests"] = {h: digest(ctx.model, h) for h in hosts}
    missing = [h for h in hosts if h not in res["hosts"]]
    bad = [h for h, r in res["hosts"].items() if r["failed"] or r["unreachable"]]
    if res["rc"] != 0 or bad or missing:
        raise StepFailed(f"ansible-playbook site.yml exited {res['rc']}"
                         + (f"; failed or unreachable: {', '.join(bad)}" if bad else "")
                         + (f"; not run: {', '.join(missing)}" if missing else ""), res)
    return res


def _bgp(ctx: Context) -> list[dict[str, Any]]:
    if ctx.model.production:
        return []
    from provnet.lab import province

    sessions = province.pe_sessions(ctx.model)
    out = []
    for s in ctx.slugs:
        site = ctx.model.sites[s]
        if site.wan_ce is None:
            continue  # a province-level hall: no BGP, the DC firewall routes it
        peer = sessions.get(str(site.wan_ce.ip), {})
        out.append({"site": s, "peer": str(site.wan_ce.ip), "asn": site.asn, "state": peer.get("state"),
                    "prefixes_received": peer.get("prefixes"), "prefixes_announced": [str(x) for x in site.prefixes]})
    return out


def _verify_site(ctx: Context, s: str, end: float) -> tuple[dict[str, Any], str]:
    """``provnet verify --site s`` until green or the deadline: BGP and registration settle within a few
    timer periods of the push. Returns the site's row and the last run's stderr."""
    while True:
        proc = _run([str(BIN / "provnet"), "verify", "-i", str(ctx.root), "--site", s, "--json"], ctx.env,
                    ctx.timeout, ctx.log_dir / f"verify-{s}.json")
        data = json.loads(proc.stdout) if proc.stdout.strip().startswith("[") else []
        row = next((r for r in data if r.get("site") == s), {})
        if row.get("ok") or time.monotonic() > end:
            return row, proc.stderr
        time.sleep(5)


#: sites of a wave verified at once (each a `provnet verify` process with its own SSH sessions)
VERIFY_PARALLEL = 4


def step_verify(ctx: Context, deadline_s: float = 120.0) -> dict[str, Any]:
    evidence: dict[str, Any] = {"sites": []}
    end = time.monotonic() + deadline_s
    with ThreadPoolExecutor(max_workers=max(1, min(VERIFY_PARALLEL, len(ctx.slugs)))) as pool:
        rows = list(pool.map(lambda s: _verify_site(ctx, s, end), ctx.slugs))
    for s, (row, stderr) in zip(ctx.slugs, rows):
        findings = row.get("findings", [])
        evidence["sites"].append({
            "site": s, "ok": bool(row.get("ok")), "checks": len(findings),
            "passed": sum(1 for f in findings if f.get("ok")),
            "root_cause": row.get("root_cause"),
            "checks_by_layer": sorted({f.get("layer", "") for f in findings}),
            "registration": [f["check"] for f in findings if f.get("layer") == "registration" and f.get("ok")]})
    for s, (row, stderr) in zip(ctx.slugs, rows):
        if not row.get("ok"):
            rc = row.get("root_cause") or {}
            raise StepFailed(f"provnet verify --site {s}: "
                             + (f"{rc.get('host', '')} {rc.get('layer', '')}: {rc.get('check', '')} "
                                f"{rc.get('message', '')}".strip() if rc else stderr.strip()[-300:]
                                or "not green"), evidence)
    evidence["bgp"] = _bgp(ctx)
    down = [b["site"] for b in evidence["bgp"] if b["state"] != "Established"]
    if down:
        raise StepFailed(f"the PE's session with {', '.join(down)} is not Established", evidence)
    return evidence


def step_test_call(ctx: Context) -> dict[str, Any]:
    evidence: dict[str, Any] = {"endpoints": []}
    # one readiness run for the whole wave: its test calls share the probe's slots, at once
    scope = "site " + ",".join(ctx.slugs)
    log = ctx.log_dir / (f"readiness-{ctx.slugs[0]}.json" if len(ctx.slugs) == 1 else "readiness-wave.json")
    proc = _run([str(BIN / "provnet"), "vc", "readiness", "-i", str(ctx.root), "--scope", scope, "--json"],
                ctx.env, ctx.timeout, log)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise StepFailed(f"provnet vc readiness: {proc.stderr.strip()[-300:]}", evidence) from None
    evidence["readiness_run"] = data.get("run_id")
    for ep in data.get("endpoints", []):
        fig = ep.get("figures", {})
        media = fig.get("media", {})
        evidence["endpoints"].append({
            "endpoint": ep.get("endpoint"), "aor": ep.get("aor"), "verdict": ep.get("verdict"),
            "layer": ep.get("layer"), "reason": ep.get("reason"),
            "wan": fig.get("wan", {}), "registration": fig.get("registration", {}),
            "signalling": fig.get("signalling", {}),
            "media": {**{k: media.get(k) for k in ("established", "setup_ms", "loss_pct", "jitter_ms", "rtt_ms",
                                                   "duration_s")},
                      # the call's RTT from whichever stream's RTCP reported one
                      "rtt_ms": media.get("rtt_ms") if media.get("rtt_ms") is not None else
                      next((v.get("rtt_ms") for v in (media.get("audio") or {}, media.get("video") or {})
                            if v.get("rtt_ms") is not None), None)},
            "codecs": {k: (media.get(k) or {}).get("codec") for k in ("audio", "video")}})
    bad = [e for e in evidence["endpoints"] if e["verdict"] not in ("ready", "degraded")]
    if bad or not evidence["endpoints"]:
        raise StepFailed("; ".join(f"{e['endpoint']} not ready at {e['layer']}: {e['reason']}" for e in bad)
                         or "no endpoint in scope", evidence)
    evidence["conference"] = [test_conference(ctx, s) for s in ctx.slugs]
    unheard = [c for c in evidence["conference"] if not c["heard"]]
    if unheard:
        raise StepFailed("; ".join(f"test conference: {c['site']} {c['state']}"
                                   + (f" ({c['reason']})" if c["reason"] else "") + ", not heard on the bridge"
                                   for c in unheard), evidence)
    return evidence


def test_conference(ctx: Context, slug: str, listen_s: float = 3.0) -> dict[str, Any]:
    """A short conference on the bridge with the site alone, as its chair (open microphone): it joins and the
    bridge receives its audio. Through the meetings' own code (provnet.vc.meeting), kept in the history store."""
    from provnet import history
    from provnet.vc import bridge as bridge_mod
    from provnet.vc import meeting as vm

    m, site = ctx.model, ctx.model.sites[slug]
    tpl = vm.Template(f"thu-{slug}", f"Cuộc gọi thử nghiệm thu {site.name}", slug, ((slug, "chair"),))
    t = time.monotonic()
    with history.open_store() as store:
        mt = vm.Meeting.start(m, tpl, bridge_mod.lab_bridge(m), store, None)
        try:
            row = mt.row(slug)
            joined = row.state == "joined"
            if joined:
                time.sleep(listen_s)
                mt.refresh()
                row = mt.row(slug)
            out = {"site": slug, "meeting_id": mt.id, "conference": mt.summary.get("conference"), "state": row.state,
                   "reason": row.reason, "attempts": row.attempts, "receiving": bool(row.media.get("receiving")),
                   "buffer_in": row.media.get("buffer_in"), "listened_s": listen_s if joined else 0}
        finally:
            mt.end()
    out["heard"] = out["state"] == "joined" and out["receiving"]
    out["seconds"] = round(time.monotonic() - t, 1)
    return out


STEPS: list[tuple[int, Callable[[Context], dict[str, Any]]]] = [
    (2, step_lab), (3, step_push), (4, step_verify), (5, step_test_call)]


def run(ctx: Context, progress: Progress | None = None, plan_seconds: float = 0.0) -> tuple[list[StepResult], dict[str, Any] | None]:
    """Steps 1–5 in order, stopping at the first failure; a failure after the push started puts the DC back.

    Returns the step results and, after a failure, the revert's evidence.
    """
    say = progress or (lambda _line: None)
    results = [StepResult(1, "plan", "passed", round(plan_seconds, 2), step_plan(ctx))]
    say(f"[1/6] plan       passed  {plan_seconds:6.1f} s  {len(ctx.plan.devices)} device(s)"
        + (" and the carrier PE" if ctx.plan.carrier else ""))
    for number, fn in STEPS:
        name = NAMES[number]
        if number == 2 and ctx.model.production:
            results.append(StepResult(number, name, "skipped", 0.0, {}, "production: the carrier's work order"))
            say(f"[2/6] lab        skipped (production inventory)")
            continue
        t = time.monotonic()
        try:
            evidence = fn(ctx)
        except StepFailed as exc:
            results.append(StepResult(number, name, "failed", round(time.monotonic() - t, 1), exc.evidence, exc.reason))
        except Exception as exc:  # noqa: BLE001 - any error is this step's failure, recorded
            results.append(StepResult(number, name, "failed", round(time.monotonic() - t, 1), {},
                                      f"{type(exc).__name__}: {exc}"))
        else:
            results.append(StepResult(number, name, "passed", round(time.monotonic() - t, 1), evidence))
        r = results[-1]
        say(f"[{number}/6] {name:<10} {r.status}  {r.seconds:6.1f} s" + (f"  {r.reason}" if r.reason else ""))
        if r.status == "failed":
            revert = put_back(ctx, say) if number >= 3 else None
            return results, revert
    return results, None


def dc_hosts(plan: Plan) -> list[str]:
    """The plan's DC devices (not the new sites' own)."""
    return [d.hostname for d in plan.devices if d.site is None and d.status == "changed"]


def put_back(ctx: Context, say: Progress) -> dict[str, Any]:
    """Re-converge the plan's DC devices against the inventory without the new sites (same playbook)."""
    hosts = dc_hosts(ctx.plan)
    if not hosts:
        return {"hosts": [], "rc": 0}
    t = time.monotonic()
    vault = secrets.vault_paths(ctx.model).directory
    with tempfile.TemporaryDirectory(prefix="provnet-rollback-") as tmp:
        inv = overlay.build(ctx.root, Path(tmp) / "inventory", exclude=set(ctx.slugs))
        res = playbook(ctx, inv, hosts, overlay.env(vault, ctx.env), ctx.log_dir / "put-back.log")
        small = model_mod.load(inv)
        res["digests"] = {h: digest(small, h) for h in hosts}
    res["ok"] = res["rc"] == 0
    say(f"      put back   {'done' if res['ok'] else 'FAILED'}  {time.monotonic() - t:6.1f} s  "
        f"{', '.join(hosts)} re-converged without {', '.join(ctx.slugs)}")
    return res
