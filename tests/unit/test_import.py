"""Real data import: complete, valid inventories; ids stable across re-imports."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from provnet import importer, model, sot, yamlio
from provnet.errors import InventoryError, ProvnetError
from provnet.guard import LAB_RANGE
from provnet.importer import find_province, import_province, write_lab_overlay

TODAY = "2025-07-01"
_REAL_DIVISIONS = importer.load_divisions


def _codes(province: dict[str, Any]) -> list[str]:
    return sorted(importer.unit_code(w["code"]) for w in province["wards"])


def _sites(root: Path) -> dict[str, dict[str, Any]]:
    """Site files by code."""
    return {d["code"]: d for d in (yamlio.load(p) for p in sorted((root / "sites").glob("*.yml")))}


@pytest.fixture(scope="module")
def langson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("langson")
    import_province("Lạng Sơn", out, today=TODAY)
    return out


@pytest.fixture(scope="module")
def thanhhoa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("thanhhoa")
    import_province("38", out, today=TODAY)
    return out


# ---------------------------------------------------------------- finding provinces


@pytest.mark.parametrize("query", ["38", "Thanh Hóa", "thanh hoa", "Tỉnh Thanh Hóa", "THANH HOÁ", "thanh_hoa"])
def test_find_province_by_code_or_name(query: str) -> None:
    assert find_province(query)["code"] == 38


def test_find_province_city() -> None:
    assert find_province("Hà Nội")["code"] == 1
    assert find_province("Thành phố Hồ Chí Minh")["code"] == 79


def test_unknown_province_names_close_matches() -> None:
    with pytest.raises(ProvnetError, match=r"Lạng Sơn \(20\)"):
        find_province("Lang Sonn")
    with pytest.raises(ProvnetError, match="no province has official code 99"):
        find_province("99")


# ---------------------------------------------------------------- fresh imports


@pytest.mark.parametrize(("fixture", "code", "count"), [("langson", 20, 65), ("thanhhoa", 38, 166)])
def test_fresh_import_is_complete_and_valid(fixture: str, code: int, count: int,
                                            request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(fixture)
    m = model.load(root)
    assert m.production and m.code == code
    province = find_province(str(code))
    site_codes = sorted(s.code for s in m.sites.values())
    assert site_codes == _codes(province) and len(site_codes) == count
    assert len({s.slug for s in m.sites.values()}) == count
    # ids 1..N in order of official code
    assert [s.id for s in sorted(m.sites.values(), key=lambda s: int(s.code))] == list(range(1, count + 1))
    ledger = yamlio.load(root / "ids.yml")
    assert ledger.pop("assigned") == [{"id": s.id, "code": s.code, "slug": s.slug, "name": s.name}
                                      for s in sorted(m.sites.values(), key=lambda s: s.id)]
    assert ledger == {"next_id": count + 1, "retired": []}
    prod = ipaddress.ip_network(f"10.{code}.0.0/16")
    assert all(n.subnet_of(prod) for n in m.addresses())  # type: ignore[arg-type]


def test_site_files_carry_the_official_data(langson: Path) -> None:
    site = _sites(langson)["06184"]
    assert site == {
        "id": 23, "code": "06184", "name": "Xã Đồng Đăng", "slug": "dong-dang", "level": "commune",
        "kind": "xa", "circuit_id": "PENDING-06184",
        "contact": {"name": "Văn phòng UBND Xã Đồng Đăng", "phone": "chưa cập nhật"},
    }
    assert 'code: "06184"' in (langson / "sites" / "dong-dang.yml").read_text(encoding="utf-8")
    kinds = {s["kind"] for s in _sites(langson).values()}
    assert kinds == {"xa", "phuong"}


def test_province_file(langson: Path) -> None:
    text = (langson / "province.yml").read_text(encoding="utf-8")
    assert "the carrier's real ASN goes here" in text
    p = sot.read(langson).province
    assert p.province.production and p.pools.oob is None
    assert (p.asn_range.start, p.asn_range.end) == (4200200000, 4200209999)
    assert p.sip.domain == "vc.langson.gov.vn"
    assert p.pools.loopback == "10.20.255.0/24" and p.vlans["mgmt"].pool == "10.20.128.0/19"


def test_thanhhoa_slug_collision_is_resolved(thanhhoa: Path) -> None:
    sites = _sites(thanhhoa)
    assert sites["15724"]["slug"] == "xa-dong-tien"        # Xã Đồng Tiến
    assert sites["15853"]["slug"] == "phuong-dong-tien"    # Phường Đông Tiến


def test_special_zones_are_imported(tmp_path: Path) -> None:
    import_province("Thành phố Hải Phòng", tmp_path, today=TODAY)
    m = model.load(tmp_path)
    zones = [s for s in m.sites.values() if s.kind == "dac_khu"]
    assert {s.name for s in zones} == {"Đặc khu Cát Hải", "Đặc khu Bạch Long Vĩ"}


def test_lab_import_stays_in_the_lab_range(tmp_path: Path) -> None:
    import_province("Thanh Hóa", tmp_path, lab=True, today=TODAY)
    m = model.load(tmp_path)
    assert not m.production and len(m.sites) == 166
    assert m.sip_domain == "vc.thanhhoa.lab"
    assert all(n.subnet_of(LAB_RANGE) for n in m.addresses())  # type: ignore[arg-type]


def test_lab_overlay_readdresses_the_base(thanhhoa: Path, tmp_path: Path) -> None:
    write_lab_overlay(tmp_path / "lab", thanhhoa)
    m, base = model.load(tmp_path / "lab"), model.load(thanhhoa)
    assert not m.production and base.production
    assert {s.slug: s.id for s in m.sites.values()} == {s.slug: s.id for s in base.sites.values()}
    assert all(n.subnet_of(LAB_RANGE) for n in m.addresses())  # type: ignore[arg-type]


# ---------------------------------------------------------------- re-imports


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_reimport_changes_nothing(langson: Path, tmp_path: Path) -> None:
    root = _copy(langson, tmp_path / "ls")
    before = {p.name: p.read_bytes() for p in root.rglob("*.yml")}
    report = import_province("20", root, today="2030-01-01")
    assert report.added == [] and report.retired == [] and report.renamed == []
    assert len(report.kept) == 65 and report.next_id == 66
    assert {p.name: p.read_bytes() for p in root.rglob("*.yml")} == before


def test_reimport_keeps_hand_edits_and_province_file(langson: Path, tmp_path: Path) -> None:
    root = _copy(langson, tmp_path / "ls")
    (root / "province.yml").write_text((root / "province.yml").read_text(encoding="utf-8")
                                       .replace("name: VNPT\n", "name: VNPT Lạng Sơn\n"), encoding="utf-8")
    site = root / "sites" / "dong-dang.yml"
    edited = ("# hand-edited\n" + site.read_text(encoding="utf-8")
              .replace("PENDING-06184", "VNPT-LSN-0001").replace("chưa cập nhật", "0912 000 003")
              + "bandwidth_mbps: 100\ndistrict: cum-bien-gioi\n")
    site.write_text(edited, encoding="utf-8")
    (root / "sites" / "cum-bien-gioi.yml").write_text(
        'id: 66\ncode: "999"\nname: Cụm biên giới\nslug: cum-bien-gioi\nlevel: district\nkind: khu_vuc\n'
        "circuit_id: VNPT-LSN-D1\ncontact: {name: Trực ban, phone: '0205 000'}\n", encoding="utf-8")
    report = import_province("Lạng Sơn", root, today=TODAY)
    assert "cum-bien-gioi" in report.kept and report.retired == [] and report.next_id == 67
    assert site.read_text(encoding="utf-8") == edited
    assert "name: VNPT Lạng Sơn" in (root / "province.yml").read_text(encoding="utf-8")
    model.load(root)


def _mutated(monkeypatch: pytest.MonkeyPatch, code: int, drop: set[int],
             add: list[dict[str, Any]], rename: dict[int, str] | None = None) -> None:
    data = copy.deepcopy(_REAL_DIVISIONS())
    for p in data:
        if p["code"] == code:
            p["wards"] = [w for w in p["wards"] if w["code"] not in drop] + add
            for w in p["wards"]:
                if rename and w["code"] in rename:
                    w["name"] = rename[w["code"]]
    monkeypatch.setattr(importer, "load_divisions", lambda: copy.deepcopy(data))


NEW_UNIT = {"name": "Xã Đồng Đăng", "code": 99001, "division_type": "xã",
            "codename": "xa_dong_dang", "short_codename": "dong_dang"}


def test_lost_and_gained_units(langson: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy(langson, tmp_path / "ls")
    old = _sites(root)
    old_ids = {d["id"] for d in old.values()}

    # the data loses Xã Đồng Đăng (06184) and gains a unit with the same name
    _mutated(monkeypatch, 20, drop={6184}, add=[NEW_UNIT])
    report = import_province("20", root, today=TODAY)
    assert report.retired == ["dong-dang"] and report.added == ["xa-dong-dang"] and report.next_id == 67
    assert not (root / "sites" / "dong-dang.yml").exists()
    assert yamlio.load(root / "retired" / "dong-dang.yml")["id"] == 23
    ledger = yamlio.load(root / "ids.yml")
    assert "dong-dang" not in {a["slug"] for a in ledger.pop("assigned")}
    assert ledger == {"next_id": 67, "retired": [
        {"id": 23, "code": "06184", "slug": "dong-dang", "name": "Xã Đồng Đăng", "retired_on": TODAY}]}
    now = _sites(root)
    assert now["99001"]["id"] == 66 > max(old_ids)
    assert all(now[c]["id"] == d["id"] for c, d in old.items() if c != "06184")
    m = model.load(root)
    assert len(m.sites) == 65 and "xa-dong-dang" in m.sites

    # the old unit comes back (the new one renamed: names are unique): a new id, never the retired 23
    _mutated(monkeypatch, 20, drop=set(), add=[NEW_UNIT], rename={99001: "Xã Đồng Đăng Mới"})
    report = import_province("20", root, today="2026-01-01")
    assert report.added == ["xa-dong-dang-06184"]  # "dong-dang" stays with the retired site
    back = _sites(root)["06184"]
    assert back["id"] == 67 and back["id"] not in {r["id"] for r in yamlio.load(root / "ids.yml")["retired"]}
    assert yamlio.load(root / "ids.yml")["next_id"] == 68
    assert all(s.id != 23 for s in model.load(root).sites.values())

    # re-importing again is stable, and the ledger keeps a single entry for id 23
    report = import_province("20", root, today="2027-01-01")
    assert report.added == [] and report.retired == []
    assert [r["id"] for r in yamlio.load(root / "ids.yml")["retired"]] == [23]


def test_official_rename_updates_only_the_name(langson: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = _copy(langson, tmp_path / "ls")
    path = root / "sites" / "dong-dang.yml"
    path.write_text("# border gate\n" + path.read_text(encoding="utf-8").replace("PENDING-06184", "C-1"),
                    encoding="utf-8")
    _mutated(monkeypatch, 20, drop=set(), add=[], rename={6184: "Phường Đồng Đăng"})
    report = import_province("20", root, today=TODAY)
    assert report.renamed == ["dong-dang"] and report.added == [] and report.retired == []
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# border gate\n")
    data = yamlio.load(path)
    assert (data["id"], data["slug"], data["name"], data["circuit_id"]) == (23, "dong-dang", "Phường Đồng Đăng", "C-1")
    assert data["contact"]["name"] == "Văn phòng UBND Phường Đồng Đăng"
    model.load(root)


def test_import_into_another_provinces_inventory_is_refused(langson: Path, tmp_path: Path) -> None:
    root = _copy(langson, tmp_path / "ls")
    with pytest.raises(ProvnetError, match="holds province code 20"):
        import_province("Thanh Hóa", root)


def test_merged_provinces_name_their_2025_province() -> None:
    with pytest.raises(ProvnetError, match=r"Hà Giang \(code 02 before the 2025 reform\) is now part of "
                                           r"Tỉnh Tuyên Quang \(code 8\)"):
        find_province("ha giang")
    with pytest.raises(ProvnetError, match=r"official code 36 since 2025: Nam Định .* Tỉnh Ninh Bình \(code 37\)"):
        find_province("36")
    with pytest.raises(ProvnetError, match=r"Bà Rịa - Vũng Tàu \(now part of Thành phố Hồ Chí Minh, 79\)"):
        find_province("vung tau")
    assert find_province("Lào Cai")["code"] == 15  # kept its name: the 2025 province


def test_merger_table_covers_the_reform() -> None:
    current = {int(p["code"]) for p in _REAL_DIVISIONS()}
    assert all(new in current for _, new in importer.MERGED_2025.values())
    gone = {c for c in importer.MERGED_2025 if c not in current}
    assert len(current) == 34 and len(current | gone) == 63


def test_the_report_says_which_province_a_name_matched(tmp_path: Path) -> None:
    report = import_province("thanh hoa", tmp_path, today=TODAY)
    assert report.province == "Tỉnh Thanh Hóa (38)" and report.matched == "'thanh hoa' → Tỉnh Thanh Hóa (38)"
    assert import_province("Thanh Hóa", tmp_path, today=TODAY).matched is None


def test_lab_on_a_production_folder_is_refused(langson: Path, tmp_path: Path) -> None:
    root = _copy(langson, tmp_path / "ls")
    with pytest.raises(ProvnetError, match="is a production inventory .* --lab would change nothing"):
        import_province("20", root, lab=True)


def test_lab_layout_is_the_lab_inventorys(tmp_path: Path) -> None:
    lab = yamlio.load(importer.LAB_PROVINCE)
    doc = importer.province_document(find_province("38"), lab=True)
    assert doc["pools"] == lab["pools"] and doc["vlans"] == lab["vlans"]
    assert doc["dc"] == {"name": doc["dc"]["name"], **{k: v for k, v in lab["dc"].items() if k != "name"}}


def test_a_site_whose_file_is_gone_gets_its_id_back(langson: Path, tmp_path: Path) -> None:
    root = _copy(langson, tmp_path / "ls")
    ledger = yamlio.load(root / "ids.yml")
    if "assigned" not in ledger:  # until schema.IdsFile has it, write the ledger an importer will write
        ledger["assigned"] = [{"id": d["id"], "code": d["code"], "slug": d["slug"], "name": d["name"]}
                              for d in _sites(root).values()]
        (root / "ids.yml").write_text(yamlio.dump(ledger), encoding="utf-8")
    (root / "sites" / "dong-dang.yml").unlink()
    report = import_province("20", root, today=TODAY)
    assert report.restored == ["dong-dang"] and report.added == [] and report.next_id == 66
    assert yamlio.load(root / "sites" / "dong-dang.yml")["id"] == 23


@pytest.mark.parametrize(("name", "raw", "message"), [
    ("nul", b"id: 1\nname: a\x00\n", "file: control character U+0000 at byte offset 13 (line 2)"),
    ("latin1", "name: Xã\n".encode("latin-1"), "file: is not UTF-8: byte 0xe3 at byte offset 7 (line 1)"),
    ("deep", b"a: " + b"[" * 20000 + b"]" * 20000 + b"\n", "a[0][0][0][0][0]…: nested deeper than 64 levels"),
])
def test_hostile_site_files_stop_a_reimport_with_a_problem_line(langson: Path, tmp_path: Path,
                                                               name: str, raw: bytes, message: str) -> None:
    root = _copy(langson, tmp_path / "ls")
    (root / "sites" / "dong-dang.yml").write_bytes(raw)
    with pytest.raises(InventoryError) as info:
        import_province("20", root, today=TODAY)
    assert str(info.value).startswith(f"{root}/sites/dong-dang.yml: {message}")
    assert str(info.value).endswith("then import again")
