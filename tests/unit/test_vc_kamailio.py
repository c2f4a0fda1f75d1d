"""Kamailio JSON-RPC: request bodies, ul.dump / ul.lookup parsing, faults (no sockets).

The samples are SYNTHETIC: written for these tests, modelled on the structure Kamailio
5.6's usrloc RPC builds (src/modules/usrloc/ul_rpc.c: Domains[].Domain.AoRs[].Info.
{AoR, HashID, Contacts[].Contact.{Address, Expires, Q, Call-ID, CSeq, User-Agent, Received,
Path, State, Flags, CFlags, Socket, Methods, Ruid, Instance, Reg-Id, Server-Id, Tcpconn-Id,
Keepalive, Last-Keepalive, KA-Roundtrip, Last-Modified}}) as jsonrpcs serialises it. They
are not captured from a running registrar.
"""

from __future__ import annotations

import json

import pytest

from provnet.errors import AddressRefused
from provnet.vc import kamailio


def contact(address: str, expires: object, ua: str, **extra: object) -> dict[str, object]:
    c = {"Address": address, "Expires": expires, "Q": -1, "Call-ID": "a84b4c76e66710", "CSeq": 4,
         "User-Agent": ua, "Received": "[not set]", "Path": "[not set]", "State": "CS_NEW", "Flags": 0,
         "CFlags": 0, "Socket": "udp:198.18.9.12:5060", "Methods": 8159, "Ruid": "uloc-6650c3a1-2b1c-1",
         "Instance": "[not set]", "Reg-Id": 0, "Server-Id": 0, "Tcpconn-Id": -1, "Keepalive": 1,
         "Last-Keepalive": 1716536000, "KA-Roundtrip": 0, "Last-Modified": 1716536000}
    c.update(extra)
    return {"Contact": c}


UL_DUMP = {
    "jsonrpc": "2.0",
    "result": {"Domains": [{"Domain": {
        "Domain": "location", "Size": 1024,
        "AoRs": [
            {"Info": {"AoR": "dong-dang@vc.langson.lab", "HashID": 1702334321, "Contacts": [
                contact("sip:dong-dang@198.18.64.34:5060;transport=udp", 287, "baresip v3.0.0 (x86_64/linux)",
                        **{"KA-Roundtrip": 1840, "Received": "sip:198.18.64.34:5060"}),
            ]}},
            {"Info": {"AoR": "cao-loc@vc.langson.lab", "HashID": 88231, "Contacts": [
                contact("sip:cao-loc@198.18.64.66:5060", "expired", "baresip v3.0.0 (x86_64/linux)"),
            ]}},
            {"Info": {"AoR": "lang-son@vc.langson.lab", "HashID": 5, "Contacts": [
                contact("sip:lang-son@198.18.64.99:5060", 12, "old"),
                contact("sip:lang-son@198.18.64.98:5060", 250, "Cisco/TelePresence CE9.15"),
            ]}},
        ],
        "Stats": {"Records": 3, "Max-Slots": 1}}}]},
    "id": 1,
}

UL_LOOKUP = {"jsonrpc": "2.0", "result": {"AoR": "dong-dang@vc.langson.lab", "Contacts": [
    contact("sip:dong-dang@198.18.64.34:5060", 120, "baresip v3.0.0 (x86_64/linux)")]}, "id": 2}

FAULT = {"jsonrpc": "2.0", "error": {"code": 500, "message": "AOR not found in location table"}, "id": 3}


def test_request_bodies() -> None:
    assert json.loads(kamailio.rpc_request("ul.dump")) == {"jsonrpc": "2.0", "method": "ul.dump", "id": 1}
    assert json.loads(kamailio.rpc_request("ul.lookup", ["location", "dong-dang@vc.langson.lab"], 7)) == {
        "jsonrpc": "2.0", "method": "ul.lookup", "params": ["location", "dong-dang@vc.langson.lab"], "id": 7}


def test_ul_dump_is_parsed_per_aor() -> None:
    regs = kamailio.parse_ul_dump(kamailio.parse_rpc_response(json.dumps(UL_DUMP)))
    assert set(regs) == {"dong-dang@vc.langson.lab", "cao-loc@vc.langson.lab", "lang-son@vc.langson.lab"}
    r = regs["dong-dang@vc.langson.lab"]
    assert (r.contact, r.user_agent, r.expires, r.state, r.active) == (
        "sip:dong-dang@198.18.64.34:5060;transport=udp", "baresip v3.0.0 (x86_64/linux)", 287, "active", True)
    assert r.received == "sip:198.18.64.34:5060" and r.socket == "udp:198.18.9.12:5060"
    assert r.last_keepalive == 1716536000 and r.ka_roundtrip_ms == 1.84  # KA-Roundtrip is in microseconds
    assert r.contact_host == "198.18.64.34"
    expired = regs["cao-loc@vc.langson.lab"]
    assert (expired.state, expired.active, expired.expires, expired.ka_roundtrip_ms) == ("expired", False, None, None)
    assert expired.received == ""  # "[not set]" is an empty value


def test_the_best_of_several_contacts_wins() -> None:
    r = kamailio.parse_ul_dump(UL_DUMP["result"])["lang-son@vc.langson.lab"]
    assert (r.contact, r.expires, r.contacts) == ("sip:lang-son@198.18.64.98:5060", 250, 2)


def test_find_accepts_sip_uris_and_domainless_tables() -> None:
    regs = kamailio.parse_ul_dump(UL_DUMP["result"])
    assert kamailio.find(regs, "sip:Dong-Dang@vc.langson.lab").aor == "dong-dang@vc.langson.lab"
    assert kamailio.find(regs, "sip:nobody@vc.langson.lab") is None
    bare = {"dong-dang": regs["dong-dang@vc.langson.lab"]}  # usrloc use_domain=0 keys by user only
    assert kamailio.find(bare, "sip:dong-dang@vc.langson.lab") is not None
    assert kamailio.normalise_aor("<sips:A@B;transport=tls>") == "a@b"


def test_ul_lookup_and_faults() -> None:
    r = kamailio.parse_ul_lookup(kamailio.parse_rpc_response(json.dumps(UL_LOOKUP)))
    assert r is not None and r.expires == 120 and r.aor == "dong-dang@vc.langson.lab"
    with pytest.raises(kamailio.RpcError, match="AOR not found") as exc:
        kamailio.parse_rpc_response(json.dumps(FAULT))
    assert exc.value.code == 500
    with pytest.raises(kamailio.RpcError, match="not JSON"):
        kamailio.parse_rpc_response(b"<html>404</html>")
    with pytest.raises(kamailio.RpcError, match="Domains"):
        kamailio.parse_ul_dump({"unexpected": True})


def test_empty_registrar() -> None:
    assert kamailio.parse_ul_dump({"Domains": [{"Domain": {"Domain": "location", "Size": 1024, "AoRs": [],
                                                           "Stats": {"Records": 0, "Max-Slots": 0}}}]}) == {}


class _FakeResp:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> "_FakeResp":
        return self

    def __exit__(self, *a: object) -> None: ...

    def read(self) -> bytes:
        return self.body


def test_client_posts_json_rpc_and_maps_not_found_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    client = kamailio.KamailioRpc("198.18.9.12")
    assert client.url == "http://198.18.9.12:5080/RPC"
    sent = []

    def fake_open(req, timeout):  # type: ignore[no-untyped-def]
        sent.append(json.loads(req.data))
        assert req.get_method() == "POST" and req.full_url == client.url
        if sent[-1]["method"] == "ul.dump":
            return _FakeResp(json.dumps(UL_DUMP).encode())
        return _FakeResp(json.dumps(FAULT).encode())

    monkeypatch.setattr(client._opener, "open", fake_open)
    assert set(client.ul_dump()) >= {"dong-dang@vc.langson.lab"}
    assert client.ul_lookup("sip:nobody@vc.langson.lab") is None
    assert sent[-1]["params"] == ["location", "nobody@vc.langson.lab"]
    # no proxy may carry the request elsewhere
    assert not any(type(h).__name__ == "ProxyHandler" and h.proxies for h in client._opener.handlers)


def test_client_refuses_addresses_outside_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVNET_PRODUCTION", raising=False)
    client = kamailio.KamailioRpc("10.20.0.12")
    monkeypatch.setattr(client._opener, "open", lambda *a, **k: pytest.fail("request sent"))
    with pytest.raises(AddressRefused):
        client.ul_dump()
