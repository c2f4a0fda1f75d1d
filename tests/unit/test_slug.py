"""Slugs: diacritics folded deterministically, collisions resolved independently of order."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provnet import schema
from provnet.slug import MAX_SLUG, fold, site_slug, truncate, unique_slugs


@pytest.mark.parametrize(("text", "expected"), [
    ("Đồng Đăng", "dong-dang"),
    ("Hoằng Hóa", "hoang-hoa"),
    ("Thanh Hoá", "thanh-hoa"),
    ("ĐẶC KHU Bạch Long Vĩ", "dac-khu-bach-long-vi"),
    ("Phường Văn Miếu - Quốc Tử Giám", "phuong-van-mieu-quoc-tu-giam"),
    ("Xã Chân Mây – Lăng Cô", "xa-chan-may-lang-co"),
    ("Xã Ea M’Droh", "xa-ea-mdroh"),
    ("Phường B'Lao", "phuong-blao"),
    ("Phường Móng Cái 1", "phuong-mong-cai-1"),
    ("  Ngọc   Lặc  ", "ngoc-lac"),
    ("Ưng Hòe Đức Ơn", "ung-hoe-duc-on"),
])
def test_fold_examples(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_fold_is_the_same_for_nfc_and_nfd_input() -> None:
    text = "Đồng Đăng Hoằng Hóa Nghệ An"
    assert fold(unicodedata.normalize("NFD", text)) == fold(unicodedata.normalize("NFC", text)) == fold(text)


@pytest.mark.parametrize(("name", "dtype", "expected"), [
    ("Xã Đồng Đăng", "xã", "dong-dang"),
    ("Phường Hạc Thành", "phường", "hac-thanh"),
    ("Đặc khu Cồn Cỏ", "đặc khu", "con-co"),
    ("Thị trấn Cao Lộc", "thị trấn", "cao-loc"),
    ("Xã Phượng Dực", "xã", "phuong-duc"),   # "Phượng" is part of the name, not the type
    ("Phường", "phường", "phuong"),          # nothing left after the type: keep the word
])
def test_site_slug_strips_the_type_word(name: str, dtype: str, expected: str) -> None:
    assert site_slug(name, dtype) == expected


@given(st.text(max_size=200))
def test_fold_always_gives_a_slug(text: str) -> None:
    out = fold(text)
    assert out == "" or schema.SLUG.match(out)


def test_truncate_cuts_between_words() -> None:
    long = "-".join(["tan-phuoc"] * 10)
    cut = truncate(long)
    assert len(cut) <= MAX_SLUG and long.startswith(cut) and long[len(cut)] == "-"
    assert truncate("a" * 80) == "a" * MAX_SLUG
    assert truncate("short") == "short"


def test_long_names_make_valid_hostnames() -> None:
    name = "Xã " + " ".join(["Nguyễn Trường Tộ"] * 8)
    slugs = unique_slugs([("00001", name, "xã"), ("00002", name, "xã")], set())
    for slug in slugs.values():
        assert len(slug) <= MAX_SLUG
        for suffix in ("ce", "vc"):
            assert schema.HOSTNAME_LABEL.match(f"{slug}-{suffix}")
    assert len(set(slugs.values())) == 2


# The real collisions of the 2025 data, plus contrived ones.
UNITS = [
    ("15853", "Phường Đông Tiến", "phường"),
    ("15724", "Xã Đồng Tiến", "xã"),          # Thanh Hóa: both fold to dong-tien
    ("29938", "Xã Tân Thành", "xã"),
    ("30157", "Xã Tân Thành", "xã"),          # same name and type: need the code
    ("28261", "Phường Mỹ Tho", "phường"),
    ("30076", "Xã Mỹ Thọ", "xã"),
    ("06184", "Xã Đồng Đăng", "xã"),
    ("00070", "Phường Hoàn Kiếm", "phường"),
    ("00001", "Đặc khu Cát Hải", "đặc khu"),
    ("00002", "Xã Cát Hải", "xã"),
]


def test_collisions_get_the_type_then_the_code() -> None:
    slugs = unique_slugs(UNITS, set())
    assert slugs["15853"] == "phuong-dong-tien"
    assert slugs["15724"] == "xa-dong-tien"
    assert slugs["29938"] == "xa-tan-thanh-29938"
    assert slugs["30157"] == "xa-tan-thanh-30157"
    assert slugs["00001"] == "dac-khu-cat-hai"
    assert slugs["06184"] == "dong-dang"
    assert slugs["00070"] == "hoan-kiem"
    assert len(set(slugs.values())) == len(UNITS)


def test_taken_slugs_are_avoided() -> None:
    slugs = unique_slugs([("06184", "Xã Đồng Đăng", "xã"), ("06185", "Xã Cao Lộc", "xã")],
                         {"dong-dang", "cao-loc", "xa-cao-loc"})
    assert slugs == {"06184": "xa-dong-dang", "06185": "xa-cao-loc-06185"}


def test_duplicate_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate unit codes"):
        unique_slugs([("1", "Xã A", "xã"), ("1", "Xã B", "xã")], set())


@settings(max_examples=200)
@given(st.permutations(UNITS), st.sets(st.sampled_from(["dong-dang", "xa-my-tho", "hoan-kiem", "x"])))
def test_collision_resolution_does_not_depend_on_order(units: list[tuple[str, str, str]], taken: set[str]) -> None:
    expected = unique_slugs(sorted(UNITS, reverse=True), taken)
    got = unique_slugs(units, taken)
    assert got == expected
    assert len(set(got.values())) == len(units)
    assert not set(got.values()) & taken
