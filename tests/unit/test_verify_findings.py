"""The root-cause rule of `provnet verify`: one cause per site, the rest blocked by it."""

from __future__ import annotations

from provnet.verify import facts
from provnet.verify.findings import Finding, classify, verdicts


def f(host: str, layer: str, check: str, ok: bool, order: int = 0, site: str = "dong-dang") -> Finding:
    return Finding(site=site, host=host, layer=layer, check=check, ok=ok, order=order)


def test_lowest_failing_layer_is_the_one_root_cause() -> None:
    found = [
        f("dong-dang-ce", "wan", "frr is running", False, 1),
        f("dong-dang-ce", "wan", "ebgp to the pe is established", False, 2),
        f("dong-dang-ce", "routing", "dc prefixes are received", False),
        f("dong-dang-vc", "registration", "registered", False),
        f("dong-dang-ce", "node", "systemd running", True),
        f("cao-loc-ce", "wan", "frr is running", True, 1, site="cao-loc"),
    ]
    classify(found)
    roots = [x for x in found if x.root_cause]
    assert [(r.host, r.check) for r in roots] == [("dong-dang-ce", "frr is running")]
    blocked = {x.check: x.blocked_by for x in found if x.blocked_by}
    assert blocked == {"ebgp to the pe is established": "dong-dang-ce: frr is running",
                       "dc prefixes are received": "dong-dang-ce: frr is running",
                       "registered": "dong-dang-ce: frr is running"}
    assert not any(x.root_cause or x.blocked_by for x in found if x.site == "cao-loc")


def test_config_drift_is_its_own_cause() -> None:
    found = [f("a-ce", "config", "running config equals intended", False), f("a-ce", "logging", "syslog", False)]
    classify(found)
    assert all(x.root_cause for x in found)


def test_verdicts_put_failures_first_with_circuit_and_contact() -> None:
    found = [f("a-ce", "wan", "frr", True, site="a"), f("b-ce", "wan", "frr", False, site="b")]
    v = verdicts(found, {"a": ("Xã A", "C-1", "X 1"), "b": ("Xã B", "C-2", "Y 2")})
    assert [x.site for x in v] == ["b", "a"] and v[0].circuit_id == "C-2" and v[0].root_cause is not None


def test_facts_parse_one_command_output() -> None:
    out = ("@@@ system\nrunning\n@@@ failed\n@@@ active\nfrr active enabled\nbaresip inactive disabled\n"
           "@@@ listen\ntcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n@@@ sshd\npermitrootlogin no\n"
           "@@@ chrony\nReference ID    : C612090A (198.18.9.10)\nLeap status     : Normal\n"
           "@@@ links\n[]\n@@@ addrs\n[]\n@@@ rsyslog\n@@@ bgp\n\n@@@ rib\n{}\n")
    got = facts.parse(out)
    assert got["system"] == "running" and got["failed"] == []
    assert got["units"]["baresip"] == {"active": "inactive", "enabled": "disabled"}
    assert got["listen"] == [("tcp", "0.0.0.0", 22)]
    assert got["sshd"]["permitrootlogin"] == "no" and got["chrony"]["Leap status"] == "Normal"
    assert got["bgp"] is None and got["rib"] == {}
