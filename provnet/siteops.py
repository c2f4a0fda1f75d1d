"""Add a site to the source of truth, or retire one: ``provnet site add`` / ``provnet site retire``.

Both work in two steps so that a caller (the CLI, the rollout engine) can show what will
happen before anything is written:

- :func:`plan_add` / :func:`plan_retire` read the inventory, build the new files in memory and
  validate and compile the inventory as it would be (the same ``sot.check`` and
  ``model.compile_source`` as ``provnet inventory validate``); every refusal is raised here, as
  :class:`~provnet.errors.InventoryError` (file, object, message, fix) or
  :class:`~provnet.errors.ProvnetError`, before a byte is written;
- :func:`apply_add` / :func:`apply_retire` write the planned files atomically under the inventory's
  lock (:mod:`provnet.lock`: refused while a rollout or a deploy holds it, unless the caller is that
  rollout), refuse when the inventory changed since the plan, and put the previous files back if a
  write fails or the result does not load.

A site added without its carrier circuit id or its contact gets the importer's placeholders
(``PENDING-<code>``, phone ``chưa cập nhật``): the inventory stays valid, and
:func:`rollout_problems` names what a rollout still needs (docs/rollout.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import fcntl
import os
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from provnet import importer, model, schema, sot, yamlio
from provnet.errors import InventoryError, Problem, ProvnetError
from provnet.importer import _contact_name, _dump, _ledger_text, _write  # the importer's file formats
from provnet.slug import fold, site_slug, strip_type, unique_slugs

PENDING_CIRCUIT = "PENDING-"          # the importer's circuit placeholder: PENDING-<code>
PENDING_PHONE = importer.PLACEHOLDER_PHONE
DISTRICT_KINDS = ("huyen", "thi_xa", "thanh_pho", "quan", "khu_vuc")   # schema.SITE_KINDS of level district
HALL_KINDS = ("ubnd_tinh", "tinh_uy", "hdnd_tinh", "so_nganh")            # schema.SITE_KINDS of level province
# a commune kind's type word, as the official data writes it (slugs strip it, or prefix it on a clash)
_TYPE_WORDS = {"xa": "xã", "phuong": "phường", "thi_tran": "thị trấn", "dac_khu": "đặc khu"}
MAX_SUGGESTIONS = 8


# ---------------------------------------------------------------- the inventory as it is


@dataclass(frozen=True)
class _Inventory:
    """A validated inventory and where its site files and ledger live (an overlay's are its base's)."""

    src: sot.Source
    model: model.Model
    site_root: Path
    ids_path: Path
    ids_text: str | None

    @property
    def prov_shown(self) -> str:
        return self.src.shown(self.src.root / sot.PROVINCE_FILE)

    def shown(self, path: Path) -> str:
        return self.src.shown(path)


def _open(root: Path | str) -> _Inventory:
    """Load the inventory; a site is only added to or retired from a valid one."""
    root = Path(root)
    try:
        m = model.load(root)
    except InventoryError as exc:
        raise InventoryError([Problem(p.file, p.obj, p.message, f"{p.fix}; then run the command again")
                              for p in exc.problems]) from None
    src = m.source
    site_root = src.folders[-1].parent   # sot lists the sites/ folder it read last
    ids_path = site_root / sot.IDS_FILE
    ids_text = ids_path.read_text(encoding="utf-8") if ids_path.is_file() else None
    return _Inventory(src, m, site_root, ids_path, ids_text)


def _compile(inv: _Inventory, sites: tuple[schema.SiteFile, ...], site_files: dict[str, Path],
             ids: schema.IdsFile) -> model.Model:
    """The model of the inventory with these sites and this ledger, validated like ``sot.read`` does."""
    src = dataclasses.replace(inv.src, sites=sites, site_files=site_files, ids=ids)
    problems = sot.check(src, inv.prov_shown, [inv.shown(site_files[s.slug]) for s in sites],
                         ids_shown=inv.shown(inv.ids_path))
    if problems:
        raise InventoryError(problems)
    return model.compile_source(src)


def _ledger(inv: _Inventory, sites: tuple[schema.SiteFile, ...], next_id: int,
            retired: list[dict[str, Any]]) -> tuple[str, schema.IdsFile]:
    """``ids.yml`` text in the importer's format, and that text read back through the schema."""
    live = sorted((s.id, s.code, s.slug, s.name) for s in sites)
    text = _ledger_text(next_id, live, retired)
    try:
        return text, schema.IdsFile.model_validate(yamlio.loads(text))
    except ValidationError as exc:  # only if the importer's format and the schema disagree
        raise InventoryError(sot.schema_problems(exc, schema.IdsFile, inv.shown(inv.ids_path), "ids")) from None


def _retired_entries(ids: schema.IdsFile | None) -> list[dict[str, Any]]:
    return [r.model_dump() for r in ids.retired] if ids else []


def next_free_id(src: sot.Source) -> int:
    """The next id: above ``next_id - 1``, every site's, every retired and every assigned id."""
    ids = src.ids
    used = [s.id for s in src.sites] + [r.id for r in (ids.retired if ids else [])]
    used += [a.id for a in getattr(ids, "assigned", None) or []]
    return max([ids.next_id - 1 if ids else 0, *used]) + 1


@contextmanager
def inventory_lock(root: Path, site_root: Path) -> Iterator[None]:
    """The inventory's lock (:mod:`provnet.lock`, reentrant inside a rollout that holds it), then ``sites/``'s.

    The second, a ``flock`` on the folder the site files and ledger live in, keeps two overlays of one
    base from handing out one id.
    """
    from provnet import lock

    folder = site_root / sot.SITES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with lock.hold(root, shown=str(root)):
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)   # releases the flock


# ---------------------------------------------------------------- official data


@dataclass(frozen=True)
class Unit:
    """A commune, ward or special zone in the official data."""

    code: str
    name: str
    division_type: str
    province: str            # its province's official name and code, e.g. "Tỉnh Lạng Sơn (20)"
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.code})"


def _units(province: dict[str, Any]) -> list[Unit]:
    shown = f"{importer.official_name(province)} ({province['code']})"
    return [Unit(importer.unit_code(w["code"]), unicodedata.normalize("NFC", w["name"]), w["division_type"], shown, w)
            for w in province["wards"]]


def _inventory_province(p: schema.Province) -> dict[str, Any]:
    """The official province of an inventory: ``province.code``, else its name."""
    if p.code is not None:
        for prov in importer.load_divisions():
            if int(prov["code"]) == p.code:
                return prov
    try:
        return importer.find_province(p.name)
    except ProvnetError as exc:
        raise ProvnetError(f"province.yml: province: {p.name!r} (code {p.code}) is not in the official data "
                           f"({exc}); add the site by hand with --name, --kind and --code") from None


def _keys(unit: Unit) -> set[str]:
    """How a unit may be typed: its name with or without the type word, folded (no diacritics, any case)."""
    return {fold(unit.name), fold(strip_type(unit.name, unit.division_type))}


def find_unit(province: schema.Province, query: str) -> tuple[Unit, str | None]:
    """The official unit ``query`` names in the inventory's province, and how it was read.

    Matches as the importer matches a province: the exact name, an official code, or the name
    folded (diacritics, case and the type word optional: ``xa mau son``, ``Mẫu Sơn``); the second
    value says how a folded query was read (``'mau son' → Xã Mẫu Sơn (06541)``). Raises
    :class:`ProvnetError` with the closest names when nothing matches, naming the province of a
    unit that belongs to another one, or listing the units a folded name could be.
    """
    prov = _inventory_province(province)
    units = _units(prov)
    text = unicodedata.normalize("NFC", query).strip()
    here = f"{importer.official_name(prov)} ({prov['code']})"
    if text.isdigit():
        hit = [u for u in units if u.code == importer.unit_code(text)]
        if hit:
            return hit[0], None
        raise ProvnetError(f"no commune or ward of {here} has official code {importer.unit_code(text)}; "
                           "give its official name, e.g. --official \"Xã …\"")
    exact = [u for u in units if u.name == text]
    if exact:
        return exact[0], None
    key = fold(text)
    folded = [u for u in units if key in _keys(u)]
    if len(folded) == 1:
        return folded[0], f"{text!r} → {folded[0].label}"
    if folded:
        raise ProvnetError(f"{text!r} could be {', '.join(u.label for u in folded)} in {here}; "
                           "type the name with its diacritics or give the code: --official 06541")
    elsewhere = [u for p in importer.load_divisions() if int(p["code"]) != int(prov["code"])
                 for u in _units(p) if u.name == text or key in _keys(u)]
    if elsewhere:
        where = "; ".join(f"{u.label} is in {u.province}" for u in elsewhere[:MAX_SUGGESTIONS])
        raise ProvnetError(f"{text!r} is not a commune or ward of {here}: {where}; "
                           f"this inventory is {here}'s — add it to that province's inventory")
    by_key: dict[str, Unit] = {}
    for u in units:
        for k in sorted(_keys(u)):
            by_key.setdefault(k, u)
    close = difflib.get_close_matches(key, list(by_key), n=MAX_SUGGESTIONS, cutoff=0.6)
    close += [k for k in by_key if key and key in k]
    names = list(dict.fromkeys(by_key[k].label for k in close))[:MAX_SUGGESTIONS]
    hint = f"did you mean: {', '.join(names)}?" if names else \
        f"`provnet site add --help` shows how to add a unit by hand ({len(units)} units in the official data)"
    raise ProvnetError(f"no commune or ward of {here} matches {text!r}; {hint}")


# ---------------------------------------------------------------- add


@dataclass(frozen=True)
class AddPlan:
    """A site ready to be written: its file, the new ledger and the model compiled with it."""

    slug: str
    site_path: Path
    site_text: str
    ids_path: Path
    ids_text: str
    old_ids_text: str | None        # what the plan read: apply refuses if the ledger changed since
    model: model.Model              # the inventory with the new site, validated and compiled
    matched: str | None             # how an --official name typed loosely was read
    shown_file: str                 # the site file as the user named the inventory

    @property
    def site(self) -> model.Site:
        return self.model.sites[self.slug]

    def pending(self) -> list[Problem]:
        """What a rollout of the new site still needs (placeholders to replace)."""
        return rollout_problems(self.model, self.slug)


def _kind_level(kind: str) -> str:
    return "district" if kind in DISTRICT_KINDS else "province" if kind in HALL_KINDS else "commune"


def plan_add(root: Path | str, *, official: str | None = None, name: str | None = None,
             kind: str | None = None, code: str | None = None, district: str | None = None,
             slug: str | None = None, circuit: str | None = None, contact_name: str | None = None,
             contact_phone: str | None = None, today: str | None = None) -> AddPlan:
    """Plan a new site: an official unit (``official``) or one given by hand (``name``, ``kind``, ``code``).

    Takes the next free id, the slug the importer would give (or ``slug``), and the importer's
    placeholders for a circuit or contact not given. Raises, before anything is written, for an
    unknown or foreign unit, a unit or slug already in the inventory, a district that does not
    exist, exhausted pools, or anything else validation refuses.
    """
    inv = _open(root)
    src = inv.src
    today = today or dt.date.today().isoformat()
    if official and (name or kind or code):
        raise ProvnetError("give either --official or --name/--kind/--code, not both")
    matched: str | None = None
    unit: Unit | None = None
    if official:
        unit, matched = find_unit(src.province.province, official)
        new_code, new_name, dtype = unit.code, unit.name, unit.division_type
        level = "commune"
        origin = f"{unit.label} of {unit.province}, vietnam-provinces {importer._data_version()}"
    elif name and kind and (code or _kind_level(kind) == "province"):
        level = _kind_level(kind)
        province_code = src.province.province.code
        if level == "province" and code is None and province_code is None:
            raise ProvnetError("a province-level hall takes the province's code: province.code is not set in "
                               "province.yml, so give --code")
        new_code = code.strip() if code else f"{province_code:02d}"
        new_name = unicodedata.normalize("NFC", name).strip()
        dtype = _TYPE_WORDS.get(kind, "")
        origin = "given by hand"
    else:
        missing = [opt for opt, v in (("--name", name), ("--kind", kind), ("--code", code)) if not v]
        raise ProvnetError("name the site: --official \"Xã …\" (from the official data), or by hand "
                           f"--name, --kind and --code (missing: {', '.join(missing)})")

    for s in src.sites:
        if s.code == new_code and level != "province":   # halls share the province's code
            raise ProvnetError(f"{new_name} ({new_code}) is already in the inventory: "
                               f"{inv.shown(src.site_files[s.slug])} (site '{s.slug}', id {s.id}); nothing to "
                               f"add (`provnet inventory show {s.slug}` shows it)")
    districts = sorted(s.slug for s in src.sites if s.level == "district")
    if district is not None:
        if level in ("district", "province"):
            raise ProvnetError(f"--district {district}: a {level}-level site has no parent district; "
                               "leave --district out")
        if district not in districts:
            listing = ", ".join(districts) if districts else "(none: this inventory has no districts)"
            raise ProvnetError(f"no district '{district}' in {src.shown_root or src.root}: use one of: {listing} "
                               "— or add the district first (provnet site add --name 'Huyện …' --kind huyen "
                               "--code …)")

    retired = {r.slug: r for r in (src.ids.retired if src.ids else [])}
    taken = set(src.site_files) | set(retired)
    new_slug = slug or site_slug(new_name, dtype)
    if not schema.SLUG.match(new_slug):   # before it names a path
        raise ProvnetError(f"--slug {new_slug!r} is not lowercase ASCII words joined by '-'; write it like "
                           "'mau-son' (no diacritics, spaces or underscores)")
    if new_slug in taken:
        other = unique_slugs([(new_code, new_name, dtype)], taken)[new_code]
        where = (f"{inv.shown(src.site_files[new_slug])} already exists" if new_slug in src.site_files else
                 f"was the slug of id {retired[new_slug].id}, retired on {retired[new_slug].retired_on}, "
                 "and hostnames are never reused")
        raise ProvnetError(f"slug '{new_slug}': {where}; give the new site another one: --slug {other}")

    new_id = next_free_id(src)
    if unit is not None:   # the importer's document: code, name, kind and its placeholders
        doc = importer.site_document(new_id, unit.raw, new_slug)
    else:
        doc = {"id": new_id, "code": new_code, "name": new_name, "slug": new_slug, "level": level, "kind": kind,
               "circuit_id": f"{PENDING_CIRCUIT}{new_code}",
               "contact": {"name": f"Văn phòng {new_name}" if level == "province" else _contact_name(new_name),
                           "phone": PENDING_PHONE}}
        if level == "province" and not circuit:
            del doc["circuit_id"]   # a hall hangs off the DC firewall, not a carrier circuit
    if district:
        doc = {**{k: v for k, v in doc.items() if k not in ("circuit_id", "contact")}, "district": district,
               "circuit_id": doc["circuit_id"], "contact": doc["contact"]}
    if circuit:
        doc["circuit_id"] = circuit.strip()
    doc["contact"] = {"name": contact_name.strip() if contact_name else doc["contact"]["name"],
                      "phone": contact_phone.strip() if contact_phone else doc["contact"]["phone"]}
    site_path = inv.site_root / sot.SITES_DIR / f"{new_slug}.yml"
    shown = inv.shown(site_path)
    text = f"# Added on {today} by `provnet site add`: {origin}.\n" + _dump(doc)
    try:
        site = schema.SiteFile.model_validate(sot.nfc(yamlio.loads(text)))
    except ValidationError as exc:
        raise InventoryError(sot.schema_problems(exc, schema.SiteFile, shown, f"site '{new_slug}'")) from None

    sites = (*src.sites, site)
    ids_text, ids = _ledger(inv, sites, new_id + 1, _retired_entries(src.ids))
    after = _compile(inv, sites, {**src.site_files, new_slug: site_path}, ids)
    return AddPlan(new_slug, site_path, text, inv.ids_path, ids_text, inv.ids_text, after, matched, shown)


def _unchanged(inv: _Inventory, old_ids_text: str | None, what: str) -> None:
    if inv.ids_text != old_ids_text:
        raise ProvnetError(f"{inv.shown(inv.ids_path)} changed since the {what} was planned (another "
                           "site add or retire, or an import); plan again — nothing was changed")


def _restore(undo: list[tuple[Path, str | None]]) -> None:
    """Put files back, last written first: ``None`` means the file did not exist."""
    for path, text in reversed(undo):
        if text is None:
            path.unlink(missing_ok=True)
        else:
            _write(path, text)


def _check_loads(root: Path, undo: list[tuple[Path, str | None]]) -> None:
    """Load the written inventory; if it does not (an edit raced us), put every file back and re-raise."""
    try:
        model.load(root)
    except InventoryError:
        _restore(undo)
        raise


def apply_add(plan: AddPlan) -> Path:
    """Write the planned site file, then the ledger (atomically, under the inventory lock)."""
    root = plan.model.root
    site_root = plan.ids_path.parent
    with inventory_lock(root, site_root):
        inv = _open(root)
        _unchanged(inv, plan.old_ids_text, "site")
        if plan.site_path.exists():
            raise ProvnetError(f"{plan.shown_file} appeared since the site was planned; nothing was changed")
        undo: list[tuple[Path, str | None]] = [(plan.site_path, None), (plan.ids_path, plan.old_ids_text)]
        try:
            _write(plan.site_path, plan.site_text)
            _write(plan.ids_path, plan.ids_text)
        except BaseException:
            _restore(undo)
            raise
        _check_loads(root, undo)
    return plan.site_path


def add_site(root: Path | str, **options: Any) -> AddPlan:
    """:func:`plan_add` then :func:`apply_add`."""
    plan = plan_add(root, **options)
    apply_add(plan)
    return plan


# ---------------------------------------------------------------- what a site was given


def _ip(value: object) -> str | None:
    """An address (an interface's without its prefix length), or None for a hall's absent WAN."""
    return None if value is None else str(getattr(value, "ip", value))


def site_addresses(m: model.Model, slug: str) -> dict[str, Any]:
    """A site's addresses as the model compiled them: ASN, loopback, WAN /31, VLANs, devices, SIP accounts."""
    s = m.sites[slug]
    devices = [m.devices[h] for h in s.devices]
    return {
        "id": s.id, "code": s.code, "name": s.name, "slug": s.slug, "level": s.level, "kind": s.kind,
        "district": s.district, "circuit_id": s.circuit_id,
        "contact": {"name": s.contact_name, "phone": s.contact_phone},
        "asn": s.asn, "loopback": _ip(s.loopback), "wan": _ip(s.wan), "pe": _ip(s.wan_pe), "ce": _ip(s.wan_ce),
        "router": s.router,
        "lans": {n: {"vlan": l.vlan, "subnet": str(l.subnet), "gateway": str(l.gateway.ip)} for n, l in s.lans.items()},
        "oob": str(s.oob_block) if s.oob_block else None,
        "devices": [{"hostname": d.hostname, "role": d.role,
                     "interfaces": {i.name: str(i.address) for i in d.interfaces if i.address is not None},
                     "loopback": str(d.loopback) if d.loopback else None,
                     "oob": str(d.oob_address) if d.oob_address else None,
                     "management": d.ansible_host} for d in devices],
        "sip_accounts": [{"aor": d.sip.aor, "extension": d.sip.extension} for d in devices if d.sip is not None],
    }


# ---------------------------------------------------------------- rollout readiness


def rollout_problems(m: model.Model, slug: str) -> list[Problem]:
    """What a site still needs before a rollout: a real circuit id and a contact (not placeholders).

    Validation accepts placeholders (an imported province is all placeholders); a rollout
    does not: the circuit id goes into the carrier's work order and the acceptance record.
    """
    site = m.sites[slug]
    shown = m.source.shown(m.source.site_files[slug])
    obj = f"site '{slug}'"
    out: list[Problem] = []
    if site.via_carrier and (not site.circuit_id.strip() or site.circuit_id.startswith(PENDING_CIRCUIT)):
        out.append(Problem(shown, f"{obj}.circuit_id", f"is the placeholder {site.circuit_id!r}: a rollout "
                           "needs the carrier's circuit id (work order, acceptance record)",
                           f"write circuit_id: <the carrier's id> in {shown}"))
    if not site.contact_phone.strip() or site.contact_phone == PENDING_PHONE:
        out.append(Problem(shown, f"{obj}.contact.phone", f"is the placeholder {site.contact_phone!r}: a rollout "
                           "needs someone to call at the site", f"write contact: {{name: …, phone: …}} in {shown}"))
    return out


# ---------------------------------------------------------------- retire


@dataclass(frozen=True)
class RetirePlan:
    """A site to retire: what the DC loses and the inventory after it (validated and compiled)."""

    slug: str
    date: str                        # retired_on, YYYY-MM-DD
    site: model.Site                 # as it is now (before)
    site_path: Path
    site_text: str
    retired_path: Path               # retired/<slug>.yml (retired/<slug>-<id>.yml if taken)
    ids_path: Path
    ids_text: str                    # the ledger after the retire
    old_ids_text: str | None         # what the plan read: apply refuses if the ledger changed since
    before: model.Model
    after: model.Model               # the inventory without the site, validated and compiled
    sip_accounts: tuple[model.SipAccount, ...]   # the registrar's accounts (the bridge's dial plan) it loses
    shown_file: str
    shown_retired: str

    def losses(self) -> dict[str, Any]:
        """What the DC side loses, and what stays reserved for ever with the id."""
        s = self.site
        return {
            "registrar_accounts": [{"aor": a.aor, "extension": a.extension} for a in self.sip_accounts],
            "pe_neighbour": {"wan": str(s.wan), "pe": _ip(s.wan_pe), "ce": _ip(s.wan_ce), "asn": s.asn}
            if s.via_carrier else None,
            "prefixes": [str(p) for p in s.prefixes],   # DC firewall flows, NTP/SOC sources
            "devices": list(s.devices),
            "reserved": {"id": s.id, "asn": s.asn, "loopback": _ip(s.loopback), "wan": _ip(s.wan),
                         "lans": {n: str(l.subnet) for n, l in s.lans.items()},
                         "oob": str(s.oob_block) if s.oob_block else None},
        }


def retire_blockers(m: model.Model, slug: str) -> list[Problem]:
    """Why a site cannot be retired yet: province.yml still names it, or communes still sit under it."""
    src = m.source
    prov = src.shown(src.root / sot.PROVINCE_FILE)
    vc = src.province.vc
    out: list[Problem] = []
    if vc.chair == slug:
        out.append(Problem(prov, "vc.chair", f"names site '{slug}': province-wide meetings are chaired from it",
                           f"set vc.chair to another site in {prov}, then retire again"))
    if slug in vc.recorders:
        out.append(Problem(prov, "vc.recorders", f"names site '{slug}'",
                           f"remove '{slug}' from vc.recorders in {prov}, then retire again"))
    for name, meeting in vc.meetings.items():
        if meeting.chair == slug:
            out.append(Problem(prov, f"vc.meetings.{name}.chair", f"names site '{slug}'",
                               f"give meeting '{name}' another chair in {prov} (or remove the meeting), "
                               "then retire again"))
        if slug in meeting.sites:
            out.append(Problem(prov, f"vc.meetings.{name}.sites", f"names site '{slug}'",
                               f"remove '{slug}' from the sites of meeting '{name}' in {prov}, then retire again"))
    under = sorted(s.slug for s in m.sites.values() if s.district == slug)
    if under:
        out.append(Problem(src.shown(src.site_files[slug]), f"site '{slug}'",
                           f"is the district of {len(under)} commune(s): {', '.join(under)}",
                           "retire those communes or move them to another district (district: in their "
                           "sites/<slug>.yml) first"))
    return out


def _day(date: str | None) -> str:
    if date is None:
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(date).isoformat()
    except ValueError:
        raise ProvnetError(f"--date {date!r} is not a date; write it as YYYY-MM-DD, e.g. 2025-07-01") from None


def _retire_ledger(inv: _Inventory, slug: str, day: str) -> tuple[str, schema.IdsFile, tuple[schema.SiteFile, ...]]:
    """The ledger with ``slug`` moved from the live sites to ``retired`` (``next_id`` kept)."""
    src = inv.src
    old = next(s for s in src.sites if s.slug == slug)
    sites = tuple(s for s in src.sites if s.slug != slug)
    entry = {"id": old.id, "code": old.code, "slug": slug, "name": old.name, "retired_on": day}
    next_id = src.ids.next_id if src.ids else next_free_id(src)
    text, ids = _ledger(inv, sites, next_id, [*_retired_entries(src.ids), entry])
    return text, ids, sites


def plan_retire(root: Path | str, slug: str, date: str | None = None) -> RetirePlan:
    """Plan retiring ``slug`` on ``date`` (YYYY-MM-DD, default today); nothing is written.

    Refused (:class:`InventoryError`, one problem per reference) while province.yml's ``vc``
    names the site or communes sit under it. ``after`` is the inventory without the site,
    validated and compiled, for the caller to diff the DC devices against ``before``.
    """
    day = _day(date)
    inv = _open(root)
    src, m = inv.src, inv.model
    if slug not in m.sites:
        raise ProvnetError(f"no site '{slug}' in {src.shown_root or src.root}; "
                           "`provnet inventory ipplan` lists the sites")
    blockers = retire_blockers(m, slug)
    if blockers:
        raise InventoryError(blockers)
    site = m.sites[slug]
    path = src.site_files[slug]
    target = inv.site_root / importer.RETIRED_DIR / f"{slug}.yml"
    if target.exists():   # the importer's rule for a slug retired twice
        target = target.with_name(f"{slug}-{site.id}.yml")
    ids_text, ids, sites = _retire_ledger(inv, slug, day)
    after = _compile(inv, sites, {k: v for k, v in src.site_files.items() if k != slug}, ids)
    accounts = tuple(a for a in (m.devices[h].sip for h in site.devices) if a is not None)
    return RetirePlan(slug, day, site, path, path.read_text(encoding="utf-8"), target, inv.ids_path, ids_text,
                      inv.ids_text, m, after, accounts, inv.shown(path), inv.shown(target))


def apply_retire(plan: RetirePlan) -> Path:
    """Retire the planned site: the ledger first, then ``sites/<slug>.yml`` → ``retired/``.

    The ledger goes first (as in the importer) so that an interrupted retire can never give the
    id out again. Refused when the inventory changed since the plan. Returns the retired file.
    """
    root = plan.before.root
    with inventory_lock(root, plan.ids_path.parent):
        inv = _open(root)
        _unchanged(inv, plan.old_ids_text, "retire")
        if not plan.site_path.is_file() or plan.site_path.read_text(encoding="utf-8") != plan.site_text:
            raise ProvnetError(f"{plan.shown_file} changed since the retire was planned; plan again — "
                               "nothing was changed")
        # put back in reverse order of writing: the site file, no retired copy, the old ledger
        undo: list[tuple[Path, str | None]] = [(plan.ids_path, plan.old_ids_text), (plan.retired_path, None),
                                               (plan.site_path, plan.site_text)]
        head = (f"# Retired on {plan.date} by `provnet site retire`: id {plan.site.id} and its addresses "
                "are never reused.\n")
        try:
            _write(plan.ids_path, plan.ids_text)
            _write(plan.retired_path, head + plan.site_text)
            plan.site_path.unlink()
        except BaseException:
            _restore(undo)
            raise
        _check_loads(root, undo)
    return plan.retired_path


def unretire(plan: RetirePlan) -> None:
    """Undo :func:`apply_retire` (its push failed): the site file and the ledger as the plan read them."""
    root = plan.before.root
    with inventory_lock(root, plan.ids_path.parent):
        _restore([(plan.retired_path, None), (plan.ids_path, plan.old_ids_text), (plan.site_path, plan.site_text)])
        model.load(root)


__all__ = ["AddPlan", "RetirePlan", "Unit", "add_site", "apply_add", "apply_retire", "find_unit",
           "inventory_lock", "next_free_id", "plan_add", "plan_retire", "retire_blockers", "rollout_problems", "unretire",
           "site_addresses"]
