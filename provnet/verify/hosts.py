"""testinfra hosts for the site checks: one per device per run, over the Ansible inventory."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import testinfra

_HOSTS: dict[tuple[str, str], Any] = {}


def get(name: str, inventory: str) -> Any:
    """The testinfra host for a device (cached: its SSH ControlMaster is reused by every command)."""
    key = (name, inventory)
    if key not in _HOSTS:
        _HOSTS[key] = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
    return _HOSTS[key]


_IS_ROOT: dict[int, bool] = {}


def root_run(h: Any, command: str) -> Any:
    """Run as root: through ``sudo -n`` when the inventory logs in as the admin user."""
    key = id(h)
    if key not in _IS_ROOT:
        _IS_ROOT[key] = h.run("id -u").stdout.strip() == "0"
    if not _IS_ROOT[key]:
        command = "sudo -n sh -c " + shlex.quote(command)
    return h.run(command)


#: A probe that gets no SYN-ACK nor RST in this long is "dropped": a SYN's first retransmission is at 1 s,
#: and a province's WAN round trip is tens of milliseconds.
PROBE_TIMEOUT_S = 1.5

# every target at once, non-blocking: the slowest (a drop) sets the time, not their sum
_PROBES = """import errno,select,socket,sys
t=float(sys.argv[1]);src=sys.argv[2];ts=[(a.rsplit(':',1)[0],int(a.rsplit(':',1)[1])) for a in sys.argv[3:]]
ss=[];out=['dropped']*len(ts)
for i,(a,p) in enumerate(ts):
    s=socket.socket();s.setblocking(False)
    if src: s.bind((src,0))
    s.connect_ex((a,p));ss.append(s)
import time;end=time.monotonic()+t;left=set(range(len(ss)))
while left and time.monotonic()<end:
    _,w,_=select.select([],[ss[i] for i in left],[],max(0,end-time.monotonic()))
    for s in w:
        i=ss.index(s);e=s.getsockopt(socket.SOL_SOCKET,socket.SO_ERROR)
        out[i]={0:'open',errno.ECONNREFUSED:'refused'}.get(e,'dropped');left.discard(i)
print(' '.join(out))
"""


def tcp_probes(h: Any, targets: list[tuple[str, int]], source: str | None = None,
               timeout: float = PROBE_TIMEOUT_S) -> list[str]:
    """open | refused | dropped per (address, port) — real TCP connection attempts from the node ``h``, all at
    once in one program (one SSH command)."""
    argv = " ".join(shlex.quote(f"{a}:{p}") for a, p in targets)
    res = root_run(h, f"timeout {int(timeout) + 3} python3 -c {shlex.quote(_PROBES)} {timeout} "
                      f"{shlex.quote(source or '')} {argv}")
    got = res.stdout.split()
    return got if len(got) == len(targets) else ["dropped"] * len(targets)


def tcp_probe(h: Any, address: str, port: int, source: str | None = None) -> str:
    """open | refused | dropped — one real TCP connection attempt from the node ``h``."""
    return tcp_probes(h, [(address, port)], source)[0]


def dc_probes(other: Callable[[str], Any], m: Any, address: str) -> tuple[str, str]:
    """SIP toward ``address`` from the registrar (must pass) and from the SOC (must be dropped), from the two
    hosts at once: the drop's timeout is paid once."""
    with ThreadPoolExecutor(2) as pool:
        registrar = pool.submit(tcp_probe, other(m.services["sip_registrar"]), address, m.sip_port)
        soc = tcp_probe(other(m.services["syslog"]), address, m.sip_port)
        return registrar.result(), soc
