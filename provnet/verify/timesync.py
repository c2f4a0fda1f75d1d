"""Time sync of a node: chrony synchronised to the DC NTP, or — just after a (re)start — not yet.

A chrony that has just started needs a few polls before it selects a source; reporting that
as a failure turned the DC red a minute after every ``site.yml``. Within
:data:`CHRONY_SETTLE_S` of the unit's start an unsynchronised chrony is *degraded*; after
that it is failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: seconds after chrony's start during which "not synchronised" is degraded, not failed
CHRONY_SETTLE_S = 600

OK, DEGRADED, FAILED = "ok", "degraded", "failed"
_SYNCHRONISED_LEAP = {"Normal", "Insert second", "Delete second"}  # chronyc's other value: "Not synchronised"


@dataclass(frozen=True)
class TimeSync:
    severity: str  # OK | DEGRADED | FAILED
    expected: str
    observed: str
    message: str = ""


def chrony_started_ago(facts: dict[str, Any]) -> float | None:
    """Seconds since the chrony unit last became active, or None when unknown (never active, no data)."""
    unit = facts.get("chrony_unit") or {}
    try:
        entered_us = int(unit.get("ActiveEnterTimestampMonotonic", "0"))
        uptime_s = float(unit.get("Uptime", ""))
    except ValueError:
        return None
    # /proc/uptime counts time suspended, CLOCK_MONOTONIC does not: the age can only come out too
    # large (towards failed), never too small
    age = uptime_s - entered_us / 1e6
    return age if entered_us > 0 and age >= 0 else None


def assess(facts: dict[str, Any], ntp: str) -> TimeSync:
    """Judge ``chronyc -n tracking`` (``facts["chrony"]``) against the DC NTP address ``ntp``."""
    tracking = facts.get("chrony") or {}
    expected = f"synchronised to {ntp}"
    ref = tracking.get("Reference ID", "")
    if not ref:
        state = (facts.get("units") or {}).get("chrony", {}).get("active")
        return TimeSync(FAILED, expected, "chronyc tracking: no answer" if state == "active"
                        else f"chrony {state}" if state and state != "unknown" else "chrony not running")
    source = m.group(1) if (m := re.search(r"\(([^)]*)\)", ref)) else ""
    synchronised = tracking.get("Leap status") in _SYNCHRONISED_LEAP and not ref.startswith("00000000")
    if synchronised:
        if source == ntp:
            return TimeSync(OK, expected, f"synchronised to {source}")
        return TimeSync(FAILED, expected, f"synchronised to {source or ref}")
    age = chrony_started_ago(facts)
    if age is not None and age < CHRONY_SETTLE_S:
        return TimeSync(DEGRADED, expected, f"not synchronised (reference {ref}), chrony started {age:.0f} s ago",
                        f"time not synchronised yet, chrony started {age:.0f} s ago")
    since = f"chrony started {age:.0f} s ago" if age is not None else "chrony's start time unknown"
    return TimeSync(FAILED, expected, f"not synchronised (reference {ref}), {since}")
