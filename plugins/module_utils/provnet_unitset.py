"""systemd units brought to their state: one `systemctl show` for all, then only the changes
(provnet_units, provnet_host)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Run = Callable[[list[str]], tuple[int, str, str]]
ENABLED = {"enabled", "enabled-runtime", "alias", "static", "indirect", "generated", "transient"}


class UnitError(Exception):
    """Units cannot be read or changed: the message names them."""


def show(run: Run, names: list[str]) -> dict[str, dict[str, str]]:
    """LoadState, ActiveState and UnitFileState of each unit (one systemctl call)."""
    if not names:
        return {}
    rc, out, err = run(["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", *names])
    if rc != 0:
        raise UnitError(f"systemctl show failed (exit {rc}): {err.strip()}")
    # systemctl prints one block per argument, in order
    return {name: dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            for name, block in zip(names, out.strip().split("\n\n"))}


def plan(units: list[dict[str, Any]], off: list[str], states: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """(verb, unit) pairs that bring the units to their wanted state."""
    steps: list[tuple[str, str]] = []
    for u in units:
        st = states[u["name"]]
        if st.get("LoadState") == "not-found":
            raise ValueError(f"unit {u['name']} is not installed here (is its package in the role's packages?)")
        enabled = st.get("UnitFileState", "") in ENABLED
        if u.get("enabled") is True and not enabled:
            steps.append(("enable", u["name"]))
        if u.get("enabled") is False and enabled:
            steps.append(("disable", u["name"]))
        active = st.get("ActiveState") in ("active", "activating", "reloading")
        if u.get("state") == "started" and not active:
            steps.append(("start", u["name"]))
        if u.get("state") == "stopped" and active:
            steps.append(("stop", u["name"]))
    for name in off:
        st = states[name]
        if st.get("LoadState") in ("not-found", "masked"):
            continue
        if st.get("UnitFileState", "") in ENABLED - {"static", "generated", "transient", "indirect"}:
            steps.append(("disable", name))
        if st.get("ActiveState") in ("active", "activating", "reloading"):
            steps.append(("stop", name))
    return steps


def check(units: list[dict[str, Any]]) -> None:
    """Refuse an entry that is not ``{name, enabled: bool, state: started|stopped}``."""
    for i, u in enumerate(units):
        if not u.get("name") or u.get("state") not in (None, "started", "stopped") or \
                u.get("enabled") not in (None, True, False):
            raise UnitError(f"units[{i}] {u!r}: give name, enabled (true/false), state (started/stopped)")


def converge(run: Run, units: list[dict[str, Any]], off: list[str], daemon_reload: bool,
             check_mode: bool) -> list[str]:
    """Bring ``units`` to their state and ``off`` off where installed; return ``unit: verb`` per change."""
    check(units)
    if daemon_reload and not check_mode:
        rc, _, err = run(["systemctl", "daemon-reload"])
        if rc != 0:
            raise UnitError(f"systemctl daemon-reload failed: {err.strip()}")
    names = list(dict.fromkeys([u["name"] for u in units] + off))
    try:
        steps = plan(units, off, show(run, names))
    except ValueError as exc:
        raise UnitError(str(exc)) from None
    done = [f"{n}: {v}" for v, n in steps]
    if not check_mode:
        for verb, name in steps:
            rc, out, err = run(["systemctl", verb, "--", name])
            if rc != 0:
                raise UnitError(f"systemctl {verb} {name} failed (exit {rc}): {(err or out).strip()[-600:]}")
    return done
