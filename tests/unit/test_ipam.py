"""The IP plan is stable: adding or removing sites never moves another site's addresses."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from provnet import ipam, model, schema, sot

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"
_LAB = sot.read(LAB)
# synthetic sites only: no meeting chair or ad hoc meeting naming the lab's real sites
BASE = dataclasses.replace(_LAB, province=_LAB.province.model_copy(update={"vc": schema.Vc()}))


def make_site(site_id: int) -> schema.SiteFile:
    return schema.SiteFile(id=site_id, code=f"{50000 + site_id:05d}", name=f"Xã Thử {site_id}",
                           slug=f"thu-{site_id}", kind="xa", circuit_id=f"T-{site_id}",
                           contact=schema.Contact(name="Trực ban", phone="0900"))


def compile_ids(ids: set[int]) -> model.Model:
    src = dataclasses.replace(BASE, sites=tuple(make_site(i) for i in sorted(ids)), ids=None)
    assert sot.check(src, "province.yml") == []
    return model.compile_source(src)


def addresses(m: model.Model, slug: str) -> dict[str, str]:
    site = m.sites[slug]
    out = {"loopback": str(site.loopback), "wan": str(site.wan), "asn": str(site.asn)}
    out.update({f"lan_{k}": str(v.subnet) for k, v in site.lans.items()})
    for hostname in site.devices:
        dev = m.devices[hostname]
        out[f"{hostname}_oob"] = str(dev.oob_address)
        out.update({f"{hostname}_{i.name}": str(i.address) for i in dev.interfaces})
    return out


def assert_no_overlap(m: model.Model) -> None:
    nets = sorted({s.subnet for s in m.segments} | {ipaddress.IPv4Network(s.loopback) for s in m.sites.values()})
    for a, b in zip(nets, nets[1:]):
        assert not a.overlaps(b), f"{a} overlaps {b}"
    oob = [d.oob_address.ip for d in m.nodes() if d.oob_address]
    assert len(oob) == len(set(oob))


operations = st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(1, 255)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(start=st.sets(st.integers(1, 255), min_size=1, max_size=20), ops=operations)
def test_additions_and_removals_never_move_or_overlap(start: set[int], ops: list[tuple[str, int]]) -> None:
    ids = set(start)
    m = compile_ids(ids)
    known = {f"thu-{i}": addresses(m, f"thu-{i}") for i in ids}
    for op, site_id in ops:
        if op == "add":
            ids.add(site_id)
        elif site_id in ids and len(ids) > 1:
            ids.discard(site_id)
        m = compile_ids(ids)
        assert_no_overlap(m)
        for i in ids:
            slug = f"thu-{i}"
            now = addresses(m, slug)
            assert known.setdefault(slug, now) == now, f"{slug} moved"


def test_allocation_is_a_function_of_the_id() -> None:
    pool = ipaddress.IPv4Network("198.18.2.0/23")
    assert ipam.wan_link(pool, 0) == ipaddress.IPv4Network("198.18.2.0/31")
    assert ipam.wan_link(pool, 7) == ipaddress.IPv4Network("198.18.2.14/31")
    assert str(ipam.wan_pe(ipam.wan_link(pool, 7))) == "198.18.2.14/31"
    assert str(ipam.wan_ce(ipam.wan_link(pool, 7))) == "198.18.2.15/31"
    lan = ipam.lan(ipaddress.IPv4Network("198.18.64.0/19"), 27, 3)
    assert lan == ipaddress.IPv4Network("198.18.64.96/27")


def test_pool_exhaustion_is_an_error() -> None:
    import pytest

    with pytest.raises(ipam.PoolExhausted):
        ipam.loopback(ipaddress.IPv4Network("198.18.0.0/30"), 4)
