"""provnet-bridged: the conference bridge's SIP controller, next to Janus on the bridge host.

The daemon: its arguments, the Janus session, the controller and the API server.
"""

from __future__ import annotations

import argparse
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from provnet.vc.bridged.api import Api
from provnet.vc.bridged.controller import Controller
from provnet.vc.bridged.janus import Janus
from provnet.vc.bridged.janus_api import JanusError

JANUS_START_ATTEMPTS = 30  # one a second: Janus may still be starting


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="provnet-bridged", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--api", required=True, help="HOST:PORT of the JSON API (the management address)")
    p.add_argument("--sip", required=True, help="HOST:PORT the SIP legs use (the data address)")
    p.add_argument("--registrar", required=True, help="HOST:PORT of the SIP registrar")
    p.add_argument("--domain", required=True, help="the SIP domain")
    p.add_argument("--janus", default="http://127.0.0.1:8088/janus")
    p.add_argument("--janus-admin", default="http://127.0.0.1:7088/admin")
    p.add_argument("--secret-file", required=True, help="file holding the API token and Janus secrets")
    return p.parse_args(argv)


def host_port(value: str) -> tuple[str, int]:
    host, port = value.rsplit(":", 1)
    return host, int(port)


def start_janus(janus: Janus) -> None:
    for attempt in range(JANUS_START_ATTEMPTS):
        try:
            janus.start()
            return
        except (OSError, JanusError):
            if attempt == JANUS_START_ATTEMPTS - 1:
                raise
            time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    secret = Path(a.secret_file).read_text(encoding="utf-8").strip()
    janus = Janus(a.janus, a.janus_admin, secret)
    start_janus(janus)
    sip = host_port(a.sip)
    controller = Controller(sip, host_port(a.registrar), a.domain, janus, sip[0])
    Api.controller, Api.token = controller, secret
    server = ThreadingHTTPServer(host_port(a.api), Api)
    server.daemon_threads = True
    server.serve_forever()
