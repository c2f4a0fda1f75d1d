"""fakenos platforms provnet adds: ``cisco_tp`` (Cisco TelePresence, CE software — simulated answers).

fakenos ships no TelePresence platform; pass :data:`CISCO_TP` as a host's ``nos.plugin``
(a path is accepted where a platform name is). Used only by tests/integration/test_fakenos.py.
"""

from pathlib import Path

CISCO_TP = str(Path(__file__).with_name("cisco_tp.yaml"))
