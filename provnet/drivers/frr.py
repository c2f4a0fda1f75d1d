"""FRR over SSH: frr.conf and the daemons file; diff and apply with frr-reload.py.

- validation: ``vtysh -C -f`` on the uploaded candidate, before anything is applied;
- diff: ``frr-reload.py --test`` (exits 0 even when lines differ, so its output is parsed)
  against the running daemons; the whole file when FRR is not running yet. One command:
  the daemons and sysctl files, ``is-active`` and the staged candidate (on stdin) tested;
- apply: ``frr-reload.py --reload``, or a restart when the daemons file changed or FRR
  was down; afterwards a second ``--test`` must come back empty (its first try runs in
  the apply's own command);
- interface addresses live in frr.conf (zebra owns them), so a deploy survives a restart.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import TYPE_CHECKING, Any

from provnet.drivers import models
from provnet.drivers.base import CommitError, DriverError
from provnet.drivers.linux import STATE, LinuxDriver, unified

if TYPE_CHECKING:
    from provnet.drivers.ssh import Result, Step

RELOAD = "/usr/lib/frr/frr-reload.py"
PATHS = {"frr.conf": "/etc/frr/frr.conf", "daemons": "/etc/frr/daemons",
         "sysctl": "/etc/sysctl.d/60-provnet-routing.conf"}


def parse_reload_test(output: str) -> tuple[list[str], list[str]]:
    """frr-reload.py --test output → (lines to delete, lines to add)."""
    delete: list[str] = []
    add: list[str] = []
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith("Lines To Delete"):
            current = delete
        elif line.startswith("Lines To Add"):
            current = add
        elif current is not None and line.strip() and not set(line.strip()) <= {"="}:
            current.append(line.rstrip())
    return delete, add


class FrrDriver(LinuxDriver):
    platform = "frr"
    services = ("frr",)

    def path_of(self, name: str) -> str:
        try:
            return PATHS[name]
        except KeyError:
            raise DriverError(f"frr: unknown section '{name}' (expected {', '.join(PATHS)})") from None

    def owned(self) -> list[str]:
        return sorted(PATHS)

    def mode_of(self, name: str) -> str:
        return "0644" if name == "sysctl" else "0640"

    def snapshot_live(self, directory: str) -> list[str]:
        # the running config, hand-made changes included, is what a rollback must restore
        return [f"if systemctl is-active -q frr; then vtysh -c 'show running-config' | sed -e '/^Building configuration/d' "
                f"-e '/^Current configuration:/d' -e '/^end$/d' > {directory}/frr.conf.live && "
                f"mv {directory}/frr.conf.live {directory}/frr.conf; fi"]

    def _active(self) -> bool:
        return self.s.run("systemctl is-active -q frr").rc == 0

    def validate_command(self, staged: dict[str, str]) -> str:
        return f"vtysh -C -f {shlex.quote(staged['frr.conf'])}" if "frr.conf" in staged else ""

    def rejected(self, res: Result) -> CommitError:
        return CommitError(f"{self.hostname}: FRR rejects the candidate (vtysh -C): "
                           f"{(res.out + res.err).strip()[-800:]}; nothing was applied")

    def _tested(self, res: Result) -> tuple[list[str], list[str]]:
        """A ``frr-reload.py --test`` result → (lines to delete, lines to add)."""
        if res.rc != 0:
            raise DriverError(f"{self.hostname}: frr-reload.py --test failed: {(res.err or res.out).strip()[-600:]}")
        return parse_reload_test(res.out)

    def _reload_test(self, path: str) -> tuple[list[str], list[str]]:
        return self._tested(self.s.run(f"{RELOAD} --test {path}", timeout=90))

    def platform_diff(self) -> str:
        assert self.candidate is not None
        out = []
        steps: list[Step] = ["systemctl is-active -q frr"]
        if "frr.conf" in self.candidate:
            staged = f"{STATE}/candidate/frr/diff-frr.conf"
            steps.append((f"systemctl is-active -q frr || exit 0\nmkdir -p {STATE}/candidate/frr && umask 077 && "
                          f"cat > {staged}.pvtmp && mv -f {staged}.pvtmp {staged} && {RELOAD} --test {staged}",
                          self.candidate["frr.conf"]))
        running, (active, *test) = self.read_with(["daemons", "sysctl"], steps, timeout=90)
        for name in ("daemons", "sysctl"):
            if name in self.candidate and (running[name] or "") != self.candidate[name]:
                out.append(unified(running[name] or "", self.candidate[name], name))
        if "frr.conf" in self.candidate:
            if active.rc == 0:
                delete, add = self._tested(test[0])
                if delete or add:
                    out.append("--- running/frr (vtysh)\n+++ intended/frr.conf\n"
                               + "".join(f"-{l}\n" for l in delete) + "".join(f"+{l}\n" for l in add))
            else:
                out.append(unified("", self.candidate["frr.conf"], "frr.conf (FRR not running)"))
        return "".join(out)

    def apply_script(self) -> str:
        return (
            "sysctl -q -p /etc/sysctl.d/60-provnet-routing.conf 2>/dev/null || true\n"
            "chown frr:frr /etc/frr/frr.conf /etc/frr/daemons 2>/dev/null || true\n"
            "systemctl enable -q frr\n"
            f"if systemctl is-active -q frr && cmp -s /etc/frr/daemons {STATE}/rollback/frr/files/daemons; then\n"
            f"  {RELOAD} --reload /etc/frr/frr.conf\n"
            "else\n"
            "  systemctl restart frr\n"
            "fi\n"
        )

    def revert_apply(self) -> str:
        return ("if [ -e /etc/sysctl.d/60-provnet-routing.conf ]; then sysctl -q -p /etc/sysctl.d/60-provnet-routing.conf; "
                "else sysctl -q -w net.ipv4.ip_forward=0; fi\n"
                "chown frr:frr /etc/frr/frr.conf /etc/frr/daemons 2>/dev/null\n"
                f"if systemctl is-active -q frr; then systemctl restart frr; fi\n")

    def after_commit_steps(self) -> list[Step]:
        return [f"{RELOAD} --test /etc/frr/frr.conf"]

    def after_commit(self, checked: list[Result]) -> None:
        """The second --test must come back empty (FRR converged to the file); its first try is ``checked``."""
        left: tuple[list[str], list[str]] = ([], [])
        for attempt in range(30):
            try:
                left = self._tested(checked[0]) if attempt == 0 and checked else \
                    self._reload_test("/etc/frr/frr.conf")
            except DriverError:
                time.sleep(0.5)  # daemons still starting
                continue
            if not left[0] and not left[1]:
                return
            time.sleep(0.5)
        raise CommitError(f"{self.hostname}: FRR did not converge to the intended config; still to delete "
                          f"{left[0][:5]}, to add {left[1][:5]}")

    # -------------------------------------------------------------- getters

    def _vtysh_json(self, command: str) -> Any:
        res = self.s.run(f"vtysh -c {json.dumps(command)}")
        if res.rc != 0:
            raise DriverError(f"{self.hostname}: vtysh '{command}' failed: {(res.err or res.out).strip()}")
        return json.loads(res.out or "{}")

    def get_bgp_neighbors(self) -> models.BGPNeighbors:
        if not self._active():
            return {"global": {"router_id": "", "peers": {}}}
        data = self._vtysh_json("show bgp ipv4 unicast summary json")
        peers: dict[str, models.BGPStateNeighborDict] = {}
        for addr, p in (data.get("peers") or {}).items():
            established = p.get("state") == "Established"
            peers[addr] = {
                "local_as": data.get("as"), "remote_as": p.get("remoteAs"), "remote_id": "",
                "is_up": established, "is_enabled": p.get("state") != "Idle (Admin)",
                "description": p.get("desc", ""), "uptime": p.get("peerUptimeMsec", 0) / 1000,
                "address_family": {"ipv4": {"received_prefixes": p.get("pfxRcd", 0) if established else -1,
                                            "accepted_prefixes": p.get("pfxRcd", 0) if established else -1,
                                            "sent_prefixes": p.get("pfxSnt", 0) if established else -1}},
                "state": p.get("state", ""),
            }
        return {"global": {"router_id": data.get("routerId", ""), "peers": peers}}

    def get_route_table(self) -> models.RouteTable:
        """Kernel-independent view of FRR's IPv4 RIB: prefix → [{protocol, nexthops, selected}]."""
        if not self._active():
            return {}
        data = self._vtysh_json("show ip route json")
        return {prefix: [{"protocol": r.get("protocol"), "selected": r.get("selected", False),
                          "nexthops": [n.get("ip", n.get("interfaceName", "")) for n in r.get("nexthops", [])]}
                         for r in routes] for prefix, routes in data.items()}

    def live_steps(self) -> list[Step]:
        return ["systemctl is-active -q frr && vtysh -c 'show running-config'"]

    def live_sections(self, files: dict[str, str], live: list[Result]) -> dict[str, str]:
        if live[0].rc == 0:  # FRR running and vtysh answered
            files["frr.conf"] = re.sub(r"^(Building configuration|Current configuration).*\n|^end\n", "",
                                       live[0].out, flags=re.M)
        return files
