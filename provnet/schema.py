"""The source of truth's schema: what people write in ``inventory/<province>/``.

Pydantic models with ``extra="forbid"`` so that a typo is an error, not a silent
default. Cross-object rules (duplicates, parents, pools) live in :mod:`provnet.sot`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PLATFORMS = (
    "frr", "nftables", "linux_switch", "baresip", "linux",
    "cisco_ios", "fortios", "cisco_tp",
)
ROLES = (
    "ce", "endpoint", "core", "firewall", "switch",
    "ntp", "soc", "sip_registrar", "vc_bridge",
)
SITE_LEVELS = ("province", "district", "commune")
SITE_KINDS = (
    "xa", "phuong", "thi_tran", "dac_khu",          # communes and wards
    "huyen", "thi_xa", "thanh_pho", "quan", "khu_vuc",  # districts or WAN areas
    "ubnd_tinh", "tinh_uy", "hdnd_tinh", "so_nganh",  # province-level halls: People's Committee, Party, Council, a department
)
VLAN_NAMES = ("data", "video", "mgmt")
SECRET_REF = re.compile(r"^vault:[a-z][a-z0-9_]*(\{hostname\}|\{slug\})?[a-z0-9_]*$")
HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Strict(BaseModel):
    """Base: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


IPv4Net = Annotated[str, Field(description="an IPv4 network in CIDR form")]


def _network(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a valid IPv4 network ({exc})") from None
    if net.version != 4:
        raise ValueError("not an IPv4 network")
    return str(net)


class SecretRef(str):
    """A reference to a secret in the vault: ``vault:<name>``."""


def _secret(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("secret must be a vault reference such as 'vault:admin_password'")
    if value.startswith("$ANSIBLE_VAULT;"):
        return value
    if not SECRET_REF.match(value):
        raise ValueError("plain-text secret")
    return value


class Carrier(Strict):
    name: str
    asn: int = Field(ge=1, le=4294967295)
    pe_hostname: str = "pe"


class AsnRange(Strict):
    start: int = Field(ge=1, le=4294967295)
    end: int = Field(ge=1, le=4294967295)


class Pools(Strict):
    loopback: str
    wan: str
    oob: str | None = None
    oob_block_prefix: int = Field(default=28, ge=24, le=30)

    _nets = field_validator("loopback", "wan", "oob")(lambda v: v if v is None else _network(v))


class Vlan(Strict):
    id: int = Field(ge=1, le=4094)
    pool: str
    prefix: int = Field(ge=16, le=30)

    _net = field_validator("pool")(lambda v: _network(v))


class DcZone(Strict):
    prefix: str
    vlan: int | None = Field(default=None, ge=1, le=4094)
    switch: str | None = None

    _net = field_validator("prefix")(lambda v: _network(v))


class DeviceDef(Strict):
    platform: str | list[str]
    role: str
    index: int = Field(ge=1, le=254)
    zones: list[str] = []
    vlan: str | None = None

    def platforms(self) -> tuple[str, ...]:
        return (self.platform,) if isinstance(self.platform, str) else tuple(self.platform)


class Dc(Strict):
    name: str = "Trung tâm tích hợp dữ liệu"
    loopback: str
    zones: dict[str, DcZone]
    devices: dict[str, DeviceDef]
    controller_zone: str | None = None   # the management station's zone (host 1 of it)

    _net = field_validator("loopback")(lambda v: _network(v))


class Services(Strict):
    ntp: str
    syslog: str
    sip_registrar: str
    bridge: str


class Snmp(Strict):
    user: str
    auth_key: str
    priv_key: str

    _s = field_validator("auth_key", "priv_key", mode="before")(lambda v: _secret(v))


class Credentials(Strict):
    admin_user: str
    admin_password: str
    snmp: Snmp

    _s = field_validator("admin_password", mode="before")(lambda v: _secret(v))


class Sip(Strict):
    domain: str
    password: str = "vault:sip_{hostname}"
    port: int = Field(default=5060, ge=1, le=65535)
    rtp_ports: tuple[int, int] = (10000, 10999)
    register_interval: int = Field(default=120, ge=30, le=3600)
    max_expires: int = Field(default=300, ge=60, le=86400)   # the registrar's cap on a registration
    rpc_port: int = Field(default=5080, ge=1, le=65535)     # Kamailio JSON-RPC, management side only
    # the endpoints' signalling to the registrar: udp (the lab's baresip and Kamailio) or tls
    # (TelePresence endpoints, Kamailio's tls module with the province's certificate)
    transport: Literal["udp", "tls"] = "udp"
    tls_port: int = Field(default=5061, ge=1, le=65535)

    _s = field_validator("password", mode="before")(lambda v: _secret(v))


class MeetingDef(Strict):
    """An ad hoc meeting: a chair site and the sites that join it."""

    title: str
    chair: str
    sites: list[str]


class VcThresholds(Strict):
    """Readiness media limits: above degraded_* an endpoint is flagged, above max_* it is not ready."""

    degraded_loss_pct: float = Field(default=1.0, ge=0, le=100)
    max_loss_pct: float = Field(default=20.0, ge=0, le=100)
    degraded_jitter_ms: float = Field(default=30.0, ge=0)
    max_jitter_ms: float = Field(default=100.0, ge=0)
    degraded_rtt_ms: float = Field(default=300.0, ge=0)
    max_rtt_ms: float = Field(default=800.0, ge=0)


class Vc(Strict):
    """Video conferencing: the meeting bridge, its templates and the lab's synthetic microphones."""

    chair: str | None = None          # the site whose endpoint chairs province-wide meetings
    bridge_api_port: int = Field(default=8089, ge=1, le=65535)   # provnet-bridged, management side
    bridge_sip_port: int = Field(default=5062, ge=1, le=65535)   # the bridge's SIP legs, data side
    janus_port: int = Field(default=8088, ge=1, le=65535)        # Janus HTTP API, management side
    secret: str = "vault:vc_bridge_secret"
    dial_concurrency: int = Field(default=16, ge=1, le=256)      # calls in flight while dialling
    dial_retries: int = Field(default=2, ge=0, le=10)            # redials of a failed leg
    join_timeout_s: int = Field(default=40, ge=5, le=600)        # dial → joined, per attempt
    # tiers whose microphones join muted (the chair speaks; the operator unmutes who takes the floor)
    join_muted: list[Literal["chair", "province", "district", "commune"]] = Field(default_factory=lambda: ["commune"])
    chair_tone_hz: int = Field(default=1000, ge=10, le=20000)    # lab endpoints: the chair's sine
    tone_hz: int = Field(default=440, ge=10, le=20000)           # lab endpoints: everyone else's
    # sites whose lab endpoint records every call (baresip sndfile): listeners for tests. The rest
    # only decode what they receive — 166 endpoints writing WAV files load a meeting.
    recorders: list[str] = Field(default_factory=list)
    # baresip's scheduling niceness (systemd Nice=) on the endpoints the vc_endpoint role runs. A lab
    # runs every synthetic endpoint on the same CPUs as the bridge, registrar and routers, which
    # production gives their own hardware: inventory/thanhhoa-lab (166 sites) sets 19 so those go first
    # (effective because `provnet lab up` turns the kernel's scheduler autogroups off).
    endpoint_nice: int = Field(default=0, ge=0, le=19)
    meetings: dict[str, MeetingDef] = Field(default_factory=dict)
    probe_slots: int = Field(default=4, ge=1, le=64)             # readiness test calls at once (vc_probe)
    audio_codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA", "opus/48000/2"])
    video_codecs: list[str] = Field(default_factory=lambda: ["VP8"])
    thresholds: VcThresholds = Field(default_factory=VcThresholds)

    _s = field_validator("secret", mode="before")(lambda v: _secret(v))

    def tone_hz_of(self, site: str | None) -> int:
        """A lab endpoint's synthetic microphone: the chair's sine differs from everyone else's."""
        return self.chair_tone_hz if site is not None and site == self.chair else self.tone_hz

    def records(self, site: str | None) -> bool:
        """Whether the site's lab endpoint records its calls."""
        return site is not None and site in self.recorders


class Soc(Strict):
    """The security monitoring centre's province settings (the Sigma rules' parameters, docs/soc.md)."""

    change_window: str = Field(default="08:00-17:00", pattern=r"^\d{2}:00-\d{2}:00$")  # local: when commits are expected
    utc_offset: str = Field(default="+07:00", pattern=r"^[+-]\d{2}:00$")                 # Vietnam: +07:00, no DST


class SiteDefaults(Strict):
    bandwidth_mbps: int = Field(default=20, ge=1, le=100000)
    devices: dict[str, DeviceDef]


class Province(Strict):
    name: str
    code: int | None = Field(default=None, ge=1, le=99)
    production: bool = False


class ProvinceFile(Strict):
    """``province.yml``: the province, its pools, DC, services and defaults."""

    base: str | None = None
    province: Province
    carrier: Carrier
    asn_range: AsnRange
    pools: Pools
    vlans: dict[str, Vlan]
    dc: Dc
    services: Services
    credentials: Credentials
    sip: Sip
    vc: Vc = Field(default_factory=Vc)
    soc: Soc = Field(default_factory=Soc)
    site_defaults: SiteDefaults


class Contact(Strict):
    name: str
    phone: str


class SiteFile(Strict):
    """``sites/<slug>.yml``: one commune, ward or district — or a province-level hall, reached from the DC."""

    id: int = Field(ge=1, le=65535)
    code: str
    name: str
    slug: str
    level: Literal["province", "district", "commune"] = "commune"
    kind: str
    district: str | None = None
    # the carrier's circuit: required for districts and communes (sot says so), none for a province-level
    # hall, which the DC reaches over the province's own links
    circuit_id: str | None = None
    contact: Contact
    bandwidth_mbps: int | None = Field(default=None, ge=1, le=100000)
    management: Literal["oob", "inband"] = "oob"
    devices: dict[str, DeviceDef] | None = None


class RetiredSite(Strict):
    id: int
    code: str
    slug: str
    name: str
    retired_on: str


class AssignedSite(Strict):
    """A live site's entry in the ledger: what lets validation name a site whose file vanished."""

    id: int = Field(ge=1, le=65535)
    code: str
    slug: str
    name: str = ""


class IdsFile(Strict):
    """``ids.yml``: the id ledger that keeps retired ids from being reused."""

    next_id: int = Field(ge=1)
    assigned: list[AssignedSite] = []
    retired: list[RetiredSite] = []
