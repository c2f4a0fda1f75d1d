"""The SOC's detections as Sigma rules: ``soc/rules/*.yml`` → SQL for the SOC node, queries for OpenSearch.

Stages: **load** (every rule file, YAML documents → pySigma rules; the province's parameters put in
where a rule names ``%parameter%``) → **validate** (every field a rule names is one of
:data:`provnet.soc.fields.FIELDS`, the logsource is ``product: provnet`` with a known dataset as
``service``; every problem of every file is collected and raised at once as :class:`SigmaRuleError`)
→ **compile** with pySigma:

- :func:`compile_sqlite` — pySigma-backend-sqlite, correlations included (that backend compiles
  ``event_count``, ``value_count``, ``temporal`` and ``temporal_ordered`` into one SQL query of window
  functions), into ``compiled.json``: what the SOC node's program (``roles/soc_collector/files/
  provnet_soc.py``, stdlib only) runs, so the node needs no pySigma;
- :func:`compile_opensearch` — pySigma-backend-opensearch (Lucene for each rule's events, PPL for
  correlations) and :func:`index_template` for a province that outgrows one SOC node.

The checks Sigma cannot express (a site gone silent, an admin login from an address new for that
host) are provnet built-ins, declared in ``soc/builtins.yml`` with their thresholds and run by the
node's program. Formats and how to add a rule: docs/soc.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sigma.backends.opensearch import OpenSearchPPLBackend, OpensearchLuceneBackend
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationTimespan
from sigma.exceptions import SigmaError
from sigma.modifiers import SigmaExpandModifier, SigmaTimestampModifier
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import AddConditionTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule

from provnet import yamlio
from provnet.errors import InventoryError, Problem, ProvnetError
from provnet.soc.fields import FIELDS

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "soc" / "rules"
BUILTINS_FILE = ROOT / "soc" / "builtins.yml"
DOCS = "docs/soc.md"
FORMAT = 1

#: the normaliser's sources (``event.dataset``, as listed in fields.py's description of it): a rule's
#: ``logsource.service``. ``unparsed`` is what the normaliser gives a line it could not parse.
DATASETS: tuple[str, ...] = ("sshd", "sudo", "nftables", "kamailio", "chrony", "systemd", "baresip",
                             "provnet.engine", "unparsed")

#: the SOC store's table, timestamp and event id (provnet_soc.py creates them with FIELDS' names)
TABLE = "events"
TIMESTAMP = "@timestamp"
EVENT_ID = "event.id"
#: a plain rule's alerts: one per host.name, events of the same rule and host less than this apart
#: are one alert (a correlation uses its own timespan)
MERGE_SECONDS = 3600

#: the province's settings a rule may name as ``%name%`` (defaults; ``compile … --param name=value``)
DEFAULT_PARAMETERS: dict[str, str] = {
    "change_window": "08:00-17:00",  # local time, [start, end): commits inside it are expected
    "utc_offset": "+07:00",          # the province's offset from UTC (Vietnam: +07:00, no DST)
}
PLACEHOLDER = re.compile(r"^%([a-z][a-z0-9_]*)%$")
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_FIX_FIELD = f"use one of provnet/soc/fields.py's names, or add the field there and to the normaliser ({DOCS})"


class SigmaRuleError(InventoryError):
    """A rule file, the built-ins file or a parameter is invalid; carries every problem found."""


@dataclass
class Builtin:
    """One provnet built-in check of ``soc/builtins.yml``."""

    id: str
    name: str
    title: str
    level: str
    check: str
    description: str
    group_by: list[str]
    settings: dict[str, Any]
    file: str


@dataclass
class RuleSet:
    """The loaded, validated rules: pySigma's collection, each rule's file, the built-ins, the parameters."""

    collection: SigmaCollection
    files: dict[int, str]
    builtins: list[Builtin]
    parameters: dict[str, Any]
    placeholders: dict[str, Any] = field(default_factory=dict)

    def file_of(self, rule: SigmaRule | SigmaCorrelationRule) -> str:
        return self.files.get(id(rule), "?")


# ---------------------------------------------------------------------------------------------- load


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def resolve_parameters(given: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, Any], list[Problem]]:
    """The province's parameters and the placeholder values they give (``change_window_hours``)."""
    params = dict(DEFAULT_PARAMETERS)
    problems: list[Problem] = []
    for key, value in (given or {}).items():
        if key not in DEFAULT_PARAMETERS:
            problems.append(Problem("parameters", key, "is not a SOC rule parameter",
                                    f"use one of {', '.join(DEFAULT_PARAMETERS)} ({DOCS})"))
        else:
            params[key] = str(value)
    placeholders: dict[str, Any] = {}
    window, offset = _WINDOW.match(params["change_window"]), _OFFSET.match(params["utc_offset"])
    if not window or window.group(2) != "00" or window.group(4) != "00" \
            or not 0 <= int(window.group(1)) <= 23 or not 0 <= int(window.group(3)) <= 24 \
            or int(window.group(1)) == int(window.group(3)):
        problems.append(Problem("parameters", "change_window",
                                f"'{params['change_window']}' is not a window of whole hours HH:00-HH:00",
                                "write it like 08:00-17:00 (local time; rules compare the commit's hour)"))
    if not offset or offset.group(3) != "00" or int(offset.group(2)) > 14:
        problems.append(Problem("parameters", "utc_offset",
                                f"'{params['utc_offset']}' is not a whole-hour offset ±HH:00",
                                "write it like +07:00"))
    if not problems:
        start, end = int(window.group(1)), int(window.group(3))  # type: ignore[union-attr]
        shift = int(offset.group(2)) * (1 if offset.group(1) == "+" else -1)  # type: ignore[union-attr]
        local = range(start, end) if start < end else [*range(start, 24), *range(0, end)]
        placeholders["change_window_hours"] = sorted((h - shift) % 24 for h in local)
    return params, placeholders, problems


def _fill(node: Any, placeholders: dict[str, Any], where: str, shown: str, problems: list[Problem],
          expand: bool = False) -> Any:
    """A rule's detection with ``%name%`` values replaced by the parameter's value (not under ``|expand``)."""
    if isinstance(node, dict):
        return {k: _fill(v, placeholders, where, shown, problems, "|expand" in str(k)) for k, v in node.items()}
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            value = _fill(item, placeholders, where, shown, problems, expand)
            out.extend(value if isinstance(value, list) and isinstance(item, str) else [value])
        return out
    if isinstance(node, str) and not expand and (m := PLACEHOLDER.match(node)):
        if m.group(1) in placeholders:
            return copy.deepcopy(placeholders[m.group(1)])
        problems.append(Problem(shown, where, f"names the parameter %{m.group(1)}%, which provnet does not know "
                                f"(known: {', '.join(f'%{p}%' for p in sorted(placeholders)) or 'none'})",
                                f"use a known parameter or add it to provnet/soc/sigma.py ({DOCS})"))
    return node


def _documents(path: Path, shown: str, problems: list[Problem]) -> list[tuple[int, Any]]:
    """A rule file's YAML documents (``---`` separated) with the line each starts at."""
    try:
        raw = path.read_bytes()
        text = yamlio.decode(raw)
    except yamlio.YamlLimitError as exc:
        problems.append(Problem(shown, exc.obj, str(exc), exc.fix))
        return []
    except OSError as exc:
        problems.append(Problem(shown, "file", f"cannot read: {exc.strerror}", "check the path and permissions"))
        return []
    docs: list[tuple[int, Any]] = []
    chunk: list[str] = []
    start = 1
    lines = text.splitlines(keepends=True)
    for number, line in enumerate([*lines, "---\n"], start=1):
        if line.rstrip() == "---":
            body = "".join(chunk)
            if body.strip() and not all(not x.strip() or x.lstrip().startswith("#") for x in chunk):
                try:
                    docs.append((start, yamlio.loads(body)))
                except yamlio.YamlSyntaxError as exc:
                    at = f" at line {start + exc.line - 1}" if exc.line else ""
                    problems.append(Problem(shown, "file", f"YAML syntax error{at}: {exc}", "correct the YAML syntax"))
                except yamlio.YamlLimitError as exc:
                    problems.append(Problem(shown, exc.obj, str(exc), exc.fix))
            chunk, start = [], number + 1
        else:
            chunk.append(line)
    return docs


def _detection_fields(detection: SigmaDetection | SigmaDetectionItem) -> list[SigmaDetectionItem]:
    if isinstance(detection, SigmaDetectionItem):
        return [detection]
    items: list[SigmaDetectionItem] = []
    for item in detection.detection_items:
        items.extend(_detection_fields(item))
    return items


def _rule_problems(rule: SigmaRule | SigmaCorrelationRule, shown: str) -> list[Problem]:
    """Fields outside FIELDS, a logsource that is not provnet's, keyword searches."""
    obj = f"rule '{rule.title}'"
    problems: list[Problem] = []
    known = ", ".join(FIELDS)
    named: list[str] = []
    if isinstance(rule, SigmaRule):
        ls = rule.logsource
        if ls.product != "provnet" or ls.service not in DATASETS or ls.category is not None:
            problems.append(Problem(shown, obj, f"logsource is {{product: {ls.product}, service: {ls.service}"
                                    f"{', category: ' + ls.category if ls.category else ''}}}, not provnet's",
                                    f"write `logsource: {{product: provnet, service: <dataset>}}` with a dataset "
                                    f"of {', '.join(DATASETS)}"))
        for detection in rule.detection.detections.values():
            for item in _detection_fields(detection):
                if item.field is None:
                    words = ", ".join(repr(str(v)) for v in item.value)
                    problems.append(Problem(shown, obj, f"searches the keyword(s) {words} without a field "
                                            "(the SOC store has no full-text index)",
                                            f"name the field the value is in ({known})"))
                else:
                    named.append(item.field)
                    if any(issubclass(m, SigmaExpandModifier) for m in item.modifiers):
                        problems.append(Problem(shown, obj, f"uses |expand on '{item.field}' (pySigma placeholders)",
                                                f"write the parameter as a plain value '%name%': provnet fills it "
                                                f"at compile time ({DOCS})"))
        named.extend(rule.fields or [])
    else:
        named.extend(rule.group_by or [])
        fieldref = getattr(rule.condition, "fieldref", None)
        named.extend([fieldref] if isinstance(fieldref, str) else list(fieldref or []))
        for alias in rule.aliases:
            named.extend(alias.mapping.values())
    for name in dict.fromkeys(named):
        if name not in FIELDS and not (not isinstance(rule, SigmaRule) and name in {a.alias for a in rule.aliases}):
            problems.append(Problem(shown, obj, f"names the field '{name}', which is not a normalised event field "
                                    f"(known: {known})", _FIX_FIELD))
    return problems


def _builtins(path: Path, names: dict[str, SigmaRule | SigmaCorrelationRule],
              problems: list[Problem]) -> list[Builtin]:
    shown = _shown(path)
    if not path.exists():
        return []
    try:
        data = yamlio.load(path)
    except (yamlio.YamlSyntaxError, yamlio.YamlLimitError) as exc:
        problems.append(Problem(shown, "file", f"YAML error: {exc}", "correct the YAML"))
        return []
    if not isinstance(data, dict) or set(data) != {"checks"} or not isinstance(data["checks"], list):
        problems.append(Problem(shown, "file", "must hold one key, 'checks', a list", f"see {DOCS}"))
        return []
    required = {"silence": {"threshold"}, "new-value": {"rule", "field", "history"},
                "unanswered": {"rule", "answer", "within"}}
    common = {"id", "name", "title", "level", "check", "description", "group-by"}
    optional = {"silence": {"thresholds", "history"}, "new-value": set(), "unanswered": set()}
    out = []
    for i, raw in enumerate(data["checks"]):
        obj = f"check '{raw.get('name')}'" if isinstance(raw, dict) and raw.get("name") else f"checks[{i}]"
        if not isinstance(raw, dict):
            problems.append(Problem(shown, obj, "is not a mapping", "write the check as `key: value` pairs"))
            continue
        kind = raw.get("check")
        if kind not in required:
            problems.append(Problem(shown, obj, f"check '{kind}' is not a provnet built-in",
                                    f"use one of {', '.join(required)} ({DOCS})"))
            continue
        keys = set(raw)
        missing = sorted((common | required[kind]) - keys)
        unknown = sorted(keys - common - required[kind] - optional[kind])
        if missing or unknown:
            problems.append(Problem(shown, obj, f"missing {missing} / unknown {unknown} keys",
                                    f"a {kind} check has {sorted(common | required[kind])} ({DOCS})"))
            continue
        settings: dict[str, Any] = {}
        for key in ("threshold", "history", "within"):
            if key in raw:
                try:
                    settings[f"{key}_seconds"] = SigmaCorrelationTimespan(str(raw[key])).seconds
                except SigmaError as exc:
                    problems.append(Problem(shown, obj, f"{key}: {exc}", "write a time span like 30m, 2h, 30d"))
        if kind == "silence":
            per_site = raw.get("thresholds") or {}
            settings["thresholds"] = {}
            for site, span in per_site.items() if isinstance(per_site, dict) else []:
                try:
                    settings["thresholds"][str(site)] = SigmaCorrelationTimespan(str(span)).seconds
                except SigmaError as exc:
                    problems.append(Problem(shown, obj, f"thresholds.{site}: {exc}", "write a time span like 2h"))
        fields = list(raw["group-by"] or []) + ([raw["field"]] if kind == "new-value" else [])
        for name in fields:
            if name not in FIELDS:
                problems.append(Problem(shown, obj, f"names the field '{name}', which is not a normalised event "
                                        f"field (known: {', '.join(FIELDS)})", _FIX_FIELD))
        if kind == "new-value":
            settings["field"] = raw["field"]
            ref = names.get(str(raw["rule"]))
            if not isinstance(ref, SigmaRule):
                problems.append(Problem(shown, obj, f"rule '{raw['rule']}' is not a (non-correlation) Sigma rule "
                                        "of soc/rules", "name the base rule whose events the check watches"))
            settings["rule"] = str(raw["rule"])
        if kind == "unanswered":
            for key in ("rule", "answer"):
                ref = names.get(str(raw[key]))
                if not isinstance(ref, SigmaRule):
                    problems.append(Problem(shown, obj, f"{key} '{raw[key]}' is not a (non-correlation) Sigma rule "
                                            "of soc/rules", "name the base rules of the event and of its answer"))
                settings[key] = str(raw[key])
        out.append(Builtin(str(raw["id"]), str(raw["name"]), str(raw["title"]), str(raw["level"]), kind,
                           str(raw["description"]).strip(), list(raw["group-by"]), settings, shown))
    return out


def load(directory: Path | str = RULES_DIR, parameters: dict[str, str] | None = None,
         builtins: Path | str | None = BUILTINS_FILE) -> RuleSet:
    """Every rule of every ``*.yml`` file of ``directory``, validated; raises :class:`SigmaRuleError`."""
    directory = Path(directory)
    params, placeholders, problems = resolve_parameters(parameters)
    files = sorted(directory.glob("*.yml"))
    if not files:
        raise SigmaRuleError([Problem(_shown(directory), "folder", "holds no rule file (*.yml)",
                                      f"add soc/rules/<name>.yml ({DOCS})")])
    rules: list[SigmaRule | SigmaCorrelationRule] = []
    where: dict[int, str] = {}
    seen: dict[str, str] = {}
    for path in files:
        shown = _shown(path)
        for line, doc in _documents(path, shown, problems):
            obj = f"rule '{doc.get('title')}'" if isinstance(doc, dict) and doc.get("title") \
                else f"document at line {line}"
            if not isinstance(doc, dict):
                problems.append(Problem(shown, obj, "is not a mapping", "write the rule as Sigma YAML"))
                continue
            if "detection" in doc:
                before = len(problems)
                doc = {**doc, "detection": _fill(doc["detection"], placeholders, obj, shown, problems)}
                if len(problems) > before:
                    continue
            try:
                if "correlation" in doc:
                    rule: SigmaRule | SigmaCorrelationRule = SigmaCorrelationRule.from_dict(doc)
                else:
                    rule = SigmaRule.from_dict(doc)
            except SigmaError as exc:
                problems.append(Problem(shown, obj, f"is not a valid Sigma rule: {exc}",
                                        f"correct the rule (Sigma specification; {DOCS})"))
                continue
            except (TypeError, AttributeError, KeyError, ValueError) as exc:
                problems.append(Problem(shown, obj, f"is not a valid Sigma rule: {type(exc).__name__}: {exc}",
                                        f"correct the rule (Sigma specification; {DOCS})"))
                continue
            if rule.id is None or rule.name is None or rule.level is None:
                problems.append(Problem(shown, obj, "has no id, name or level",
                                        "give every rule a UUID id, a unique name and a level"))
                continue
            for key in (str(rule.id), rule.name):
                if key in seen:
                    problems.append(Problem(shown, obj, f"id or name '{key}' is also used in {seen[key]}",
                                            "give every rule its own id and name"))
                seen[key] = shown
            problems.extend(_rule_problems(rule, shown))
            rules.append(rule)
            where[id(rule)] = shown
    for rule in rules:
        if isinstance(rule, SigmaCorrelationRule):
            for ref in rule.rules:
                if ref.reference not in seen:
                    problems.append(Problem(where[id(rule)], f"rule '{rule.title}'",
                                            f"correlates the rule '{ref.reference}', which no rule file defines",
                                            "name a rule of soc/rules by its name or id"))
    collection = None
    if not problems:
        try:
            collection = SigmaCollection(rules)
        except SigmaError as exc:
            problems.append(Problem(_shown(directory), "rules", f"do not form a collection: {exc}",
                                    "correct the correlations' references"))
    names: dict[str, SigmaRule | SigmaCorrelationRule] = {r.name: r for r in rules if r.name}
    found = _builtins(Path(builtins), names, problems) if builtins else []
    if problems:
        raise SigmaRuleError(problems)
    assert collection is not None
    return RuleSet(collection, where, found, params, placeholders)


# -------------------------------------------------------------------------------------------- compile


def pipeline() -> ProcessingPipeline:
    """provnet's processing pipeline: a rule's ``logsource.service`` becomes ``event.dataset = <service>``.

    The store's columns carry FIELDS' dotted names as they are (the SQLite backend quotes them in
    backticks), so no field is renamed.
    """
    items = [ProcessingItem(AddConditionTransformation({"event.dataset": dataset}),
                            rule_conditions=[LogsourceCondition(product="provnet", service=dataset)],
                            identifier=f"provnet_dataset_{dataset}")
             for dataset in DATASETS]
    return ProcessingPipeline(items=items, name="provnet normalised events", priority=20)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"


def _level(rule: SigmaRule | SigmaCorrelationRule) -> str:
    return rule.level.name.lower() if rule.level else "medium"


def _correlation(rule: SigmaCorrelationRule) -> dict[str, Any]:
    cond = rule.condition
    condition: dict[str, Any] = {}
    if cond is not None and hasattr(cond, "op"):
        condition = {"op": cond.op.name.lower(), "count": cond.count}
        if getattr(cond, "fieldref", None):
            condition["field"] = cond.fieldref
    return {"type": rule.type.name.lower(), "rules": [ref.reference for ref in rule.rules],
            "group_by": list(rule.group_by or []), "timespan_seconds": rule.timespan.seconds,
            "condition": condition, "generate": rule.generate}


def _has_timestamp_part(rule: SigmaRule | SigmaCorrelationRule) -> bool:
    if isinstance(rule, SigmaCorrelationRule):
        return any(_has_timestamp_part(ref.rule) for ref in rule.rules)
    return any(issubclass(m, SigmaTimestampModifier)
               for detection in rule.detection.detections.values()
               for item in _detection_fields(detection) for m in item.modifiers)


def compile_sqlite(directory: Path | str = RULES_DIR, parameters: dict[str, str] | None = None,
                   builtins: Path | str | None = BUILTINS_FILE) -> dict[str, Any]:
    """The ``compiled.json`` document for the SOC node: each alerting rule with its SQL.

    Base rules referenced by a correlation do not alert on their own (Sigma's ``generate: false``);
    a correlation's SQL (the backend's own correlation compiler) returns one row per qualifying
    window with ``group_keys``, ``window_start``/``window_end`` (Unix seconds) and ``event_ids``.
    """
    ruleset = load(directory, parameters, builtins)
    backend = sqliteBackend(pipeline(), table=TABLE, timestamp_field=TIMESTAMP, event_id_field=EVENT_ID)
    entries: list[dict[str, Any]] = []
    base_sql: dict[str, str] = {}
    problems: list[Problem] = []
    ordered = sorted(ruleset.collection.rules, key=lambda r: isinstance(r, SigmaCorrelationRule))
    # the events an `unanswered` check pairs are its inputs, not alerts of their own
    inputs = {c.settings[k] for c in ruleset.builtins if c.check == "unanswered" for k in ("rule", "answer")}
    for rule in ordered:
        shown = ruleset.file_of(rule)
        head = {"id": str(rule.id), "name": rule.name, "title": rule.title, "level": _level(rule), "file": shown,
                "description": (rule.description or "").strip()}
        try:
            if isinstance(rule, SigmaRule):
                queries = backend.convert_rule(rule)
                if rule._backreferences:  # a correlation's rule: the backend keeps the bare predicate
                    predicate = " OR ".join(f"({q})" for q in rule.get_conversion_result())
                    base_sql[rule.name] = f"SELECT * FROM {TABLE} WHERE {predicate}"
                else:
                    base_sql[rule.name] = " UNION ".join(rule.get_conversion_result())
                if queries and rule.name not in inputs:
                    entries.append({**head, "kind": "sigma", "sql": " UNION ".join(queries),
                                    "group_by": ["host.name"], "merge_seconds": MERGE_SECONDS})
            else:
                queries = backend.convert_correlation_rule(rule)
                if queries:
                    corr = _correlation(rule)
                    entries.append({**head, "kind": "correlation", "sql": queries[0], "correlation": corr,
                                    "group_by": corr["group_by"], "merge_seconds": corr["timespan_seconds"]})
        except (SigmaError, NotImplementedError, ValueError) as exc:
            problems.append(Problem(shown, f"rule '{rule.title}'", f"does not compile to SQLite: {exc}",
                                    f"simplify the rule to what the SQLite backend supports ({DOCS})"))
    for check in ruleset.builtins:
        entry: dict[str, Any] = {"id": check.id, "name": check.name, "title": check.title, "level": check.level,
                                 "file": check.file, "description": check.description, "kind": "builtin",
                                 "check": check.check, "group_by": check.group_by, **check.settings}
        if check.check == "new-value":
            entry["sql"] = base_sql.get(check.settings["rule"], "")
        if check.check == "unanswered":
            entry["sql"] = base_sql.get(check.settings["rule"], "")
            entry["answer_sql"] = base_sql.get(check.settings["answer"], "")
        entries.append(entry)
    if problems:
        raise SigmaRuleError(problems)
    spans = [e["merge_seconds"] for e in entries if e["kind"] == "correlation"] + [MERGE_SECONDS]
    return {
        "format": FORMAT,
        "generator": "provnet.soc.sigma",
        "compiled_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pysigma": _version("pysigma"),
        "backend": f"pySigma-backend-sqlite {_version('pysigma-backend-sqlite')}",
        "parameters": ruleset.parameters,
        "placeholders": ruleset.placeholders,
        "table": TABLE, "timestamp_field": TIMESTAMP, "event_id_field": EVENT_ID,
        "fields": list(FIELDS),
        "lookback_seconds": max(spans),
        "rules": entries,
    }


def compile_opensearch(directory: Path | str = RULES_DIR, parameters: dict[str, str] | None = None,
                       builtins: Path | str | None = BUILTINS_FILE,
                       index: str = "provnet-events-*") -> list[dict[str, Any]]:
    """Each alerting rule as OpenSearch queries: ``lucene`` (query_string over the rule's events; for a
    correlation, those of the rules it counts), ``ppl`` (a correlation's aggregation) and ``correlation``.

    What a backend cannot translate faithfully is listed under ``unsupported`` instead of being
    emitted wrong: hour-of-day comparisons (``|hour``, the change window), a correlation of a
    correlation (PPL), the built-in checks.
    """
    ruleset = load(directory, parameters, builtins)
    lucene = OpensearchLuceneBackend(pipeline(), index_names=[index])
    out: list[dict[str, Any]] = []
    rules = ruleset.collection.rules
    inputs = {c.settings[k] for c in ruleset.builtins if c.check == "unanswered" for k in ("rule", "answer")}
    lucene_of: dict[str, str] = {}
    for rule in rules:
        if isinstance(rule, SigmaRule):
            lucene.convert_rule(rule)
            lucene_of[rule.name] = " OR ".join(f"({q})" for q in rule.get_conversion_result()) \
                if len(rule.get_conversion_result()) > 1 else rule.get_conversion_result()[0]
    for rule in rules:
        head = {"id": str(rule.id), "name": rule.name, "title": rule.title, "level": _level(rule), "index": index}
        if isinstance(rule, SigmaRule):
            if rule._output is False or rule.name in inputs:  # a correlation's or a built-in check's input
                continue
            entry = {**head, "kind": "sigma", "lucene": lucene_of[rule.name], "ppl": None, "unsupported": None}
        else:
            if rule._output is False:
                continue
            corr = _correlation(rule)
            base = [r for r in _base_rules(rule)]
            entry = {**head, "kind": "correlation", "correlation": corr, "ppl": None, "unsupported": None,
                     "lucene": " OR ".join(f"({lucene_of[r.name]})" for r in base)}
        if _has_timestamp_part(rule):
            entry["lucene"] = None
            entry["unsupported"] = ("hour-of-day comparison (|hour): the Lucene and PPL backends do not translate "
                                    "it (they would compare @timestamp with the hour numbers); the SOC node runs it")
        elif isinstance(rule, SigmaCorrelationRule) and \
                (nested := [ref.reference for ref in rule.rules if isinstance(ref.rule, SigmaCorrelationRule)]):
            entry["unsupported"] = (f"PPL: a correlation of a correlation ({', '.join(nested)}) is not translated "
                                    "by the PPL backend; the SOC node runs it (or an alerting monitor over the "
                                    "lucene query with the correlation's parameters)")
        else:
            try:
                entry["ppl"] = _ppl(rule, directory, parameters, builtins, index)
            except (SigmaError, NotImplementedError, ValueError) as exc:
                entry["unsupported"] = f"PPL: {str(exc).splitlines()[0][:200]} (the SOC node runs it)"
        if isinstance(entry.get("lucene"), str):
            entry["dsl"] = {"query": {"bool": {"must": [{"query_string": {"query": entry["lucene"],
                                                                          "analyze_wildcard": True}}]}}}
        out.append(entry)
    for check in ruleset.builtins:
        out.append({"id": check.id, "name": check.name, "title": check.title, "level": check.level,
                    "index": index, "kind": "builtin", "lucene": None, "ppl": None,
                    "unsupported": "a provnet built-in check: the SOC node runs it (docs/soc.md)"})
    return out


def _base_rules(rule: SigmaRule | SigmaCorrelationRule) -> list[SigmaRule]:
    if isinstance(rule, SigmaRule):
        return [rule]
    out: list[SigmaRule] = []
    for ref in rule.rules:
        out.extend(r for r in _base_rules(ref.rule) if r not in out)
    return out


def _ppl(rule: SigmaRule | SigmaCorrelationRule, directory: Path | str, parameters: dict[str, str] | None,
         builtins: Path | str | None, index: str) -> str:
    """One rule as PPL: a fresh collection (conversion changes the rules), a correlation's window as earliest."""
    fresh = load(directory, parameters, builtins).collection
    target = fresh[str(rule.id)]
    options: dict[str, Any] = {"custom_logsource": index}
    if isinstance(target, SigmaCorrelationRule):
        options["min_time"] = f"-{target.timespan.seconds}s"
    backend = OpenSearchPPLBackend(pipeline(), **options)
    queries: list[str] = []
    for r in fresh.rules:
        if isinstance(r, SigmaRule):
            converted = backend.convert_rule(r)
            if r is target:
                queries = converted
    if isinstance(target, SigmaCorrelationRule):
        queries = backend.convert_correlation_rule(target)
    return " ".join(queries)


def field_type(name: str) -> str:
    """The OpenSearch type of a normalised field: ip for *.ip, integer for ports, date for @timestamp."""
    if name == TIMESTAMP:
        return "date"
    if name.endswith(".ip"):
        return "ip"
    if name.endswith(".port"):
        return "integer"
    return "keyword"


def index_template(pattern: str = "provnet-events-*", shards: int = 1, replicas: int = 1) -> dict[str, Any]:
    """An OpenSearch composable index template (``PUT _index_template/provnet-events``) for FIELDS.

    Dotted names become object properties (``host.name`` → ``host: {properties: {name: …}}``), as
    OpenSearch stores a document's dotted keys. ``dynamic: false``: a key outside FIELDS is kept in
    ``_source`` but not indexed.
    """
    properties: dict[str, Any] = {}
    for name in FIELDS:
        parts = name.split(".")
        node = properties
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = {"type": field_type(name)}
    return {
        "index_patterns": [pattern],
        "priority": 100,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas},
            "mappings": {"dynamic": False, "date_detection": False, "properties": properties},
        },
        "_meta": {"generator": "provnet.soc.sigma", "fields": "provnet/soc/fields.py"},
    }


# ------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m provnet.soc.sigma compile --out compiled.json [--opensearch F] [--template F] [--param k=v]``."""
    parser = argparse.ArgumentParser(prog="python -m provnet.soc.sigma", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile soc/rules for the SOC node (and OpenSearch)")
    c.add_argument("--rules", default=str(RULES_DIR))
    c.add_argument("--builtins", default=str(BUILTINS_FILE))
    c.add_argument("--out", required=True, help="compiled.json for the SOC node")
    c.add_argument("--opensearch", help="also write the OpenSearch queries (JSON) here")
    c.add_argument("--template", help="also write the OpenSearch index template (JSON) here")
    c.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help=f"a province parameter ({', '.join(DEFAULT_PARAMETERS)})")
    args = parser.parse_args(argv)
    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        params[key.strip()] = value.strip()
    try:
        doc = compile_sqlite(args.rules, params, args.builtins)
        Path(args.out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        if args.opensearch:
            queries = compile_opensearch(args.rules, params, args.builtins)
            Path(args.opensearch).write_text(json.dumps(queries, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        if args.template:
            Path(args.template).write_text(json.dumps(index_template(), indent=1) + "\n", encoding="utf-8")
    except ProvnetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(doc['rules'])} rules (pySigma {doc['pysigma']}, {doc['backend']})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
