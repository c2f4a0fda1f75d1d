"""The controller's timers and limits (every one learnt on the lab's bridge; see each comment)."""

from __future__ import annotations

import os

T1 = 0.5              # SIP timer T1 (s): INVITE/BYE retransmission starts here and doubles
RING_TIMEOUT = 25.0   # an endpoint that rings longer is cancelled
BYE_TIMEOUT = 4.0     # a BYE is retransmitted this long at most before the leg leaves the room anyway
JOIN_TIMEOUT = 20.0   # Janus answers a join within this (its event queue is shared: see Janus._poll)
LATE_JOIN_TIMEOUT = 300.0  # after that, how long a failed leg still waits for its join before leaving
MAX_EVENTS = 500      # events per long-poll answer
MEDIA_QUERIES = 8     # Janus admin queries in flight when a roll-call asks for media figures
HANGUPS = 16          # legs hung up at once by `end` (Janus 1.1.2 crashed on 166 leaves at once)
DEBUG = os.environ.get("PROVNET_BRIDGED_DEBUG") == "1"  # every SIP message to stderr (the journal)
