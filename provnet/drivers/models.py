"""The return shape of every driver getter, as ``TypedDict``s (NAPALM's ``models`` idea).

NAPALM's standard getters keep NAPALM's key names, so a caller reads the same keys from
provnet's drivers and from NAPALM's ios driver; provnet's own getters (``get_route_table``,
``get_registration``, ``get_sip_registration``, ``get_calls``) are declared here too.
:data:`GETTERS` maps each getter name to its return type and :func:`shape_errors` checks
a value against one, so the engine, verify and compliance can trust a getter's shape
without reading its driver.
"""

# no ``from __future__ import annotations``: Python 3.11 then reads NotRequired keys as required
import types
import typing
from typing import Any, NotRequired, TypedDict, Union


class FactsDict(TypedDict):
    hostname: str
    fqdn: str
    vendor: str
    model: str
    os_version: str
    serial_number: str
    uptime: float
    interface_list: list[str]


class InterfaceDict(TypedDict):
    is_up: bool
    is_enabled: bool
    description: str
    last_flapped: float
    speed: float
    mtu: int
    mac_address: str


class PrefixLengthDict(TypedDict):
    prefix_length: int


class InterfacesIPDict(TypedDict, total=False):
    ipv4: dict[str, PrefixLengthDict]
    ipv6: dict[str, PrefixLengthDict]


class BGPStateAddressFamilyDict(TypedDict):
    received_prefixes: int
    accepted_prefixes: int
    sent_prefixes: int


class BGPStateNeighborDict(TypedDict):
    local_as: int
    remote_as: int
    remote_id: str
    is_up: bool
    is_enabled: bool
    description: str
    uptime: float
    address_family: dict[str, BGPStateAddressFamilyDict]
    state: NotRequired[str]  # FRR's own session state ("Established", "Active"…): probes report it


class BGPStateNeighborsPerVRFDict(TypedDict):
    router_id: str
    peers: dict[str, BGPStateNeighborDict]


class ConfigDict(TypedDict):
    running: str
    startup: str
    candidate: str


class RouteDict(TypedDict):
    """One route of a prefix in FRR's RIB (``FrrDriver.get_route_table``)."""

    protocol: str
    selected: bool
    nexthops: list[str]


class RegistrationDict(TypedDict):
    """baresip's registration as its control interface reports it (``get_registration``)."""

    running: bool
    raw: NotRequired[str]
    error: NotRequired[str]


class SipRegistrationDict(TypedDict):
    """One SIP registration of a TelePresence endpoint (``get_sip_registration``)."""

    id: int
    status: str
    reason: str
    uri: str
    registered: bool


class CallDict(TypedDict, total=False):
    """One call of a TelePresence endpoint (``get_calls``): the ``xStatus Call`` fields CE 10 reports."""

    answer_state: str
    call_type: str
    callback_number: str
    device_type: str
    direction: str
    display_name: str
    duration: int
    encryption_type: str
    facility_service_id: str
    hold_reason: str
    placed_on_hold: str
    protocol: str
    receive_call_rate: str
    remote_number: str
    status: str
    transmit_call_rate: str


Facts = FactsDict
Interfaces = dict[str, InterfaceDict]
InterfacesIP = dict[str, InterfacesIPDict]
BGPNeighbors = dict[str, BGPStateNeighborsPerVRFDict]
RouteTable = dict[str, list[RouteDict]]
SipRegistrations = list[SipRegistrationDict]
Calls = dict[int, CallDict]

#: getter name → the shape it returns (every ``get_*`` of every provnet driver is here)
GETTERS: dict[str, Any] = {
    "get_facts": Facts,
    "get_interfaces": Interfaces,
    "get_interfaces_ip": InterfacesIP,
    "get_bgp_neighbors": BGPNeighbors,
    "get_config": ConfigDict,
    "get_route_table": RouteTable,
    "get_registration": RegistrationDict,
    "get_sip_registration": SipRegistrations,
    "get_calls": Calls,
}


def shape_errors(value: Any, shape: Any, where: str = "") -> list[str]:
    """Where ``value`` departs from ``shape`` (a type from this module); empty when it conforms.

    A TypedDict must have its required keys and no others; ``float`` accepts an ``int`` (the
    numeric tower), ``int`` refuses a ``bool``.
    """
    here = where or "value"
    origin = typing.get_origin(shape)
    if shape is Any:
        return []
    if origin in (Union, types.UnionType):
        options = [shape_errors(value, option, where) for option in typing.get_args(shape)]
        return [] if any(not o for o in options) else [f"{here}: {value!r} is none of {shape}"]
    if typing.is_typeddict(shape):
        if not isinstance(value, dict):
            return [f"{here}: expected a {shape.__name__} (dict), got {type(value).__name__}"]
        hints = typing.get_type_hints(shape)
        errors = [f"{here}: missing key {k!r}" for k in sorted(shape.__required_keys__ - value.keys())]
        errors += [f"{here}: unexpected key {k!r}" for k in sorted(value.keys() - hints.keys(), key=str)]
        for key in sorted(value.keys() & hints.keys()):
            errors += shape_errors(value[key], hints[key], f"{where}.{key}" if where else key)
        return errors
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{here}: expected a dict, got {type(value).__name__}"]
        key_type, value_type = typing.get_args(shape)
        errors = []
        for key, item in value.items():
            errors += shape_errors(key, key_type, f"{here} key {key!r}")
            errors += shape_errors(item, value_type, f"{where}[{key!r}]")
        return errors
    if origin is list:
        if not isinstance(value, list):
            return [f"{here}: expected a list, got {type(value).__name__}"]
        (item_type,) = typing.get_args(shape)
        return [e for i, item in enumerate(value) for e in shape_errors(item, item_type, f"{where}[{i}]")]
    if shape is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    return [] if ok else [f"{here}: expected {shape.__name__}, got {type(value).__name__} {value!r}"]
