"""Drift of what the roles manage on a Linux node, against what the roles would write (issue 22, item 2).

Three stages, each a function of its own:

1. **Expected** (:func:`expected`): the plays of ``playbooks/site.yml`` (followed through
   ``import_playbook``) say which roles converge a host (``dc:&role_ntp`` → ``ntp_server``). For each of
   them the role's ``tasks/`` (through ``import_tasks``/``include_tasks`` and blocks) are walked with
   Ansible's own :class:`~ansible.template.Templar`, on the variables a real run gives the task: the role's
   ``defaults/main.yml``, the host's variables as ``plugins/inventory/provnet.py`` sets them (the province's
   on group ``all``, the device's own on the host), ``playbooks/group_vars``, the play's role ``vars:``,
   the task's ``vars:``, the loop item. ``ansible.builtin.template`` is rendered as its action plugin
   does it (search path, ``ansible_managed`` and the other template vars, ``trim_blocks=True``, trailing
   newline kept); ``copy`` (``content:`` or a role file), ``provnet_files`` (its ``lookup('template')``
   through Ansible's lookup), ``file`` (``directory``/``absent``), ``systemd_service``/``provnet_units`` and
   ``provnet_packages`` give what the host must have. ``when:`` and ``loop:`` are evaluated the same way.
   Whatever needs a registered result or a fact (a ``find`` result, a file's ``content_from`` on the host) cannot be
   known without running the role: it is **not evaluated**, reported as such, never as a drift.
2. **Observed**: one shell command per device (:func:`command`) prints, for every expected path, its type,
   ``stat`` mode/owner/group and its content in base64 (at most :data:`MAX_BYTES`), the units'
   ``systemctl show`` and the packages' ``dpkg-query`` status; :func:`parse` reads it back.
3. **Compare** (:func:`compare`): one finding per file (``drift:file:<path>``), unit
   (``drift:unit:<name>``) and package (``drift:package:<name>``), ``fail`` with the masked unified diff,
   or ``pass`` (so a drift put back reads *fixed* in the trend).

Ansible is not thread-safe: :func:`expected` holds :data:`LOCK` (the compliance run calls it from its
worker threads, so the rendering of one device overlaps the SSH of the others).
"""

from __future__ import annotations

import base64
import copy
import difflib
import fnmatch
import json
import os
import re
import shlex
import stat as stat_mod
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provnet import hostvars, plugin_modules, selection
from provnet.compliance import trend
from provnet.model import Device, Model

REPO = Path(__file__).resolve().parent.parent.parent
PLAYBOOK = REPO / "playbooks" / "site.yml"
ROLES_DIR = REPO / "roles"
ANSIBLE_CFG = REPO / "ansible.cfg"
MAX_BYTES = 256 * 1024          # a file larger than this is read only this far (and then differs)
MAX_DIFF_LINES = 200            # lines of unified diff kept in a finding's evidence
FORMAT = "=provnet-roledrift 1"
COMMAND_HEAD = "pv_f() {"       # how the command starts (a fake shell in the tests recognises it)
LOCK = threading.Lock()
# platforms without a Linux shell the roles could converge (as compliance.run.plan_remediation)
NOT_LINUX = frozenset({"cisco_ios", "fortios", "cisco_tp"})

TITLE_FILE = "Tệp do role quản lý khớp với nội dung role sẽ ghi"
TITLE_UNIT = "Dịch vụ do role quản lý ở đúng trạng thái"
TITLE_PACKAGE = "Gói phần mềm role cần đã được cài"
TITLE_ROLE = "Tác vụ của role không đánh giá được ngoài lần chạy thật"

# keys of a task that are not its action
TASK_KEYWORDS = frozenset({
    "name", "when", "loop", "loop_control", "vars", "register", "notify", "tags", "become", "become_user",
    "become_method", "become_flags", "delegate_to", "delegate_facts", "run_once", "no_log", "diff", "check_mode",
    "changed_when", "failed_when", "ignore_errors", "ignore_unreachable", "until", "retries", "delay", "environment",
    "args", "listen", "any_errors_fatal", "throttle", "timeout", "collections", "module_defaults", "connection",
    "debugger", "remote_user", "port", "async", "poll", "local_action", "action", "block", "rescue", "always",
})
IMPORTS = frozenset({"import_tasks", "include_tasks", "include"})
UNIT_SUFFIXES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path", "timer", "slice",
                 "scope")


# Ansible reads its settings once, when first imported: make them the project's (as ansible-playbook run from
# the checkout gets them) unless the caller chose a file. Plan.settings_problem reports a mismatch.
os.environ.setdefault("ANSIBLE_CONFIG", str(ANSIBLE_CFG))


_UNITS = plugin_modules.utils("provnet_unitset")
_PACKAGES = plugin_modules.utils("provnet_packageset")
ENABLED = frozenset(_UNITS.ENABLED)      # UnitFileState values provnet_units counts as enabled
ACTIVE = frozenset({"active", "activating", "reloading"})


class NotEvaluated(Exception):
    """Needs what only a real run knows (a registered result, a fact): the item is not evaluated."""


# ----------------------------------------------------------------------------------------------- data

@dataclass
class ExpectedFile:
    dest: str
    kind: str                     # file | directory | absent
    role: str
    task: str
    content: bytes | None = None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    hidden: bool = False          # the task says no_log / diff: false: no diff in the evidence
    not_evaluated: str = ""       # why the expected state is unknown ("" = known)


@dataclass
class ExpectedUnit:
    name: str
    role: str
    enabled: bool | None = None
    state: str | None = None      # started | stopped | None
    masked: bool | None = None
    unneeded: bool = False        # provnet_units `unneeded`: off (or absent)
    not_evaluated: str = ""


@dataclass
class Expected:
    host: str
    roles: list[str] = field(default_factory=list)
    files: dict[str, ExpectedFile] = field(default_factory=dict)
    units: dict[str, ExpectedUnit] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)       # name → role
    tasks_not_evaluated: dict[str, list[str]] = field(default_factory=dict)  # role → "task: why"
    secrets: list[str] = field(default_factory=list)              # provnet_files `secrets:` values
    error: str = ""

    def empty(self) -> bool:
        return not (self.files or self.units or self.packages or self.tasks_not_evaluated)


@dataclass(frozen=True)
class RoleRef:
    name: str
    vars: dict[str, Any]
    when: tuple[Any, ...]


@dataclass(frozen=True)
class Play:
    name: str
    hosts: str
    roles: tuple[RoleRef, ...]
    vars: dict[str, Any]
    path: str


@dataclass
class Observed:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)   # dest → {type, mode, owner, group, size, data}
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    dpkg: str = ""
    error: str = ""


# ----------------------------------------------------------------------------------------------- Ansible

def _ansible_settings_problem() -> str:
    """"" when Ansible runs on the project's ansible.cfg, or settings that change a rendering are equal."""
    from ansible import constants as C
    from ansible.config.manager import ConfigManager

    if C.CONFIG_FILE and Path(C.CONFIG_FILE).resolve() == ANSIBLE_CFG.resolve():
        return ""
    ours = ConfigManager(str(ANSIBLE_CFG))
    for key in ("DEFAULT_MANAGED_STR", "DEFAULT_JINJA2_NATIVE", "DEFAULT_JINJA2_EXTENSIONS", "DEFAULT_NULL_REPRESENTATION"):
        if ours.get_config_value(key) != getattr(C, key):
            return (f"Ansible's settings come from {C.CONFIG_FILE or 'its defaults'}, not {ANSIBLE_CFG}, and {key} "
                    f"differs: set ANSIBLE_CONFIG={ANSIBLE_CFG}")
    return ""


def _undefined(exc: BaseException) -> bool:
    from ansible.errors import AnsibleUndefinedVariable

    text = str(exc)
    return isinstance(exc, AnsibleUndefinedVariable) or " is undefined" in text or "has no attribute" in text


class Plan:
    """The plays of site.yml and the roles they name, read once per run (files cached)."""

    def __init__(self, playbook: Path = PLAYBOOK) -> None:
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.utils.collection_loader import AnsibleCollectionConfig

        if AnsibleCollectionConfig.collection_finder is None:  # as the CLI does: FQCN lookups (ansible.builtin.*)
            init_plugin_loader()
        self.playbook = Path(playbook)
        self.loader = DataLoader()
        self.loader.set_basedir(str(self.playbook.parent))
        self._files: dict[str, Any] = {}
        self.plays = self._plays(self.playbook)
        self.group_vars = self._dir_vars(self.playbook.parent / "group_vars")
        self.host_vars = self._dir_vars(self.playbook.parent / "host_vars")
        self.settings_problem = _ansible_settings_problem()
        self._plugin_dirs: set[str] = set()
        self._groups: dict[int, dict[str, list[str]]] = {}
        self._mentions: dict[str, bool] = {}

    def load(self, path: Path) -> Any:
        key = str(path)
        if key not in self._files:
            self._files[key] = self.loader.load_from_file(key)
        return self._files[key]

    def _dir_vars(self, folder: Path) -> dict[str, dict[str, Any]]:
        """group_vars/<name>.yml (or <name>/*.yml) beside the playbooks: name → vars."""
        out: dict[str, dict[str, Any]] = {}
        if not folder.is_dir():
            return out
        for p in sorted(folder.iterdir()):
            files = sorted(p.glob("*.y*ml")) if p.is_dir() else [p] if p.suffix in (".yml", ".yaml") else []
            for f in files:
                out.setdefault(p.stem if p.is_file() else p.name, {}).update(self.load(f) or {})
        return out

    def _plays(self, path: Path) -> list[Play]:
        plays: list[Play] = []
        for entry in self.load(path) or []:
            target = entry.get("ansible.builtin.import_playbook") or entry.get("import_playbook")
            if target:
                plays += self._plays(path.parent / target)
                continue
            roles = []
            for r in entry.get("roles") or []:
                r = {"role": r} if isinstance(r, str) else dict(r)
                name = r.get("role") or r.get("name")
                when = r.get("when")
                roles.append(RoleRef(str(name), dict(r.get("vars") or {}),
                                     tuple(when if isinstance(when, list) else [when] if when is not None else [])))
            plays.append(Play(str(entry.get("name", "")), str(entry.get("hosts", "")), tuple(roles),
                              dict(entry.get("vars") or {}), str(path)))
        return plays

    def role_dir(self, name: str) -> Path:
        return ROLES_DIR / name

    def role_file(self, name: str, sub: str) -> dict[str, Any]:
        p = self.role_dir(name) / sub / "main.yml"
        return dict(self.load(p) or {}) if p.is_file() else {}

    # -- host patterns

    def groups(self, m: Model) -> dict[str, list[str]]:
        """Ansible's ``groups``: every group the inventory plugin creates → its hosts."""
        if id(m) not in self._groups:
            out: dict[str, list[str]] = {"all": list(m.devices), "ungrouped": []}
            for host, dev in m.devices.items():
                for g in group_names(dev):
                    out.setdefault(g, []).append(host)
            self._groups = {id(m): out}
        return self._groups[id(m)]

    def matches(self, pattern: str, m: Model, host: str) -> bool:
        """Does ``host`` match the play's ``hosts:`` (Ansible's pattern rules: unions, then ``&``, then ``!``)?"""
        from ansible.inventory.manager import order_patterns, split_host_pattern

        groups = self.groups(m)
        selected: list[str] = []
        for term in order_patterns(split_host_pattern(pattern)):
            op, name = (term[0], term[1:]) if term[:1] in ("&", "!") else ("", term)
            if name.startswith("~"):
                raise ValueError(f"host pattern {pattern!r}: regular expressions are not supported here")
            if name in groups:
                hosts = groups[name]
            else:
                hosts = [h for h in m.devices if fnmatch.fnmatchcase(h, name)] + \
                    [h for g, hs in groups.items() if any(c in name for c in "*?[") and fnmatch.fnmatchcase(g, name)
                     for h in hs]
            if op == "&":
                selected = [h for h in selected if h in hosts]
            elif op == "!":
                selected = [h for h in selected if h not in hosts]
            else:
                selected += [h for h in hosts if h not in selected]
        return host in selected

    def roles_for(self, m: Model, host: str) -> list[tuple[Play, RoleRef]]:
        return [(p, r) for p in self.plays if p.roles and self.matches(p.hosts, m, host) for r in p.roles]

    def mentions(self, role: str, word: str) -> bool:
        """Does any file of the role use the variable ``word`` (``groups[…]``, ``groups.x``, ``groups |``,
        ``in groups``)? ``groups`` is large and every template lookup deep-copies the variables: it is
        given only to the roles that read it."""
        key = f"{role}:{word}"
        use = re.compile(rf"\b{word}\s*[\[.|)}}]|\bin\s+{word}\b")
        if key not in self._mentions:
            self._mentions[key] = any(use.search(p.read_text(encoding="utf-8", errors="replace"))
                                      for p in self.role_dir(role).rglob("*") if p.is_file() and p.suffix in
                                      (".yml", ".yaml", ".j2", ".py"))
        return self._mentions[key]

    def add_plugin_dirs(self, role: str) -> None:
        """A role's own filter/lookup plugins, as Ansible loads them with the role."""
        from ansible.plugins.loader import add_all_plugin_dirs

        path = str(self.role_dir(role))
        if path not in self._plugin_dirs:
            add_all_plugin_dirs(path)
            self._plugin_dirs.add(path)


def group_names(dev: Device) -> list[str]:
    """The groups plugins/inventory/provnet.py puts a device in (``sites`` holds halls, districts and communes)."""
    names = list(selection.groups_of(dev))
    if set(selection.SITE_GROUPS) & set(names):
        names.append("sites")
    return names


def inventory_vars(m: Model, dev: Device) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group ``all``, host) variables exactly as plugins/inventory/provnet.py sets them."""
    from provnet.drivers.ssh import lab_key

    group_all = {**hostvars.province_vars(m), "ansible_user": m.credentials["admin_user"]}
    own = dict(hostvars.own_vars(m, dev))
    key = lab_key()
    if key and not m.production:
        own["ansible_ssh_private_key_file"] = key
    return group_all, own


# ----------------------------------------------------------------------------------------------- stage 1

@dataclass
class _Scope:
    """One role of one play on one host, while its tasks are walked."""

    plan: Plan
    exp: Expected
    role: str
    base: dict[str, Any]
    templar: Any


def expected(plan: Plan, m: Model, host: str, vault: Mapping[str, str]) -> Expected:
    """What the roles of site.yml would leave on ``host``: files, units, packages (and what is not evaluated)."""
    with LOCK:
        return _expected(plan, m, host, vault)


def _expected(plan: Plan, m: Model, host: str, vault: Mapping[str, str]) -> Expected:
    from ansible.template import Templar
    from ansible.utils.unsafe_proxy import wrap_var

    dev = m.devices[host]
    exp = Expected(host)
    if plan.settings_problem:
        exp.error = plan.settings_problem
        return exp
    try:
        refs = plan.roles_for(m, host)
    except ValueError as exc:
        exp.error = str(exc)
        return exp
    group_all, own = inventory_vars(m, dev)
    groups = plan.groups(m)
    names = group_names(dev)
    pb_groups: dict[str, Any] = {}
    for g in ["all", *sorted(names)]:
        pb_groups.update(plan.group_vars.get(g, {}))
    omit = "__omit_place_holder__provnet_roledrift"
    for play, ref in refs:
        role_dir = plan.role_dir(ref.name)
        plan.add_plugin_dirs(ref.name)
        exp.roles.append(ref.name)
        base: dict[str, Any] = {
            **plan.role_file(ref.name, "defaults"), **group_all, **pb_groups, **own,
            **plan.host_vars.get(host, {}), **play.vars, **plan.role_file(ref.name, "vars"), **ref.vars,
            # magic variables of a real run (vars/manager.py _get_magic_variables and the task executor)
            "inventory_hostname": host, "inventory_hostname_short": host.split(".")[0],
            "group_names": sorted(names), "omit": omit,
            **({"groups": groups} if plan.mentions(ref.name, "groups") else {}),
            "inventory_dir": str(m.root), "inventory_file": str(Path(m.root) / "provnet.yml"),
            "playbook_dir": str(plan.playbook.parent), "ansible_playbook_python": sys.executable,
            "ansible_check_mode": False, "ansible_diff_mode": False, "ansible_run_tags": ["all"],
            "ansible_skip_tags": [], "ansible_play_name": play.name, "ansible_play_role_names": [r.name for r in play.roles],
            "role_name": ref.name, "role_path": str(role_dir), "ansible_role_name": ref.name,
            # tasks/vault.yml's fact on localhost, read by playbooks/group_vars/all.yml as provnet_vault
            "hostvars": {"localhost": {"_provnet_vault": {k: wrap_var(v) for k, v in vault.items()}}},
        }
        scope = _Scope(plan, exp, ref.name, base, Templar(loader=plan.loader, variables=base))
        _walk(scope, role_dir / "tasks" / "main.yml", list(ref.when), [])
    return exp


def _walk(s: _Scope, path: Path, whens: list[Any], tvars: list[dict[str, Any]]) -> None:
    for task in s.plan.load(path) or []:
        _task(s, dict(task), path, whens, tvars)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _action(task: dict[str, Any]) -> tuple[str, Any]:
    for key, value in task.items():
        if key not in TASK_KEYWORDS and not key.startswith("with_"):
            return key.removeprefix("ansible.builtin.").removeprefix("ansible.legacy.").removeprefix("provnet."), value
    if "action" in task or "local_action" in task:
        return "_action", None
    return "", None


def _args(task: dict[str, Any], raw: Any) -> dict[str, Any]:
    from ansible.parsing.splitter import parse_kv

    args = parse_kv(raw) if isinstance(raw, str) else dict(raw or {})
    args.update(task.get("args") or {})
    return args


def _task(s: _Scope, task: dict[str, Any], path: Path, whens: list[Any], tvars: list[dict[str, Any]]) -> None:
    label = str(task.get("name") or "(unnamed)")
    whens = whens + _as_list(task.get("when"))
    tvars = tvars + ([dict(task["vars"])] if task.get("vars") else [])
    if "never" in _as_list(task.get("tags")) or task.get("check_mode") is True:
        return
    if "block" in task:
        for sub in (*(task.get("block") or []), *(task.get("always") or [])):
            _task(s, dict(sub), path, whens, tvars)
        return
    action, raw = _action(task)
    if action in IMPORTS:
        target = raw if isinstance(raw, str) else (raw or {}).get("file")
        try:
            name = str(_template(s, target, _vars(s, tvars)))
        except NotEvaluated as exc:
            s.exp.tasks_not_evaluated.setdefault(s.role, []).append(f"{label}: {exc}")
            return
        sub = path.parent / name if (path.parent / name).is_file() else s.plan.role_dir(s.role) / "tasks" / name
        _walk(s, sub, whens, tvars)
        return
    handler = HANDLERS.get(action)
    if handler is None:
        return  # user, group, lineinfile, command, set_fact, …: not a file, unit or package this compares
    if task.get("delegate_to") is not None:
        return  # runs elsewhere
    args = _args(task, raw)
    variables = _vars(s, tvars)
    loop_control = task.get("loop_control") or {}
    loop_var = loop_control.get("loop_var", "item")
    try:
        items = _items(s, task, variables)
    except NotEvaluated as exc:
        s.exp.tasks_not_evaluated.setdefault(s.role, []).append(f"{label}: loop not evaluated ({exc})")
        return
    for item in items:
        v = dict(variables)
        if item is not _NO_LOOP:
            v[loop_var] = item
            if loop_control.get("index_var"):
                v[loop_control["index_var"]] = items.index(item)
        t = _Task(s, label, args, v, task, path)
        try:
            if not t.when(whens):
                continue
        except NotEvaluated as exc:
            t.not_evaluated = f"`when` not evaluated in-process ({exc})"
        handler(t)


_NO_LOOP = object()


def _vars(s: _Scope, tvars: list[dict[str, Any]]) -> dict[str, Any]:
    v = dict(s.base)
    for extra in tvars:
        v.update(extra)
    return v


def _template(s: _Scope, value: Any, variables: dict[str, Any], **kw: Any) -> Any:
    from ansible.errors import AnsibleError

    s.templar.available_variables = variables
    try:
        return s.templar.template(value, **kw)
    except AnsibleError as exc:
        if _undefined(exc):
            raise NotEvaluated(_short(exc)) from None
        raise


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    m = re.search(r"'([^']+)' is undefined", text)
    return f"{m.group(1)} is known only during a real run" if m else text[:200]


def _items(s: _Scope, task: dict[str, Any], variables: dict[str, Any]) -> list[Any]:
    if "loop" in task:
        items = _template(s, task["loop"], variables, fail_on_undefined=True)
    elif "with_items" in task or "with_list" in task:
        items = _template(s, task.get("with_items", task.get("with_list")), variables, fail_on_undefined=True)
        if "with_items" in task:
            items = [x for i in _as_list(items) for x in (i if isinstance(i, list) else [i])]
    elif any(k.startswith("with_") for k in task):
        raise NotEvaluated("with_<lookup> loops other than with_items/with_list are not read")
    else:
        return [_NO_LOOP]
    if not isinstance(items, list):
        raise NotEvaluated(f"the loop is not a list ({type(items).__name__})")
    return items


class _Task:
    """One task × loop item, with the helpers its handler needs."""

    def __init__(self, s: _Scope, label: str, args: dict[str, Any], variables: dict[str, Any],
                 task: dict[str, Any], path: Path) -> None:
        self.s, self.label, self.args, self.vars, self.task, self.path = s, label, args, variables, task, path
        self.not_evaluated = ""
        role_dir = s.plan.role_dir(s.role)
        # Task.get_search_path(): the role's folder, then the task file's
        self.search = [str(role_dir), str(path.parent)]
        self.vars["ansible_search_path"] = list(self.search)

    def t(self, value: Any, **kw: Any) -> Any:
        out = _template(self.s, value, self.vars, **kw)
        return None if isinstance(out, str) and out == self.vars["omit"] else out

    def when(self, whens: list[Any]) -> bool:
        from ansible.errors import AnsibleError
        from ansible.playbook.conditional import Conditional

        if not whens:
            return True
        c = Conditional(loader=self.s.plan.loader)
        c.when = list(whens)
        self.s.templar.available_variables = self.vars
        try:
            return bool(c.evaluate_conditional(self.s.templar, self.vars))
        except AnsibleError as exc:
            if _undefined(exc):
                raise NotEvaluated(_short(exc)) from None
            raise

    def hidden(self) -> bool:
        from ansible.module_utils.parsing.convert_bool import boolean

        try:
            no_log = boolean(self.t(self.task.get("no_log", False)), strict=False)
            diff = boolean(self.t(self.task.get("diff", True)), strict=False)
        except NotEvaluated:
            return True
        return no_log or not diff

    def file(self, dest: Any, kind: str, **kw: Any) -> None:
        if not isinstance(dest, str) or not dest.startswith("/") or "\n" in dest:
            raise ValueError(f"{self.label}: dest {dest!r} is not an absolute path")
        self.s.exp.files[dest] = ExpectedFile(dest, kind, self.s.role, self.label, **kw)

    def not_evaluated_file(self, dest: Any, why: str) -> None:
        if isinstance(dest, str) and dest.startswith("/"):
            self.s.exp.files[dest] = ExpectedFile(dest, "file", self.s.role, self.label, not_evaluated=why)
        else:
            self.s.exp.tasks_not_evaluated.setdefault(self.s.role, []).append(f"{self.label}: {why}")

    def unit(self, name: str, **kw: Any) -> None:
        u = self.s.exp.units.get(unit_name(name)) or ExpectedUnit(unit_name(name), self.s.role)
        u.role = self.s.role
        for k, v in kw.items():
            if v is not None:
                setattr(u, k, v)
        self.s.exp.units[u.name] = u


def unit_name(name: str) -> str:
    """``chrony`` → ``chrony.service`` (systemd's own completion); ``logrotate.timer`` as is."""
    return name if name.rpartition(".")[2] in UNIT_SUFFIXES and "." in name else f"{name}.service"


def _mode(value: Any, source: str | None = None) -> int | None:
    """A task's ``mode``: "0644" or 420 (YAML's 0644) → 0o644; symbolic (``o+x``) → None (not compared)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text == "preserve" and source:
        return stat_mod.S_IMODE(os.stat(source).st_mode)
    return int(text, 8) if re.fullmatch(r"0?[0-7]{3,4}", text) else None


def _bool(value: Any) -> bool | None:
    from ansible.module_utils.parsing.convert_bool import boolean

    return None if value is None else boolean(value, strict=False)


def _guard(handler: Callable[[_Task], None]) -> Callable[[_Task], None]:
    """A handler that cannot evaluate its task records it as not evaluated (its file when the dest is known)."""
    def run(t: _Task) -> None:
        dest = None
        try:
            dest = t.t(t.args.get("dest", t.args.get("path", t.args.get("name"))))
        except NotEvaluated:
            pass
        if t.not_evaluated:
            if handler in (_h_template, _h_copy, _h_file):
                t.not_evaluated_file(dest, t.not_evaluated)
            else:
                t.s.exp.tasks_not_evaluated.setdefault(t.s.role, []).append(f"{t.label}: {t.not_evaluated}")
            return
        try:
            handler(t)
        except NotEvaluated as exc:
            if handler in (_h_template, _h_copy, _h_file):
                t.not_evaluated_file(dest, str(exc))
            else:
                t.s.exp.tasks_not_evaluated.setdefault(t.s.role, []).append(f"{t.label}: {exc}")
    return run


def _h_template(t: _Task) -> None:
    """ansible.builtin.template, as plugins/action/template.py renders it."""
    from ansible.template import AnsibleEnvironment, generate_ansible_template_vars
    from jinja2.defaults import (BLOCK_END_STRING, BLOCK_START_STRING, COMMENT_END_STRING, COMMENT_START_STRING,
                                 VARIABLE_END_STRING, VARIABLE_START_STRING)
    from ansible.module_utils.parsing.convert_bool import boolean

    a = {k: t.t(v) for k, v in t.args.items() if k not in ("validate",)}
    src, dest = a.get("src"), a.get("dest")
    source = t.s.plan.loader.path_dwim_relative_stack(t.search, "templates", src)
    data = Path(t.s.plan.loader.get_real_file(source)).read_bytes().decode("utf-8")
    searchpath = list(t.vars.get("ansible_search_path", [])) + [t.s.plan.loader.get_basedir(), os.path.dirname(source)]
    searchpath = [q for p in searchpath for q in (os.path.join(p, "templates"), p)]
    newline = {"\\n": "\n", "\\r": "\r", "\\r\\n": "\r\n"}.get(a.get("newline_sequence", "\n"), a.get("newline_sequence", "\n"))
    temp_vars = dict(t.vars)
    temp_vars.update(generate_ansible_template_vars(t.args.get("src"), source, dest))
    templar = t.s.templar.copy_with_new_env(environment_class=AnsibleEnvironment, searchpath=searchpath,
                                             newline_sequence=newline, available_variables=temp_vars)
    overrides = dict(
        block_start_string=a.get("block_start_string", BLOCK_START_STRING),
        block_end_string=a.get("block_end_string", BLOCK_END_STRING),
        variable_start_string=a.get("variable_start_string", VARIABLE_START_STRING),
        variable_end_string=a.get("variable_end_string", VARIABLE_END_STRING),
        comment_start_string=a.get("comment_start_string", COMMENT_START_STRING),
        comment_end_string=a.get("comment_end_string", COMMENT_END_STRING),
        trim_blocks=boolean(a.get("trim_blocks", True), strict=False),
        lstrip_blocks=boolean(a.get("lstrip_blocks", False), strict=False))
    from ansible.errors import AnsibleError
    try:
        text = templar.do_template(data, preserve_trailing_newlines=True, escape_backslashes=False, overrides=overrides)
    except AnsibleError as exc:
        if _undefined(exc):
            raise NotEvaluated(_short(exc)) from None
        raise
    t.file(dest, "file", content=str(text).encode(a.get("output_encoding") or "utf-8"),
           mode=_mode(a.get("mode"), source), owner=a.get("owner"), group=a.get("group"), hidden=t.hidden())


def _h_copy(t: _Task) -> None:
    """ansible.builtin.copy with ``content:`` (written as is, no newline added) or a role file ``src:``."""
    a = {k: t.t(v) for k, v in t.args.items() if k not in ("validate", "content")}
    dest = a.get("dest")
    if _bool(a.get("remote_src")) or (isinstance(dest, str) and dest.endswith("/")):
        raise NotEvaluated("remote_src, or a directory dest")
    if "content" in t.args:
        content = t.t(t.args["content"])
        data = (json.dumps(content) if isinstance(content, (dict, list)) else str(content)).encode()
        source = None
    else:
        source = t.s.plan.loader.path_dwim_relative_stack(t.search, "files", a.get("src"))
        if os.path.isdir(source):
            raise NotEvaluated("a directory src")
        data = Path(t.s.plan.loader.get_real_file(source)).read_bytes()
    t.file(dest, "file", content=data, mode=_mode(a.get("mode"), source), owner=a.get("owner"),
           group=a.get("group"), hidden=t.hidden())


def _h_file(t: _Task) -> None:
    """ansible.builtin.file: a directory (mode, owner, group) or a path that must be absent."""
    a = {k: t.t(v) for k, v in t.args.items()}
    path = a.get("path", a.get("dest", a.get("name")))
    state = a.get("state") or "file"
    if state == "directory":
        t.file(path, "directory", mode=_mode(a.get("mode")), owner=a.get("owner"), group=a.get("group"))
    elif state == "absent":
        t.file(path, "absent")


def _h_provnet_files(t: _Task) -> None:
    """plugins/modules/provnet_files.py: every entry of ``files`` (``manage: false`` left alone). ``files`` may be
    one template for the whole list (a role's per-instance entries): it is rendered once, then read as is."""
    for secret in _as_list(_try(t, t.args.get("secrets"))):
        if isinstance(secret, str) and secret:
            t.s.exp.secrets.append(secret)
    hidden = t.hidden()
    files = t.args.get("files")
    rendered = isinstance(files, str)
    if rendered:
        try:
            files = t.t(files)
        except NotEvaluated as exc:
            t.s.exp.tasks_not_evaluated.setdefault(t.s.role, []).append(f"{t.label}: files not evaluated ({exc})")
            return
        if not isinstance(files, list) or not all(isinstance(e, Mapping) for e in files):
            t.s.exp.tasks_not_evaluated.setdefault(t.s.role, []).append(
                f"{t.label}: files is not a list of entries once rendered ({type(files).__name__})")
            return
    omit = t.vars["omit"]

    def ev(value: Any) -> Any:
        # a rendered list is read as is (its strings are not templates any more); omit drops the key, as Ansible's
        if rendered:
            return None if isinstance(value, str) and value == omit else value
        return t.t(value)

    for raw in _as_list(files):
        entry = dict(raw)
        try:
            dest = ev(entry.get("dest"))
        except NotEvaluated as exc:
            t.s.exp.tasks_not_evaluated.setdefault(t.s.role, []).append(f"{t.label}: a dest ({exc})")
            continue
        try:
            if not _bool(ev(entry.get("manage", True))):
                t.s.exp.files.pop(dest, None)
                continue
            meta = {k: ev(entry.get(k)) for k in ("mode", "owner", "group", "state", "force", "diff")}
            if meta["state"] == "absent":
                t.file(dest, "absent")
                continue
            if meta["state"] == "directory":
                t.file(dest, "directory", mode=_mode(meta["mode"]), owner=meta["owner"], group=meta["group"])
                continue
            if meta["force"] is not None and not _bool(meta["force"]):
                raise NotEvaluated("written only where missing, never overwritten (force: false): the host's own")
            content = ev(entry.get("content"))
            if content is None and entry.get("content_from"):
                raise NotEvaluated(f"its content is copied on the host from {ev(entry['content_from'])}")
        except NotEvaluated as exc:
            t.not_evaluated_file(dest, str(exc))
            continue
        t.file(dest, "file", content=str(content).encode(), mode=_mode(meta["mode"]), owner=meta["owner"],
               group=meta["group"], hidden=hidden or (meta["diff"] is not None and not _bool(meta["diff"])))


def _h_provnet_host(t: _Task) -> None:
    """plugins/modules/provnet_host.py: its ``packages``, ``files`` (with the call's ``secrets``) and ``units``
    read as the provnet_packages, provnet_files and provnet_units calls they stand for."""
    for key, handler in (("packages", _h_packages), ("files", _h_provnet_files), ("units", _h_provnet_units)):
        section = t.args.get(key)
        if not section:
            continue
        sub = copy.copy(t)
        sub.args = {"files": section, "secrets": t.args.get("secrets")} if key == "files" else dict(section)
        handler(sub)


def _try(t: _Task, value: Any) -> Any:
    try:
        return t.t(value)
    except NotEvaluated:
        return None


def _h_systemd(t: _Task) -> None:
    a = {k: t.t(v) for k, v in t.args.items() if k in ("name", "unit", "enabled", "state", "masked")}
    name = a.get("name") or a.get("unit")
    if not name:
        return
    state = {"restarted": "started", "reloaded": "started"}.get(a.get("state"), a.get("state"))
    t.unit(str(name), enabled=_bool(a.get("enabled")), state=state, masked=_bool(a.get("masked")))


def _h_provnet_units(t: _Task) -> None:
    """plugins/modules/provnet_units.py: ``units`` (enabled/state) and ``unneeded`` (off where present)."""
    for u in _as_list(t.t(t.args.get("units"))):
        state = u.get("state")
        t.unit(str(u["name"]), enabled=u.get("enabled"), state=None if state == t.vars["omit"] else state)
    for name in _as_list(t.t(t.args.get("unneeded"))):
        t.unit(str(name), unneeded=True)


def _h_packages(t: _Task) -> None:
    if "names" in t.args:
        names = t.t(t.args["names"])
    else:
        if (t.t(t.args.get("state")) or "present") not in ("present", "latest", "installed"):
            return
        names = t.t(t.args.get("name", t.args.get("pkg")))
    for n in _as_list(names):
        t.s.exp.packages[str(n)] = t.s.role


HANDLERS: dict[str, Callable[[_Task], None]] = {
    "template": _guard(_h_template), "copy": _guard(_h_copy), "file": _guard(_h_file),
    "provnet_files": _guard(_h_provnet_files), "systemd_service": _guard(_h_systemd), "systemd": _guard(_h_systemd),
    "service": _guard(_h_systemd), "provnet_units": _guard(_h_provnet_units),
    "provnet_host": _guard(_h_provnet_host), "provnet_packages": _guard(_h_packages), "apt": _guard(_h_packages), "package": _guard(_h_packages),
}


# ----------------------------------------------------------------------------------------------- stage 2

def _paths(exp: Expected) -> list[str]:
    return [d for d, f in exp.files.items() if not f.not_evaluated]


def _units(exp: Expected) -> list[str]:
    return [u for u, x in exp.units.items() if not x.not_evaluated]


def command(exp: Expected) -> str:
    """One POSIX shell command (run as root) that prints the state of everything ``exp`` expects."""
    q = shlex.quote
    lines = [
        "pv_f() { printf '=F %s\\n' \"$1\"",
        "  if [ -L \"$1\" ]; then echo 'T link'",
        "  elif [ -d \"$1\" ]; then stat -c 'T directory %a %U %G' -- \"$1\"",
        f"  elif [ -f \"$1\" ]; then stat -c 'T file %a %U %G %s' -- \"$1\"; head -c {MAX_BYTES + 1} -- \"$1\" | base64 -w0; echo",
        "  elif [ -e \"$1\" ]; then echo 'T other'",
        "  else echo 'T absent'; fi; }",
        f"echo {q(FORMAT)}",
        *(f"pv_f {q(p)}" for p in _paths(exp)),
        "echo =U",
    ]
    units = _units(exp)
    if units:
        lines.append("systemctl show --property=LoadState,ActiveState,UnitFileState -- "
                     + " ".join(q(u) for u in units) + " 2>/dev/null")
    lines.append("echo; echo =P")
    if exp.packages:
        fmt = _PACKAGES.QUERY[2].removeprefix("-f=")
        lines.append(f"dpkg-query -W -f={q(fmt)} -- " + " ".join(q(p) for p in exp.packages) + " 2>/dev/null")
    lines.append("echo =END")
    return "\n".join(lines)


def parse(text: str, exp: Expected) -> Observed:
    """The device's answer to :func:`command`; ``error`` when it is not complete."""
    obs = Observed()
    lines = text.split("\n")
    if not lines or lines[0].strip() != FORMAT or "=END" not in (ln.strip() for ln in lines):
        obs.error = "the answer is incomplete or in another format (no =END)"
        return obs
    i, section, current = 1, "F", ""
    unit_lines: list[str] = []
    dpkg: list[str] = []
    while i < len(lines):
        ln = lines[i]
        i += 1
        if ln.startswith("=F "):
            current = ln[3:]
            head = lines[i].split() if i < len(lines) else []
            i += 1
            info: dict[str, Any] = {"type": head[1] if len(head) > 1 else "unknown"}
            if info["type"] in ("file", "directory") and len(head) >= 5:
                info.update(mode=int(head[2], 8), owner=head[3], group=head[4])
            if info["type"] == "file":
                info["size"] = int(head[5]) if len(head) > 5 else -1
                try:
                    info["data"] = base64.b64decode(lines[i].strip(), validate=True)
                except ValueError:
                    obs.error = f"{current}: content not readable"
                    return obs
                i += 1
            obs.files[current] = info
        elif ln == "=U":
            section = "U"
        elif ln == "=P":
            section = "P"
        elif ln == "=END":
            break
        elif section == "U":
            unit_lines.append(ln)
        elif section == "P":
            dpkg.append(ln)
    units = _units(exp)
    if units:
        blocks = [b for b in "\n".join(unit_lines).strip().split("\n\n") if b.strip()]
        if len(blocks) != len(units):
            obs.error = f"systemctl show gave {len(blocks)} unit(s) for {len(units)}"
            return obs
        obs.units = {u: dict(x.split("=", 1) for x in b.splitlines() if "=" in x) for u, b in zip(units, blocks)}
    obs.dpkg = "\n".join(dpkg)
    return obs


def answer_for(exp: Expected, **changes: Any) -> str:
    """The answer of a device in exactly the expected state (tests; docs/compliance-roledrift.md)."""
    out = [FORMAT]
    for p in _paths(exp):
        f = exp.files[p]
        out.append(f"=F {p}")
        if f.kind == "absent":
            out.append("T absent")
        elif f.kind == "directory":
            out.append(f"T directory {f.mode or 0o755:o} {f.owner or 'root'} {f.group or 'root'}")
        else:
            data = f.content or b""
            out.append(f"T file {f.mode if f.mode is not None else 0o644:o} {f.owner or 'root'} {f.group or 'root'} {len(data)}")
            out.append(base64.b64encode(data[:MAX_BYTES + 1]).decode())
    out.append("=U")
    for u in _units(exp):
        x = exp.units[u]
        if x.unneeded and x.enabled is None:
            out += ["LoadState=not-found", "ActiveState=inactive", "UnitFileState=", ""]
        else:
            out += ["LoadState=loaded", f"ActiveState={'inactive' if x.state == 'stopped' else 'active'}",
                    f"UnitFileState={'disabled' if x.enabled is False else 'enabled'}", ""]
    out += ["", "=P", *(f"{p} ii " for p in exp.packages), "=END", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- stage 3

def _finding(host: str, rule_id: str, status: str, evidence: str, title: str, note: str = "",
             severity: str = "high") -> trend.Finding:
    return trend.Finding(host, rule_id, status, evidence, "drift", title, severity, reason=note)


def _text(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def _file_diff(f: ExpectedFile, have: dict[str, Any] | None, host: str) -> tuple[list[str], str]:
    """(what differs, the unified diff) of one expected file against the device's."""
    problems: list[str] = []
    diff = ""
    kind = (have or {}).get("type", "absent")
    if f.kind == "absent":
        return ([f"present ({kind}), the role removes it"] if kind != "absent" else []), ""
    if kind == "absent":
        return [f"missing (the role writes a {f.kind})"], ""
    if kind != f.kind:
        return [f"is a {kind}, the role writes a {f.kind}"], ""
    assert have is not None
    if f.mode is not None and have.get("mode") != f.mode:
        problems.append(f"mode {have.get('mode', 0):04o}, the role sets {f.mode:04o}")
    for what in ("owner", "group"):
        want = getattr(f, what)
        if want is not None and have.get(what) != str(want):
            problems.append(f"{what} {have.get(what)}, the role sets {want}")
    if f.kind == "file":
        data = have.get("data", b"")
        if data != f.content:
            too_big = len(data) > MAX_BYTES
            problems.insert(0, "content differs" + (f" (the file is larger than {MAX_BYTES} bytes)" if too_big else ""))
            if f.hidden:
                diff = (f"(diff withheld: the role's task has no_log or diff: false; {len(data)} bytes on the device, "
                        f"{len(f.content or b'')} from the role)\n")
            else:
                lines = list(difflib.unified_diff(_text(data), _text(f.content or b""), f"{f.dest} on {host}",
                                                  f"{f.dest} as role {f.role} writes it", n=2))
                lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines]
                if len(lines) > MAX_DIFF_LINES:
                    lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more diff lines\n"]
                diff = "".join(lines)
    return problems, diff


def compare(exp: Expected, obs: Observed, mask: Callable[[str], str]) -> list[trend.Finding]:
    """One finding per expected file, unit and package (``fail`` with masked evidence, or ``pass``), the
    items that could not be evaluated (``not_applicable``), or one ``error`` when the answer is unusable."""
    from provnet.secrets import Masker

    extra = Masker(exp.secrets)

    def m(text: str) -> str:
        return extra(mask(text))

    host = exp.host
    if obs.error:
        return [_finding(host, "drift:roles", "error", m(obs.error), TITLE_FILE,
                         "could not read the role-managed state")]
    out: list[trend.Finding] = []
    for dest, f in exp.files.items():
        rid = f"drift:file:{dest}"
        if f.not_evaluated:
            out.append(_finding(host, rid, "not_applicable", m(f"not evaluated: {f.not_evaluated}"), TITLE_FILE,
                                m(f"not evaluated ({f.role}: {f.task}): {f.not_evaluated}")[:300]))
            continue
        problems, diff = _file_diff(f, obs.files.get(dest), host)
        if problems:
            head = f"{dest} (role {f.role}): " + "; ".join(problems)
            out.append(_finding(host, rid, "fail", m(head + "\n" + diff), TITLE_FILE, m(head)[:300]))
        else:
            out.append(_finding(host, rid, "pass", "", TITLE_FILE))
    for name, u in exp.units.items():
        rid = f"drift:unit:{name}"
        if u.not_evaluated:
            out.append(_finding(host, rid, "not_applicable", f"not evaluated: {u.not_evaluated}", TITLE_UNIT))
            continue
        st = obs.units.get(name, {})
        problems = _unit_problems(u, st)
        if problems:
            head = f"{name} (role {u.role}): " + "; ".join(problems)
            out.append(_finding(host, rid, "fail", head + "\n" + "\n".join(f"{k}={v}" for k, v in sorted(st.items())),
                                TITLE_UNIT, head[:300]))
        else:
            out.append(_finding(host, rid, "pass", "", TITLE_UNIT))
    missing = set(_PACKAGES.missing(list(exp.packages), obs.dpkg))
    for name, role in exp.packages.items():
        rid = f"drift:package:{name}"
        if name in missing:
            head = f"{name} (role {role}): not installed"
            out.append(_finding(host, rid, "fail", head, TITLE_PACKAGE, head, severity="medium"))
        else:
            out.append(_finding(host, rid, "pass", "", TITLE_PACKAGE, severity="medium"))
    for role, tasks in exp.tasks_not_evaluated.items():
        text = "not evaluated (needs a real run): " + "; ".join(tasks)
        out.append(_finding(host, f"drift:role:{role}", "not_applicable", m(text), TITLE_ROLE, m(text)[:300],
                            severity="low"))
    return out


def _unit_problems(u: ExpectedUnit, st: Mapping[str, str]) -> list[str]:
    load, active, filestate = st.get("LoadState", ""), st.get("ActiveState", ""), st.get("UnitFileState", "")
    if u.unneeded and u.enabled is None and u.state is None:
        # provnet_units `unneeded`: disabled and stopped where installed
        if load in ("not-found", "masked"):
            return []
        out = []
        if filestate in ENABLED - {"static", "generated", "transient", "indirect"}:
            out.append(f"enabled ({filestate}), the role disables it")
        if active in ACTIVE:
            out.append(f"running ({active}), the role stops it")
        return out
    if load == "not-found":
        return ["not installed (no such unit)"]
    out = []
    if u.masked is False and (load == "masked" or filestate == "masked"):
        out.append("masked, the role unmasks it")
    if u.enabled is True and filestate not in ENABLED:
        out.append(f"not enabled ({filestate or 'unknown'})")
    if u.enabled is False and filestate in ENABLED:
        out.append(f"enabled ({filestate}), the role disables it")
    if u.state == "started" and active not in ACTIVE:
        out.append(f"not running ({active or 'unknown'})")
    if u.state == "stopped" and active in ACTIVE:
        out.append(f"running ({active}), the role stops it")
    return out


def applies(dev: Device) -> bool:
    """A node with a Linux shell the roles converge (IOS, FortiOS and TelePresence devices have none)."""
    return bool(set(dev.platforms) - NOT_LINUX)


def check(plan: Plan, m: Model, host: str, vault: Mapping[str, str], run: Callable[[str], tuple[int, str]],
          mask: Callable[[str], str]) -> list[trend.Finding]:
    """Stages 1-3 for one device over its shell (``run(command) -> (rc, stdout)``, one command)."""
    try:
        exp = expected(plan, m, host, vault)
    except Exception as exc:  # noqa: BLE001 - a role that cannot be read is this device's error
        return [_finding(host, "drift:roles", "error", mask(f"{type(exc).__name__}: {exc}"), TITLE_FILE,
                         "could not compute what the roles would write")]
    if exp.error:
        return [_finding(host, "drift:roles", "error", mask(exp.error), TITLE_FILE, mask(exp.error)[:300])]
    if exp.empty():
        return []
    rc, out = run(command(exp))
    obs = parse(out, exp) if rc == 0 else Observed(error=f"the state command failed (exit {rc})")
    return compare(exp, obs, mask)


__all__ = ["Plan", "Expected", "ExpectedFile", "ExpectedUnit", "Observed", "expected", "command", "parse",
           "compare", "check", "applies", "answer_for", "inventory_vars", "group_names", "unit_name", "MAX_BYTES",
           "LOCK"]
