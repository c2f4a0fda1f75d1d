"""Video conferencing over the registrar and the bridge: readiness now; meetings and roll-call later.

- :mod:`provnet.vc.readiness`: the per-endpoint ladder (wan → router → endpoint-host →
  registration → signalling → media), the ``Probes`` protocol, scope runs;
- :mod:`provnet.vc.probes`: the probes over the engine, the registrar and the bridge host;
- :mod:`provnet.vc.sip`: a minimal SIP OPTIONS client; :mod:`provnet.vc.kamailio`: the
  registrar's JSON-RPC; :mod:`provnet.vc.report`: table, JSON, HTML and history;
- :mod:`provnet.vc.sipmsg`: the one SIP message parser (readiness and the bridge controller);
- :mod:`provnet.vc.bridged`: provnet-bridged, the bridge host's SIP controller for Janus;
- :mod:`provnet.vc.remote`: the programs run on the bridge host (``python3 -c`` their source).
"""
