"""Video conferencing over the registrar and the bridge: readiness now; meetings and roll-call later.

- :mod:`provnet.vc.readiness`: the per-endpoint ladder (wan → router → endpoint-host →
  registration → signalling → media), the ``Probes`` protocol, scope runs;
- :mod:`provnet.vc.probes`: the probes over the engine, the registrar and the bridge host;
- :mod:`provnet.vc.sip`: a minimal SIP OPTIONS client; :mod:`provnet.vc.kamailio`: the
  registrar's JSON-RPC; :mod:`provnet.vc.report`: table, JSON, HTML and history.
"""
