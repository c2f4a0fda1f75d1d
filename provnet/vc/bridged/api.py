"""The controller's JSON API to provnet (the routes are listed in :mod:`provnet.vc.bridged`)."""

from __future__ import annotations

import json
import secrets
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from provnet.vc.bridged.controller import Controller
from provnet.vc.bridged.janus_api import JanusError

TOKEN_HEADER = "X-Provnet-Token"


class NoRoute(Exception):
    """No resource answers this method and path."""


def route(c: Controller, method: str, parts: list[str], query: dict[str, list[str]],
          body: dict[str, Any]) -> tuple[int, Any]:
    """One request → (status, payload); KeyError for what does not exist, ValueError/JanusError for a conflict."""
    if parts == ["health"]:
        return 200, {"ok": True, "conferences": len(c.conferences), "session": c.janus.session}
    if parts == ["conferences"] and method == "GET":
        return 200, [{"id": k, "name": v["name"], "description": v["description"],
                      "participants": len(v["legs"])} for k, v in list(c.conferences.items())]
    if parts == ["conferences"] and method == "POST":
        return 201, {"id": c.create(str(body["name"]), str(body.get("description", "")))}
    if len(parts) == 2 and parts[0] == "conferences" and method == "DELETE":
        c.end(int(parts[1]))
        return 200, {"ended": int(parts[1])}
    if len(parts) == 3 and parts[2] == "participants" and method == "GET":
        return 200, c.participants(int(parts[1]), media=query.get("media", ["1"])[0] != "0")
    if len(parts) == 3 and parts[2] == "participants" and method == "POST":
        leg = c.dial(int(parts[1]), str(body["key"]), str(body["user"]), str(body.get("display", "")),
                     str(body.get("proxy", "")), bool(body.get("muted", False)))
        return 202, leg.public()
    if len(parts) == 5 and parts[4] in ("mute", "unmute") and method == "POST":
        c.mute(int(parts[1]), parts[3], parts[4] == "mute")
        return 200, c.leg(int(parts[1]), parts[3]).public()
    if len(parts) == 4 and parts[2] == "participants" and method == "DELETE":
        leg = c.leg(int(parts[1]), parts[3])
        c.hangup(leg, "dropped", str(body.get("reason") or "dropped by the operator"))
        return 200, leg.public()
    raise NoRoute


class Api(BaseHTTPRequestHandler):
    controller: Controller
    token: str

    def log_message(self, fmt: str, *args: Any) -> None:  # no access log: the journal keeps the controller's own
        pass

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any] | None:
        """The request's JSON body ({} when empty), or None (answered 400) when it is not JSON."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}") if length else {}
        except ValueError:
            self._answer(400, {"error": "the body is not JSON"})
            return None
        return body

    def _handle(self, method: str) -> None:
        if not secrets.compare_digest(self.headers.get(TOKEN_HEADER, ""), self.token):
            self._answer(401, {"error": f"missing or wrong {TOKEN_HEADER}"})
            return
        body = self._body()
        if body is None:
            return
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            self._answer(*route(self.controller, method, parts, parse_qs(url.query), body))
        except KeyError as exc:
            self._answer(404, {"error": str(exc).strip("'\"")})
        except NoRoute:
            self._answer(404, {"error": f"no such resource: {method} {self.path}"})
        except (ValueError, JanusError) as exc:
            self._answer(409, {"error": str(exc)})
        except OSError as exc:  # Janus's HTTP API timed out or dropped the connection: say so, keep serving
            self._answer(503, {"error": f"Janus does not answer: {exc}"})

    def do_GET(self) -> None:  # noqa: N802
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")
