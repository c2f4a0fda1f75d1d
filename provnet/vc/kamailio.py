"""Kamailio's registrations over its JSON-RPC interface (``jsonrpcs`` module, HTTP transport).

The registrar answers ``POST http://<registrar>:JSONRPC_PORT/RPC`` with a JSON-RPC 2.0
body, e.g. ``{"jsonrpc": "2.0", "method": "ul.dump", "id": 1}``. Two methods matter:

- ``ul.dump``: every AOR of every usrloc table; Kamailio 5.6 answers
  ``result.Domains[].Domain.{Domain, Size, AoRs[].Info.{AoR, HashID, Contacts[].Contact.{…}}, Stats}``;
- ``ul.lookup <table> <aor>``: one AOR, ``result.{AoR, Contacts[].Contact.{…}}``; a fault
  ``AOR not found in location table`` / ``AOR has no contacts`` when it is not registered.

A contact carries ``Address``, ``Expires`` (seconds left, or ``expired``/``deleted``/
``permanent``), ``User-Agent``, ``Received``, ``Socket``, ``Last-Keepalive``, ``Last-Modified``
(Unix times) and, with usrloc's keepalive (``modparam("usrloc", "ka_mode", 1)``, Kamailio
≥ 5.5), ``KA-Roundtrip``: the last keepalive OPTIONS round trip **in microseconds**
(``[not set]`` stands for an empty string value throughout).

:data:`JSONRPC_PORT` is where the ``sip_registrar`` role must serve it, on the registrar's
management address: ``listen=tcp:<mgmt>:5080``, ``xhttp`` + ``jsonrpcs`` (``transport`` 1 = HTTP),
``event_route[xhttp:request]`` dispatching ``/RPC`` on that listener only.

Requests go through :mod:`urllib` with proxies disabled (an ``http_proxy`` variable must
never carry a request elsewhere) after the address guard.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

from provnet import guard
from provnet.errors import ProvnetError

JSONRPC_PORT = 5080  # default of the inventory's sip.rpc_port; callers pass model.sip_rpc_port
JSONRPC_PATH = "/RPC"
LOCATION_TABLE = "location"
NOT_SET = "[not set]"
NOT_FOUND_FAULTS = ("AOR not found", "AOR has no contacts")


class RpcError(ProvnetError):
    """The registrar could not be asked, or it answered with a JSON-RPC error."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Registration:
    """One AOR's (best) contact as the registrar holds it."""

    aor: str
    contact: str
    user_agent: str = ""
    expires: int | None = None  # seconds left; None when expired, deleted or permanent
    state: str = "active"  # active | expired | deleted | permanent
    received: str = ""
    socket: str = ""
    last_keepalive: int | None = None  # Unix time
    last_modified: int | None = None  # Unix time
    ka_roundtrip_ms: float | None = None  # usrloc keepalive round trip (ka_mode), None when not measured
    contacts: int = 1

    @property
    def active(self) -> bool:
        return self.state in ("active", "permanent")

    @property
    def contact_host(self) -> str:
        """The host of the contact URI (``sip:user@198.18.64.34:5060;…`` → ``198.18.64.34``)."""
        addr = self.contact.split(";", 1)[0].strip("<>")
        addr = addr.split("@", 1)[-1].split(":", 1)[0] if "@" in addr else addr.split(":", 2)[1]
        return addr

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_aor(aor: str) -> str:
    """``sip:User@Domain`` → ``user@domain`` (usrloc stores AORs without the scheme, lower-cased)."""
    a = aor.strip().strip("<>")
    for scheme in ("sips:", "sip:"):
        if a.lower().startswith(scheme):
            a = a[len(scheme):]
    return a.split(";", 1)[0].lower()


def rpc_request(method: str, params: list[Any] | None = None, request_id: int = 1) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
    if params:
        body["params"] = params
    return json.dumps(body).encode()


def parse_rpc_response(body: bytes | str) -> Any:
    """The ``result`` of a JSON-RPC answer; raises :class:`RpcError` on an ``error`` member."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise RpcError(f"registrar answered something that is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RpcError("registrar answered a JSON value that is not a JSON-RPC response")
    if "error" in data and data["error"]:
        err = data["error"]
        if isinstance(err, dict):
            raise RpcError(str(err.get("message", err)), err.get("code"))
        raise RpcError(str(err))
    return data.get("result")


def _str(value: Any) -> str:
    return "" if value is None or value == NOT_SET else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "", NOT_SET) else None
    except (TypeError, ValueError):
        return None


def parse_contact(aor: str, c: dict[str, Any]) -> Registration:
    """One ``Contact`` struct → :class:`Registration`."""
    raw_expires = c.get("Expires")
    expires = _int(raw_expires)
    if expires is not None:
        state = "active"
    elif str(raw_expires) in ("expired", "deleted", "permanent"):
        state = str(raw_expires)
    else:
        state = "expired"
    last_ka = _int(c.get("Last-Keepalive"))
    ka_rt = _int(c.get("KA-Roundtrip"))
    return Registration(
        aor=aor, contact=_str(c.get("Address")), user_agent=_str(c.get("User-Agent")), expires=expires,
        state=state, received=_str(c.get("Received")), socket=_str(c.get("Socket")),
        last_keepalive=last_ka or None, last_modified=_int(c.get("Last-Modified")) or None,
        ka_roundtrip_ms=round(ka_rt / 1000, 3) if ka_rt else None,
    )


def _key_ci(d: dict[str, Any], *names: str) -> Any:
    """``d[name]`` for the first name present, case-insensitively (AoR/AOR, AoRs/AORs)."""
    lower = {k.lower(): v for k, v in d.items()}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def _best(aor: str, contacts: list[Any]) -> Registration | None:
    regs = []
    for item in contacts or []:
        c = item.get("Contact", item) if isinstance(item, dict) else None
        if isinstance(c, dict):
            regs.append(parse_contact(aor, c))
    if not regs:
        return None
    # an active contact with the longest time left wins; otherwise the most recently modified
    regs.sort(key=lambda r: (r.active, r.expires or 0, r.last_modified or 0), reverse=True)
    best = regs[0]
    return Registration(**{**asdict(best), "contacts": len(regs)})


def parse_ul_dump(result: Any) -> dict[str, Registration]:
    """``ul.dump`` result → {normalised AOR: Registration} over every usrloc table."""
    domains = _key_ci(result, "Domains") if isinstance(result, dict) else result
    if not isinstance(domains, list):
        raise RpcError("ul.dump: unexpected answer (no 'Domains' list)")
    out: dict[str, Registration] = {}
    for d in domains:
        dom = d.get("Domain", d) if isinstance(d, dict) else None
        if not isinstance(dom, dict):
            continue
        for entry in _key_ci(dom, "AoRs", "AORs") or []:
            info = entry.get("Info", entry) if isinstance(entry, dict) else None
            if not isinstance(info, dict):
                continue
            aor = _str(_key_ci(info, "AoR", "AOR"))
            reg = _best(aor, _key_ci(info, "Contacts") or [])
            if aor and reg is not None:
                out[normalise_aor(aor)] = reg
    return out


def parse_ul_lookup(result: Any) -> Registration | None:
    """``ul.lookup`` result → the AOR's best contact (None when it has none)."""
    if isinstance(result, list):  # some transports wrap the single struct in a list
        result = result[0] if result else {}
    if not isinstance(result, dict):
        return None
    return _best(_str(_key_ci(result, "AoR", "AOR")), _key_ci(result, "Contacts") or [])


def find(regs: dict[str, Registration], aor: str) -> Registration | None:
    """Look an AOR up in a dump, with or without its domain (usrloc's ``use_domain`` 0 or 1)."""
    key = normalise_aor(aor)
    return regs.get(key) or regs.get(key.split("@", 1)[0])


class KamailioRpc:
    """JSON-RPC over HTTP to one Kamailio (guarded, no proxies)."""

    def __init__(self, address: str, port: int = JSONRPC_PORT, *, production: bool = False,
                 timeout: float = 3.0) -> None:
        self.address, self.port, self.production, self.timeout = address, port, production, timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._id = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}{JSONRPC_PATH}"

    def call(self, method: str, *params: Any) -> Any:
        guard.check(self.address, production=self.production, purpose="query the registrar at")
        self._id += 1
        req = urllib.request.Request(self.url, data=rpc_request(method, list(params) or None, self._id),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:  # jsonrpcs answers faults with HTTP 200, but be ready for others
            body = exc.read() or b""
            if not body.strip().startswith(b"{"):
                raise RpcError(f"{self.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RpcError(f"{self.url}: registrar JSON-RPC not answering ({reason})") from None
        return parse_rpc_response(body)

    def ul_dump(self) -> dict[str, Registration]:
        return parse_ul_dump(self.call("ul.dump"))

    def ul_lookup(self, aor: str, table: str = LOCATION_TABLE) -> Registration | None:
        """The AOR's registration, or None when the registrar has none for it."""
        try:
            return parse_ul_lookup(self.call("ul.lookup", table, normalise_aor(aor)))
        except RpcError as exc:
            if any(f in str(exc) for f in NOT_FOUND_FAULTS):
                return None
            raise
