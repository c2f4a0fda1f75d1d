"""The readiness probes over the real network (lab or production): one method per layer.

Where each layer is measured from, and why:

- ``wan``: the DC core's FRR routing table (``FrrDriver.get_route_table`` through
  :func:`provnet.engine.device.get`, read **once per run**) must hold every site prefix
  (loopback and VLANs) as a selected BGP route — judged from the DC side, because in
  production management is in-band and a site whose WAN is down cannot be asked. When
  the CE answers on management, its ``get_bgp_neighbors`` says what the eBGP session to
  the PE is doing (or that FRR is not running). A province-level hall has no circuit: its VLANs
  must be in that table as static routes through the DC firewall.
- ``router``: TCP 22 on the CE's management address (``ansible_host``) accepts a connection.
- ``endpoint-host``: ``ping`` from the bridge host (over SSH): the CE firewall lets only
  the registrar and the bridge reach the video VLAN, so that is where the DC looks from.
- ``registration``: Kamailio's ``ul.dump`` over JSON-RPC (:mod:`provnet.vc.kamailio`) on the
  registrar's management address, port :data:`~provnet.vc.kamailio.JSONRPC_PORT`, read once
  per run; an AOR missing from it is confirmed with ``ul.lookup``.
- ``signalling``: SIP OPTIONS sent from the bridge host's data address (a ``python3 -c``
  program over SSH, built by :func:`provnet.vc.sip.remote_script`).
- ``media``: a test call from the DC probe (the ``vc_probe`` role: one baresip per call
  slot on the bridge host, ctrl_tcp on ``127.0.0.1:PROBE_CTRL_BASE + slot``), placed by a
  ``python3 -c`` program over SSH (:mod:`provnet.vc.media`): dial the endpoint's data
  address, wait for the auto-answer, keep the call until the RTCP reports are in, read loss,
  jitter and RTT of audio and video both ways, hang up. One slot per call (:class:`SlotPool`).

One SSH connection to the bridge host is shared by every endpoint (at most
:data:`BRIDGE_CHANNELS` commands at once: OpenSSH's ``MaxSessions`` is 10 by default).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import socket
import threading
import time
from typing import Any

from provnet import guard
from provnet.drivers.base import DriverError
from provnet.drivers.ssh import SSH, ChannelRefused, ConnectError, Result, lab_key
from provnet.errors import ProvnetError
from provnet.model import Model, Site
from provnet.vc import kamailio, media as vcmedia, remote, sip
from provnet.vc.remote import listening_ports
from provnet.vc.readiness import Endpoint, LayerResult, thresholds

SSH_PORT = 22
BRIDGE_CHANNELS = 8
# a channel sshd refuses (MaxSessions) is expected and handled by BridgeShell: not an error to print
logging.getLogger("paramiko.transport").addFilter(lambda record: "open FAILED" not in record.getMessage())
#: Media probe contract (the vc_probe role): one baresip per call slot on the bridge host,
#: its ctrl_tcp on 127.0.0.1:PROBE_CTRL_BASE + slot (slot 0 … MEDIA_SLOTS-1).
PROBE_CTRL_HOST = "127.0.0.1"
PROBE_CTRL_BASE = 4450
MEDIA_SLOTS = 4
TCP_TIMEOUT = 2.0
PING_TIMEOUT = 2
SIP_TIMEOUT = 2.0
#: OPTIONS answers that say more about our request than the endpoint: asked once more
RETRY_STATUSES = frozenset({482})
#: OPTIONS answers that prove the endpoint's SIP stack is up and would take a call.
SIGNALLING_OK = {200, 405}  # 405: it does not do OPTIONS, but answered from its SIP stack


# ------------------------------------------------------------------ pure helpers (unit-tested)


def tcp_open(address: str, port: int, timeout: float = TCP_TIMEOUT, production: bool = False) -> tuple[bool, float, str]:
    """Does ``address:port`` accept a TCP connection? → (ok, milliseconds, error)."""
    guard.check(address, production=production, purpose="connect to")
    t0 = time.perf_counter()
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True, round((time.perf_counter() - t0) * 1000, 2), ""
    except socket.timeout:
        return False, round((time.perf_counter() - t0) * 1000, 2), f"no answer within {timeout:g} s"
    except OSError as exc:
        return False, round((time.perf_counter() - t0) * 1000, 2), exc.strerror or str(exc)


def missing_prefixes(rib: dict[str, list[dict[str, Any]]], prefixes: list[str], protocol: str = "bgp") -> list[str]:
    """Prefixes without a selected route of ``protocol`` in a ``get_route_table`` answer."""
    return [p for p in prefixes
            if not any(r.get("protocol") == protocol and r.get("selected") for r in rib.get(p, []))]


def bgp_state(neighbors: dict[str, Any], peer: str) -> tuple[str, dict[str, Any]]:
    """(state, figures) of one peer in a ``get_bgp_neighbors`` answer; ``frr-down`` when FRR is not running."""
    glob = neighbors.get("global") or {}
    peers = glob.get("peers") or {}
    if not glob.get("router_id") and not peers:
        return "frr-down", {}
    p = peers.get(peer)
    if p is None:
        return "absent", {}
    state = p.get("state") or ("Established" if p.get("is_up") else "down")
    af = (p.get("address_family") or {}).get("ipv4") or {}
    return state, {"uptime_s": p.get("uptime"), "received_prefixes": af.get("received_prefixes")}


_RTT = re.compile(r"time[=<]([\d.]+)\s*ms")


def parse_ping(output: str) -> float | None:
    """The round trip of the first reply in ``ping`` output (ms), or None."""
    m = _RTT.search(output)
    return float(m.group(1)) if m else None


def judge_registration(reg: kamailio.Registration | None, ep: Endpoint, registrar: str,
                       now: float | None = None) -> LayerResult:
    if reg is None:
        return LayerResult(False, f"{ep.aor} is not registered at the registrar {registrar} — is the endpoint's "
                                  "SIP client running, and its password right? (the registrar refuses a wrong one "
                                  "with 401/403 and drops the old registration when it expires)")
    figures: dict[str, Any] = {"user_agent": reg.user_agent, "expires_s": reg.expires, "contact": reg.contact,
                               "contacts": reg.contacts}
    if reg.received:
        figures["received"] = reg.received
    if reg.ka_roundtrip_ms is not None:
        figures["keepalive_rtt_ms"] = reg.ka_roundtrip_ms
    if reg.last_keepalive:
        figures["keepalive_age_s"] = int((now or time.time()) - reg.last_keepalive)
    if not reg.active:
        return LayerResult(False, f"{ep.aor}: registration {reg.state} at {registrar} (last from "
                                  f"{reg.contact or '?'}) — the endpoint stopped refreshing it", figures)
    try:
        host = reg.contact_host
    except (IndexError, ValueError):
        host = ""
    if host and host != ep.address:
        figures["contact_host_differs"] = host
    return LayerResult(True, "", figures)


def judge_options(res: sip.OptionsResult, ep: Endpoint, source: str) -> LayerResult:
    figures: dict[str, Any] = {"status": res.status, "rtt_ms": res.rtt_ms, "agent": res.agent,
                               "transmissions": res.transmissions}
    if res.ok and res.status in SIGNALLING_OK:
        return LayerResult(True, "", figures)
    if res.ok:
        return LayerResult(False, f"answered SIP OPTIONS from {source} with {res.status} {res.reason} — "
                                  f"the endpoint would not take a call for {ep.sip_user}", figures)
    return LayerResult(False, f"no answer to SIP OPTIONS from {source} to {ep.address} ({res.error}) — "
                              "SIP client down, or the CE firewall dropping SIP", figures)


# ------------------------------------------------------------------ the bridge host


class BridgeShell:
    """One shared SSH connection to the bridge host; at most ``channels`` commands at once.

    A probe that could not run is not a failed endpoint: a channel the server refuses
    (sshd MaxSessions lags behind closed channels under load) is retried on the same
    connection, and a command that ended without an exit status (rc -1) runs once more.
    Only a dead transport is replaced, so one hiccup never cuts the other probes' channels.
    """

    #: longest wait for a channel the server keeps refusing (seconds)
    CHANNEL_WAIT = 60.0
    #: longest pause between two attempts when none of our commands ends meanwhile
    CHANNEL_POLL = 0.5

    def __init__(self, address: str, users: tuple[str, ...], key_file: str | None, production: bool,
                 channels: int = BRIDGE_CHANNELS) -> None:
        self.address, self.users, self.key_file, self.production = address, users, key_file, production
        self._ssh: SSH | None = None
        self._lock = threading.Lock()
        self._finished = threading.Condition()  # notified whenever one of our commands ends
        self._in_flight, self._cap = 0, channels
        self.retries = {"channel_refused": 0, "no_exit_status": 0, "reconnect": 0}

    def _open(self) -> SSH:
        with self._lock:
            if self._ssh is None:
                self._ssh = SSH(self.address, self.users, self.key_file, production=self.production,
                                timeout=10).open()
            return self._ssh

    def _count(self, what: str) -> None:
        with self._lock:
            self.retries[what] += 1

    def _take(self, deadline: float) -> None:
        """Wait for a channel under the learnt limit (at most ``channels``) and hold it."""
        with self._finished:
            while self._in_flight >= self._cap:
                if time.monotonic() > deadline:
                    raise ChannelRefused(f"{self.address}: no channel free for {self.CHANNEL_WAIT:g} s")
                self._finished.wait(self.CHANNEL_POLL)
            self._in_flight += 1

    def _give(self, refused: bool) -> None:
        with self._finished:
            if refused:  # the server's real limit: fewer than we held with this attempt
                self._cap = max(1, self._in_flight - 1)
            self._in_flight -= 1
            self._finished.notify_all()

    def _once(self, command: str, timeout: float) -> Result:
        """Run on the shared connection. A refused channel teaches the server's real limit
        (sshd MaxSessions, or fewer while it frees closed sessions): later commands wait for
        one of ours to end instead of asking again. A dead transport is replaced once."""
        reconnected = False
        deadline = time.monotonic() + self.CHANNEL_WAIT
        while True:
            self._take(deadline)
            ssh: SSH | None = None
            refused = False
            try:
                ssh = self._open()
                return ssh.run(command, timeout=timeout)
            except ChannelRefused:
                refused = True
                self._count("channel_refused")
                if time.monotonic() > deadline:
                    raise
            except ConnectError:
                if ssh is None or ssh.alive() or reconnected:
                    raise  # cannot connect, or the command's own channel failed: the others are fine
                with self._lock:
                    if self._ssh is ssh:
                        ssh.close()
                        self._ssh = None
                self._count("reconnect")
                reconnected = True
            finally:
                self._give(refused)
            if refused:  # until one of ours ends (or sshd catches up)
                with self._finished:
                    self._finished.wait(self.CHANNEL_POLL)

    def run(self, command: str, timeout: float = 30) -> Result:
        res = self._once(command, timeout)
        if res.rc == -1:
            self._count("no_exit_status")
            res = self._once(command, timeout)
        return res

    def close(self) -> None:
        with self._lock:
            if self._ssh is not None:
                self._ssh.close()
                self._ssh = None


# ------------------------------------------------------------------ the probes


class LabProbes:
    """Readiness probes over the engine, the registrar's JSON-RPC and the bridge host."""

    def __init__(self, m: Model, ctx: Any = None, *, media_slots: int | None = None,
                 bridge: BridgeShell | None = None, rpc: kamailio.KamailioRpc | None = None) -> None:
        from provnet.engine import device

        self.m = m
        self.ctx = ctx or device.Context.build(m)
        self.media_slots = media_slots or m.vc.probe_slots
        self.limits = thresholds(m)
        self.core = next(h for h, d in m.devices.items() if d.role == "core")
        self.registrar_host = m.services["sip_registrar"]
        self.bridge_host = m.services["bridge"]
        self.bridge_data = str(m.service_address("bridge"))
        bdev = m.devices[self.bridge_host]
        users = (m.credentials["admin_user"],) + (() if m.production else ("root",))
        # one shared SSH connection: a channel per media slot plus room for pings and OPTIONS
        # (the base role raises the bridge host's MaxSessions to probe_slots + 8)
        self.bridge = bridge or BridgeShell(bdev.ansible_host, users, lab_key(), m.production,
                                            channels=max(BRIDGE_CHANNELS, self.media_slots + 4))
        # JSON-RPC is a management interface: the sip_registrar role serves it on the registrar's
        # management address (``provnet_management_address`` = ansible_host), not on the SIP listener
        self.rpc = rpc or kamailio.KamailioRpc(m.devices[self.registrar_host].ansible_host, m.sip_rpc_port,
                                                      production=m.production)
        self._lock = threading.Lock()
        self._rib: dict[str, Any] | None = None
        self._rib_error = ""
        self._regs: dict[str, kamailio.Registration] | None = None
        self._regs_error = ""
        self._slots: list[int] | None = None
        self._pool: vcmedia.SlotPool | None = None

    # -- per-run caches

    def prepare(self, endpoints: list[Endpoint]) -> None:
        with self._lock:
            self._rib, self._rib_error, self._regs, self._regs_error, self._slots = None, "", None, "", None
            self._pool = None

    def close(self) -> None:
        self.bridge.close()

    def _route_table(self) -> tuple[dict[str, Any] | None, str]:
        from provnet.engine import device

        with self._lock:
            if self._rib is None and not self._rib_error:
                try:
                    self._rib = device.get(self.ctx, self.core, "get_route_table")
                except (DriverError, ProvnetError, OSError) as exc:
                    self._rib_error = str(exc)
            return self._rib, self._rib_error

    def _registrations(self) -> tuple[dict[str, kamailio.Registration] | None, str]:
        with self._lock:
            if self._regs is None and not self._regs_error:
                try:
                    self._regs = self.rpc.ul_dump()
                except kamailio.RpcError as exc:
                    self._regs_error = str(exc)
            return self._regs, self._regs_error

    # -- layers

    def wan(self, ep: Endpoint) -> LayerResult:
        from provnet.engine import device

        site = self.m.sites[ep.site]
        rib, error = self._route_table()
        if rib is None:
            return LayerResult(False, f"cannot read {self.core}'s routing table ({error}) — the WAN cannot be "
                                      "judged from the DC")
        if not site.via_carrier:
            return self._hall_uplink(site, rib)
        # The CE's loopback proves the circuit and the eBGP session; a missing LAN prefix (a VLAN
        # whose only host is down) is the endpoint-host layer's finding, not the WAN's.
        prefixes = [str(site.prefixes[0])]  # the model's announced prefixes start with the loopback
        missing = missing_prefixes(rib, prefixes)
        figures: dict[str, Any] = {"prefixes": len(prefixes), "missing": len(missing)}
        peer = str(site.wan_pe.ip)
        ce_note, state = "", None
        if ep.ce is not None:
            ce = self.m.devices[ep.ce]
            ok, _, err = tcp_open(ce.ansible_host, SSH_PORT, production=self.m.production)
            if ok:
                try:
                    state, bgp_figs = bgp_state(device.get(self.ctx, ep.ce, "get_bgp_neighbors"), peer)
                    figures.update(bgp_state=state, **{k: v for k, v in bgp_figs.items() if v is not None})
                except (DriverError, ProvnetError, OSError) as exc:
                    ce_note = f"CE {ep.ce} could not be asked ({exc})"
            else:
                ce_note = f"CE {ep.ce} not reachable on management ({err}), so judged from the DC side only"
            if state == "frr-down":
                ce_note = f"FRR is not running on CE {ep.ce}"
            elif state is not None:
                ce_note = f"CE {ep.ce} reports eBGP to PE {peer} {state}"
        where = f"circuit {site.circuit_id}, {ep.contact}".strip(", ")
        if missing:
            shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
            return LayerResult(False, f"{self.core} has no BGP route to {len(missing)}/{len(prefixes)} site "
                                      f"prefixes ({shown}); {ce_note or 'no CE in the model'} — {where}", figures)
        if state is not None and state != "Established":
            return LayerResult(False, f"{ce_note} although {self.core} still holds the site's routes "
                                      f"(withdrawal pending?) — {where}", figures)
        return LayerResult(True, "", figures)

    def _hall_uplink(self, site: Site, rib: dict[str, list[dict[str, Any]]]) -> LayerResult:
        """A province-level hall has no circuit: the core routes its VLANs to the DC firewall (static)."""
        prefixes = [str(p) for p in site.prefixes]
        missing = missing_prefixes(rib, prefixes, "static")
        figures: dict[str, Any] = {"prefixes": len(prefixes), "missing": len(missing), "via": site.router,
                                   "note": "province-level site: reached from the DC, no carrier circuit"}
        if missing:
            return LayerResult(False, f"{self.core} has no static route to {', '.join(missing)} through "
                                      f"{site.router} (the hall's VLANs) — converge {self.core} (site.yml)", figures)
        return LayerResult(True, "", figures)

    def router(self, ep: Endpoint) -> LayerResult:
        if ep.ce is None:
            return LayerResult(True, "", {"note": "no CE in the model"})
        ce = self.m.devices[ep.ce]
        ok, ms, err = tcp_open(ce.ansible_host, SSH_PORT, production=self.m.production)
        if ok:
            return LayerResult(True, "", {"ssh_connect_ms": ms})
        return LayerResult(False, f"CE {ep.ce} does not answer on management {ce.ansible_host}:22 ({err}) although "
                                  "its routes are in the DC — CE management or its SSH service down",
                           {"ssh_connect_ms": None})

    def endpoint_host(self, ep: Endpoint) -> LayerResult:
        guard.check(ep.address, production=self.m.production, purpose="ping")
        # One reply is enough; -i/-w keep asking until the deadline so a lossy link is not "down".
        cmd = f"ping -n -c1 -i0.2 -w{PING_TIMEOUT} -I {shlex.quote(self.bridge_data)} {shlex.quote(ep.address)}"
        try:
            res = self.bridge.run(cmd, timeout=PING_TIMEOUT + 10)
        except (DriverError, ProvnetError) as exc:
            return LayerResult(False, f"cannot run ping on the bridge host {self.bridge_host}: {exc}")
        rtt = parse_ping(res.out)
        if res.rc == 0 and rtt is not None:
            return LayerResult(True, "", {"ping_ms": rtt})
        if res.rc not in (0, 1):  # ping's own error (exit 2) or no exit status: nothing was learnt
            return LayerResult(False, f"ping could not run on the bridge host {self.bridge_host} (exit {res.rc}): "
                                      f"{(res.err or res.out).strip()[-200:]}", {"ping_ms": None})
        return LayerResult(False, f"{ep.hostname} ({ep.address}) does not answer ping from the bridge "
                                  f"{self.bridge_host} ({self.bridge_data}) — endpoint host down or unplugged",
                           {"ping_ms": None})

    def registration(self, ep: Endpoint) -> LayerResult:
        regs, error = self._registrations()
        where = f"{self.registrar_host} ({self.rpc.address}:{self.rpc.port})"
        if regs is None:
            return LayerResult(False, f"cannot read registrations from {where}: {error}")
        reg = kamailio.find(regs, ep.aor)
        if reg is None:  # not in the dump taken at the start: ask for this AOR now
            try:
                reg = self.rpc.ul_lookup(ep.aor)
            except kamailio.RpcError as exc:
                return LayerResult(False, f"cannot look {ep.aor} up at {where}: {exc}")
        return judge_registration(reg, ep, where)

    def signalling(self, ep: Endpoint) -> LayerResult:
        # 482 answers a request the endpoint takes for one it already has (RFC 3261 §8.2.2.2): a
        # retransmission that crossed a slow reply. One fresh request (new Call-ID) settles it.
        for attempt in (1, 2):
            argv, req = sip.remote_script(ep.address, self.m.sip_port, self.bridge_data, timeout=SIP_TIMEOUT,
                                          user=ep.sip_user, domain=self.m.sip_domain, production=self.m.production)
            try:
                res = self.bridge.run(shlex.join(argv), timeout=SIP_TIMEOUT + 10)
            except (DriverError, ProvnetError) as exc:
                return LayerResult(False, f"cannot send SIP OPTIONS from the bridge host {self.bridge_host}: {exc}")
            if res.rc != 0:
                return LayerResult(False, f"SIP OPTIONS program failed on {self.bridge_host} (exit {res.rc}): "
                                          f"{(res.err or res.out).strip()[-200:]}")
            out = judge_options(sip.parse_remote_output(res.out, req), ep, f"the bridge {self.bridge_data}")
            if out.ok or out.figures.get("status") not in RETRY_STATUSES:
                break
        out.figures["attempts"] = attempt
        return out

    def _probe_slots(self) -> list[int]:
        """Call slots whose probe answers on its ctrl_tcp port on the bridge host (checked once per run)."""
        with self._lock:
            if self._slots is not None:
                return self._slots
        ports = [PROBE_CTRL_BASE + i for i in range(self.media_slots)]
        # listening sockets, not a connection: ctrl_tcp serves one client and a probing connect
        # would replace (and then close) the one a test call is using
        argv = ["python3", "-c", remote.source(listening_ports), json.dumps(ports), PROBE_CTRL_HOST]
        try:
            res = self.bridge.run(shlex.join(argv), timeout=15)
            slots = [p - PROBE_CTRL_BASE for p in json.loads(res.out.strip().splitlines()[-1])] if res.rc == 0 else []
        except (DriverError, ProvnetError, ValueError, IndexError):
            slots = []
        with self._lock:
            self._slots = slots
        return slots

    def _slot_pool(self) -> vcmedia.SlotPool | None:
        slots = self._probe_slots()
        with self._lock:
            if self._pool is None and slots:
                self._pool = vcmedia.SlotPool(slots)
            return self._pool

    def media(self, ep: Endpoint) -> LayerResult:
        """A test call from one free probe slot to the endpoint (see :mod:`provnet.vc.media`)."""
        pool = self._slot_pool()
        last = PROBE_CTRL_BASE + self.media_slots - 1
        if pool is None:
            return LayerResult(False, f"media probe not installed (vc_probe role): no baresip ctrl_tcp answers on "
                                      f"{self.bridge_host} {PROBE_CTRL_HOST}:{PROBE_CTRL_BASE}–{last}")
        argv_of = lambda port: vcmedia.remote_script(port, ep.address, ep.sip_user,  # noqa: E731
                                                     production=self.m.production)
        # run_scope bounds concurrent calls by media_slots; fewer slots may answer than that: wait for one
        with pool.take(timeout=10 * vcmedia.CALL_TIMEOUT_S) as slot:
            port = PROBE_CTRL_BASE + slot
            where = f"probe slot {slot} of {self.bridge_host} ({self.bridge_data})"
            try:
                res = self.bridge.run(shlex.join(argv_of(port)), timeout=vcmedia.CALL_TIMEOUT_S)
            except (DriverError, ProvnetError) as exc:
                return LayerResult(False, f"cannot run the test call on the bridge host {self.bridge_host}: {exc}")
        if res.rc != 0:
            return LayerResult(False, f"test-call program failed on {self.bridge_host} (exit {res.rc}): "
                                      f"{(res.err or res.out).strip()[-200:]}")
        try:
            data = vcmedia.parse_remote_output(res.out)
        except vcmedia.MediaParseError as exc:
            return LayerResult(False, str(exc))
        if str(data.get("error", "")).startswith("connect"):
            return LayerResult(False, f"{where}: its ctrl_tcp {PROBE_CTRL_HOST}:{port} does not answer "
                                      f"({data['error']}) — provnet-probe@{slot} down?", {"slot": slot})
        call = vcmedia.parse_call(data, f"sip:{ep.sip_user}@{ep.address}")
        out = vcmedia.judge_call(call, where, self.limits, tuple(self.m.rtp_ports))  # type: ignore[arg-type]
        out.figures["slot"] = slot
        return out


def lab_probes(m: Model) -> LabProbes:
    """The probes ``provnet vc readiness`` runs with (lab and production alike)."""
    return LabProbes(m)
