"""The lab probes' judgement, on recorded-format data and fakes: no socket, no SSH, no lab."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from provnet import model
from provnet.drivers.ssh import Result
from provnet.vc import kamailio, probes, readiness, sip

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"

# `ping -n -c1 -W2 …` output of iputils-ping (Debian 12), as it prints it
PING_OK = """PING 198.18.64.98 (198.18.64.98) from 198.18.9.13 : 56(84) bytes of data.
64 bytes from 198.18.64.98: icmp_seq=1 ttl=62 time=0.412 ms

--- 198.18.64.98 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms
"""
PING_LOST = """PING 198.18.64.98 (198.18.64.98) from 198.18.9.13 : 56(84) bytes of data.

--- 198.18.64.98 ping statistics ---
1 packets transmitted, 0 received, 100% packet loss, time 0ms
"""


@pytest.fixture(scope="module")
def m() -> model.Model:
    return model.load(LAB)


def test_parse_ping() -> None:
    assert probes.parse_ping(PING_OK) == 0.412
    assert probes.parse_ping(PING_LOST) is None


def test_missing_prefixes_wants_selected_bgp_routes() -> None:
    rib = {"198.18.0.3/32": [{"protocol": "bgp", "selected": True, "nexthops": ["198.18.2.0"]}],
           "198.18.32.96/27": [{"protocol": "bgp", "selected": False, "nexthops": []}],
           "198.18.64.96/27": [{"protocol": "static", "selected": True, "nexthops": []}]}
    assert probes.missing_prefixes(rib, ["198.18.0.3/32", "198.18.32.96/27", "198.18.64.96/27", "198.18.96.96/27"]) \
        == ["198.18.32.96/27", "198.18.64.96/27", "198.18.96.96/27"]


def test_bgp_state() -> None:
    frr_down = {"global": {"router_id": "", "peers": {}}}
    assert probes.bgp_state(frr_down, "198.18.2.6")[0] == "frr-down"
    up = {"global": {"router_id": "198.18.0.3", "peers": {"198.18.2.6": {
        "is_up": True, "state": "Established", "uptime": 812.0,
        "address_family": {"ipv4": {"received_prefixes": 9}}}}}}
    assert probes.bgp_state(up, "198.18.2.6") == ("Established", {"uptime_s": 812.0, "received_prefixes": 9})
    assert probes.bgp_state(up, "198.18.2.8")[0] == "absent"


class FakeBridge:
    def __init__(self, answer: Any) -> None:
        self.answer, self.commands = answer, []

    def run(self, command: str, timeout: float = 30) -> Result:
        self.commands.append(command)
        return self.answer(command)

    def close(self) -> None: ...


class FakeRpc:
    address, port = "198.18.9.12", kamailio.JSONRPC_PORT

    def __init__(self, regs: dict[str, kamailio.Registration], lookup: kamailio.Registration | None = None) -> None:
        self.regs, self.lookup, self.dumps = regs, lookup, 0

    def ul_dump(self) -> dict[str, kamailio.Registration]:
        self.dumps += 1
        return self.regs

    def ul_lookup(self, aor: str) -> kamailio.Registration | None:
        return self.lookup


def lab(m: model.Model, bridge: Any = None, rpc: Any = None) -> probes.LabProbes:
    return probes.LabProbes(m, ctx=object(), bridge=bridge or FakeBridge(lambda c: Result(1, "", "")),
                            rpc=rpc or FakeRpc({}))


def site_ep(m: model.Model, slug: str = "dong-dang") -> readiness.Endpoint:
    return readiness.endpoint_of(m, f"{slug}-vc")


def test_wan_judged_from_the_dc_side_when_the_ce_is_unreachable(m: model.Model,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.engine import device

    asked: list[tuple[str, str]] = []
    rib = {str(p): [{"protocol": "bgp", "selected": True}] for s in m.sites.values() for p in s.prefixes
           if s.slug != "dong-dang"}

    def fake_get(ctx: Any, host: str, getter: str) -> Any:
        asked.append((host, getter))
        return rib

    monkeypatch.setattr(device, "get", fake_get)
    monkeypatch.setattr(probes, "tcp_open", lambda *a, **k: (False, 2000.0, "no answer within 2 s"))
    p = lab(m)
    res = p.wan(site_ep(m))
    assert not res.ok
    assert res.reason.startswith("dc-core has no BGP route to 1/1 site prefixes (198.18.0.3/32")
    assert "CE dong-dang-ce not reachable on management" in res.reason
    assert "circuit VNPT-LSN-TSL-0003, Nông Văn Tú 0912 000 003" in res.reason
    assert p.wan(site_ep(m, "cao-loc")).ok
    assert asked == [("dc-core", "get_route_table")]  # read once per run


def test_a_halls_wan_is_the_cores_static_routes_to_the_dc_firewall(m: model.Model,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A province-level hall has no CE and no circuit: its VLANs must be static routes at the core; BGP
    routes for them do not count, and no CE is asked."""
    from provnet.engine import device

    hall = m.sites["ubnd-tinh"]
    rib: dict[str, Any] = {str(p): [{"protocol": "static", "selected": True}] for p in hall.prefixes}
    monkeypatch.setattr(device, "get", lambda c, h, g: rib if (h, g) == ("dc-core", "get_route_table") else 1 / 0)
    monkeypatch.setattr(probes, "tcp_open", lambda *a, **k: 1 / 0)
    ok = lab(m).wan(site_ep(m, "ubnd-tinh"))
    assert ok.ok and ok.figures["via"] == "dc-fw" and ok.figures["prefixes"] == 3
    video = str(hall.lans["video"].subnet)
    rib[video] = [{"protocol": "bgp", "selected": True}]
    bad = lab(m).wan(site_ep(m, "ubnd-tinh"))
    assert not bad.ok and bad.reason == f"dc-core has no static route to {video} through dc-fw (the hall's VLANs) " \
                                        "— converge dc-core (site.yml)"
    assert lab(m).router(site_ep(m, "ubnd-tinh")).ok


def test_wan_names_the_ce_bgp_state_when_the_ce_answers(m: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.engine import device

    site = m.sites["dong-dang"]
    peer = str(site.wan_pe.ip)

    def fake_get(ctx: Any, host: str, getter: str) -> Any:
        if getter == "get_route_table":
            return {}
        assert (host, getter) == ("dong-dang-ce", "get_bgp_neighbors")
        return {"global": {"router_id": "198.18.0.3", "peers": {peer: {"state": "Active", "is_up": False}}}}

    monkeypatch.setattr(device, "get", fake_get)
    monkeypatch.setattr(probes, "tcp_open", lambda *a, **k: (True, 0.3, ""))
    res = lab(m).wan(site_ep(m))
    assert not res.ok and f"CE dong-dang-ce reports eBGP to PE {peer} Active" in res.reason
    assert res.figures["bgp_state"] == "Active"

    monkeypatch.setattr(device, "get", lambda c, h, g: {} if g == "get_route_table" else
                        {"global": {"router_id": "", "peers": {}}})
    assert "FRR is not running on CE dong-dang-ce" in lab(m).wan(site_ep(m)).reason


def test_router_layer(m: model.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(probes, "tcp_open", lambda a, port, **k: seen.append((a, port)) or (False, 5.0, "Connection refused"))
    res = lab(m).router(site_ep(m))
    assert not res.ok and "dong-dang-ce does not answer on management" in res.reason
    assert seen == [(m.devices["dong-dang-ce"].ansible_host, 22)]


def test_endpoint_host_pings_from_the_bridge(m: model.Model) -> None:
    bridge = FakeBridge(lambda c: Result(0, PING_OK, ""))
    res = lab(m, bridge).endpoint_host(site_ep(m))
    assert res.ok and res.figures == {"ping_ms": 0.412}
    assert bridge.commands == ["ping -n -c1 -i0.2 -w2 -I 198.18.9.13 198.18.64.98"]
    down = lab(m, FakeBridge(lambda c: Result(1, PING_LOST, ""))).endpoint_host(site_ep(m))
    assert not down.ok and "does not answer ping from the bridge dc-mcu (198.18.9.13)" in down.reason


def test_registration_layer(m: model.Model) -> None:
    now = 1716536100
    good = kamailio.Registration("dong-dang@vc.langson.lab", "sip:dong-dang@198.18.64.98:5060", "baresip v3.0.0",
                                 240, last_keepalive=now - 20, ka_roundtrip_ms=1.8)
    rpc = FakeRpc({"dong-dang@vc.langson.lab": good})
    p = lab(m, rpc=rpc)
    res = p.registration(site_ep(m))
    assert res.ok and res.figures["user_agent"] == "baresip v3.0.0" and res.figures["keepalive_rtt_ms"] == 1.8
    missing = p.registration(site_ep(m, "cao-loc"))
    assert not missing.ok and "sip:cao-loc@vc.langson.lab is not registered at the registrar dc-sip" in missing.reason
    assert rpc.dumps == 1
    expired = kamailio.Registration("x", "sip:x@198.18.64.98", state="expired")
    res = probes.judge_registration(expired, site_ep(m), "dc-sip")
    assert not res.ok and "registration expired" in res.reason


def test_signalling_sends_options_from_the_bridge(m: model.Model) -> None:
    def answer(command: str) -> Result:
        argv = shlex.split(command)
        assert argv[:2] == ["python3", "-c"] and argv[4:6] == ["198.18.64.98", "5060"] and argv[6] == "198.18.9.13"
        sent = base64.b64decode(argv[3]).decode()
        branch = argv[9]
        call_id = next(l.split(": ", 1)[1] for l in sent.split("\r\n") if l.startswith("Call-ID"))
        reply = (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.18.9.13:41000;branch={branch}\r\nCall-ID: {call_id}\r\n"
                 "CSeq: 1 OPTIONS\r\nServer: baresip v3.0.0\r\nContent-Length: 0\r\n\r\n")
        assert sent.startswith("OPTIONS sip:dong-dang@198.18.64.98:5060 SIP/2.0")
        return Result(0, json.dumps({"reply": base64.b64encode(reply.encode()).decode(), "rtt_ms": 0.9,
                                     "sent": 1, "error": ""}), "")

    res = lab(m, FakeBridge(answer)).signalling(site_ep(m))
    assert res.ok and res.figures["status"] == 200 and res.figures["rtt_ms"] == 0.9
    silent = FakeBridge(lambda c: Result(0, '{"reply": null, "rtt_ms": null, "sent": 3, "error": ""}', ""))
    res = lab(m, silent).signalling(site_ep(m))
    assert not res.ok and "no answer to SIP OPTIONS from the bridge 198.18.9.13" in res.reason


def test_options_answers() -> None:
    e = readiness.Endpoint("a-vc", "a", "Xã A", None, "commune", "baresip", "198.18.64.98", "sip:a@d", "a", "a-ce")
    assert probes.judge_options(sip.OptionsResult(True, 405, "Method Not Allowed", 1.0), e, "x").ok
    res = probes.judge_options(sip.OptionsResult(True, 404, "Not Found", 1.0), e, "x")
    assert not res.ok and "404 Not Found" in res.reason


def test_media_says_exactly_what_is_missing(m: model.Model) -> None:
    none = lab(m, FakeBridge(lambda c: Result(0, "[]\n", "")))
    res = none.media(site_ep(m))
    assert not res.ok and res.reason == ("media probe not installed (vc_probe role): no baresip ctrl_tcp answers on "
                                         "dc-mcu 127.0.0.1:4450–4453")


def test_tcp_open_is_guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    from provnet.errors import AddressRefused

    monkeypatch.delenv("PROVNET_PRODUCTION", raising=False)
    monkeypatch.setattr(probes.socket, "create_connection", lambda *a, **k: pytest.fail("socket opened"))
    with pytest.raises(AddressRefused):
        probes.tcp_open("192.0.2.1", 22)


def test_registrar_is_asked_on_its_management_address(m: model.Model) -> None:
    p = probes.LabProbes(m, ctx=object(), bridge=FakeBridge(lambda c: Result(1, "", "")))
    assert (p.rpc.address, p.rpc.port) == (m.devices["dc-sip"].ansible_host, m.sip_rpc_port)
    assert p.bridge_data == "198.18.9.13" and p.core == "dc-core" and p.media_slots == probes.MEDIA_SLOTS


def _options_reply(command: str, status: str) -> Result:
    argv = shlex.split(command)
    sent = base64.b64decode(argv[3]).decode()
    call_id = next(l.split(": ", 1)[1] for l in sent.split("\r\n") if l.startswith("Call-ID"))
    reply = (f"SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 198.18.9.13:41000;branch={argv[9]}\r\nCall-ID: {call_id}\r\n"
             "CSeq: 1 OPTIONS\r\nServer: baresip v3.0.0\r\nContent-Length: 0\r\n\r\n")
    return Result(0, json.dumps({"reply": base64.b64encode(reply.encode()).decode(), "rtt_ms": 1.0,
                                 "sent": 2, "error": ""}), "")


def test_signalling_asks_again_after_482(m: model.Model) -> None:
    answers = iter(["482 Loop Detected", "200 OK"])
    bridge = FakeBridge(lambda c: _options_reply(c, next(answers)))
    res = lab(m, bridge).signalling(site_ep(m))
    assert res.ok and res.figures["attempts"] == 2 and len(bridge.commands) == 2
    assert bridge.commands[0] != bridge.commands[1]  # a fresh request: new branch and Call-ID
    twice = lab(m, FakeBridge(lambda c: _options_reply(c, "482 Loop Detected"))).signalling(site_ep(m))
    assert not twice.ok and "482 Loop Detected" in twice.reason and twice.figures["attempts"] == 2
    busy = FakeBridge(lambda c: _options_reply(c, "486 Busy Here"))
    assert not lab(m, busy).signalling(site_ep(m)).ok and len(busy.commands) == 1  # a real answer: no retry


def test_ping_that_could_not_run_is_not_a_silent_endpoint(m: model.Model) -> None:
    res = lab(m, FakeBridge(lambda c: Result(2, "", "ping: sendmsg: No buffer space available"))).endpoint_host(
        site_ep(m))
    assert not res.ok and "ping could not run on the bridge host dc-mcu (exit 2)" in res.reason
    assert "No buffer space" in res.reason and "does not answer" not in res.reason


class ScriptedSSH:
    """Stands in for :class:`provnet.drivers.ssh.SSH`: each ``run`` takes the next scripted outcome."""

    script: list[Any] = []
    opened = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False

    def open(self) -> "ScriptedSSH":
        ScriptedSSH.opened += 1
        return self

    def alive(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True

    def run(self, command: str, timeout: float = 60) -> Result:
        step = ScriptedSSH.script.pop(0)
        if step == "dead":
            self.closed = True
            raise probes.ConnectError("transport gone")
        if isinstance(step, Exception):
            raise step
        return step


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedSSH]:
    monkeypatch.setattr(probes, "SSH", ScriptedSSH)
    monkeypatch.setattr(probes.BridgeShell, "CHANNEL_WAIT", 0.3)
    monkeypatch.setattr(probes.BridgeShell, "CHANNEL_POLL", 0.01)
    ScriptedSSH.opened = 0
    return ScriptedSSH


def test_bridge_shell_retries_a_refused_channel_on_the_same_connection(scripted: type[ScriptedSSH]) -> None:
    refused = probes.ChannelRefused("administratively prohibited")
    scripted.script = [refused, refused, Result(0, "ok", "")]
    shell = probes.BridgeShell("198.18.0.9", ("root",), None, False)
    assert shell.run("true").out == "ok"
    assert scripted.opened == 1 and shell.retries["channel_refused"] == 2
    scripted.script = [refused] * 1000
    with pytest.raises(probes.ChannelRefused):  # the wait is over: the caller reports it as "could not run"
        shell.run("true")


def test_bridge_shell_reruns_a_command_without_exit_status(scripted: type[ScriptedSSH]) -> None:
    scripted.script = [Result(-1, "", ""), Result(1, "", "")]
    shell = probes.BridgeShell("198.18.0.9", ("root",), None, False)
    assert shell.run("ping").rc == 1 and shell.retries["no_exit_status"] == 1


def test_bridge_shell_keeps_a_live_connection_and_replaces_a_dead_one(scripted: type[ScriptedSSH]) -> None:
    shell = probes.BridgeShell("198.18.0.9", ("root",), None, False)
    scripted.script = [probes.ConnectError("channel timed out")]
    with pytest.raises(probes.ConnectError):  # one command's own failure: the connection stays
        shell.run("sleep 99")
    assert scripted.opened == 1 and shell.retries["reconnect"] == 0
    scripted.script = ["dead", Result(0, "again", "")]
    assert shell.run("true").out == "again"
    assert scripted.opened == 2 and shell.retries["reconnect"] == 1
