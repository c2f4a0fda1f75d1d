"""Baseline rules as data: ``compliance/rules/<family>.yml`` → validated :class:`Rule` objects.

A rule file holds ``rules:``, a list; each rule's id is ``<family>-NNN`` where the family is the
file's name. Every problem of every file (bad YAML, an unknown key, a duplicate id, an unknown
platform or role, a regex that does not compile) is collected and raised at once as
:class:`ComplianceInputError`, before any device is touched. Format: docs/compliance.md.

Patterns and commands may name a fact of the device's slice of the model as
``{{ provnet_services.ntp.address }}`` (a hostvars path, :mod:`provnet.hostvars`); the
evaluator puts the value in (regex-escaped in a pattern, shell-quoted in a command).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from provnet import yamlio
from provnet.errors import InventoryError, Problem
from provnet.schema import PLATFORMS, ROLES

RULES_DIR = Path(__file__).resolve().parents[2] / "compliance" / "rules"
DOCS = "docs/compliance.md"
#: ``{{ a.b }}`` a model fact (absent: the rule is an error); ``{{ a.b? }}`` an optional one (absent: in a
#: regex, an alternative that never matches — a province without a management zone has none to allow)
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(\?)?\s*\}\}")
RULE_ID = re.compile(r"^(?P<family>[a-z][a-z0-9_]*)-\d{3}$")
CLAUSE_PREFIX = "TCVN 11930:2017"
CIS_ID = re.compile(r"^\d+(\.\d+)+$")
Severity = Literal["low", "medium", "high", "critical"]


class ComplianceInputError(InventoryError):
    """A rule or waiver file is invalid; carries every problem found, not just the first."""


def _pattern(value: str) -> str:
    """A regex as written in a rule: it must compile once its placeholders hold a value."""
    try:
        re.compile(PLACEHOLDER.sub("0", value), re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression ({exc})") from None
    return value


def _patterns(values: list[str]) -> list[str]:
    return [_pattern(v) for v in values]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Title(Strict):
    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)


class When(Strict):
    """The rule applies only when a fact of the model (hostvars path) has this value."""

    var: str
    equals: str | int | bool


def _known(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    for v in values:
        if v not in allowed:
            raise ValueError(f"unknown {what} '{v}' (known: {', '.join(allowed)})")
    return values


class AppliesTo(Strict):
    """A device matches when one of its platforms is listed (or none are) and so is its role."""

    platforms: list[str] = []
    roles: list[str] = []
    except_roles: list[str] = []
    when: When | None = None

    @field_validator("platforms")
    @classmethod
    def _known_platforms(cls, values: list[str]) -> list[str]:
        return _known(values, PLATFORMS, "platform")

    @field_validator("roles", "except_roles")
    @classmethod
    def _known_roles(cls, values: list[str]) -> list[str]:
        return _known(values, ROLES, "role")

    @model_validator(mode="after")
    def _something(self) -> "AppliesTo":
        if not self.platforms and not self.roles:
            raise ValueError("names no platform and no role")
        return self


class LineRule(Strict):
    """Every line that ``select`` finds must also match ``match`` (both searched, not anchored)."""

    select: str = "."
    match: str

    _p = field_validator("select", "match")(lambda v: _pattern(v))


class Section(Strict):
    """Where in an indented config (IOS, FortiOS) the patterns apply: one regex per level of the
    path, matched against a line's text without its indentation; ``each`` block or ``any`` block."""

    path: list[str] = Field(min_length=1)
    match: Literal["each", "any"] = "each"

    _p = field_validator("path")(lambda v: _patterns(v))


class ConfigCheck(Strict):
    """Patterns against the config text of one platform, intended and running alike."""

    type: Literal["config"]
    platform: str
    section: Section | None = None
    must_match: list[str] = []
    must_not_match: list[str] = []
    each_line: list[LineRule] = []

    _p = field_validator("must_match", "must_not_match")(lambda v: _patterns(v))

    @field_validator("platform")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PLATFORMS:
            raise ValueError(f"unknown platform '{v}' (known: {', '.join(PLATFORMS)})")
        return v

    @model_validator(mode="after")
    def _something(self) -> "ConfigCheck":
        if not (self.must_match or self.must_not_match or self.each_line):
            raise ValueError("checks nothing: give must_match, must_not_match or each_line")
        return self


class Number(Strict):
    """Group 1 of every match of ``regex`` is a number within [min, max]; no match is a failure."""

    regex: str
    min: float | None = None
    max: float | None = None

    _p = field_validator("regex")(lambda v: _pattern(v))

    @model_validator(mode="after")
    def _bounded(self) -> "Number":
        if self.min is None and self.max is None:
            raise ValueError("gives neither min nor max")
        if re.compile(PLACEHOLDER.sub("0", self.regex)).groups < 1:
            raise ValueError("regex has no group to read the number from")
        return self


class Expect(Strict):
    """One expectation on a command's output; exactly one key."""

    regex: str | None = None
    absent: str | None = None
    equals: str | None = None
    number: Number | None = None
    each_line: LineRule | None = None

    _p = field_validator("regex", "absent")(lambda v: v if v is None else _pattern(v))

    @model_validator(mode="after")
    def _one(self) -> "Expect":
        given = [k for k in ("regex", "absent", "equals", "number", "each_line") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"needs exactly one of regex, absent, equals, number, each_line (got {given or 'none'})")
        return self


class CommandCheck(Strict):
    """A shell command run on the device (as root) and what its output must show."""

    type: Literal["command"]
    command: str = Field(min_length=1)
    rc: int | None = 0  # None: any exit status
    expect: list[Expect] = Field(min_length=1)


class FactCheck(Strict):
    """A fact (``get_facts.hostname``, or ``model.<hostvars path>``) against an expected value."""

    type: Literal["fact"]
    fact: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
    equals: str | int | float | bool | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    _p = field_validator("regex")(lambda v: v if v is None else _pattern(v))

    @model_validator(mode="after")
    def _something(self) -> "FactCheck":
        if self.equals is None and self.regex is None and self.min is None and self.max is None:
            raise ValueError("expects nothing: give equals, regex, min or max")
        return self


Check = Annotated[Union[ConfigCheck, CommandCheck, FactCheck], Field(discriminator="type")]


class Rule(Strict):
    id: str
    title: Title
    clause: str
    cis: str | None = None
    applies_to: AppliesTo
    check: Check
    severity: Severity
    remediation: str = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError("must look like <family>-NNN, e.g. ssh-001")
        return v

    @field_validator("clause")
    @classmethod
    def _clause(cls, v: str) -> str:
        if not v.startswith(CLAUSE_PREFIX):
            raise ValueError(f"must cite the standard, starting '{CLAUSE_PREFIX}'")
        return v

    @field_validator("cis")
    @classmethod
    def _cis(cls, v: str | None) -> str | None:
        if v is not None and not CIS_ID.match(v):
            raise ValueError("must be a CIS Debian Linux 12 benchmark id such as 5.1.20")
        return v

    @property
    def family(self) -> str:
        return self.id.rsplit("-", 1)[0]


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("config", "command", "fact") and out.endswith("check"):
            continue  # the union's tag pydantic adds to the path
        else:
            out += ("." if out else "") + str(part)
    return out


def _fix(message: str) -> str:
    if message.startswith(("unknown platform", "unknown role")):
        return "use a name listed (provnet/schema.py PLATFORMS, ROLES)"
    if message.startswith("invalid regular expression"):
        return "correct the pattern (Python re syntax; a literal . ( [ { needs a backslash)"
    return f"correct the value ({DOCS})"


def validation_problems(exc: ValidationError, shown: str, obj: str) -> list[Problem]:
    """pydantic's errors as one :class:`Problem` each, the object named by its place in the file."""
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        name = _where(loc)
        where = f"{obj}.{name}" if name else obj
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(Problem(shown, where, f"unknown key '{loc[-1]}'",
                                    f"remove it or rename it to a key of the format ({DOCS})"))
        elif kind == "missing":
            problems.append(Problem(shown, where, f"missing required field '{loc[-1]}'",
                                    f"add '{loc[-1]}' ({DOCS})"))
        elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
            problems.append(Problem(shown, where, "check.type must be config, command or fact",
                                    "set check.type to one of config, command, fact"))
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            problems.append(Problem(shown, where, f"{yamlio.excerpt(err.get('input'))} is not allowed",
                                    f"use one of {expected}"))
        elif kind == "value_error":
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
            problems.append(Problem(shown, where, msg, _fix(msg)))
        else:
            problems.append(Problem(shown, where, f"{err['msg']}, got {yamlio.excerpt(err.get('input'))}",
                                    f"correct the value ({DOCS})"))
    return problems


def read_yaml(path: Path, shown: str, problems: list[Problem]) -> Any:
    """A file through the project's safe loader; a refusal becomes a problem (and ``None``)."""
    try:
        return yamlio.load(path)
    except yamlio.YamlLimitError as exc:
        problems.append(Problem(shown, exc.obj, str(exc), exc.fix))
    except yamlio.YamlSyntaxError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        problems.append(Problem(shown, "file", f"YAML syntax error{where}: {exc}", "correct the YAML syntax"))
    except OSError as exc:
        problems.append(Problem(shown, "file", f"cannot read: {exc.strerror}", "check the path and permissions"))
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _file_rules(path: Path, problems: list[Problem]) -> list[Rule]:
    shown = _shown(path)
    family = path.stem
    data = read_yaml(path, shown, problems)
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(data["rules"], list):
        problems.append(Problem(shown, "file", "must hold one key, 'rules', a list of rules",
                                f"write `rules:` followed by `- id: {family}-001 …` entries ({DOCS})"))
        return []
    out = []
    for i, raw in enumerate(data["rules"]):
        rid = raw.get("id") if isinstance(raw, dict) else None
        obj = f"rule {rid}" if isinstance(rid, str) and rid else f"rules[{i}]"
        if not isinstance(raw, dict):
            problems.append(Problem(shown, obj, "is not a mapping", "write the rule as `key: value` pairs"))
            continue
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, shown, obj))
            continue
        if rule.family != family:
            problems.append(Problem(shown, obj, f"id belongs to family '{rule.family}', not to this file's "
                                    f"'{family}'", f"rename it {family}-NNN or move it to {rule.family}.yml"))
            continue
        out.append(rule)
    return out


def load_rules(directory: Path | str = RULES_DIR) -> dict[str, Rule]:
    """Every rule of every ``*.yml`` file in ``directory``, by id; raises :class:`ComplianceInputError`."""
    directory = Path(directory)
    problems: list[Problem] = []
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise ComplianceInputError([Problem(_shown(directory), "folder", "holds no rule file (*.yml)",
                                            f"add compliance/rules/<family>.yml ({DOCS})")])
    rules: dict[str, Rule] = {}
    where: dict[str, str] = {}
    for path in files:
        for rule in _file_rules(path, problems):
            if rule.id in rules:
                problems.append(Problem(_shown(path), f"rule {rule.id}", f"duplicate id (also in {where[rule.id]})",
                                        "give the rule the next free number of its family"))
                continue
            rules[rule.id] = rule
            where[rule.id] = _shown(path)
    if problems:
        raise ComplianceInputError(problems)
    return rules
