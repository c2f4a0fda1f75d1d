"""The DC servers: registrar, bridge host, SOC collector and NTP serving; the SOC hears every node."""

from __future__ import annotations

import time
from typing import Any

import pytest

from provnet import model
from provnet.status import SOC_DIR
from provnet.verify.plugin import expect

pytestmark = pytest.mark.roles("ntp", "soc", "sip_registrar", "vc_bridge")
SERVICE = {"ntp": "chrony", "soc": "rsyslog", "sip_registrar": "kamailio"}
PORTS = {"ntp": ("udp", 123), "soc": ("udp", 514), "sip_registrar": ("udp", 5060)}
RECENT_S = 3600


@pytest.mark.layer("dc", 0)
def test_service_is_running_and_listening(facts: dict[str, Any], dev: model.Device, m: model.Model) -> None:
    if dev.role == "vc_bridge":
        _bridge_is_serving(facts, dev, m)
        return
    unit = facts["units"].get(SERVICE[dev.role], {})
    proto, port = PORTS[dev.role]
    if dev.role == "sip_registrar":
        port = m.sip_port
    addr = str(dev.data_address)
    listening = any(p == proto and pt == port and a in (addr, "0.0.0.0", "*") for p, a, pt in facts["listen"])
    expect(unit.get("active") == "active" and listening, f"{SERVICE[dev.role]} on {addr}",
           f"active, {proto}/{port} listening", f"{unit.get('active')}, {'listening' if listening else 'not listening'}")


def _bridge_is_serving(facts: dict[str, Any], dev: model.Device, m: model.Model) -> None:
    """Janus (API on the management address) and provnet-bridged (SIP legs on the data address)."""
    data = str(dev.data_address)
    wanted = {"janus": ("tcp", dev.ansible_host, m.vc.janus_port),
              "provnet-bridged": ("udp", data, m.vc.bridge_sip_port)}
    for unit_name, (proto, addr, port) in wanted.items():
        unit = facts["units"].get(unit_name, {})
        listening = any(p == proto and pt == port and a == addr for p, a, pt in facts["listen"])
        expect(unit.get("active") == "active" and listening, f"{unit_name} on {addr}",
               f"active, {proto}/{port} listening", f"{unit.get('active')}, "
               f"{'listening' if listening else 'not listening'}")


@pytest.mark.layer("dc", 1)
def test_soc_holds_a_recent_line_from_every_node(sh: Any, dev: model.Device, m: model.Model) -> None:
    if dev.role != "soc":
        pytest.skip("only the SOC collector")
    out = sh(f"for d in {SOC_DIR}/*/; do printf '%s %s\\n' $(basename $d) "
             f"$(stat -c %Y $d/syslog.log 2>/dev/null || echo 0); done").stdout
    seen = {name: int(t) for name, t in (l.split() for l in out.splitlines() if len(l.split()) == 2)}
    now = int(sh("date +%s").stdout.strip() or time.time())
    silent = sorted(h for h in m.devices if h != dev.hostname and now - seen.get(h, 0) > RECENT_S)
    expect(not silent, "SOC logs per node", f"a line within {RECENT_S // 60} min from every node",
           f"silent: {', '.join(silent[:6])}{' …' if len(silent) > 6 else ''}")
