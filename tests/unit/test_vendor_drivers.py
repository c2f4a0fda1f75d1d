"""FortiOS and TelePresence drivers without a device: parsers on recorded (simulated) output,
diff/commit logic on a fake Netmiko connection. No socket is opened here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from provnet import model, render
from provnet.drivers import get_network_driver, models
from provnet.drivers import cisco_tp as tp
from provnet.drivers import fortios as fos
from provnet.drivers.base import CommitError, DriverError
from provnet.errors import AddressRefused

REPO = Path(__file__).resolve().parents[2]
REC = REPO / "tests" / "fixtures" / "recorded"


def rec(platform: str, name: str) -> str:
    return (REC / platform / f"{name}.txt").read_text(encoding="utf-8")


class FakeConn:
    """Stands in for a Netmiko connection: answers from a dict, records what was sent."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.sent: list[str] = []
        self.config_sets: list[list[str]] = []

    def send_command(self, command: str, **_: Any) -> str:
        self.sent.append(command)
        return self.answers.get(command, "OK" if command.startswith("xConfiguration ") else "")

    def send_config_set(self, lines: list[str], **_: Any) -> str:
        self.config_sets.append(list(lines))
        return "\n".join(lines)

    def disconnect(self) -> None:
        pass


def test_registry_names_the_drivers() -> None:
    assert get_network_driver("fortios") is fos.FortiosDriver
    assert get_network_driver("cisco_tp") is tp.CiscoTpDriver


@pytest.mark.parametrize("cls", [fos.FortiosDriver, tp.CiscoTpDriver])
def test_open_is_guarded(cls: type) -> None:
    for address in ("10.38.251.4", "127.0.0.1", "dc-fw.example"):
        with pytest.raises(AddressRefused):
            cls(address, "netops", "x").open()


# ------------------------------------------------------------------ TelePresence parsers

def test_sip_registration() -> None:
    assert tp.parse_sip_registration(rec("cisco_tp", "xStatus_SIP_Registration")) == [
        {"id": 1, "status": "Registered", "reason": "", "uri": "an-nong@vc.thanhhoa.gov.vn", "registered": True}]


def test_calls() -> None:
    calls = tp.parse_calls(rec("cisco_tp", "xStatus_Call"))
    assert list(calls) == [3]
    c = calls[3]
    assert c["status"] == "Connected" and c["direction"] == "Outgoing" and c["protocol"] == "Sip"
    assert c["remote_number"] == "10001@vc.thanhhoa.gov.vn" and c["duration"] == 42
    assert c["display_name"] == "Cầu truyền hình tỉnh Thanh Hóa"
    assert tp.parse_calls(rec("cisco_tp", "xStatus_Call_idle")) == {}


def test_dial_result() -> None:
    r = tp.parse_command_result(rec("cisco_tp", "xCommand_Dial_Number"))
    assert r == {"command": "Dial", "status": "OK", "call_id": 3, "conference_id": 2}
    with pytest.raises(DriverError, match="Invalid number"):
        tp.parse_command_result(rec("cisco_tp", "xCommand_Dial_Number_error"))
    with pytest.raises(DriverError, match="refused"):
        tp.parse_command_result("Command not recognized.\n")


def test_xconfiguration_and_diff() -> None:
    m = model.load(REPO / "inventory" / "thanhhoa")
    (r,) = render.render_device(m, "an-nong-vc")
    cand = tp.parse_xconfiguration(r.text())
    running = tp.parse_xconfiguration(rec("cisco_tp", "xConfiguration"))
    assert running["SIP DisplayName"] == "Xã An Nông" and "Audio DefaultVolume" in running
    d = tp.diff_settings(cand, running)
    assert d.splitlines() == [
        '- xConfiguration H323 Mode: "On"', '+ xConfiguration H323 Mode: "Off"',
        '- xConfiguration Network 1 QoS Diffserv Audio: "0"', '+ xConfiguration Network 1 QoS Diffserv Audio: "46"',
        '- xConfiguration NetworkServices H323 Mode: "On"', '+ xConfiguration NetworkServices H323 Mode: "Off"',
        '- xConfiguration NetworkServices Telnet Mode: "On"', '+ xConfiguration NetworkServices Telnet Mode: "Off"',
    ]
    assert "Password" not in d                      # write-only: never compared, never shown
    assert tp.diff_settings(cand, {**running, **cand}) == ""


def test_tp_driver_flow_on_a_fake_session() -> None:
    m = model.load(REPO / "inventory" / "thanhhoa")
    ref = m.devices["an-nong-vc"].sip.password_ref.removeprefix("vault:")
    (r,) = render.render_device(m, "an-nong-vc", secrets={ref: "Clear-Sip-55aa"})
    drv = tp.CiscoTpDriver("198.18.255.1", "netops", "x")
    drv.conn = FakeConn({"xConfiguration": rec("cisco_tp", "xConfiguration"),
                         "xStatus SystemUnit": rec("cisco_tp", "xStatus_SystemUnit"),
                         "xConfiguration SystemUnit Name": rec("cisco_tp", "xConfiguration_SystemUnit_Name"),
                         'xCommand Dial Number: "10001@vc.thanhhoa.gov.vn"': rec("cisco_tp", "xCommand_Dial_Number"),
                         "xStatus Call": rec("cisco_tp", "xStatus_Call")})
    drv.load_replace_candidate(config=r.text())
    assert "Clear-Sip-55aa" not in drv.compare_config()
    with pytest.raises(NotImplementedError):
        drv.commit_config(revert_in=60)
    drv.commit_config()
    sent = [c for c in drv.conn.sent if c.startswith("xConfiguration ") and ":" in c]
    assert sorted(sent) == ['xConfiguration H323 Mode: "Off"', 'xConfiguration Network 1 QoS Diffserv Audio: "46"',
                            'xConfiguration NetworkServices H323 Mode: "Off"',
                            'xConfiguration NetworkServices Telnet Mode: "Off"',
                            'xConfiguration SIP Authentication Password: "Clear-Sip-55aa"']
    drv.conn.sent.clear()
    drv.rollback()
    assert sorted(drv.conn.sent) == ['xConfiguration H323 Mode: "On"', 'xConfiguration Network 1 QoS Diffserv Audio: "0"',
                                     'xConfiguration NetworkServices H323 Mode: "On"',
                                     'xConfiguration NetworkServices Telnet Mode: "On"']
    facts = drv.get_facts()
    assert facts["hostname"] == "an-nong-vc" and facts["os_version"].startswith("ce10.19")
    assert facts["serial_number"] == "FOC2245NF3Q" and facts["uptime"] == 86423.0
    assert drv.dial("10001@vc.thanhhoa.gov.vn")["call_id"] == 3
    assert drv.get_calls()[3]["status"] == "Connected"
    with pytest.raises(DriverError, match="refusing number"):
        drv.dial('1"\nxCommand SystemUnit Boot')


def test_tp_commit_stops_on_error() -> None:
    drv = tp.CiscoTpDriver("198.18.255.1", "netops", "x")
    drv.conn = FakeConn({"xConfiguration": "** end\n\nOK",
                         'xConfiguration SIP Authentication Password: "s3"': "ERROR\n*r Configuration (status=Error):\n"
                                                                             "    Reason: \"too short\"\n** end"})
    drv.load_merge_candidate(config='xConfiguration SIP Authentication Password: "s3"\n')
    with pytest.raises(CommitError) as exc:
        drv.commit_config()
    assert "s3" not in str(exc.value) and "<secret>" in str(exc.value)


def test_fakenos_platform_serves_the_recorded_output() -> None:
    doc = yaml.safe_load((REPO / "provnet" / "fakenos_platforms" / "cisco_tp.yaml").read_text(encoding="utf-8"))
    cmds = doc["commands"]
    assert doc["name"] == "cisco_tp" and doc["initial_prompt"] == ""
    for command, name in [("xStatus SIP Registration", "xStatus_SIP_Registration"), ("xStatus Call", "xStatus_Call"),
                          ("xStatus SystemUnit", "xStatus_SystemUnit"), ("xConfiguration", "xConfiguration"),
                          ('xCommand Dial Number: "10001@vc.thanhhoa.gov.vn"', "xCommand_Dial_Number")]:
        assert cmds[command]["output"] == rec("cisco_tp", name).rstrip("\n"), command


# ------------------------------------------------------------------ FortiOS

def test_fortios_facts_and_interfaces() -> None:
    f = fos.parse_system_status(rec("fortios", "get_system_status"))
    assert (f["model"], f["os_version"], f["serial_number"], f["hostname"]) == (
        "FortiGate-VM64", "v7.2.8,build1639,240313 (GA.M)", "FGVMEVXXXXXXXX38", "dc-fw")
    assert fos.parse_uptime(rec("fortios", "get_system_performance_status")) == 12 * 86400 + 3 * 3600 + 41 * 60
    ifs = fos.parse_interfaces(rec("fortios", "get_system_interface_physical"))
    assert ifs["port1"] == {"is_up": True, "ip": "10.38.250.20", "netmask": "255.255.255.240", "speed": 10000}
    assert ifs["port3"]["is_up"] is False and "onboard" not in ifs


def test_fortios_parse_and_diff() -> None:
    m = model.load(REPO / "inventory" / "thanhhoa")
    (r,) = render.render_device(m, "dc-fw")
    running = rec("fortios", "show")
    d = fos.diff(r.text(), running, replace=True).splitlines()
    assert '- config system global | set admin-telnet enable' in d
    assert '+ config system global | set admin-telnet disable' in d
    assert '- config firewall address | edit "old-lab-host" | set subnet 192.0.2.10 255.255.255.255' in d
    assert '- config system interface | edit "port2" | set role lan' in d
    merge = fos.diff(r.text(), running, replace=False).splitlines()
    assert not any("old-lab-host" in l for l in merge) and not any("set role lan" in l for l in merge)
    assert fos.diff(r.text(), r.text()) == ""
    assert fos.removals(r.text(), running) == [
        "config system interface", 'edit "port2"', "unset role", "next", "end",
        "config firewall address", 'delete "old-lab-host"', "end"]


def test_fortios_commit_confirm_and_rollback_on_a_fake_session() -> None:
    m = model.load(REPO / "inventory" / "thanhhoa")
    (r,) = render.render_device(m, "dc-fw", secrets={"admin_password": "Clear-Admin-7f3a"})
    drv = fos.FortiosDriver("198.18.255.2", "netops", "x")
    drv.conn = FakeConn({"show": rec("fortios", "show")})
    drv.load_replace_candidate(config=r.text())
    drv.commit_config(revert_in=120)
    armed, change = drv.conn.config_sets[0], drv.conn.config_sets[1]
    assert armed == ["config system global", "set cfg-save revert", "set cfg-revert-timeout 120", "end"]
    assert change[:8] == fos.removals(r.text(), rec("fortios", "show"))
    assert 'set password "Clear-Admin-7f3a"' in change
    assert drv.has_pending_commit()
    drv.confirm_commit()
    assert "execute cfg save" in drv.conn.sent and not drv.has_pending_commit()
    with pytest.raises(CommitError):
        drv.confirm_commit()
    drv.load_merge_candidate(config="config system global\n    set hostname \"x\"\nend\n")
    drv.commit_config(revert_in=60)
    drv.rollback()
    assert drv.conn.sent[-1] == "execute cfg reload" and not drv.has_pending_commit()


def test_fortios_a_fresh_session_confirms_what_the_device_holds_pending() -> None:
    """The engine confirms over a new connection: the pending state is read from the FortiGate."""
    drv = fos.FortiosDriver("198.18.255.2", "netops", "x")
    drv.conn = FakeConn({"get system global": "    admintimeout        : 5\n    cfg-save            : revert\n"
                                              "    cfg-revert-timeout  : 60\n"})
    assert drv.has_pending_commit()
    drv.confirm_commit()
    assert drv.conn.sent[-1] == "execute cfg save"
    assert drv.conn.config_sets[-1] == ["config system global", "set cfg-save automatic", "end"]
    saved = fos.FortiosDriver("198.18.255.2", "netops", "x")
    saved.conn = FakeConn({"get system global": "    cfg-save            : automatic\n"})
    with pytest.raises(CommitError):
        saved.confirm_commit()


# ------------------------------------------------------------------ getters' shapes on recorded output

def _getter_outputs(drv: Any, names: list[str]) -> dict[str, Any]:
    return {name: getattr(drv, name)() for name in names}


def test_getters_on_recorded_output_match_their_declared_shapes() -> None:
    """What each getter returns from recorded output conforms to provnet/drivers/models.py."""
    fw = fos.FortiosDriver("198.18.255.2", "netops", "x")
    fw.conn = FakeConn({"get system status": rec("fortios", "get_system_status"),
                        "get system performance status": rec("fortios", "get_system_performance_status"),
                        "get system interface physical": rec("fortios", "get_system_interface_physical"),
                        "show": rec("fortios", "show")})
    ep = tp.CiscoTpDriver("198.18.255.1", "netops", "x")
    ep.conn = FakeConn({"xConfiguration": rec("cisco_tp", "xConfiguration"),
                        "xStatus SystemUnit": rec("cisco_tp", "xStatus_SystemUnit"),
                        "xConfiguration SystemUnit Name": rec("cisco_tp", "xConfiguration_SystemUnit_Name"),
                        "xStatus SIP Registration": rec("cisco_tp", "xStatus_SIP_Registration"),
                        "xStatus Call": rec("cisco_tp", "xStatus_Call")})
    outputs = {
        "fortios": _getter_outputs(fw, ["get_facts", "get_interfaces", "get_interfaces_ip", "get_config"]),
        "cisco_tp": _getter_outputs(ep, ["get_facts", "get_config", "get_sip_registration", "get_calls"]),
    }
    for platform, results in outputs.items():
        for getter, value in results.items():
            assert value, (platform, getter)
            assert models.shape_errors(value, models.GETTERS[getter]) == [], (platform, getter)
    assert outputs["fortios"]["get_interfaces_ip"]["port1"] == {"ipv4": {"10.38.250.20": {"prefix_length": 28}}}
    assert outputs["cisco_tp"]["get_calls"][3]["duration"] == 42
    assert models.shape_errors(tp.parse_calls(rec("cisco_tp", "xStatus_Call_idle")), models.Calls) == []
