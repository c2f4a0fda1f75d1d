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


def test_sites_table_is_shared_by_every_device() -> None:
    m = model.load(LAB)
    a = render.context(m, m.devices["dc-core"])["provnet_sites"]
    b = render.context(m, m.devices["dong-dang-ce"])["provnet_sites"]
    assert a is b and [s["slug"] for s in a] == [s.slug for s in sorted(m.sites.values(), key=lambda s: s.id)]
