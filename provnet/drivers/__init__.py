"""Platform drivers with NAPALM's interface: one module per platform.

``get_network_driver("frr")`` returns the driver class, as ``napalm.get_network_driver``
does; Linux drivers (frr, nftables, linux_switch, baresip) use plain SSH exec channels
and import no vendor driver, so they stay cheap per host. ``cisco_ios`` is NAPALM's own
ios driver behind a small adapter (imported only when asked for); ``fortios`` and
``cisco_tp`` ride on Netmiko. Every class declares what the engine asks of its platform
(:class:`provnet.drivers.base.PlatformTraits`): the engine keeps no list of platforms.
"""

from __future__ import annotations

import importlib
from typing import Any

DRIVERS = {
    "cisco_ios": "provnet.drivers.cisco_ios:CiscoIosDriver",
    "frr": "provnet.drivers.frr:FrrDriver",
    "nftables": "provnet.drivers.nftables:NftablesDriver",
    "linux_switch": "provnet.drivers.linux_switch:LinuxSwitchDriver",
    "baresip": "provnet.drivers.baresip:BaresipDriver",
    "fortios": "provnet.drivers.fortios:FortiosDriver",
    "cisco_tp": "provnet.drivers.cisco_tp:CiscoTpDriver",
}


def get_network_driver(name: str) -> Any:
    """The driver class for a platform (NAPALM's ``get_network_driver`` semantics)."""
    try:
        module, cls = DRIVERS[name].split(":")
    except KeyError:
        raise ValueError(f"no driver for platform '{name}'; known: {', '.join(DRIVERS)}") from None
    return getattr(importlib.import_module(module), cls)
