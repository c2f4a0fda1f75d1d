"""Load and validate the source of truth under ``inventory/<province>/``.

Stages: read files → schema (per file) → cross-object rules → :class:`Source`.
Every problem of every file is collected and reported at once; nothing
downstream runs on an invalid inventory.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from provnet import guard, schema
from provnet.errors import InventoryError, Problem
from provnet.yamlio import YamlLimitError, YamlSyntaxError, excerpt, load

PROVINCE_FILE = "province.yml"
ANSIBLE_SOURCE = "provnet.yml"   # the Ansible inventory source in the same folder
IDS_FILE = "ids.yml"
SITES_DIR = "sites"


@dataclass(frozen=True)
class Source:
    """The validated source of truth, before allocation."""

    root: Path
    province: schema.ProvinceFile
    sites: tuple[schema.SiteFile, ...]
    site_files: dict[str, Path]
    ids: schema.IdsFile | None
    files: tuple[Path, ...] = field(default=())
    folders: tuple[Path, ...] = field(default=())   # whose listing decides which files are read
    shown_root: str = ""                               # how the user named the inventory folder

    def shown(self, path: Path) -> str:
        """A file as the user sees it: under the folder they named."""
        return _show(path, self.root, self.shown_root or str(self.root))


def hostname(slug: str, key: str) -> str:
    """A site device's hostname: ``<site slug>-<device key>``."""
    return f"{slug}-{key}"


def site_devices(site: schema.SiteFile, province: schema.ProvinceFile) -> dict[str, tuple[str, schema.DeviceDef]]:
    """hostname → (key, definition): the site's own ``devices``, or site_defaults' when it has none.

    A province-level hall takes site_defaults without the CE: the DC firewall is its router.
    """
    if site.devices is not None:
        defs = site.devices
    else:
        defs = {k: d for k, d in province.site_defaults.devices.items()
                if site.level != "province" or d.role != "ce"}
    return {hostname(site.slug, key): (key, d) for key, d in defs.items()}


# ---------------------------------------------------------------- file reading


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_mapping(path: Path, shown: str, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = load(path)
    except YamlLimitError as exc:
        problems.append(Problem(shown, exc.obj, str(exc), exc.fix))
        return None
    except YamlSyntaxError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        problems.append(Problem(shown, "file", f"YAML syntax error{where}: {exc}", "correct the YAML syntax"))
        return None
    except OSError as exc:
        problems.append(Problem(shown, "file", f"cannot read: {exc.strerror}", "check the path and permissions"))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(shown, "file", "is not a YAML mapping", "write the file as `key: value` pairs"))
        return None
    return data


def _show(path: Path, root: Path, shown_root: str) -> str:
    try:
        return str(Path(shown_root) / path.relative_to(root))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- schema errors


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the field at ``loc`` (for listing allowed keys)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return None
            current = info.annotation
        else:
            args = getattr(current, "__args__", ())
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if not models:
                return None
            current = models[0]
            # a dict[str, Model] or list[Model] level consumes this key/index
            continue
        while not (isinstance(current, type) and issubclass(current, BaseModel)):
            args = getattr(current, "__args__", ())
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if models and getattr(current, "__origin__", None) not in (dict, list):
                current = models[0]
                break
            break
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a mapping", "list_type": "a list", "model_type": "a mapping",
    "literal_error": None,
}


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[str]", "function-after[<lambda>(), str]"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str", "int"))))


def schema_problems(
    exc: ValidationError, model: type[BaseModel], shown: str, obj: str
) -> list[Problem]:
    """Turn pydantic's errors into one :class:`Problem` per error."""
    problems: list[Problem] = []
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        kind = err["type"]
        name = _loc_text(loc)
        where = f"{obj}.{name}" if name and obj else (name or obj)
        value = err.get("input")
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = ", ".join(owner.model_fields) if owner else "the documented keys"
            problems.append(Problem(shown, where, f"unknown key '{loc[-1]}'",
                                    f"remove it or use one of: {allowed}"))
        elif kind == "missing":
            problems.append(Problem(shown, where, f"missing required field '{loc[-1]}'",
                                    f"add '{loc[-1]}' (see docs/inventory.md)"))
        elif kind in _TYPE_WORDS and _TYPE_WORDS[kind]:
            problems.append(Problem(shown, where, f"must be {_TYPE_WORDS[kind]}, got {excerpt(value)}",
                                    f"write {_TYPE_WORDS[kind]}"))
        elif kind == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            problems.append(Problem(shown, where, f"{excerpt(value)} is not allowed",
                                    f"use one of {expected}"))
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            ctx = err.get("ctx", {})
            bound = next(iter(ctx.values()), "")
            rel = {"greater_than_equal": ">=", "less_than_equal": "<=",
                   "greater_than": ">", "less_than": "<"}[kind]
            problems.append(Problem(shown, where, f"{excerpt(value)} is out of range (must be {rel} {bound})",
                                    f"use a value {rel} {bound}"))
        elif kind == "value_error":
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
            if msg == "plain-text secret":
                problems.append(Problem(shown, where, "plain-text secret",
                                        "store it in the vault and write 'vault:<name>' here "
                                        "(provnet inventory vault --help)"))
            else:
                problems.append(Problem(shown, where, f"{excerpt(value)}: {msg}",
                                        "write a network in CIDR form with no host bits, e.g. 198.18.0.0/24"
                                        if "network" in msg else "correct the value"))
        else:
            problems.append(Problem(shown, where, err["msg"], "correct the value (see docs/inventory.md)"))
    return problems


# ---------------------------------------------------------------- loading


def read(root: Path | str, shown_root: str | None = None) -> Source:
    """Read and validate an inventory; raise :class:`InventoryError` listing every problem."""
    root = Path(root)
    shown_root = shown_root if shown_root is not None else str(root)
    problems: list[Problem] = []
    files: list[Path] = []

    prov_path = root / PROVINCE_FILE
    prov_shown = _show(prov_path, root, shown_root)
    if not prov_path.is_file():
        raise InventoryError([Problem(prov_shown, "inventory", f"no {PROVINCE_FILE} in {shown_root}",
                                      "point -i at an inventory folder (e.g. inventory/lab) "
                                      "or create it with `provnet inventory import`")])
    raw = _read_mapping(prov_path, prov_shown, problems)
    files.append(prov_path)
    site_root = root
    if raw is not None and isinstance(raw.get("base"), str):
        base_root = (root / raw["base"]).resolve()
        base_raw = _read_mapping(base_root / PROVINCE_FILE, str(base_root / PROVINCE_FILE), problems)
        files.append(base_root / PROVINCE_FILE)
        if base_raw is not None:
            base_raw.pop("base", None)
            raw = _deep_merge(base_raw, {k: v for k, v in raw.items()})
        if not (root / SITES_DIR).is_dir():
            site_root = base_root
    if raw is None:
        raise InventoryError(problems)

    province: schema.ProvinceFile | None = None
    raw = nfc(raw)
    try:
        province = schema.ProvinceFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(schema_problems(exc, schema.ProvinceFile, prov_shown, ""))

    sites: list[schema.SiteFile] = []
    site_files: dict[str, Path] = {}
    site_paths: list[Path] = []  # one per site, in order (two files may claim one slug)
    sites_dir = site_root / SITES_DIR
    shown_sites_root = shown_root if site_root == root else str(site_root)
    broken: set[str] = set()  # slugs of site files that did not load: nothing else is reported about them
    for path in _site_paths(sites_dir):
        files.append(path)
        shown = _show(path, site_root, shown_sites_root)
        data = _read_mapping(path, shown, problems)
        if data is None:
            broken.add(path.stem)
            continue
        data = nfc(data)
        label = f"site '{data.get('slug', path.stem)}'"
        try:
            site = schema.SiteFile.model_validate(data)
        except ValidationError as exc:
            problems.extend(schema_problems(exc, schema.SiteFile, shown, label))
            broken.update({path.stem, str(data.get("slug", path.stem))})
            continue
        if path.stem != site.slug:
            problems.append(Problem(shown, label, f"file name does not match slug '{site.slug}'",
                                    f"rename the file to sites/{site.slug}.yml"))
        sites.append(site)
        site_files[site.slug] = path
        site_paths.append(path)

    ids: schema.IdsFile | None = None
    ids_path = site_root / IDS_FILE
    if ids_path.is_file():
        files.append(ids_path)
        ids_shown = _show(ids_path, site_root, shown_sites_root)
        data = _read_mapping(ids_path, ids_shown, problems)
        if data is not None:
            try:
                ids = schema.IdsFile.model_validate(data)
            except ValidationError as exc:
                problems.extend(schema_problems(exc, schema.IdsFile, ids_shown, "ids"))

    folders = tuple(dict.fromkeys((root, site_root, sites_dir)))
    if province is not None:
        source = Source(root, province, tuple(sites), site_files, ids, tuple(files), folders, shown_root)
        problems.extend(check(source, prov_shown, [_show(p, site_root, shown_sites_root) for p in site_paths],
                              broken=broken, ids_shown=_show(ids_path, site_root, shown_sites_root)))
        problems.extend(_check_ansible_source(root, shown_root))
    if problems:
        raise InventoryError(problems)
    assert province is not None
    return Source(root, province, tuple(sites), site_files, ids, tuple(files), folders, shown_root)


def _site_paths(sites_dir: Path) -> list[Path]:
    """Site files: ``*.yml`` and ``*.yaml`` alike (a site written either way is read, never skipped)."""
    if not sites_dir.is_dir():
        return []
    return sorted(p for p in sites_dir.iterdir() if p.suffix in (".yml", ".yaml") and not p.name.startswith("."))


def nfc(data: Any) -> Any:
    """Every string NFC-normalised, keys included: a name typed in decomposed form is the same name."""
    if isinstance(data, str):
        return unicodedata.normalize("NFC", data)
    if isinstance(data, dict):
        return {nfc(k): nfc(v) for k, v in data.items()}
    if isinstance(data, list):
        return [nfc(v) for v in data]
    return data


def _check_ansible_source(root: Path, shown_root: str) -> list[Problem]:
    """The folder must also be an Ansible inventory source (``provnet.yml``) for playbooks to use it."""
    path = root / ANSIBLE_SOURCE
    shown = _show(path, root, shown_root)
    fix = f"create {ANSIBLE_SOURCE} holding the one line `plugin: provnet`"
    if not path.is_file():
        return [Problem(shown, "inventory", f"no {ANSIBLE_SOURCE}: ansible-playbook cannot read this inventory", fix)]
    try:
        data = load(path)
    except (YamlSyntaxError, YamlLimitError, OSError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("plugin") != "provnet":
        return [Problem(shown, "plugin", "is not `plugin: provnet`", fix)]
    return []


# ---------------------------------------------------------------- cross-object rules


def _net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


# which role a service's host must have
SERVICE_ROLES = {"ntp": "ntp", "syslog": "soc", "sip_registrar": "sip_registrar", "bridge": "vc_bridge"}
CODE = re.compile(r"^[0-9]{2,5}$")


class _Rules:
    """Cross-object rules over one source; each method adds its problems."""

    def __init__(self, src: Source, prov_shown: str, site_shown: list[str], broken: set[str]) -> None:
        self.src, self.p, self.prov_shown, self.site_shown, self.broken = src, src.province, prov_shown, site_shown, broken
        self.out: list[Problem] = []
        self.hostnames: dict[str, str] = {}

    def add(self, shown: str, obj: str, message: str, fix: str) -> None:
        self.out.append(Problem(shown, obj, message, fix))

    def device(self, shown: str, obj: str, dev: schema.DeviceDef, zones: dict[str, schema.DcZone] | None) -> None:
        """Platforms, role, VLAN and zones of one device definition."""
        for plat in dev.platforms():
            if plat not in schema.PLATFORMS:
                self.add(shown, obj, f"unknown platform '{plat}'", f"use one of: {', '.join(schema.PLATFORMS)}")
        if dev.role not in schema.ROLES:
            self.add(shown, obj, f"unknown role '{dev.role}'", f"use one of: {', '.join(schema.ROLES)}")
        if dev.vlan is not None and dev.vlan not in self.p.vlans:
            self.add(shown, obj, f"unknown VLAN '{dev.vlan}'", f"use one of: {', '.join(self.p.vlans)}")
        if zones is not None:
            for zone in dev.zones:
                if zone not in zones:
                    self.add(shown, obj, f"unknown DC zone '{zone}'", f"use one of: {', '.join(zones)}")
        elif dev.zones:
            self.add(shown, obj, "zones are only for DC devices", "remove 'zones' or give the device a 'vlan'")

    def hostname(self, name: str, shown: str, obj: str) -> None:
        if not schema.HOSTNAME_LABEL.match(name):
            self.add(shown, obj, f"hostname '{name}' is not a valid RFC 1123 label",
                     "use lowercase letters, digits and hyphens, at most 63, not starting or ending with '-'")
        if name in self.hostnames:
            self.add(shown, obj, f"duplicate hostname '{name}' (also in {self.hostnames[name]})",
                     "give the site a different slug or the device a different key")
        else:
            self.hostnames[name] = shown

    def dc(self) -> None:
        p, shown = self.p, self.prov_shown
        for name, dev in p.dc.devices.items():
            self.device(shown, f"dc.devices.{name}", dev, p.dc.zones)
            self.hostname(name, shown, f"dc.devices.{name}")
        for name, dev in p.site_defaults.devices.items():
            self.device(shown, f"site_defaults.devices.{name}", dev, None)
        self.site_devices(shown, "site_defaults.devices", p.site_defaults.devices, "commune")
        for zname, zone in p.dc.zones.items():
            if zone.switch is not None and zone.switch not in p.dc.devices:
                self.add(shown, f"dc.zones.{zname}", f"switch '{zone.switch}' is not a DC device",
                         f"use one of: {', '.join(p.dc.devices)}")
        if p.dc.controller_zone is not None and p.dc.controller_zone not in p.dc.zones:
            self.add(shown, "dc.controller_zone", f"unknown DC zone '{p.dc.controller_zone}'",
                     f"use one of: {', '.join(p.dc.zones)}")
        for sname, host in p.services.model_dump().items():
            want = SERVICE_ROLES[sname]
            if host not in p.dc.devices:
                self.add(shown, f"services.{sname}", f"'{host}' is not a DC device",
                         f"use one of: {', '.join(p.dc.devices)}")
            elif p.dc.devices[host].role != want and p.dc.devices[host].role in schema.ROLES:
                hosts = [n for n, d in p.dc.devices.items() if d.role == want]
                self.add(shown, f"services.{sname}", f"'{host}' has role '{p.dc.devices[host].role}', not '{want}'",
                         f"name a DC device with role {want}" + (f": {', '.join(hosts)}" if hosts else
                                                                 f" (add one to dc.devices)"))
        lo, hi = p.sip.rtp_ports
        if not 1024 <= lo < hi <= 65535:
            self.add(shown, "sip.rtp_ports", f"[{lo}, {hi}] is not a port range",
                     "write [first, last] with 1024 <= first < last <= 65535, e.g. [10000, 10999]")
        elif lo <= p.sip.port <= hi:
            self.add(shown, "sip.rtp_ports", f"[{lo}, {hi}] contains the SIP port {p.sip.port}",
                     "move the RTP range or the SIP port apart")
        if p.sip.transport == "tls":
            self.sip_tls(shown, p, lo, hi)

    def sip_tls(self, shown: str, p: schema.ProvinceFile, lo: int, hi: int) -> None:
        """TLS needs a registrar and endpoints that speak it: Kamailio's tls module, TelePresence endpoints."""
        if p.sip.tls_port == p.sip.port or lo <= p.sip.tls_port <= hi:
            self.add(shown, "sip.tls_port", f"{p.sip.tls_port} is already the SIP port or inside the RTP range",
                     "give SIP over TLS its own port (5061 by default)")
        if not p.province.production:
            self.add(shown, "sip.transport", "tls in a lab inventory: the lab image's Kamailio has no tls module "
                     "and its baresip endpoints register over UDP", "keep sip.transport: udp in lab inventories")
        baresip = [k for k, d in p.site_defaults.devices.items() if "baresip" in d.platforms()]
        if baresip and p.province.production:
            self.add(shown, "sip.transport", f"tls, but site_defaults.devices.{baresip[0]} is a baresip endpoint, "
                     "which provnet configures for UDP only", "use cisco_tp endpoints, or sip.transport: udp")

    def site_devices(self, shown: str, obj: str, defs: dict[str, schema.DeviceDef], level: str) -> None:
        """A site needs one CE (a province-level hall none); an endpoint sits on a VLAN behind it."""
        roles = [d.role for d in defs.values()]
        if not defs:
            self.add(shown, obj, "the site has no devices",
                     "remove 'devices' to use site_defaults, or list its CE and endpoint")
            return
        if level == "province":
            for key, d in defs.items():
                if d.role == "ce":
                    self.add(shown, f"{obj}.{key}", "a province-level site has no CE: the DC firewall routes "
                             "its VLANs", f"remove device '{key}', or make the site a district or commune")
        elif roles.count("ce") != 1:
            self.add(shown, obj, f"{roles.count('ce')} devices with role ce: a site has exactly one CE",
                     "keep one CE (the site's router to the carrier)" if roles.count("ce") else
                     "add a device with role: ce — it is how the site's devices reach the DC")
        for key, d in defs.items():
            if d.role != "ce" and d.vlan is None:
                self.add(shown, f"{obj}.{key}", f"role {d.role} on no VLAN: behind the CE it has no address",
                         f"give it 'vlan: one of {', '.join(self.p.vlans)}' (video for an endpoint)")

    def province_level(self, shown: str, obj: str, site: schema.SiteFile) -> None:
        """A province-level hall: the province's own code, no district, a DC firewall to route it."""
        p = self.p
        if site.district is not None:
            self.add(shown, obj, "a province-level site belongs to no district", "remove 'district'")
        if p.province.code is not None and site.code != f"{p.province.code:02d}":
            self.add(shown, f"{obj}.code", f"{excerpt(site.code)} is not the province's code",
                     f"write code: \"{p.province.code:02d}\" (the official code of {p.province.name})")
        if not any(d.role == "firewall" for d in p.dc.devices.values()):
            self.add(shown, obj, "a province-level site is routed by the DC firewall, and dc.devices has none",
                     "add the DC firewall (role: firewall) to province.yml, or make the site a district or commune")

    def vc_refs(self, slugs: set[str]) -> None:
        p, shown = self.p, self.prov_shown
        refs = [("vc.chair", p.vc.chair)] if p.vc.chair else []
        refs += [("vc.recorders", slug) for slug in p.vc.recorders]
        for mname, meeting in p.vc.meetings.items():
            if not schema.SLUG.match(mname) or mname == "toan-tinh" or mname.startswith("huyen-"):
                self.add(shown, f"vc.meetings.{mname}", "name is not a free lowercase ASCII slug",
                         "name it like 'giao-ban-tuan' ('toan-tinh' and 'huyen-*' are built in)")
            refs += [(f"vc.meetings.{mname}.chair", meeting.chair)]
            refs += [(f"vc.meetings.{mname}.sites", slug) for slug in meeting.sites]
        for where, slug in refs:
            if slug not in slugs and slug not in self.broken:  # a broken file is reported on its own
                self.add(shown, where, f"site '{slug}' does not exist", "use a site slug from sites/*.yml")

    def sites(self) -> None:
        src, p = self.src, self.p
        seen: dict[str, dict[object, str]] = defaultdict(dict)
        levels = {s.slug: s.level for s in src.sites}
        districts = {slug for slug, level in levels.items() if level == "district"}
        retired = {r.id: r for r in (src.ids.retired if src.ids else [])}
        for site, shown in zip(src.sites, self.site_shown, strict=True):
            obj = f"site '{site.slug}'"
            parent = site.district if site.level == "commune" else None
            for key, value in (("id", site.id), ("slug", site.slug), ("code", site.code),
                               ("circuit_id", site.circuit_id), ("name", (site.level, parent, site.name))):
                if value is None or (key == "code" and site.level == "province"):
                    continue  # halls share the province's code; a hall has no circuit of its own
                if value in seen[key]:
                    what = f"name {site.name!r} at {site.level} level" + (f" in '{parent}'" if parent else "") \
                        if key == "name" else f"{key} {excerpt(value)}"
                    self.add(shown, obj, f"duplicate {what} (also in {seen[key][value]})",
                             f"give each site its own {key}"
                             + (" (next free: provnet inventory next-id)" if key == "id" else ""))
                else:
                    seen[key][value] = shown
            if not schema.SLUG.match(site.slug):
                self.add(shown, obj, f"slug '{site.slug}' is not lowercase ASCII words joined by '-'",
                         "write it like 'hoang-hoa' (no diacritics, spaces or underscores)")
            if not site.name.strip():
                self.add(shown, f"{obj}.name", "is empty", "write the official name, e.g. 'Xã Đồng Đăng'")
            if not CODE.match(site.code):
                self.add(shown, f"{obj}.code", f"{excerpt(site.code)} is not an official administrative code",
                         "write the code of the commune or district as digits, e.g. \"06184\" "
                         "(provnet inventory import fills it in)")
            if site.kind not in schema.SITE_KINDS:
                self.add(shown, obj, f"unknown kind '{site.kind}'", f"use one of: {', '.join(schema.SITE_KINDS)}")
            if site.district is not None:
                if site.level == "district":
                    self.add(shown, obj, "a district cannot have a parent district", "remove 'district'")
                elif site.district in levels and site.district not in districts:
                    self.add(shown, obj, f"parent '{site.district}' is a {levels[site.district]}, not a district",
                             f"set level: district in sites/{site.district}.yml, or use one of: "
                             f"{', '.join(sorted(districts)) or '(no districts defined)'}")
                elif site.district not in districts and site.district not in self.broken:
                    self.add(shown, obj, f"parent district '{site.district}' does not exist",
                             f"add sites/{site.district}.yml with level: district, or use one of: "
                             f"{', '.join(sorted(districts)) or '(no districts defined)'}")
            if site.id in retired:
                self.add(shown, obj, f"id {site.id} was retired with '{retired[site.id].slug}' and is never reused",
                         "take a new id (provnet inventory next-id)")
            for key, dev in (site.devices or {}).items():
                self.device(shown, f"{obj}.devices.{key}", dev, None)
            if site.devices is not None:
                self.site_devices(shown, f"{obj}.devices", site.devices, site.level)
            if site.level == "province":
                self.province_level(shown, obj, site)
            elif site.circuit_id is None:
                self.add(shown, f"{obj}.circuit_id", "missing required field 'circuit_id'",
                         "add 'circuit_id' (see docs/inventory.md)")
            for name, (key, _) in site_devices(site, p).items():
                self.hostname(name, shown, f"{obj}.devices.{key}")

    def ledger(self, ids_shown: str) -> None:
        """ids.yml against the site files: an id handed out must be a site's or retired."""
        ids = self.src.ids
        if ids is None:
            return
        have = {s.id: shown for s, shown in zip(self.src.sites, self.site_shown, strict=True)}
        retired = {r.id for r in ids.retired}
        for sid, shown in sorted(have.items()):
            if sid >= ids.next_id:
                self.add(shown, f"site id {sid}", f"is not below ids.yml next_id {ids.next_id}",
                         f"set next_id: {max(have) + 1} in ids.yml (provnet inventory next-id tells the next free id)")
        slugs = {s.slug for s in self.src.sites}
        for entry in ids.assigned:
            if entry.slug not in slugs and entry.slug not in self.broken and entry.id not in retired:
                self.add(ids_shown, f"assigned id {entry.id}",
                         f"site '{entry.slug}' ({entry.name or entry.code}) has no file: sites/{entry.slug}.yml is gone",
                         f"restore sites/{entry.slug}.yml, or retire the site (move its entry to retired: "
                         "with retired_on)")
        if self.broken or ids.assigned:
            return  # a file that did not load may hold the id; a ledger that lists its sites said it all above
        gone = [i for i in range(1, ids.next_id) if i not in have and i not in retired]
        if gone:
            self.add(ids_shown, f"site id{'s' if len(gone) > 1 else ''} {_ranges(gone)}",
                     "handed out (below next_id) but no site file has it: a site file is missing",
                     "restore the site's sites/<slug>.yml, or retire the id in ids.yml (retired: with its slug "
                     "and retired_on)")


def _ranges(ids: list[int]) -> str:
    """1, 2, 3, 7 → '1–3, 7'."""
    out: list[str] = []
    start = prev = ids[0]
    for i in [*ids[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}–{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(out)


def check(src: Source, prov_shown: str, site_shown: list[str] | None = None, *,
          broken: set[str] | None = None, ids_shown: str = IDS_FILE) -> list[Problem]:
    """Rules that span objects: uniqueness, references, completeness, pools, hostnames, the id ledger.

    ``site_shown``: the file each site came from, as shown to the user, in ``src.sites`` order;
    ``broken``: slugs of site files that failed to load (references to them are not reported again).
    """
    rules = _Rules(src, prov_shown, site_shown or [SITES_DIR] * len(src.sites), broken or set())
    rules.dc()
    rules.vc_refs({st.slug for st in src.sites})
    rules.sites()
    rules.ledger(ids_shown)
    return rules.out + _check_pools(src, prov_shown)


def _check_pools(src: Source, shown: str) -> list[Problem]:
    p = src.province
    out: list[Problem] = []
    max_id = max((s.id for s in src.sites), default=0)
    pools: dict[str, ipaddress.IPv4Network] = {
        "pools.loopback": _net(p.pools.loopback),
        "pools.wan": _net(p.pools.wan),
        "dc.loopback": _net(p.dc.loopback),
    }
    if p.pools.oob:
        pools["pools.oob"] = _net(p.pools.oob)
    for name, vlan in p.vlans.items():
        pools[f"vlans.{name}.pool"] = _net(vlan.pool)
    for name, zone in p.dc.zones.items():
        pools[f"dc.zones.{name}.prefix"] = _net(zone.prefix)
    if not p.province.production:
        for name, net in pools.items():
            if not guard.in_lab_range(net):
                out.append(Problem(shown, name, f"{net} lies outside the lab range {guard.LAB_RANGE}",
                                   "a lab inventory uses 198.18.0.0/15 only: pick a range inside it, or set "
                                   "province.production: true for a real network (then PROVNET_PRODUCTION=1 "
                                   "is needed to contact it)"))
    for (a, na), (b, nb) in itertools.combinations(pools.items(), 2):
        if na.overlaps(nb):
            out.append(Problem(shown, a, f"{na} overlaps {b} ({nb})", "give every pool its own address range"))

    def need(name: str, capacity: int, unit: str) -> None:
        if capacity <= max_id:
            out.append(Problem(shown, name, f"{pools[name]} holds {capacity} {unit} (ids 0..{capacity - 1}) "
                               f"but the highest site id is {max_id}",
                               f"enlarge the pool to hold at least {max_id + 1} {unit}"))

    need("pools.loopback", pools["pools.loopback"].num_addresses, "loopbacks")
    need("pools.wan", pools["pools.wan"].num_addresses // 2, "/31 links")
    if p.pools.oob:
        oob = pools["pools.oob"]
        if p.pools.oob_block_prefix < oob.prefixlen:
            out.append(Problem(shown, "pools.oob_block_prefix", f"/{p.pools.oob_block_prefix} is larger than {oob}",
                               "use a block prefix longer than the pool's"))
        else:
            need("pools.oob", 2 ** (p.pools.oob_block_prefix - oob.prefixlen), f"/{p.pools.oob_block_prefix} blocks")
    vlan_ids: dict[int, str] = {}
    for name, vlan in p.vlans.items():
        key = f"vlans.{name}.pool"
        if name not in schema.VLAN_NAMES:
            out.append(Problem(shown, f"vlans.{name}", f"unknown VLAN name '{name}'",
                               f"use one of: {', '.join(schema.VLAN_NAMES)}"))
        if vlan.id in vlan_ids:
            out.append(Problem(shown, f"vlans.{name}.id", f"VLAN id {vlan.id} is also used by '{vlan_ids[vlan.id]}'",
                               "give each VLAN its own id"))
        vlan_ids[vlan.id] = name
        if vlan.prefix < pools[key].prefixlen:
            out.append(Problem(shown, f"vlans.{name}.prefix", f"/{vlan.prefix} does not fit in {pools[key]}",
                               "use a site prefix longer than the pool's"))
            continue
        need(key, 2 ** (vlan.prefix - pools[key].prefixlen), f"/{vlan.prefix} subnets")
    for name in schema.VLAN_NAMES:
        if name not in p.vlans:
            out.append(Problem(shown, "vlans", f"VLAN '{name}' is not defined",
                               f"add vlans.{name} with an id, a pool and a prefix"))
    span = p.asn_range.end - p.asn_range.start + 1
    if span <= 0:
        out.append(Problem(shown, "asn_range", f"end {p.asn_range.end} is below start {p.asn_range.start}",
                           "swap start and end"))
    elif span <= max_id:
        out.append(Problem(shown, "asn_range", f"holds {span} ASNs but the highest site id is {max_id}",
                           f"widen the range to at least {max_id + 1} ASNs"))
    if p.asn_range.start <= p.carrier.asn <= p.asn_range.end:
        out.append(Problem(shown, "carrier.asn", f"{p.carrier.asn} lies inside the province's asn_range",
                           "the carrier's ASN must differ from every site's"))
    return out
