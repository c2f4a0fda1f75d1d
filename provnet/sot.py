"""Load and validate the source of truth under ``inventory/<province>/``.

Stages: read files → schema (per file) → cross-object rules → :class:`Source`.
Every problem of every file is collected and reported at once; nothing
downstream runs on an invalid inventory.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from provnet import schema
from provnet.errors import InventoryError, Problem
from provnet.yamlio import YamlLimitError, YamlSyntaxError, excerpt, load

PROVINCE_FILE = "province.yml"
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


def hostname(slug: str, key: str) -> str:
    """A site device's hostname: ``<site slug>-<device key>``."""
    return f"{slug}-{key}"


def site_devices(site: schema.SiteFile, province: schema.ProvinceFile) -> dict[str, tuple[str, schema.DeviceDef]]:
    """hostname → (key, definition): the site's own ``devices``, or site_defaults' when it has none."""
    defs = site.devices if site.devices is not None else province.site_defaults.devices
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
    try:
        province = schema.ProvinceFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(schema_problems(exc, schema.ProvinceFile, prov_shown, ""))

    sites: list[schema.SiteFile] = []
    site_files: dict[str, Path] = {}
    site_paths: list[Path] = []  # one per site, in order (two files may claim one slug)
    sites_dir = site_root / SITES_DIR
    shown_sites_root = shown_root if site_root == root else str(site_root)
    for path in sorted(sites_dir.glob("*.yml")) if sites_dir.is_dir() else []:
        files.append(path)
        shown = _show(path, site_root, shown_sites_root)
        data = _read_mapping(path, shown, problems)
        if data is None:
            continue
        label = f"site '{data.get('slug', path.stem)}'"
        try:
            site = schema.SiteFile.model_validate(data)
        except ValidationError as exc:
            problems.extend(schema_problems(exc, schema.SiteFile, shown, label))
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
        source = Source(root, province, tuple(sites), site_files, ids, tuple(files), folders)
        problems.extend(check(source, prov_shown, [_show(p, site_root, shown_sites_root) for p in site_paths]))
    if problems:
        raise InventoryError(problems)
    assert province is not None
    return Source(root, province, tuple(sites), site_files, ids, tuple(files), folders)


# ---------------------------------------------------------------- cross-object rules


def _net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def check(src: Source, prov_shown: str, site_shown: list[str] | None = None) -> list[Problem]:
    """Rules that span objects: uniqueness, references, pools, hostnames.

    ``site_shown``: the file each site came from, as shown to the user, in ``src.sites`` order.
    """
    if site_shown is None:
        site_shown = [SITES_DIR] * len(src.sites)
    p = src.province
    out: list[Problem] = []
    add = out.append

    # devices: platforms, roles, hostnames
    def check_device(shown: str, obj: str, dev: schema.DeviceDef, zones: dict[str, schema.DcZone] | None) -> None:
        for plat in dev.platforms():
            if plat not in schema.PLATFORMS:
                add(Problem(shown, obj, f"unknown platform '{plat}'",
                            f"use one of: {', '.join(schema.PLATFORMS)}"))
        if dev.role not in schema.ROLES:
            add(Problem(shown, obj, f"unknown role '{dev.role}'", f"use one of: {', '.join(schema.ROLES)}"))
        if dev.vlan is not None and dev.vlan not in p.vlans:
            add(Problem(shown, obj, f"unknown VLAN '{dev.vlan}'", f"use one of: {', '.join(p.vlans)}"))
        if zones is not None:
            for zone in dev.zones:
                if zone not in zones:
                    add(Problem(shown, obj, f"unknown DC zone '{zone}'", f"use one of: {', '.join(zones)}"))
        elif dev.zones:
            add(Problem(shown, obj, "zones are only for DC devices", "remove 'zones' or give the device a 'vlan'"))

    hostnames: dict[str, str] = {}

    def claim_hostname(name: str, shown: str, obj: str) -> None:
        if not schema.HOSTNAME_LABEL.match(name):
            add(Problem(shown, obj, f"hostname '{name}' is not a valid RFC 1123 label",
                        "use lowercase letters, digits and hyphens, at most 63, not starting or ending with '-'"))
        if name in hostnames:
            add(Problem(shown, obj, f"duplicate hostname '{name}' (also in {hostnames[name]})",
                        "give the site a different slug or the device a different key"))
        else:
            hostnames[name] = shown

    for name, dev in p.dc.devices.items():
        obj = f"dc.devices.{name}"
        check_device(prov_shown, obj, dev, p.dc.zones)
        claim_hostname(name, prov_shown, obj)
    for name, dev in p.site_defaults.devices.items():
        check_device(prov_shown, f"site_defaults.devices.{name}", dev, None)
    for zname, zone in p.dc.zones.items():
        if zone.switch is not None and zone.switch not in p.dc.devices:
            add(Problem(prov_shown, f"dc.zones.{zname}", f"switch '{zone.switch}' is not a DC device",
                        f"use one of: {', '.join(p.dc.devices)}"))
    if p.dc.controller_zone is not None and p.dc.controller_zone not in p.dc.zones:
        add(Problem(prov_shown, "dc.controller_zone", f"unknown DC zone '{p.dc.controller_zone}'",
                    f"use one of: {', '.join(p.dc.zones)}"))
    site_slugs = {st.slug for st in src.sites}
    vc_refs = [("vc.chair", p.vc.chair)] if p.vc.chair else []
    vc_refs += [("vc.recorders", slug) for slug in p.vc.recorders]
    for mname, meeting in p.vc.meetings.items():
        if not schema.SLUG.match(mname) or mname == "toan-tinh" or mname.startswith("huyen-"):
            add(Problem(prov_shown, f"vc.meetings.{mname}", "name is not a free lowercase ASCII slug",
                        "name it like 'giao-ban-tuan' ('toan-tinh' and 'huyen-*' are built in)"))
        vc_refs += [(f"vc.meetings.{mname}.chair", meeting.chair)]
        vc_refs += [(f"vc.meetings.{mname}.sites", slug) for slug in meeting.sites]
    for where, slug in vc_refs:
        if slug not in site_slugs:
            add(Problem(prov_shown, where, f"site '{slug}' does not exist",
                        "use a site slug from sites/*.yml"))
    for sname, host in p.services.model_dump().items():
        if host not in p.dc.devices:
            add(Problem(prov_shown, f"services.{sname}", f"'{host}' is not a DC device",
                        f"use one of: {', '.join(p.dc.devices)}"))

    # sites: duplicates and references
    seen: dict[str, dict[object, str]] = defaultdict(dict)
    districts = {s.slug for s in src.sites if s.level == "district"}
    retired = {r.id: r for r in (src.ids.retired if src.ids else [])}
    for site, shown in zip(src.sites, site_shown, strict=True):
        obj = f"site '{site.slug}'"
        for key, value in (("id", site.id), ("slug", site.slug), ("code", site.code), ("circuit_id", site.circuit_id)):
            if value in seen[key]:
                add(Problem(shown, obj, f"duplicate {key} {value!r} (also in {seen[key][value]})",
                            f"give each site its own {key}"
                            + (" (next free: provnet inventory next-id)" if key == "id" else "")))
            else:
                seen[key][value] = shown
        if not schema.SLUG.match(site.slug):
            add(Problem(shown, obj, f"slug '{site.slug}' is not lowercase ASCII words joined by '-'",
                        "write it like 'hoang-hoa' (no diacritics, spaces or underscores)"))
        if site.kind not in schema.SITE_KINDS:
            add(Problem(shown, obj, f"unknown kind '{site.kind}'", f"use one of: {', '.join(schema.SITE_KINDS)}"))
        if site.district is not None:
            if site.level == "district":
                add(Problem(shown, obj, "a district cannot have a parent district", "remove 'district'"))
            elif site.district not in districts:
                add(Problem(shown, obj, f"parent district '{site.district}' does not exist",
                            f"add sites/{site.district}.yml with level: district, or use one of: "
                            f"{', '.join(sorted(districts)) or '(no districts defined)'}"))
        if site.id in retired:
            add(Problem(shown, obj, f"id {site.id} was retired with '{retired[site.id].slug}' and is never reused",
                        "take a new id (provnet inventory next-id)"))
        for key, dev in (site.devices or {}).items():
            check_device(shown, f"{obj}.devices.{key}", dev, None)
        for name, (key, _) in site_devices(site, p).items():
            claim_hostname(name, shown, f"{obj}.devices.{key}")

    out.extend(_check_pools(src, prov_shown))
    return out


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
