"""The baresip video-conference endpoint (Linux SIP endpoint, real in the lab).

The driver owns the endpoint's configuration — baresip's ``config`` and ``accounts``
(the SIP account, auto-answer, media settings) and the host's network file — while
the ``vc_endpoint`` role owns the package and the ``baresip`` service.
"""

from __future__ import annotations

from provnet.drivers import models
from provnet.drivers.base import DriverError
from provnet.drivers.linux import LinuxDriver

CONFIG_DIR = "/etc/provnet/baresip"
NETWORK_DIR = "/etc/systemd/network"


class BaresipDriver(LinuxDriver):
    platform = "baresip"
    services = ()

    def path_of(self, name: str) -> str:
        if name in ("config", "accounts", "contacts"):
            return f"{CONFIG_DIR}/{name}"
        if name.startswith("50-provnet-") and name.endswith(".network"):
            return f"{NETWORK_DIR}/{name}"
        raise DriverError(f"baresip: unknown section '{name}'")

    def mode_of(self, name: str) -> str:
        return "0640" if name == "accounts" else "0644"

    def owned(self) -> list[str]:
        return sorted(set(self.candidate or {}) | {"config", "accounts"})

    def platform_diff(self) -> str:
        """Files, plus the accounts file's group: baresip runs as ``baresip`` and must read it (one command)."""
        running, (res,) = self.read_with(self.diff_names(), [
            f"getent group baresip >/dev/null && stat -c %G {CONFIG_DIR}/accounts 2>/dev/null"])
        diff = self.file_diff(running)
        group = res.out.strip()
        if res.rc == 0 and group and group != "baresip":
            diff += f"--- running/accounts (group)\n+++ intended/accounts (group)\n-group {group}\n+group baresip\n"
        return diff

    def apply_script(self) -> str:
        return (
            f"chgrp baresip {CONFIG_DIR}/accounts 2>/dev/null || true\n"
            "if ls /etc/systemd/network/50-provnet-*.network >/dev/null 2>&1; then\n"
            "  systemctl enable -q systemd-networkd; systemctl restart systemd-networkd\n"
            "fi\n"
            "if systemctl cat baresip.service >/dev/null 2>&1; then systemctl restart baresip; fi\n"
        )

    def status(self) -> models.RegistrationDict:
        """The endpoint's registration as baresip reports it over its control interface (ctrl_tcp),
        at the address its deployed config listens on (``ctrl_tcp_listen``)."""
        script = (
            "import json,re,socket\n"
            "try:\n"
            f"    conf=open('{CONFIG_DIR}/config').read()\n"
            "except OSError:\n"
            "    conf=''\n"
            "m=re.search(r'^ctrl_tcp_listen\\s+(\\S+):(\\d+)\\s*$',conf,re.M)\n"
            "host,port=(m.group(1),int(m.group(2))) if m else ('127.0.0.1',4444)\n"
            "s=socket.create_connection((host,port),3)\n"
            "c=json.dumps({'command':'reginfo','token':'pv'}).encode()\n"
            "s.sendall(str(len(c)).encode()+b':'+c+b',')\n"
            "d=b''\n"
            "while d.count(b',')<1 or b'\"response\"' not in d:\n"
            "    x=s.recv(65536)\n"
            "    if not x: break\n"
            "    d+=x\n"
            "print(d.decode())\n"
        )
        res = self.s.run(f"python3 - <<'EOF'\n{script}EOF")
        if res.rc != 0:
            return {"running": False, "error": res.err.strip()[-300:]}
        return {"running": True, "raw": res.out.strip()}

    def get_registration(self) -> models.RegistrationDict:
        """Getter form of :meth:`status` (``provnet net get get_registration``)."""
        return self.status()

    def get_facts(self) -> models.Facts:
        facts = super().get_facts()
        facts["vendor"], facts["model"] = "baresip", "SIP endpoint"
        return facts
