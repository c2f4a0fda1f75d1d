"""Import a real province from the ``vietnam-provinces`` package (2025 structure).

``import_province`` writes (or refreshes) an inventory under ``inventory/<name>/``:
``province.yml`` (only when absent), one ``sites/<slug>.yml`` per commune, ward
and special zone, and the id ledger ``ids.yml``. Re-importing keeps every
existing site's id, slug and hand-edited fields, gives new units new ids and
retires vanished units into ``retired/`` without ever reusing their ids.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from provnet import schema, sot, yamlio
from provnet.errors import InventoryError, Problem, ProvnetError
from provnet.slug import fold, unique_slugs

RETIRED_DIR = "retired"
CARRIER_ASN_PLACEHOLDER = 64512
ASN_BASE = 4_200_000_000
PLACEHOLDER_PHONE = "chưa cập nhật"

# The lab's addressing and DC (pools, vlans, dc) have one home: the lab inventory itself.
LAB_PROVINCE = Path(__file__).resolve().parent.parent / "inventory" / "lab" / sot.PROVINCE_FILE

# A production DC as imported; the lab's comes from LAB_PROVINCE.
DC_DEVICES: dict[str, Any] = {
    "dc-core": {"platform": "frr", "role": "core", "index": 3, "zones": ["transit"]},
    "dc-fw": {"platform": ["frr", "nftables"], "role": "firewall", "index": 4, "zones": ["transit", "servers"]},
    "dc-sw": {"platform": "linux_switch", "role": "switch", "index": 5, "zones": ["servers"]},
    "dc-ntp": {"platform": "linux", "role": "ntp", "index": 10, "zones": ["servers"]},
    "dc-soc": {"platform": "linux", "role": "soc", "index": 11, "zones": ["servers"]},
    "dc-sip": {"platform": "linux", "role": "sip_registrar", "index": 12, "zones": ["servers"]},
    "dc-mcu": {"platform": "linux", "role": "vc_bridge", "index": 13, "zones": ["servers"]},
}


# The 2025 reform (National Assembly resolution of 12 June 2025: 63 provinces became 34).
# Pre-2025 code → (pre-2025 name, the 2025 province's code); a province that kept its name
# and code is not listed. Thừa Thiên Huế became Thành phố Huế (46) in January 2025.
MERGED_2025: dict[int, tuple[str, int]] = {
    2: ("Hà Giang", 8), 6: ("Bắc Kạn", 19), 10: ("Lào Cai", 15), 17: ("Hòa Bình", 25),
    26: ("Vĩnh Phúc", 25), 27: ("Bắc Ninh", 24), 30: ("Hải Dương", 31), 34: ("Thái Bình", 33),
    35: ("Hà Nam", 37), 36: ("Nam Định", 37), 45: ("Quảng Trị", 44), 49: ("Quảng Nam", 48),
    54: ("Phú Yên", 66), 58: ("Ninh Thuận", 56), 60: ("Bình Thuận", 68), 62: ("Kon Tum", 51),
    64: ("Gia Lai", 52), 67: ("Đắk Nông", 68), 70: ("Bình Phước", 75), 72: ("Tây Ninh", 80),
    74: ("Bình Dương", 79), 77: ("Bà Rịa - Vũng Tàu", 79), 83: ("Bến Tre", 86), 84: ("Trà Vinh", 86),
    87: ("Đồng Tháp", 82), 89: ("An Giang", 91), 93: ("Hậu Giang", 92), 94: ("Sóc Trăng", 92),
    95: ("Bạc Liêu", 96), 46: ("Thừa Thiên Huế", 46),
}


@dataclass
class ImportReport:
    """What an import did, by slug; ``next_id`` is the ledger's next free id.

    ``province`` is the official name and code imported; ``matched`` says how the query
    was read when it was not the official name (e.g. ``'thanh hoa' → Tỉnh Thanh Hóa (38)``).
    """

    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    next_id: int = 1
    renamed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # sites whose file was gone: their ledger id again
    province: str = ""
    matched: str | None = None


# ---------------------------------------------------------------- data


def load_divisions() -> list[dict[str, Any]]:
    """The 34 provinces with their communes and wards (tests monkeypatch this)."""
    import vietnam_provinces

    with open(vietnam_provinces.NESTED_DIVISIONS_JSON_PATH, encoding="utf-8") as fh:
        data: list[dict[str, Any]] = json.load(fh)
    return data


def _data_version() -> str:
    try:
        return metadata.version("vietnam-provinces")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


_PROVINCE_PREFIXES = ("tinh-", "thanh-pho-", "tp-")


def _province_key(text: str) -> str:
    key = fold(text)
    for prefix in _PROVINCE_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix):]
    return key


def official_name(province: dict[str, Any]) -> str:
    """The province's name with its prefix: ``Tỉnh Thanh Hóa``, ``Thành phố Hà Nội``."""
    name = unicodedata.normalize("NFC", province["name"])
    return name if name.startswith("Thành phố") else f"Tỉnh {name}"


def _merged(old_code: int, provinces: list[dict[str, Any]]) -> str:
    old_name, new_code = MERGED_2025[old_code]
    new = next(p for p in provinces if int(p["code"]) == new_code)
    return (f"{old_name} (code {old_code:02d} before the 2025 reform) is now part of {official_name(new)} "
            f"(code {new_code}); import that: --province {new_code}")


def find_province(query: str) -> dict[str, Any]:
    """A province by official code (``"38"``) or name (``"Thanh Hóa"``, ``"thanh hoa"``, ``"Tỉnh Thanh Hóa"``).

    Names match without regard to diacritics, case or the "Tỉnh"/"Thành phố" prefix.
    Raises :class:`ProvnetError` naming the 2025 province a pre-2025 one was merged into,
    or close matches when nothing matches.
    """
    provinces = load_divisions()
    text = unicodedata.normalize("NFC", query).strip()
    listing = ", ".join(f"{p['name']} ({p['code']})" for p in provinces)
    if text.isdigit():
        for p in provinces:
            if int(p["code"]) == int(text):
                return p
        if int(text) in MERGED_2025:
            raise ProvnetError(f"no province has official code {text} since 2025: {_merged(int(text), provinces)}")
        raise ProvnetError(f"no province has official code {text}; the 2025 codes are: {listing}")
    key = _province_key(text)
    keys: dict[str, dict[str, Any]] = {}
    for p in provinces:
        for k in (_province_key(p["name"]), fold(p["codename"])):
            keys.setdefault(k, p)
            keys.setdefault(k.replace("-", ""), p)
    if key in keys or key.replace("-", "") in keys:
        return keys.get(key) or keys[key.replace("-", "")]
    old_keys: dict[str, int] = {}
    for old_code, (old_name, _) in MERGED_2025.items():
        old_keys.setdefault(_province_key(old_name), old_code)
        old_keys.setdefault(_province_key(old_name).replace("-", ""), old_code)
    for k in (key, key.replace("-", "")):
        if k in old_keys:
            raise ProvnetError(_merged(old_keys[k], provinces))
    close = difflib.get_close_matches(key, list(keys) + list(old_keys), n=8, cutoff=0.6)
    close += [k for k in list(keys) + list(old_keys) if key and key in k]
    by_code = {int(p["code"]): p for p in provinces}

    def label(k: str) -> str:
        if k in keys:
            return f"{keys[k]['name']} ({keys[k]['code']})"
        old_name, new_code = MERGED_2025[old_keys[k]]
        return f"{old_name} (now part of {official_name(by_code[new_code])}, {new_code})"

    names = list(dict.fromkeys(label(k) for k in close))
    hint = f"did you mean: {', '.join(names)}?" if names else f"the 34 provinces are: {listing}"
    raise ProvnetError(f"no province matches {query!r}; {hint} (give a name or an official code)")


def unit_code(code: int | str) -> str:
    """Official commune/ward code as written in site files: 5 digits, zero-padded."""
    return str(code).strip().zfill(5)


def _kind(division_type: str) -> str:
    return fold(division_type).replace("-", "_")


def _contact_name(name: str) -> str:
    return f"Văn phòng UBND {name}"


# ---------------------------------------------------------------- province.yml


def _domain_label(province: dict[str, Any]) -> str:
    return fold(province["codename"]).replace("-", "")


def lab_layout() -> dict[str, Any]:
    """The lab's ``pools``, ``vlans`` and ``dc`` (without its name), as inventory/lab/province.yml has them."""
    data = _read(LAB_PROVINCE)
    dc = {k: v for k, v in data["dc"].items() if k != "name"}
    return {"pools": data["pools"], "vlans": data["vlans"], "dc": dc}


def province_document(province: dict[str, Any], *, lab: bool = False) -> dict[str, Any]:
    """The ``province.yml`` data for a province: production (10.<code>/16) or lab (198.18/15, :func:`lab_layout`)."""
    c = int(province["code"])
    name = unicodedata.normalize("NFC", province["name"])
    dc_name = f"Trung tâm tích hợp dữ liệu {name}" if name.startswith("Thành phố") else \
        f"Trung tâm tích hợp dữ liệu tỉnh {name}"
    if lab:
        layout = lab_layout()
        pools: dict[str, Any] = layout["pools"]
        vlans: dict[str, Any] = layout["vlans"]
        dc_addr: dict[str, Any] = layout["dc"]
    else:
        pools = {"loopback": f"10.{c}.255.0/24", "wan": f"10.{c}.252.0/23"}
        vlans = {
            "data": {"id": 10, "pool": f"10.{c}.0.0/18", "prefix": 26},
            "video": {"id": 20, "pool": f"10.{c}.64.0/18", "prefix": 26},
            "mgmt": {"id": 99, "pool": f"10.{c}.128.0/19", "prefix": 27},
        }
        dc_addr = {
            "loopback": f"10.{c}.250.0/28",
            "zones": {
                "transit": {"prefix": f"10.{c}.250.16/28"},
                "servers": {"prefix": f"10.{c}.251.0/24", "vlan": 100, "switch": "dc-sw"},
            },
            "devices": json.loads(json.dumps(DC_DEVICES)),
        }
    start = ASN_BASE + c * 10_000
    return {
        "province": {"name": name, "code": c, "production": not lab},
        "carrier": {"name": "VNPT (lab PE)" if lab else "VNPT", "asn": CARRIER_ASN_PLACEHOLDER, "pe_hostname": "pe"},
        "asn_range": {"start": start, "end": start + 9_999},
        "pools": pools,
        "vlans": vlans,
        "dc": {"name": dc_name, **dc_addr},
        "services": {"ntp": "dc-ntp", "syslog": "dc-soc", "sip_registrar": "dc-sip", "bridge": "dc-mcu"},
        "credentials": {
            "admin_user": "netops",
            "admin_password": "vault:admin_password",
            "snmp": {"user": "provnet", "auth_key": "vault:snmp_auth_key", "priv_key": "vault:snmp_priv_key"},
        },
        "sip": {"domain": f"vc.{_domain_label(province)}.{'lab' if lab else 'gov.vn'}",
                "password": "vault:sip_{hostname}"},
        "site_defaults": {
            "bandwidth_mbps": 20,
            "devices": {
                "ce": {"platform": ["frr", "nftables"], "role": "ce", "index": 1},
                "vc": {"platform": "baresip", "role": "endpoint", "index": 2, "vlan": "video"},
            },
        },
    }


_SECTION_NOTES = {
    "carrier": "# The carrier's PE; every site's CE peers with it over its WAN /31.",
    "asn_range": "# Site ASN = start + site id; the DC takes the start itself (id 0).",
    "pools": "# Site loopback /32 = loopback[id]; site WAN /31 = wan[id] (wan[0] is the DC's).",
    "vlans": "# Each site gets subnet[id] of every VLAN pool.",
    "dc": "# Device index = host number in every zone (and out-of-band block 0 when there is one).",
    "site_defaults": "# hostname = <site slug>-<key>; index = host number in the VLAN.",
}


def render_province(province: dict[str, Any], *, lab: bool = False) -> str:
    """``province.yml`` text with explanatory comments."""
    doc = province_document(province, lab=lab)
    c = int(province["code"])
    addressing = ("lab addressing only inside 198.18.0.0/15 (198.19/16 out-of-band)" if lab
                  else f"production addressing in 10.{c}.0.0/16 (contacting it needs PROVNET_PRODUCTION=1)")
    out = [
        f"# provnet province: {doc['province']['name']} (official code {c}), written by",
        f"# `provnet inventory import` from vietnam-provinces {_data_version()} (2025 structure: communes",
        "# and wards, no districts). Re-import never overwrites this file: edit it freely.",
        f"# {addressing[0].upper()}{addressing[1:]}.",
        "# Schema: docs/inventory.md. Secrets are vault references, never plain text.",
    ]
    for key, value in doc.items():
        out.append("")
        if key in _SECTION_NOTES:
            out.append(_SECTION_NOTES[key])
        text = yamlio.dump({key: value}).rstrip("\n")
        if key == "carrier":
            text = text.replace(f"  asn: {CARRIER_ASN_PLACEHOLDER}\n",
                                f"  asn: {CARRIER_ASN_PLACEHOLDER}  # private placeholder: the carrier's real ASN goes here\n")
        out.append(text)
    return "\n".join(out) + "\n"


def render_lab_overlay(province: dict[str, Any], base: str) -> str:
    """A lab overlay ``province.yml``: ``base`` plus the lab's addressing (sites come from the base)."""
    lab = province_document(province, lab=True)
    # only the zones a production DC has: the base's devices know no other (e.g. the lab's mgmt)
    zones = {z: lab["dc"]["zones"][z] for z in province_document(province)["dc"]["zones"] if z in lab["dc"]["zones"]}
    over = {
        "base": base,
        "province": {"production": False},
        "pools": lab["pools"],
        "vlans": lab["vlans"],
        "dc": {"loopback": lab["dc"]["loopback"], "zones": zones},
        "sip": {"domain": lab["sip"]["domain"]},
    }
    head = (f"# Lab overlay of {base}: the same {province['name']} sites, re-addressed inside\n"
            "# 198.18.0.0/15 (198.19/16 out-of-band) for scale tests. Keys here override the base.\n")
    return head + yamlio.dump(over)


# ---------------------------------------------------------------- files


def _write(path: Path, text: str) -> None:
    """Write atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(data: dict[str, Any]) -> str:
    """YAML for a site or ledger, with codes quoted so no reader takes them for numbers."""
    return re.sub(r"^(\s*(?:- )?code): '?(\d+)'?$", r'\1: "\2"', yamlio.dump(data), flags=re.M)


def _read(path: Path) -> dict[str, Any]:
    """A YAML mapping through the inventory loader's limits; its problems as :class:`InventoryError`."""
    problems: list[Problem] = []
    data = sot._read_mapping(path, str(path), problems)
    if data is None:
        raise InventoryError([Problem(p.file, p.obj, p.message, f"{p.fix}, then import again") for p in problems])
    return data


def _id(data: dict[str, Any], key: str = "id") -> int:
    """An id from a file being re-imported; 0 when it is not a whole number (validation reports it)."""
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else \
        int(value) if isinstance(value, str) and value.isdigit() else 0


def _ledger_text(next_id: int, live: list[tuple[int, str, str, str]], retired: list[dict[str, Any]]) -> str:
    """``ids.yml``: the next id, every live site's id (one line each) and the retired ids."""
    out = ["# Site id ledger: ids are never reused; provnet inventory import keeps it up to date.",
           f"next_id: {next_id}"]
    if _LEDGER_KEEPS_ASSIGNED:
        out.append("assigned:  # every site's id: a re-import gives a site whose file is gone its own id back")
        out += [f"- {{id: {i}, code: {json.dumps(c)}, slug: {json.dumps(s)}, name: {json.dumps(n, ensure_ascii=False)}}}"
                for i, c, s, n in live]
    return "\n".join(out) + "\n" + _dump({"retired": retired})


# TODO(issue 20): drop once schema.IdsFile has `assigned` (the lead's part; until then the ledger keeps
# only next_id and retired, so a site whose file is gone can only get its id back from an older ledger).
_LEDGER_KEEPS_ASSIGNED = "assigned" in schema.IdsFile.model_fields


def site_document(site_id: int, unit: dict[str, Any], slug: str) -> dict[str, Any]:
    """A new site file for an official unit."""
    name = unicodedata.normalize("NFC", unit["name"])
    code = unit_code(unit["code"])
    return {
        "id": site_id, "code": code, "name": name, "slug": slug, "level": "commune",
        "kind": _kind(unit["division_type"]),
        "circuit_id": f"PENDING-{code}",
        "contact": {"name": _contact_name(name), "phone": PLACEHOLDER_PHONE},
    }


def _renamed_text(text: str, data: dict[str, Any], new_name: str) -> str:
    """The site file with its name (and an untouched placeholder contact) updated.

    Edits the text in place so comments survive; falls back to a fresh dump
    (keeping the leading comment block) when the edit does not parse back right.
    """
    old_name = data["name"]
    want = dict(data, name=new_name)
    contact = data.get("contact")
    if isinstance(contact, dict) and contact.get("name") == _contact_name(old_name):
        want["contact"] = dict(contact, name=_contact_name(new_name))
    name_line = yamlio.dump({"name": new_name}).strip()
    edited = re.sub(r"^name:.*$", lambda _: name_line, text, count=1, flags=re.M)
    if want.get("contact") is not contact:
        edited = edited.replace(_contact_name(old_name), _contact_name(new_name))
    try:
        if yaml_equal(edited, want):
            return edited
    except Exception:  # noqa: BLE001 - any parse problem → fall back to a clean dump
        pass
    header = "".join(line for line in text.splitlines(keepends=True)[:20] if line.startswith("#"))
    return header + _dump(want)


def yaml_equal(text: str, data: dict[str, Any]) -> bool:
    """True when ``text`` parses to ``data``."""
    import yaml

    return bool(yaml.safe_load(text) == data)


# ---------------------------------------------------------------- import


def import_province(query: str, output: Path, *, lab: bool = False, today: str | None = None) -> ImportReport:
    """Write or refresh the inventory of one province under ``output``.

    Fresh import: ``province.yml``, one site per unit with ids 1.. in order of
    official code, and ``ids.yml``. Re-import: sites are matched by ``code``;
    matched ones keep id, slug and every hand-edited field (only ``name`` follows
    an official rename); a unit whose site file is gone gets its id and slug back
    from the ledger's ``assigned`` list; new units get new ids from the ledger, in
    code order; vanished units move to ``retired/<slug>.yml`` and their ids are
    recorded so they are never reused; district-level sites (hand-made groupings)
    stay as they are. ``lab`` only shapes a new ``province.yml``: it is refused on
    an existing production inventory.
    """
    province = find_province(query)
    output = Path(output)
    today = today or dt.date.today().isoformat()
    prov_path = output / sot.PROVINCE_FILE
    ids_path = output / sot.IDS_FILE
    sites_dir = output / sot.SITES_DIR
    retired_dir = output / RETIRED_DIR

    if prov_path.is_file():
        existing = _read(prov_path)
        if existing.get("base"):
            raise ProvnetError(f"{prov_path}: is an overlay of {existing['base']!r}; import into the base instead")
        facts = existing.get("province") if isinstance(existing.get("province"), dict) else {}
        code = facts.get("code")
        if code is not None and str(code) != str(province["code"]):
            raise ProvnetError(f"{output} holds province code {code}, not {province['name']} "
                               f"({province['code']}); choose another --output")
        if lab and facts.get("production") is not False:
            raise ProvnetError(f"{prov_path}: is a production inventory and import never rewrites province.yml, "
                               "so --lab would change nothing; import with --lab into a new folder, "
                               "or re-import this one without --lab")

    units = {unit_code(u["code"]): u for u in province["wards"]}
    ledger = _read(ids_path) if ids_path.is_file() else {}
    retired: list[dict[str, Any]] = list(ledger.get("retired") or [])
    retired_ids = {_id(r) for r in retired}
    assigned = {unit_code(a.get("code", "")): a for a in ledger.get("assigned") or [] if isinstance(a, dict)}

    existing_sites: dict[str, tuple[Path, str, dict[str, Any]]] = {}  # slug → (path, text, data)
    for path in sorted(sites_dir.glob("*.yml")) if sites_dir.is_dir() else []:
        data = _read(path)
        existing_sites[str(data.get("slug", path.stem))] = (path, path.read_text(encoding="utf-8"), data)

    report = ImportReport(province=f"{official_name(province)} ({province['code']})")
    typed = unicodedata.normalize("NFC", query).strip()
    if typed not in (province["name"], official_name(province), str(province["code"])):
        report.matched = f"{typed!r} → {report.province}"
    matched: dict[str, str] = {}  # code → slug
    vanished: list[tuple[Path, str, dict[str, Any]]] = []
    for slug, (path, text, data) in existing_sites.items():
        if data.get("level", "commune") == "district":
            report.kept.append(slug)
            continue
        code = unit_code(data.get("code", ""))
        if code in units and code not in matched:
            matched[code] = slug
            report.kept.append(slug)
        else:
            vanished.append((path, text, data))

    used_ids = {_id(d) for _, _, d in existing_sites.values()}
    max_id = max([*used_ids, *retired_ids, *(_id(a) for a in assigned.values()), 0])
    next_id = max(_id(ledger, "next_id") or 1, max_id + 1)

    # 1. the ledger first, so that an interrupted import can never hand out a retired id again
    gone = [(Path(str(a.get("slug", ""))), "", a) for c, a in assigned.items()  # file and unit both gone
            if c not in units and _id(a) not in used_ids]
    for path, _, data in vanished + gone:
        if _id(data) and _id(data) not in retired_ids:
            retired.append({"id": _id(data), "code": str(data.get("code", "")),
                            "slug": str(data.get("slug", path.stem)), "name": str(data.get("name", "")),
                            "retired_on": today})
            retired_ids.add(_id(data))
    new_codes = sorted((c for c in units if c not in matched), key=int)
    taken = set(existing_sites) | {str(r["slug"]) for r in retired}
    # a unit whose file disappeared: the id (and slug) the ledger holds for it, never a fresh one
    restored = {c: assigned[c] for c in new_codes if c in assigned and _id(assigned[c]) not in
                used_ids | retired_ids and str(assigned[c].get("slug", "")) not in taken}
    taken |= {str(a["slug"]) for a in restored.values()}
    fresh = [c for c in new_codes if c not in restored]
    slugs = unique_slugs([(c, units[c]["name"], units[c]["division_type"]) for c in fresh], taken)
    slugs.update({c: str(a["slug"]) for c, a in restored.items()})
    new_ids = {code: next_id + i for i, code in enumerate(fresh)} | {c: _id(a) for c, a in restored.items()}
    report.next_id = next_id + len(fresh)
    live = [(_id(d), str(d.get("code", "")), slug, str(d.get("name", "")))
            for slug, (_, _, d) in existing_sites.items() if slug in report.kept]
    live += [(new_ids[c], c, slugs[c], unicodedata.normalize("NFC", units[c]["name"])) for c in new_codes]
    _write(ids_path, _ledger_text(report.next_id, sorted(live), retired))

    # 2. province.yml only when absent: a hand-edited one is never overwritten
    if not prov_path.is_file():
        _write(prov_path, render_province(province, lab=lab))
    marker = output / "provnet.yml"  # makes the folder an Ansible inventory
    if not marker.is_file():
        _write(marker, "plugin: provnet\n")

    # 3. vanished units out of sites/, into retired/
    for path, text, data in vanished:
        slug = str(data.get("slug", path.stem))
        target = retired_dir / f"{slug}.yml"
        if target.exists():
            target = retired_dir / f"{slug}-{data.get('id', 'x')}.yml"
        _write(target, f"# Retired on {today}: code {data.get('code')!s} is no longer in the official data.\n"
               + text)
        path.unlink()
        report.retired.append(slug)

    # 4. official renames of kept sites, then the new sites
    for code, slug in matched.items():
        path, text, data = existing_sites[slug]
        official = unicodedata.normalize("NFC", units[code]["name"])
        if unicodedata.normalize("NFC", str(data.get("name", ""))) != official:
            _write(path, _renamed_text(text, data, official))
            report.renamed.append(slug)
    for code in new_codes:
        doc = site_document(new_ids[code], units[code], slugs[code])
        _write(sites_dir / f"{doc['slug']}.yml", _dump(doc))
        (report.restored if code in restored else report.added).append(doc["slug"])

    for names in (report.kept, report.retired, report.renamed, report.restored):
        names.sort()
    return report


def write_lab_overlay(output: Path, base: Path) -> Path:
    """Write ``output/province.yml`` overlaying ``base`` with lab addressing (only when absent)."""
    output = Path(output)
    path = output / sot.PROVINCE_FILE
    if path.exists():
        raise ProvnetError(f"{path} exists; remove it first to regenerate the overlay")
    data = _read(Path(base) / sot.PROVINCE_FILE)
    province = find_province(str((data.get("province") or {}).get("code") or data["province"]["name"]))
    rel = os.path.relpath(Path(base).resolve(), output.resolve())
    _write(path, render_lab_overlay(province, rel))
    if not (output / "provnet.yml").is_file():
        _write(output / "provnet.yml", "plugin: provnet\n")
    return path


__all__ = ["ImportReport", "find_province", "import_province", "load_divisions", "province_document",
           "render_lab_overlay", "render_province", "site_document", "unit_code", "write_lab_overlay"]
