# Ansible action plugin: converge one network device through provnet's engine (runs on the controller).
from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

ARGS = {"platforms": list, "revert_in": int, "ticket": str}


class ActionModule(ActionBase):
    """Diff (check mode) or commit (normal mode) the device's intended config; --diff shows it, masked."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGS)

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        for key, value in args.items():
            if not isinstance(value, ARGS[key]):
                raise AnsibleActionFail(f"provnet_config: {key} must be a {ARGS[key].__name__}, got {value!r}")
        from provnet import model
        from provnet.engine import device
        from provnet.errors import ProvnetError

        host = task_vars.get("inventory_hostname")
        inv = task_vars.get("inventory_dir")
        try:
            if not self._play_context.check_mode:
                # once per playbook run: a helper holds the inventory's lock until ansible-playbook (the
                # workers' parent) exits; a rollout that runs this playbook covers it through PROVNET_LOCK
                from provnet import lock

                lock.hold_for_run(inv, os.getppid())
            m = model.load_cached(inv)
            ctx = device.Context.build(m, args.get("ticket", ""), loaded=self._loaded_vault(task_vars))
            res = device.converge(ctx, host, commit=not self._play_context.check_mode,
                                  revert_in=args.get("revert_in", 60),
                                  platforms=tuple(args["platforms"]) if args.get("platforms") else None)
        except ProvnetError as exc:
            return {**result, "failed": True, "msg": f"provnet: {exc}"}
        diffs = [p.diff for p in res.platforms if p.diff]
        result.update(
            changed=res.status in ("changed", "would-change"),
            failed=res.status in ("failed", "rolled-back"),
            provnet=res.as_dict(),
            msg="; ".join(f"{p.platform}: {p.status}" + (f" ({p.error})" if p.error else "") for p in res.platforms)
            or "no platform with templates",
        )
        if self._play_context.diff and diffs:
            result["diff"] = [{"before_header": f"{host} running", "after_header": f"{host} intended",
                               "prepared": d} for d in diffs]
        return result

    @staticmethod
    def _loaded_vault(task_vars: dict) -> dict | None:  # type: ignore[type-arg]
        """The vault values playbooks/tasks/vault.yml opened once for this run, when it ran.

        Each host's task runs in a forked worker: without them every device decrypts the vault again.
        """
        try:
            loaded = task_vars["hostvars"]["localhost"]["_provnet_vault"]
        except Exception:  # not opened in this run (a play without tasks/vault.yml): Context decrypts it
            return None
        return dict(loaded) if isinstance(loaded, dict) else None
