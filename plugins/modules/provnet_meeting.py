# Documentation stub for the provnet_meeting action plugin (the work happens on the controller).

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_meeting
short_description: Start, operate and end a video-conference meeting on the province's bridge
description:
  - Calls provnet.vc.meeting, the code behind C(provnet vc meeting), in the controller's own
    process (an action plugin); the bridge is reached through its API from the management station.
  - C(start) runs readiness on the template's sites, then dials them in tiers; C(status)
    returns the roll-call; C(mute), C(unmute), C(drop), C(redial) act on one site; C(end)
    hangs up everyone and closes the record; C(report) returns the record as Markdown, CSV,
    HTML or JSON.
  - In check mode C(start) returns the sites the template would dial and changes nothing.
options:
  inventory: {description: provnet inventory folder., type: path, required: true}
  action:
    description: What to do.
    type: str
    choices: [start, status, mute, unmute, drop, redial, end, report]
    default: status
  template: {description: Meeting template (toan-tinh, huyen-<district>, ad hoc)., type: str}
  site: {description: Site slug for mute, unmute, drop and redial., type: str}
  meeting_id: {description: Meeting id (default the one in progress)., type: int}
  readiness_until: {description: Readiness ladder depth before dialling., type: str, default: media}
  format: {description: Report format., type: str, choices: [md, csv, html, json], default: md}
"""

EXAMPLES = r"""
- name: Province-wide meeting
  provnet_meeting:
    inventory: inventory/lab
    action: start
    template: toan-tinh
"""

RETURN = r"""
meeting_id: {description: The meeting's id in the history store., type: int, returned: success}
roll_call: {description: One entry per site (verdict, state, times, reason)., type: list, returned: success}
summary: {description: Counts per state and the meeting's state., type: dict, returned: success}
report: {description: The rendered record (action report)., type: str, returned: when action is report}
"""

