"""provnet-bridged: the conference bridge's SIP controller, next to Janus on the bridge host.

Janus AudioBridge mixes audio but speaks no SIP. This daemon gives it SIP legs: for each
participant it sends an INVITE *without SDP* through the registrar (Kamailio trusts this
host's address through its ``permissions`` module), takes the endpoint's offer from its 200
OK, joins the AudioBridge room as a plain-RTP participant with the endpoint's RTP address,
and answers in the ACK with the room's RTP address. Video m-lines are declined (port 0):
the lab bridge mixes audio only.

It serves a small JSON API to provnet (``provnet.vc.bridge.JanusBridge``) on the management
address, every request carrying the ``X-Provnet-Token`` header::

    GET    /health
    GET    /conferences                          → [{id, name, description, participants}]
    POST   /conferences {name, description}      → {id}
    DELETE /conferences/<id>                     → hangs up every leg, destroys the room
    GET    /conferences/<id>/participants        → [participant]
    POST   /conferences/<id>/participants {key, user, display[, proxy, muted]}   → dials (202)
           user: an account of the domain (through the registrar, or ``proxy`` HOST:PORT),
           or user@host[:port] dialled directly
    POST   /conferences/<id>/participants/<key>/mute | /unmute
    DELETE /conferences/<id>/participants/<key>  → BYE and leaves the room

The modules: ``sdp`` (offer and answer), ``siptext`` (the bridge's requests and replies, over
:mod:`provnet.vc.sipmsg`, the SIP parser it shares with :mod:`provnet.vc.sip`), ``janus_api``
and ``janus`` (the Janus HTTP client), ``membership`` (joins and leaves never overlap), ``leg``,
the controller's parts ``rooms``, ``dialling``, ``hangup``, ``signalling`` (put together in
``controller``), ``api`` (the JSON API), ``limits`` (timers), ``service`` (the daemon's ``main``) and ``__main__``.

Standard library only: the vc_bridge role installs this package with ``provnet/vc/sipmsg.py``
on the bridge host, where python3 runs it. State lives in memory: a restart ends every call
(the endpoints see a BYE-less drop and re-register; provnet's roll-call shows the legs as lost).
"""

from __future__ import annotations

from provnet.vc.bridged.api import Api
from provnet.vc.bridged.controller import Controller
from provnet.vc.bridged.janus import Janus
from provnet.vc.bridged.janus_api import JanusError, JanusPending, JanusSessionLost
from provnet.vc.bridged.janus_api import raise_error as _raise_error
from provnet.vc.bridged.leg import Leg, replace_to
from provnet.vc.bridged.membership import Membership
from provnet.vc.bridged.sdp import Offer, build_answer, choose_codec, parse_sdp
from provnet.vc.bridged.service import main
from provnet.vc.sipmsg import SipMessage, host_port, tag_of, uri_of
from provnet.vc.sipmsg import parse as parse_sip

__all__ = ["Api", "Controller", "Janus", "JanusError", "JanusPending", "JanusSessionLost", "Leg", "Membership",
           "Offer", "SipMessage", "_raise_error", "build_answer", "choose_codec", "host_port", "main", "parse_sdp",
           "parse_sip", "replace_to", "tag_of", "uri_of"]
