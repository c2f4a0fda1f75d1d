"""SIP message text (RFC 3261 §7): the one parser of provnet, its header helpers and branches.

Standard library only: it is also installed on the bridge host with ``provnet-bridged``
(:mod:`provnet.vc.bridged`), next to the readiness client :mod:`provnet.vc.sip`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

#: RFC 3261 magic cookie: every branch we create starts with it.
BRANCH_COOKIE = "z9hG4bK"
#: Compact header forms (RFC 3261 §7.3.3) → full names.
COMPACT = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact", "l": "Content-Length",
           "c": "Content-Type", "k": "Supported", "s": "Subject", "e": "Content-Encoding"}
_TAG = re.compile(r";\s*tag=([^;>\s]+)")
_BRANCH = re.compile(r";\s*branch=([^;,\s]+)")


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def full_name(name: str) -> str:
    """A header name with its compact form (any case) expanded."""
    return COMPACT.get(name.lower(), name) if len(name) == 1 else name


@dataclass
class SipMessage:
    """A request or a response: its first line, headers in order (full names) and body."""

    first: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def is_response(self) -> bool:
        return self.first.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.first.split()[1]) if self.is_response else 0

    @property
    def reason(self) -> str:
        return self.first.split(" ", 2)[2] if self.is_response and self.first.count(" ") >= 2 else ""

    @property
    def method(self) -> str:
        """A request's method; a response's from its CSeq."""
        return self.first.split()[0] if not self.is_response else self.get("CSeq").split()[-1]

    def get(self, name: str) -> str:
        """The first value of a header (full or compact name, any case), or ""."""
        key = full_name(name).lower()
        return next((v for k, v in self.headers if k.lower() == key), "")

    def all(self, name: str) -> list[str]:
        key = full_name(name).lower()
        return [v for k, v in self.headers if k.lower() == key]


def parse(data: bytes | str) -> SipMessage:
    """One SIP message from a datagram: folded lines joined, compact names expanded.

    Bare-LF line ends are taken too; lines that are no header (no colon) are skipped.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    head, sep, body = text.partition("\r\n\r\n")
    if not sep and "\n\n" in text:
        head, _, body = text.partition("\n\n")
    lines = re.split(r"\r?\n", head)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        if ":" not in line:
            continue
        name, _, value = line.partition(":")
        headers.append((full_name(name.strip()), value.strip()))
    return SipMessage(lines[0].strip(), headers, body)


def tag_of(header: str) -> str:
    """The ``tag`` parameter of a From or To value, or ""."""
    m = _TAG.search(header)
    return m.group(1) if m else ""


def branch_of(via: str) -> str:
    """The ``branch`` parameter of a Via value, or ""."""
    m = _BRANCH.search(via)
    return m.group(1) if m else ""


def uri_of(header: str) -> str:
    """The URI in a name-addr (``"x" <sip:a@b>;p``) or addr-spec header value."""
    m = re.search(r"<([^>]+)>", header)
    return m.group(1) if m else header.split(";")[0].strip()


def host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """Host and port of a SIP URI (``sip:user@host:port;params``)."""
    rest = uri.split(":", 1)[1] if uri.startswith("sip:") else uri
    rest = rest.split(";")[0].split("?")[0]
    hostport = rest.rsplit("@", 1)[-1]
    host, _, port = hostport.partition(":")
    return host, int(port) if port else default_port
