"""`provnet site retire`'s change on the network: the DC devices that lose the site, then the lab.

The same comparison as a rollout's plan, the other way round (:func:`provnet.rollout.plan.plan` with
``retire=``), the same push (``ansible-playbook playbooks/site.yml --limit`` over the plan's DC devices,
:func:`provnet.rollout.steps.playbook`). Order: the source of truth is written first (the id is reserved
even if what follows fails), then the DC is converged without the site, then its nodes leave the lab.
A push that fails puts the site's files back and re-converges the same DC devices with the site, so the
DC ends as it was; the caller holds the inventory's lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provnet import siteops
from provnet.rollout import record, steps
from provnet.rollout.plan import Plan


def dc_hosts(p: Plan) -> list[str]:
    """The managed devices that stay and change (the site's own leave with it)."""
    return [d.hostname for d in p.devices if d.status == "changed"]


def execute(root: Path, shown: str, rp: siteops.RetirePlan, p: Plan, say: Callable[[str], None],
            push: bool = True) -> dict[str, Any]:
    """Write the retire, push the DC, take the nodes out of the lab; the evidence of each."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    log_dir = record.rollouts_dir() / f"retire-{rp.slug}-{stamp}.logs"
    hosts = dc_hosts(p)
    out: dict[str, Any] = {"ok": True, "dc_hosts": hosts, "push": None, "lab": {}, "put_back": None}
    t = time.monotonic()
    siteops.apply_retire(rp)
    say(f"[1/3] source     done    {time.monotonic() - t:6.1f} s  {rp.shown_file} → {rp.shown_retired}")
    if push and hosts:
        t = time.monotonic()
        ctx = steps.Context(root, shown, rp.after, p, log_dir, action="retire")
        res = steps.playbook(ctx, root, hosts, dict(os.environ), log_dir / "push.log")
        res["digests"] = {h: steps.digest(rp.after, h) for h in hosts}
        out["push"] = res
        bad = [h for h, r in res["hosts"].items() if r["failed"] or r["unreachable"]]
        failed = res["rc"] != 0 or bool(bad) or set(hosts) - set(res["hosts"])
        say(f"[2/3] push       {'FAILED' if failed else 'passed'}  {res['seconds']:6.1f} s  {', '.join(hosts)}"
            + (f"  (changed {res['changed']})" if not failed else f"  see {res['log']}"))
        if failed:
            out["ok"] = False
            out["reason"] = (f"ansible-playbook site.yml exited {res['rc']}"
                             + (f"; failed or unreachable: {', '.join(bad)}" if bad else ""))
            t = time.monotonic()
            siteops.unretire(rp)
            back = steps.playbook(ctx, root, hosts, dict(os.environ), log_dir / "put-back.log")
            back["ok"] = back["rc"] == 0
            out["put_back"] = back
            say(f"      put back   {'done' if back['ok'] else 'FAILED'}  {time.monotonic() - t:6.1f} s  "
                f"{rp.slug} restored in {rp.shown_file}; {', '.join(hosts)} re-converged with it")
            return out
    else:
        say(f"[2/3] push       skipped" + ("  (--no-push: converge " + ", ".join(hosts) + " later)" if hosts else
                                           "  (no DC device changes)"))
    t = time.monotonic()
    out["lab"] = _lab_leave(rp)
    lab = out["lab"]
    say(f"[3/3] lab        {'done' if not lab.get('error') else 'FAILED'}  {time.monotonic() - t:6.1f} s  "
        + (f"{', '.join(lab['removed'])} left (PE {lab['pe']})" if lab.get("removed") else
           lab.get("error") or "no node of it runs here"))
    if lab.get("error"):
        out["ok"], out["reason"] = False, f"lab: {lab['error']}"
    return out


def _lab_leave(rp: siteops.RetirePlan) -> dict[str, Any]:
    """The site's nodes out of the running lab of this inventory (nothing when none runs)."""
    from provnet.errors import ProvnetError
    from provnet.lab import province

    if rp.after.production or os.geteuid() != 0:
        return {}
    running = province.running_inventory()
    if running is None or running not in province.family(rp.after):
        return {}
    try:
        removed, pe = province.prune(rp.after, list(rp.site.devices))
    except ProvnetError as exc:
        return {"error": str(exc)}
    return {"removed": removed, "pe": pe} if removed else {}
