# A thin Ansible adapter over provnet's compiled model.
from __future__ import annotations

DOCUMENTATION = r"""
name: provnet
short_description: provnet's compiled province model as an Ansible inventory
description:
  - Reads the source of truth in the folder holding this file (province.yml, sites/),
    validates and compiles it with provnet, and exposes every managed device.
  - Groups by level (dc, districts, communes), by district (district_<slug>, holding the
    district's own devices and its communes'), by site (site_<slug>), by platform
    (platform_<name>) and by role (role_<name>).
  - Each host's variables are its slice of the model (provnet inventory show HOST).
  - ansible_host passes provnet's address guard, so a production inventory (10.x)
    is refused unless it says production true and PROVNET_PRODUCTION=1 is exported.
options:
  plugin:
    description: Must be provnet.
    required: true
    choices: [provnet]
"""

EXAMPLES = r"""
# inventory/lab/provnet.yml
plugin: provnet
"""

import os
import sys
from pathlib import Path

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _REPO not in sys.path:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO)


class InventoryModule(BaseInventoryPlugin):
    NAME = "provnet"

    def verify_file(self, path: str) -> bool:
        base = os.path.basename(path)
        return super().verify_file(path) and base in ("provnet.yml", "provnet.yaml")

    def parse(self, inventory, loader, path, cache=True):  # type: ignore[no-untyped-def]
        super().parse(inventory, loader, path, cache)
        from provnet import guard, hostvars, model, selection, yamlio
        from provnet.errors import AddressRefused, InventoryError, Problem

        root = os.path.dirname(path)
        try:  # provnet's limits first: Ansible's own YAML reader has none (an alias bomb takes minutes)
            yamlio.load(Path(path))
        except yamlio.YamlLimitError as exc:
            problem = Problem(path, exc.obj, str(exc), exc.fix)
            raise AnsibleParserError(f"provnet: invalid inventory source:\n{problem}") from None
        except (yamlio.YamlSyntaxError, OSError):
            pass  # Ansible's reader reports these in its own words
        self._read_config_data(path)
        try:
            m = model.load_cached(root)
        except InventoryError as exc:
            raise AnsibleParserError(f"provnet: invalid inventory {root}:\n{exc}") from None
        from provnet.drivers.ssh import lab_key as _lab_key

        lab_key = _lab_key()
        for level in ("dc", *selection.SITE_GROUPS):
            self.inventory.add_group(level)
        self.inventory.add_group("sites")
        # the province's facts once, on "all", not copied into each of 339 hosts
        for key, value in hostvars.province_vars(m).items():
            self.inventory.set_variable("all", key, value)
        self.inventory.set_variable("all", "ansible_user", m.credentials["admin_user"])
        for group in selection.SITE_GROUPS:
            self.inventory.add_child("sites", group)
        for dev in m.devices.values():
            try:
                guard.check(dev.ansible_host, production=m.production, purpose=f"manage {dev.hostname} at")
            except AddressRefused as exc:
                raise AnsibleParserError(f"provnet: {exc}") from None
            host = dev.hostname
            self.inventory.add_host(host)
            for key, value in hostvars.own_vars(m, dev).items():
                self.inventory.set_variable(host, key, value)
            if lab_key and not m.production:
                self.inventory.set_variable(host, "ansible_ssh_private_key_file", lab_key)
            for group in selection.groups_of(dev):
                self.inventory.add_group(group)
                self.inventory.add_host(host, group=group)
