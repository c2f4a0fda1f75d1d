#!/usr/bin/python
"""Ansible module: run a provnet video-conference meeting (the same code as `provnet vc meeting`)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: provnet_meeting
short_description: Start, operate and end a video-conference meeting on the province's bridge
description:
  - Calls provnet.vc.meeting, the code behind C(provnet vc meeting); runs on the management
    station (delegate to localhost with the playbook's Python, which has provnet installed).
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
  delegate_to: localhost
  vars: {ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""

RETURN = r"""
meeting_id: {description: The meeting's id in the history store., type: int, returned: success}
roll_call: {description: One entry per site (verdict, state, times, reason)., type: list, returned: success}
summary: {description: Counts per state and the meeting's state., type: dict, returned: success}
report: {description: The rendered record (action report)., type: str, returned: when action is report}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "inventory": {"type": "path", "required": True},
            "action": {"type": "str", "default": "status",
                       "choices": ["start", "status", "mute", "unmute", "drop", "redial", "end", "report"]},
            "template": {"type": "str"},
            "site": {"type": "str"},
            "meeting_id": {"type": "int"},
            "readiness_until": {"type": "str", "default": "media"},
            "format": {"type": "str", "default": "md", "choices": ["md", "csv", "html", "json"]},
        },
        required_if=[("action", "start", ["template"]), ("action", "mute", ["site"]), ("action", "unmute", ["site"]),
                     ("action", "drop", ["site"]), ("action", "redial", ["site"]), ("action", "report", ["meeting_id"])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        from provnet import history, model
        from provnet.errors import ProvnetError
        from provnet.vc import meeting, meeting_report, probes
        from provnet.vc.bridge import lab_bridge
    except ImportError as exc:
        module.fail_json(msg=f"provnet is not importable by {__import__('sys').executable}: {exc} — "
                             "set ansible_python_interpreter to ansible_playbook_python")
        return
    try:
        m = model.load(p["inventory"])
        if p["action"] == "start" and module.check_mode:
            tpl = meeting.template(m, p["template"])
            module.exit_json(changed=True, would_dial=[{"site": s, "tier": t} for s, t in tpl.members])
        bridge = lab_bridge(m)
        with history.open_store() as store:
            changed = p["action"] not in ("status", "report")
            if p["action"] == "start":
                mt = meeting.Meeting.start(m, meeting.template(m, p["template"]), bridge, store, probes.lab_probes(m),
                                           until=p["readiness_until"])
            else:
                mt = meeting.Meeting.load(m, bridge, store, p["meeting_id"])
                if not mt.finished:
                    mt.refresh()
                    mt.save()
                if module.check_mode and changed:
                    module.exit_json(changed=True, meeting_id=mt.id, summary=mt.summary)
                act = p["action"]
                if act in ("mute", "unmute"):
                    mt.mute(p["site"], act == "mute")
                elif act == "drop":
                    mt.drop(p["site"])
                elif act == "redial":
                    mt.redial(p["site"])
                elif act == "end":
                    mt.end()
            result: dict[str, Any] = {"changed": changed, "meeting_id": mt.id, "summary": mt.summary,
                                      "roll_call": [meeting_report.record(mt, r) for r in mt.rows.values()]}
            if p["action"] == "report":
                result["report"] = {"md": meeting_report.as_markdown, "csv": meeting_report.as_csv,
                                    "html": meeting_report.as_html,
                                    "json": lambda x: __import__("json").dumps(meeting_report.as_json(x),
                                                                               ensure_ascii=False, default=str)
                                    }[p["format"]](mt)
    except (ProvnetError, OSError) as exc:
        module.fail_json(msg=str(exc))
        return
    module.exit_json(**result)


if __name__ == "__main__":
    main()
