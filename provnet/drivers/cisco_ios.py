"""``cisco_ios``: NAPALM's own ios driver, with what the engine asks of a platform declared.

Importing this module imports NAPALM (every vendor driver, ~0.4 s), so the registry loads
it only when ``cisco_ios`` is asked for. The adapter adds attributes only: every method,
and the connection, are NAPALM's.
"""

from __future__ import annotations

from napalm.ios import IOSDriver

from provnet.drivers.base import PlatformTraits


class CiscoIosDriver(PlatformTraits, IOSDriver):
    """NAPALM ios; ``revert_in`` needs ``archive`` on the router (NAPALM's ``configure replace … time``)."""

    accepts_commit_message = False  # NAPALM ios raises NotImplementedError for any message
