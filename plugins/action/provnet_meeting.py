"""Action plugin: a provnet video-conference meeting from Ansible (the code of `provnet vc meeting`)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ACTIONS = ("start", "status", "mute", "unmute", "drop", "redial", "end", "report")
NEEDS = {"start": "template", "mute": "site", "unmute": "site", "drop": "site", "redial": "site",
         "report": "meeting_id"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("inventory", "action", "template", "site", "meeting_id", "readiness_until", "format"))

    def run(self, tmp=None, task_vars=None):  # type: ignore[no-untyped-def]
        result = super().run(tmp, task_vars)
        args = self._task.args
        action = args.get("action", "status")
        if action not in ACTIONS:
            raise AnsibleActionFail(f"provnet_meeting: action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if action in NEEDS and not args.get(NEEDS[action]):
            raise AnsibleActionFail(f"provnet_meeting: action {action} needs {NEEDS[action]}")
        if not args.get("inventory"):
            raise AnsibleActionFail("provnet_meeting: inventory is required")
        from provnet import history, model
        from provnet.errors import ProvnetError
        from provnet.vc import meeting, meeting_report, probes
        from provnet.vc.bridge import lab_bridge

        check = self._play_context.check_mode
        try:
            m = model.load_cached(args["inventory"])
            if action == "start" and check:
                tpl = meeting.template(m, args["template"])
                return {**result, "changed": True, "would_dial": [{"site": s, "tier": t} for s, t in tpl.members]}
            bridge = lab_bridge(m)
            with history.open_store() as store:
                changed = action not in ("status", "report")
                if action == "start":
                    mt = meeting.Meeting.start(m, meeting.template(m, args["template"]), bridge, store,
                                               probes.lab_probes(m), until=args.get("readiness_until", "media"))
                else:
                    mt = meeting.Meeting.load(m, bridge, store, args.get("meeting_id"))
                    if not mt.finished:
                        mt.refresh()
                        mt.save()
                    if check and changed:
                        return {**result, "changed": True, "meeting_id": mt.id, "summary": mt.summary}
                    if action in ("mute", "unmute"):
                        mt.mute(args["site"], action == "mute")
                    elif action == "drop":
                        mt.drop(args["site"])
                    elif action == "redial":
                        mt.redial(args["site"])
                    elif action == "end":
                        mt.end()
                out: dict[str, Any] = {"changed": changed, "meeting_id": mt.id, "summary": mt.summary,
                                       "roll_call": [meeting_report.record(r) for r in mt.rows.values()]}
                if action == "report":
                    fmt = args.get("format", "md")
                    if fmt not in meeting_report.RENDERERS:
                        raise AnsibleActionFail(f"provnet_meeting: format must be one of "
                                                f"{', '.join(meeting_report.RENDERERS)}")
                    out["report"] = meeting_report.RENDERERS[fmt](mt)
        except ProvnetError as exc:
            return {**result, "failed": True, "msg": f"provnet: {exc}"}
        return {**result, **out}
