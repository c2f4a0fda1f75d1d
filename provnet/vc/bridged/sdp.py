"""SDP of a delayed-offer call: the endpoint's offer (in its 200 OK) and the bridge's answer (in the ACK)."""

from __future__ import annotations

from dataclasses import dataclass

PREFERRED = ("PCMU", "PCMA", "opus")  # codecs the bridge answers with, in order of preference
JANUS_CODEC = {"PCMU": "pcmu", "PCMA": "pcma", "opus": "opus"}
STATIC = {"0": "PCMU", "8": "PCMA"}  # static payload types an offer may use without rtpmap


@dataclass
class Offer:
    address: str
    audio_port: int
    codecs: dict[str, int]           # encoding name → payload type, offer order
    media: list[tuple[str, str]]     # every m-line (kind, first payload), for the answer's rejections


def parse_sdp(body: str) -> Offer:
    """The endpoint's offer: its audio address, port and codecs."""
    session_c = audio_c = current = ""
    audio_port = 0
    media: list[tuple[str, str]] = []
    audio_pts: list[str] = []
    names: dict[str, str] = {}
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            current = parts[0]
            media.append((current, parts[3] if len(parts) > 3 else "0"))
            if current == "audio" and not audio_port:
                audio_port, audio_pts = int(parts[1]), parts[3:]
        elif line.startswith("c=IN IP4 "):
            addr = line.split()[2].split("/")[0]
            if not current:
                session_c = addr
            elif current == "audio":
                audio_c = addr
        elif line.startswith("a=rtpmap:") and current == "audio":
            pt, _, enc = line[len("a=rtpmap:"):].partition(" ")
            names[pt] = enc.split("/")[0]
    if not audio_port:
        raise ValueError("the offer has no audio stream")
    return Offer(audio_c or session_c, audio_port, codecs_of(audio_pts, names), media)


def codecs_of(payload_types: list[str], names: dict[str, str]) -> dict[str, int]:
    """Encoding name → payload type, in the m-line's order, first payload type per name."""
    codecs: dict[str, int] = {}
    for pt in payload_types:
        name = names.get(pt) or STATIC.get(pt)
        if name and name not in codecs:
            codecs[name] = int(pt)
    return codecs


def choose_codec(offer: Offer) -> str:
    for name in PREFERRED:
        if name in offer.codecs:
            return name
    raise ValueError(f"no common audio codec (offered {', '.join(offer.codecs) or 'none'}; "
                     f"the bridge takes {', '.join(PREFERRED)})")


def build_answer(offer: Offer, codec: str, address: str, port: int, session: int) -> str:
    """The SDP answer: audio to the room's RTP port, every other stream declined."""
    pt = offer.codecs[codec]
    rate = "48000/2" if codec == "opus" else "8000"
    lines = ["v=0", f"o=provnet-bridge {session} {session} IN IP4 {address}", "s=provnet bridge",
             f"c=IN IP4 {address}", "t=0 0"]
    audio_done = False
    for kind, first_pt in offer.media:
        if kind == "audio" and not audio_done:
            audio_done = True
            lines += [f"m=audio {port} RTP/AVP {pt}", f"a=rtpmap:{pt} {codec}/{rate}", "a=sendrecv"]
        else:
            lines += [f"m={kind} 0 RTP/AVP {first_pt}"]
    return "\r\n".join(lines) + "\r\n"
