"""Waivers: a rule accepted as failing on a device, a site or a role, for a reason, until a date.

``compliance/waivers.yml`` holds ``waivers:``, a list; each names one rule id and exactly one of
``device``, ``site`` (slug) or ``role``, with a ``reason``, a ``ticket`` and an ``expires`` date.
An unknown rule id, device, site or role, or a waiver without an expiry, is refused at load
(:class:`~provnet.compliance.rules.ComplianceInputError`) before any device is touched. A failing
finding a waiver covers becomes ``waived``; once the waiver has expired, it is a failure again,
with the expired waiver named.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, TypeVar

from pydantic import Field, ValidationError, model_validator

from provnet.compliance.rules import DOCS, ComplianceInputError, Rule, Strict, read_yaml, validation_problems
from provnet.errors import Problem
from provnet.schema import ROLES

if TYPE_CHECKING:
    from provnet.compliance.evaluate import Finding
    from provnet.model import Device, Model

WAIVERS_FILE = Path(__file__).resolve().parents[2] / "compliance" / "waivers.yml"
F = TypeVar("F", bound="Finding")


class Waiver(Strict):
    rule: str
    device: str | None = None
    site: str | None = None
    role: str | None = None
    reason: str = Field(min_length=1)
    ticket: str = Field(min_length=1)
    expires: date

    @model_validator(mode="after")
    def _one_target(self) -> "Waiver":
        given = [k for k in ("device", "site", "role") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of device, site, role (got {', '.join(given) or 'none'})")
        return self

    @property
    def target(self) -> str:
        return next(f"{k} {getattr(self, k)}" for k in ("device", "site", "role") if getattr(self, k) is not None)

    def covers(self, dev: "Device") -> bool:
        return (self.device == dev.hostname or (self.site is not None and self.site == dev.site)
                or self.role == dev.role)

    def expired(self, today: date) -> bool:
        """A waiver holds through its expiry date and ends the day after."""
        return today > self.expires


def _fixes(exc: ValidationError, shown: str, obj: str) -> list[Problem]:
    out = []
    for p in validation_problems(exc, shown, obj):
        if p.message == "missing required field 'expires'":
            p = Problem(p.file, p.obj, "has no expiry date", "add 'expires: YYYY-MM-DD': every waiver ends "
                        "(renew it with a new ticket when it must last longer)")
        out.append(p)
    return out


def load_waivers(path: Path | str, rules: Mapping[str, Rule], model: "Model | None" = None) -> list[Waiver]:
    """The waivers of ``path`` (none when the file does not exist), checked against the rules and,
    when given, the model's devices and sites; raises :class:`ComplianceInputError`."""
    path = Path(path)
    if not path.exists():
        return []
    shown = str(path)
    problems: list[Problem] = []
    data = read_yaml(path, shown, problems)
    if problems:
        raise ComplianceInputError(problems)
    if data is None or data == {"waivers": None}:
        return []
    if not isinstance(data, dict) or set(data) != {"waivers"} or not isinstance(data["waivers"], list):
        raise ComplianceInputError([Problem(shown, "file", "must hold one key, 'waivers', a list",
                                            f"write `waivers: []` or a list of waivers ({DOCS})")])
    out = []
    for i, raw in enumerate(data["waivers"]):
        rid = raw.get("rule") if isinstance(raw, dict) else None
        obj = f"waivers[{i}] ({rid})" if isinstance(rid, str) else f"waivers[{i}]"
        try:
            w = Waiver.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_fixes(exc, shown, obj))
            continue
        if w.rule not in rules:
            problems.append(Problem(shown, obj, f"unknown rule id '{w.rule}'",
                                    "use the id of a rule in compliance/rules/*.yml"))
        if w.role is not None and w.role not in ROLES:
            problems.append(Problem(shown, obj, f"unknown role '{w.role}'", f"use one of {', '.join(ROLES)}"))
        if model is not None and w.device is not None and w.device not in model.devices:
            problems.append(Problem(shown, obj, f"unknown device '{w.device}'",
                                    "use a hostname of the inventory (provnet inventory show)"))
        if model is not None and w.site is not None and w.site not in model.sites:
            problems.append(Problem(shown, obj, f"unknown site '{w.site}'", "use a site slug of the inventory"))
        out.append(w)
    if problems:
        raise ComplianceInputError(problems)
    return out


def apply_waivers(finding: F, dev: "Device", waivers: Iterable[Waiver], today: date) -> F:
    """A failing finding a current waiver covers becomes ``waived``; under an expired one it stays
    ``fail`` and says so. Other statuses are left alone (an error is never waived)."""
    if finding.status != "fail":
        return finding
    matching = [w for w in waivers if w.rule == finding.rule and w.covers(dev)]
    current = [w for w in matching if not w.expired(today)]
    if current:
        w = max(current, key=lambda w: w.expires)
        return replace(finding, status="waived", waiver=w,
                       note=f"waived until {w.expires.isoformat()} ({w.ticket}): {w.reason}")
    if matching:
        w = max(matching, key=lambda w: w.expires)
        return replace(finding, waiver=w, note=f"waiver {w.ticket} expired on {w.expires.isoformat()}: {w.reason}")
    return finding
