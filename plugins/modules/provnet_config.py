# Documentation stub for the provnet_config action plugin (the work happens on the controller).
DOCUMENTATION = r"""
module: provnet_config
short_description: Converge a network device to its intended config with provnet's engine
description:
  - Renders the device's intended configuration from provnet's compiled model, diffs it
    against the running configuration and, outside check mode, commits it with a revert armed
    on the device and confirmed over a fresh connection.
  - Supports check mode and --diff; secrets are masked in every diff and message.
options:
  platforms:
    description: Only these platforms of the device (default all, in the model's order).
    type: list
    elements: str
  revert_in:
    description: Seconds after which an unconfirmed commit reverts itself on the device.
    type: int
    default: 60
  ticket:
    description: Change ticket recorded in the audit log and the device's syslog line.
    type: str
"""

EXAMPLES = r"""
- name: Converge the CE
  provnet_config:
    ticket: CHG-2026-0142
"""
