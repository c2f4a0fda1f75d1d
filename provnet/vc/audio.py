"""Is a tone in a recording? WAV parsing and a Goertzel filter, standard library only.

Packet counters cannot tell a mixer's silence from speech; the spectrum can. The lab's chair
endpoint plays a sine (``vc.chair_tone_hz``, 1 kHz) and every other endpoint another one
(``vc.tone_hz``); a ``vc.recorders`` endpoint records what it receives (baresip's ``sndfile``
module). A strong peak at the chair's frequency in that recording proves the bridge mixed the chair in.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Pcm:
    rate: int
    channels: int
    samples: list[int]  # first channel, signed 16-bit

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0

    def tail(self, seconds: float) -> "Pcm":
        n = int(seconds * self.rate)
        return Pcm(self.rate, self.channels, self.samples[-n:] if n else [])


def parse_wav(data: bytes) -> Pcm:
    """16-bit PCM WAV; tolerates a header whose sizes are still 0 (a file being written)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV file")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            _fmt, channels, rate, _br, _align, bits = struct.unpack_from("<HHIIHH", data, body)
        elif chunk == b"data":
            if bits != 16:
                raise ValueError(f"{bits}-bit samples: only 16-bit PCM is read")
            # the last chunk of a file still being written: its size field lags (or is 0), read to the end
            end = len(data) if size == 0 or body + size >= len(data) - 8 or pos + 8 + size + 8 > len(data) \
                else body + size
            frame = 2 * channels
            raw = data[body:body + (end - body) // frame * frame]
            every = struct.unpack(f"<{len(raw) // 2}h", raw)
            return Pcm(rate, channels, list(every[::channels]))
        pos = body + size + (size & 1)
        if size == 0:
            break
    raise ValueError("no data chunk")


def goertzel_power(samples: list[int], rate: int, freq: float) -> float:
    """Normalised power of one frequency (≈ amplitude² / 4 for a pure sine)."""
    n = len(samples)
    if n == 0:
        return 0.0
    k = round(n * freq / rate)
    w = 2 * math.pi * k / n
    coeff = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - coeff * s1 * s2
    return power / (n * n)


def tone_share(pcm: Pcm, freq: float) -> float:
    """The share of the recording's power at ``freq``: ≈ 1 for a pure tone, ≈ 0 without it."""
    total = rms(pcm) ** 2
    if total < 1.0:  # digital silence
        return 0.0
    return min(1.0, 2 * goertzel_power(pcm.samples, pcm.rate, freq) / total)


def rms(pcm: Pcm) -> float:
    if not pcm.samples:
        return 0.0
    return math.sqrt(sum(x * x for x in pcm.samples) / len(pcm.samples))
