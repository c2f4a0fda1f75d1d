"""Baseline rules against one device's evidence: pure functions, no SSH here.

The caller collects the evidence and wires the transport (the engine's drivers):

- ``intended``: platform → config text as :mod:`provnet.render` renders it (:func:`intended_texts`);
- ``running``: platform → the running config text the platform's driver returns
  (``get_config()["running"]``; FortiOS ``show full-configuration``, so defaults are visible);
- ``run``: a :class:`Runner`, ``run(command) -> (exit status, stdout)``, running a shell command
  on the device as root (the Linux drivers' ``SSH.run``); ``None`` where the device has no shell;
- ``facts``: getter name → its result (``{"get_facts": {...}}``, shapes of provnet/drivers/models.py);
- ``vars``: the device's hostvars (:func:`provnet.hostvars.device_vars`), for ``{{ … }}`` placeholders;
- ``secrets``: the vault's values (name → value), masked out of every evidence excerpt.

A config rule is checked against the intended *and* the running text: either failing fails it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Iterable, Literal, Mapping, Protocol

from provnet.compliance.backups import mask
from provnet.compliance.rules import (PLACEHOLDER, CommandCheck, ConfigCheck, Expect, FactCheck, LineRule,
                                      Rule, Section)
from provnet.compliance.waivers import Waiver, apply_waivers
from provnet.drivers.cisco_tp import parse_xconfiguration
from provnet.model import Device, Model

Status = Literal["pass", "fail", "waived", "error", "not_applicable"]
EXCERPT_LINES = 8
EXCERPT_CHARS = 600


class Runner(Protocol):
    """Runs one shell command on the device as root: ``(exit status, stdout)``; raises on transport failure."""

    def __call__(self, command: str) -> tuple[int, str]: ...


@dataclass(frozen=True)
class Evidence:
    """What the evaluator may read about one device (see the module docstring)."""

    vars: Mapping[str, Any]
    intended: Mapping[str, str] = field(default_factory=dict)
    running: Mapping[str, str] = field(default_factory=dict)
    run: Runner | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """One rule on one device. ``source``: where it was seen (intended, running, command, fact)."""

    device: str
    rule: str
    status: Status
    evidence: str = ""
    source: str = ""
    note: str = ""
    waiver: Waiver | None = None


class MissingFact(Exception):
    """A placeholder or fact names something the model or the evidence does not have."""


def intended_texts(m: Model, dev: Device) -> dict[str, str]:
    """Platform → intended config text, rendered without secrets (vault references stay)."""
    from provnet import render  # jinja2 and the templates only when a caller renders

    return {r.platform: r.text() for r in render.render_device(m, dev.hostname)}


# ------------------------------------------------------------------ placeholders and matching

def lookup(data: Mapping[str, Any], path: str) -> Any:
    """``a.b.c`` in nested mappings (an integer part indexes a list); :class:`MissingFact` if absent."""
    value: Any = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise MissingFact(f"the model has no '{path}'")
    if value is None:
        raise MissingFact(f"the model has no value for '{path}'")
    return value


def fill(text: str, variables: Mapping[str, Any], how: Literal["regex", "shell", "raw"] = "regex") -> str:
    """Placeholders replaced by the device's values, escaped for a regex or quoted for a shell."""
    def one(m: re.Match[str]) -> str:
        try:
            value = str(lookup(variables, m.group(1)))
        except MissingFact:
            if not m.group(2):
                raise
            return "(?!)" if how == "regex" else ""
        return re.escape(value) if how == "regex" else shlex.quote(value) if how == "shell" else value
    return PLACEHOLDER.sub(one, text)


def _search(pattern: str, text: str, variables: Mapping[str, Any]) -> re.Match[str] | None:
    return re.search(fill(pattern, variables), text, re.MULTILINE)


def _line_of(text: str, m: re.Match[str]) -> str:
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:] if end < 0 else text[start:end]


def _lines(lines: Iterable[str]) -> str:
    lines = [l.rstrip() for l in lines]
    out = "\n".join(lines[:EXCERPT_LINES]) + (f"\n… ({len(lines) - EXCERPT_LINES} more)"
                                              if len(lines) > EXCERPT_LINES else "")
    return out if len(out) <= EXCERPT_CHARS else out[: EXCERPT_CHARS - 1] + "…"


def _each_line(rule: LineRule, text: str, variables: Mapping[str, Any]) -> list[str]:
    """The lines ``select`` picks that do not match ``match``."""
    select = re.compile(fill(rule.select, variables))
    match = re.compile(fill(rule.match, variables))
    return [l for l in text.splitlines() if l.strip() and select.search(l) and not match.search(l)]


# ------------------------------------------------------------------ config checks

def normalise(platform: str, text: str) -> str:
    """TelePresence settings as ``Path: value`` lines (rendered ``xConfiguration P: "v"`` and the
    device's ``*c xConfiguration P: v`` read alike); other platforms as they are."""
    if platform == "cisco_tp":
        return "".join(f"{path}: {value}\n" for path, value in parse_xconfiguration(text).items())
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def blocks(text: str, path: list[str], variables: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(header line, its indented children) for every line matching the whole ``path``, each level
    searched among the lines under the previous one (IOS and FortiOS nest by indentation)."""
    current = [("", text.splitlines())]
    for level in path:
        pattern = re.compile(fill(level, variables))
        found: list[tuple[str, list[str]]] = []
        for _, lines in current:
            for i, line in enumerate(lines):
                if not pattern.search(line.strip()):
                    continue
                depth, children = _indent(line), []
                for nxt in lines[i + 1:]:
                    if nxt.strip() and _indent(nxt) <= depth:
                        break
                    children.append(nxt)
                found.append((line.strip(), children))
        current = found
    return [(header, "\n".join(children) + "\n") for header, children in current]


def _config_problems(check: ConfigCheck, text: str, variables: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, lines seen) of one text; no problem means it passes."""
    problems: list[str] = []
    seen: list[str] = []
    for pattern in check.must_match:
        m = _search(pattern, text, variables)
        if m:
            seen.append(_line_of(text, m))
        else:
            problems.append(f"missing: /{fill(pattern, variables, 'raw')}/")
    for pattern in check.must_not_match:
        m = _search(pattern, text, variables)
        if m:
            problems.append(f"present: {_line_of(text, m).strip()}")
    for line_rule in check.each_line:
        bad = _each_line(line_rule, text, variables)
        problems += [f"not /{fill(line_rule.match, variables, 'raw')}/: {l.strip()}" for l in bad]
    return problems, seen


def _check_text(check: ConfigCheck, text: str, variables: Mapping[str, Any]) -> tuple[bool, str]:
    text = normalise(check.platform, text)
    section: Section | None = check.section
    if section is None:
        problems, seen = _config_problems(check, text, variables)
        return not problems, _lines(problems or seen)
    found = blocks(text, section.path, variables)
    if not found:
        return False, f"no section /{' › '.join(fill(p, variables, 'raw') for p in section.path)}/"
    results = [(header, *_config_problems(check, body, variables)) for header, body in found]
    failing = [(h, p) for h, p, _ in results if p]
    if section.match == "any" and len(failing) < len(results):
        h, _, seen = next(r for r in results if not r[1])
        return True, _lines([h, *seen])
    if section.match == "each" and not failing:
        return True, _lines([h for h, _, _ in results])
    return False, _lines(f"{h}: {p}" for h, problems in failing for p in problems)


def _config(rule: Rule, check: ConfigCheck, dev: Device, ev: Evidence) -> Finding:
    texts = [(src, texts[check.platform]) for src, texts in (("intended", ev.intended), ("running", ev.running))
             if check.platform in texts]
    if not texts:
        return Finding(dev.hostname, rule.id, "error", note=f"no intended or running {check.platform} config")
    results = [(src, *_check_text(check, text, ev.vars)) for src, text in texts]
    failed = [(src, excerpt) for src, ok, excerpt in results if not ok]
    if failed:
        return Finding(dev.hostname, rule.id, "fail", "\n".join(f"[{s}] {e}" for s, e in failed),
                       " and ".join(s for s, _ in failed))
    if check.platform not in ev.running:
        return Finding(dev.hostname, rule.id, "error", results[0][2], "intended",
                       note=f"running {check.platform} config not collected: the live device was not checked")
    return Finding(dev.hostname, rule.id, "pass", results[-1][2], " and ".join(s for s, _, _ in results))


# ------------------------------------------------------------------ command checks

def _expect(e: Expect, out: str, variables: Mapping[str, Any]) -> tuple[bool, str]:
    if e.regex is not None:
        m = _search(e.regex, out, variables)
        return (True, _line_of(out, m)) if m else (False, f"missing: /{fill(e.regex, variables, 'raw')}/")
    if e.absent is not None:
        m = _search(e.absent, out, variables)
        return (False, f"present: {_line_of(out, m).strip()}") if m else (True, "")
    if e.equals is not None:
        want = fill(e.equals, variables, "raw").strip()
        return (True, out.strip()) if out.strip() == want else (False, f"expected {want!r}, got {out.strip()!r}")
    if e.number is not None:
        n = e.number
        values = [m.group(1) for m in re.finditer(fill(n.regex, variables), out, re.MULTILINE)]
        if not values:
            return False, f"no value for /{fill(n.regex, variables, 'raw')}/"
        bad = [v for v in values if not _in_range(v, n.min, n.max)]
        bounds = " and ".join(x for x in (n.min is not None and f">= {n.min:g}", n.max is not None
                                          and f"<= {n.max:g}") if x)
        return (False, f"{', '.join(bad)} not {bounds}") if bad else (True, ", ".join(values))
    assert e.each_line is not None
    bad = _each_line(e.each_line, out, variables)
    return (False, _lines(f"unexpected: {l.strip()}" for l in bad)) if bad else (True, "")


def _in_range(value: str, lo: float | None, hi: float | None) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return (lo is None or number >= lo) and (hi is None or number <= hi)


def _command(rule: Rule, check: CommandCheck, dev: Device, ev: Evidence) -> Finding:
    if ev.run is None:
        return Finding(dev.hostname, rule.id, "error", note="no shell on this device to run the rule's command")
    command = fill(check.command, ev.vars, "shell")
    try:
        rc, out = ev.run(command)
    except Exception as exc:  # noqa: BLE001 - a transport failure is this rule's error, never a crash
        return Finding(dev.hostname, rule.id, "error", source="command", note=f"{type(exc).__name__}: {exc}")
    if check.rc is not None and rc != check.rc:
        return Finding(dev.hostname, rule.id, "fail", _lines(out.splitlines()), "command",
                       note=f"`{command}` exited {rc} (expected {check.rc})")
    results = [_expect(e, out, ev.vars) for e in check.expect]
    failed = [text for ok, text in results if not ok]
    if failed:
        return Finding(dev.hostname, rule.id, "fail", _lines(failed), "command")
    return Finding(dev.hostname, rule.id, "pass", _lines(t for _, t in results if t), "command")


# ------------------------------------------------------------------ fact checks

def _fact(rule: Rule, check: FactCheck, dev: Device, ev: Evidence) -> Finding:
    head, _, rest = check.fact.partition(".")
    source = ev.vars if head == "model" else ev.facts.get(head)
    if source is None:
        return Finding(dev.hostname, rule.id, "error", source="fact", note=f"fact {head} was not collected")
    value = lookup(source, rest)
    shown = f"{check.fact} = {value!r}"
    ok = True
    if check.equals is not None:
        want = fill(check.equals, ev.vars, "raw") if isinstance(check.equals, str) else check.equals
        ok = ok and (str(value) == want if isinstance(want, str) else value == want)
    if check.regex is not None:
        ok = ok and re.search(fill(check.regex, ev.vars), str(value)) is not None
    if check.min is not None or check.max is not None:
        ok = ok and _in_range(str(value), check.min, check.max)
    return Finding(dev.hostname, rule.id, "pass" if ok else "fail", shown, "fact")


# ------------------------------------------------------------------ rules on a device

def applies(rule: Rule, dev: Device, variables: Mapping[str, Any]) -> bool:
    """Does the rule's ``applies_to`` (and a config check's platform) select this device?"""
    a = rule.applies_to
    if a.platforms and not set(a.platforms) & set(dev.platforms):
        return False
    if (a.roles and dev.role not in a.roles) or dev.role in a.except_roles:
        return False
    if isinstance(rule.check, ConfigCheck) and rule.check.platform not in dev.platforms:
        return False
    if a.when is not None:
        try:
            return str(lookup(variables, a.when.var)) == str(a.when.equals)
        except MissingFact:
            return False
    return True


def evaluate(rule: Rule, dev: Device, ev: Evidence) -> Finding:
    """One rule on one device, before waivers; the evidence excerpt has its secrets masked."""
    if not applies(rule, dev, ev.vars):
        return Finding(dev.hostname, rule.id, "not_applicable")
    try:
        if isinstance(rule.check, ConfigCheck):
            finding = _config(rule, rule.check, dev, ev)
        elif isinstance(rule.check, CommandCheck):
            finding = _command(rule, rule.check, dev, ev)
        else:
            finding = _fact(rule, rule.check, dev, ev)
    except MissingFact as exc:
        finding = Finding(dev.hostname, rule.id, "error", note=str(exc))
    return replace(finding, evidence=mask(finding.evidence, ev.secrets), note=mask(finding.note, ev.secrets))


def evaluate_device(rules: Iterable[Rule], dev: Device, ev: Evidence, waivers: Iterable[Waiver] = (),
                    today: date | None = None) -> list[Finding]:
    """Every rule on one device, waivers applied (``today`` decides which have expired)."""
    waivers = list(waivers)
    return [apply_waivers(evaluate(rule, dev, ev), dev, waivers, today or date.today()) for rule in rules]
