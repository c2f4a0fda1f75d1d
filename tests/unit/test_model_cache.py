"""The compiled model is memoised per inventory folder until one of its files changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from provnet import model, render

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"


def test_cache_hits_until_a_file_changes(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv)
    first = model.load_cached(inv)
    assert model.load_cached(inv) is first
    site = inv / "sites" / "quan-son.yml"
    site.write_text(site.read_text(encoding="utf-8").replace("bandwidth_mbps: 20", "bandwidth_mbps: 30")
                    if "bandwidth_mbps: 20" in site.read_text(encoding="utf-8")
                    else site.read_text(encoding="utf-8") + "bandwidth_mbps: 30\n", encoding="utf-8")
    st = site.stat()
    os.utime(site, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = model.load_cached(inv)
    assert second is not first and second.sites["quan-son"].bandwidth_mbps == 30


def test_a_new_site_file_invalidates_the_cache(tmp_path: Path) -> None:
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv)
    first = model.load_cached(inv)
    text = (inv / "sites" / "quan-son.yml").read_text(encoding="utf-8")
    ids = sorted(s.id for s in first.sites.values())
    new_id = ids[-1] + 1
    (inv / "sites" / "na-sam.yml").write_text(
        text.replace("slug: quan-son", "slug: na-sam").replace(f"id: {first.sites['quan-son'].id}\n", f"id: {new_id}\n")
        .replace(first.sites["quan-son"].code, "99999").replace(first.sites["quan-son"].circuit_id, "LAB-NEW")
        .replace("Xã Quan Sơn", "Xã Na Sầm"), encoding="utf-8")
    (inv / "ids.yml").write_text(f"next_id: {new_id + 1}\nretired: []\n", encoding="utf-8")
    second = model.load_cached(inv)
    assert second is not first and "na-sam" in second.sites
