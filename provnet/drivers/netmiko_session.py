"""The Netmiko session shared by the vendor drivers that have no NAPALM driver of their own."""

from __future__ import annotations

from typing import Any

from provnet import guard
from provnet.drivers.base import DriverError, NetworkDriver


class NetmikoDriver(NetworkDriver):
    """open/close over Netmiko, behind the address guard; subclasses set ``device_type``."""

    device_type = ""
    conn: Any = None

    def open(self) -> None:
        guard.check(self.hostname, production=bool(self.optional_args.get("production")),
                    purpose=f"open a {self.platform} session to")
        from netmiko import ConnectHandler  # only when a session is really opened

        try:
            self.conn = ConnectHandler(
                device_type=self.device_type, host=self.hostname, username=self.username,
                password=self.password, port=int(self.optional_args.get("port", 22)),
                timeout=self.timeout, conn_timeout=self.timeout,
                use_keys=bool(self.optional_args.get("use_keys", False)),
                allow_agent=False, ssh_config_file=None,
            )
        except Exception as exc:  # netmiko raises several types; one clear message
            raise DriverError(f"{self.platform} {self.hostname}: cannot open session: {exc}") from None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.disconnect()
            finally:
                self.conn = None
