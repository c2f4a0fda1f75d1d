"""ASCII slugs for Vietnamese place names, unique and stable.

A site's slug names its files and hostnames (``<slug>-ce``, ``<slug>-vc``), so it
must be lowercase ASCII, an RFC 1123 label once suffixed, and independent of the
order in which units are listed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

MAX_SLUG = 56
"""Longest slug: ``<slug>-ce`` must stay within a 63-character DNS label."""

TYPE_PREFIXES = ("Xã ", "Phường ", "Đặc khu ", "Thị trấn ")
"""Unit-type words that open an official name (2025 structure, plus the older thị trấn)."""

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc]")  # "M’Drắk" → "mdrak", not "m-drak"


def fold(text: str) -> str:
    """Fold Vietnamese text to a slug: ``"Đồng Đăng"`` → ``"dong-dang"``.

    NFC first (so precomposed and combining inputs agree), then đ/Đ → d, NFD and
    every combining mark dropped, apostrophes dropped (``"Ea M’Droh"`` →
    ``"ea-mdroh"``), lowercase, and runs of anything that is not an ASCII
    letter or digit collapsed to a single ``-``.
    """
    text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
    text = _APOSTROPHES.sub("", text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return _NON_ALNUM.sub("-", text.lower()).strip("-")


def truncate(slug: str, limit: int = MAX_SLUG) -> str:
    """Shorten ``slug`` to at most ``limit`` characters, cutting between words when it can."""
    if len(slug) <= limit:
        return slug
    head = slug[: limit + 1]
    cut = head.rfind("-")
    return (head[:cut] if cut > 0 else slug[:limit]).strip("-")


def strip_type(name: str, division_type: str = "") -> str:
    """The official name without its unit-type word (``"Xã Đồng Đăng"`` → ``"Đồng Đăng"``)."""
    name = unicodedata.normalize("NFC", name).strip()
    wanted = unicodedata.normalize("NFC", division_type).strip().casefold()
    prefixes = sorted(TYPE_PREFIXES, key=lambda p: p.strip().casefold() != wanted)
    for prefix in prefixes:
        if name.casefold().startswith(prefix.casefold()) and name[len(prefix):].strip():
            return name[len(prefix):].strip()
    return name


def site_slug(name: str, division_type: str = "") -> str:
    """Base slug of a unit: its name without the type word, folded and truncated."""
    return truncate(fold(strip_type(name, division_type)) or fold(name))


def type_prefix(division_type: str) -> str:
    """Slug prefix of a unit type: ``"xã"`` → ``"xa-"``, ``"đặc khu"`` → ``"dac-khu-"``."""
    folded = fold(division_type)
    return f"{folded}-" if folded else ""


def unique_slugs(units: Iterable[tuple[str, str, str]], taken: set[str]) -> dict[str, str]:
    """Slugs for ``(code, name, division_type)`` units, unique among themselves and ``taken``.

    Deterministic and independent of input order: every decision depends only on
    the multiset of candidates. A base slug shared by two units, or already in
    ``taken``, gets the unit's type prefix (``xa-``, ``phuong-``, ``dac-khu-``);
    a prefixed slug that still collides gets ``-<code>`` appended. Slugs stay
    within :data:`MAX_SLUG` characters. Raises ``ValueError`` on duplicate codes.
    """
    items = sorted(units)
    codes = [code for code, _, _ in items]
    if len(set(codes)) != len(codes):
        dupes = sorted(c for c, n in Counter(codes).items() if n > 1)
        raise ValueError(f"duplicate unit codes: {', '.join(dupes)}")

    base = {code: site_slug(name, dtype) for code, name, dtype in items}
    counts = Counter(base.values())
    clash = {c for c, s in base.items() if counts[s] > 1 or s in taken}
    slugs = {c: truncate(type_prefix(dtype) + base[c]) if c in clash else base[c] for c, _, dtype in items}

    counts = Counter(slugs.values())
    for code in sorted(clash):
        slug = slugs[code]
        if counts[slug] > 1 or slug in taken:
            suffix = f"-{code}"
            slugs[code] = truncate(slug, MAX_SLUG - len(suffix)) + suffix

    final = Counter(slugs.values())
    left = sorted(s for s in final if final[s] > 1 or s in taken)
    if left:  # only reachable with contrived names such as "Xã Bình 06184"
        raise ValueError(f"cannot make slugs unique: {', '.join(left)}")
    return slugs


__all__ = ["MAX_SLUG", "fold", "site_slug", "strip_type", "truncate", "type_prefix", "unique_slugs"]
