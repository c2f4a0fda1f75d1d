"""Conferences: AudioBridge rooms, their legs, roll-call figures and mute."""

from __future__ import annotations

import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from provnet.vc.bridged.janus_api import JanusError
from provnet.vc.bridged.leg import Leg
from provnet.vc.bridged.limits import HANGUPS, MEDIA_QUERIES
from provnet.vc.bridged.state import ControllerState


class Rooms(ControllerState):
    def create(self, name: str, description: str) -> int:
        room = random.randint(10_000, 2**31)
        secret = secrets.token_urlsafe(12)
        self.janus.request({"request": "create", "room": room, "description": description or name,
                            "secret": secret, "is_private": True, "sampling_rate": 16000,
                            "allow_rtp_participants": True, "audiolevel_ext": False})
        with self.lock:
            self.conferences[room] = {"id": room, "name": name, "description": description, "secret": secret,
                                      "legs": {}, "created_at": time.time()}
        return room

    def conference(self, room: int) -> dict[str, Any]:
        with self.lock:
            if room not in self.conferences:
                raise KeyError(f"no conference {room}")
            return self.conferences[room]

    def end(self, room: int) -> None:
        """Hang up every leg (a few at a time), then destroy the room."""
        conf = self.conference(room)
        legs: list[Leg] = list(conf["legs"].values())
        with ThreadPoolExecutor(max_workers=HANGUPS) as pool:
            list(pool.map(lambda leg: self.hangup(leg, "dropped", "meeting ended"), legs))
        try:
            with self.membership.leave():
                self.janus.request({"request": "destroy", "room": room, "secret": conf["secret"]})
        except JanusError as exc:
            if "No such room" not in str(exc):
                raise
        with self.lock:
            self.conferences.pop(room, None)

    def participants(self, room: int, media: bool = True) -> list[dict[str, Any]]:
        """Every leg with its state; with ``media``, Janus's figures per joined leg (one admin call each)."""
        conf = self.conference(room)
        inroom: dict[int, dict[str, Any]] = {}
        try:
            listing = self.janus.request({"request": "listparticipants", "room": room})
            inroom = {p["id"]: p for p in listing.get("participants", [])}
        except JanusError:
            pass
        legs: list[Leg] = list(conf["legs"].values())
        measured = [leg for leg in legs if leg.state == "joined" and leg.handle] if media else []
        figures: dict[str, dict[str, Any]] = {}
        if measured:  # a 166-site roll-call: 166 admin queries, a few at a time
            with ThreadPoolExecutor(max_workers=MEDIA_QUERIES) as pool:
                figures = dict(zip((leg.key for leg in measured), pool.map(self._media, measured)))
        out = []
        for leg in legs:
            row = leg.public()
            row["media"] = figures.get(leg.key, {})
            row["in_room"] = leg.participant in inroom
            out.append(row)
        return out

    def _media(self, leg: Leg) -> dict[str, Any]:
        """Janus's figures for one joined leg: is its RTP arriving, how full are its queues."""
        try:
            info = self.janus.handle_info(leg.handle)
        except (JanusError, OSError) as exc:
            return {"error": str(exc)}
        rtp = info.get("plain-rtp", {})
        return {"receiving": bool(rtp.get("remote-ssrc")), "buffer_in": info.get("buffer-in"),
                "queue_in": info.get("queue-in"), "queue_out": info.get("queue-out"),
                "active": info.get("active"), "local_port": rtp.get("local-port")}

    def leg(self, room: int, key: str) -> Leg:
        conf = self.conference(room)
        if key not in conf["legs"]:
            raise KeyError(f"no participant {key} in conference {room}")
        leg: Leg = conf["legs"][key]
        return leg

    def mute(self, room: int, key: str, muted: bool) -> None:
        leg = self.leg(room, key)
        if leg.state != "joined":
            raise ValueError(f"{key} is {leg.state}, not in the room")
        self.janus.request({"request": "mute" if muted else "unmute", "room": room,
                            "secret": self.conference(room)["secret"], "id": leg.participant})
        leg.muted = muted
