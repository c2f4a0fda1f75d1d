"""Video-conference readiness: one ladder per endpoint, stopping at the first failing layer.

Layers, bottom to top (each depends on every one before it):

1. ``wan`` — the site's prefixes are in the DC core's routing table (learnt over BGP,
   through the carrier), and the CE reports its eBGP session to the PE when it can be asked
   (a province-level hall has no circuit: its VLANs are static routes through the DC firewall);
2. ``router`` — the CE answers on management (a hall has none: the DC firewall is its router);
3. ``endpoint-host`` — the endpoint answers from the DC over the data network;
4. ``registration`` — its AOR is registered at the registrar (User-Agent, keepalive RTT);
5. ``signalling`` — it answers SIP OPTIONS from the DC;
6. ``media`` — a short test call from the DC probe flows both ways within thresholds.

How each layer is measured is a :class:`Probes` implementation (the lab/production one
is :mod:`provnet.vc.probes`; tests use fakes). This module owns the order, the verdicts,
the concurrency (many endpoints at once, media calls bounded by the probe's call slots),
the timings and the thresholds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from provnet.model import Model

LAYERS: tuple[str, ...] = ("wan", "router", "endpoint-host", "registration", "signalling", "media")
READY, NOT_READY, DEGRADED = "ready", "not ready", "degraded"
KIND = "vc-readiness"  # the history store's run kind
DEFAULT_WORKERS = 32
LEVEL_ORDER = ("province", "district", "commune")  # how scopes list sites
DEFAULT_MEDIA_SLOTS = 4

#: Media thresholds: above ``degraded_*`` the endpoint is flagged degraded, above ``max_*``
#: it is not ready. The model may override any of them (see :func:`thresholds`).
DEFAULT_THRESHOLDS: dict[str, float] = {
    "degraded_loss_pct": 1.0, "max_loss_pct": 20.0,
    "degraded_jitter_ms": 30.0, "max_jitter_ms": 100.0,
    "degraded_rtt_ms": 300.0, "max_rtt_ms": 800.0,
}

Progress = Callable[[str, int, int], None]


@dataclass
class LayerResult:
    ok: bool
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    degraded: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One video-conference endpoint (điểm cầu) as the ladder needs it, from the model."""

    hostname: str
    site: str  # slug (ASCII)
    site_name: str  # Vietnamese
    district: str | None  # district slug (a district's own endpoint: itself)
    level: str
    platform: str
    address: str  # data-plane address in the video VLAN
    aor: str
    sip_user: str
    ce: str | None  # the site's CE hostname
    circuit_id: str = ""
    contact: str = ""


@runtime_checkable
class Probes(Protocol):
    """One method per layer. Each returns a :class:`LayerResult` and should not raise
    (an exception is turned into a failed layer naming it).

    Optional: ``prepare(endpoints)`` before a run (fetch shared tables once), ``close()``
    after it, and a ``media_slots`` attribute (concurrent test calls the probe supports).
    """

    def wan(self, ep: Endpoint) -> LayerResult: ...
    def router(self, ep: Endpoint) -> LayerResult: ...
    def endpoint_host(self, ep: Endpoint) -> LayerResult: ...
    def registration(self, ep: Endpoint) -> LayerResult: ...
    def signalling(self, ep: Endpoint) -> LayerResult: ...
    def media(self, ep: Endpoint) -> LayerResult: ...


def method_of(layer: str) -> str:
    return layer.replace("-", "_")


@dataclass
class EndpointResult:
    endpoint: Endpoint
    verdict: str
    layer: str  # the failing layer, or the last layer passed
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)  # {layer: figures}
    timings: dict[str, float] = field(default_factory=dict)  # {layer: seconds}, plus "media-wait"
    layers: dict[str, LayerResult] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.verdict != NOT_READY

    def flat_figures(self) -> dict[str, Any]:
        """Figures of every layer in one mapping (``layer.key``), for tables and the history."""
        return {f"{layer}.{k}": v for layer, figs in self.figures.items() for k, v in figs.items()}

    def as_dict(self) -> dict[str, Any]:
        ep = self.endpoint
        return {"endpoint": ep.hostname, "site": ep.site, "site_name": ep.site_name, "district": ep.district,
                "level": ep.level, "address": ep.address, "aor": ep.aor, "verdict": self.verdict,
                "layer": self.layer, "reason": self.reason, "figures": self.figures,
                "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "circuit_id": ep.circuit_id, "contact": ep.contact}


# ------------------------------------------------------------------ scope and endpoints


class ScopeError(ValueError):
    pass


def parse_scope(text: str) -> tuple[str, str | None]:
    """``province`` | ``district <slug>`` | ``site <slug>[,<slug>…]`` (also ``district:<slug>``, ``district=<slug>``).

    A comma-separated list of sites is one scope: a rollout's wave is checked in one run, its test calls
    sharing the probe's slots.
    """
    t = text.strip()
    for sep in (":", "="):
        t = t.replace(sep, " ", 1) if t.split(sep, 1)[0] in ("district", "site") else t
    parts = t.split()
    if parts == ["province"]:
        return "province", None
    if len(parts) == 2 and parts[0] in ("district", "site"):
        return parts[0], parts[1]
    raise ScopeError(f"scope '{text}': expected 'province', 'district <slug>' or 'site <slug>[,<slug>…]'")


def scope_label(kind: str, slug: str | None) -> str:
    return kind if slug is None else f"{kind} {slug}"


def endpoint_of(m: Model, hostname: str) -> Endpoint:
    dev = m.devices[hostname]
    if dev.sip is None or dev.site is None:
        raise ValueError(f"{hostname} is not a site endpoint with a SIP account")
    site = m.sites[dev.site]
    ce = next((h for h in site.devices if m.devices[h].role == "ce"), None)
    address = str(dev.data_address or dev.ansible_host)
    return Endpoint(hostname=hostname, site=site.slug, site_name=site.name, district=dev.district, level=site.level,
                    platform=dev.platform, address=address, aor=dev.sip.aor, sip_user=dev.sip.user, ce=ce,
                    circuit_id=site.circuit_id, contact=f"{site.contact_name} {site.contact_phone}".strip())


def endpoints(m: Model, kind: str, slug: str | None = None) -> list[Endpoint]:
    """Every endpoint in a scope, province-level halls first, then districts, then communes, by site id."""
    wanted = (slug or "").split(",")
    if kind == "district":
        if slug not in m.sites or m.sites[slug].level != "district":
            raise ScopeError(f"no district '{slug}' in {m.root}; districts: "
                             f"{', '.join(s.slug for s in m.districts()) or 'none'}")
    elif kind == "site":
        unknown = next((x for x in wanted if x not in m.sites), None)
        if unknown is not None:
            raise ScopeError(f"no site '{unknown}' in {m.root}; see `provnet inventory show`")
    elif kind != "province":
        raise ScopeError(f"unknown scope '{kind}'")
    chosen = []
    for dev in m.devices.values():
        if dev.role != "endpoint" or dev.sip is None or dev.site is None:
            continue
        if kind == "district" and dev.district != slug:
            continue
        if kind == "site" and dev.site not in wanted:
            continue
        chosen.append(dev)
    chosen.sort(key=lambda d: (LEVEL_ORDER.index(m.sites[d.site].level), m.sites[d.site].id, d.hostname))  # type: ignore[index]
    return [endpoint_of(m, d.hostname) for d in chosen]


# ------------------------------------------------------------------ thresholds


def thresholds(m: Model | None) -> dict[str, float]:
    """Media thresholds: the defaults, overridden by the model's when it carries any.

    Read from the inventory's ``vc.thresholds`` (``m.vc.thresholds``; a mapping with the keys
    of :data:`DEFAULT_THRESHOLDS` is accepted too).
    """
    out = dict(DEFAULT_THRESHOLDS)
    given: Any = getattr(m, "vc_thresholds", None)
    if given is None:
        vc = getattr(m, "vc", None)
        given = vc.get("thresholds") if isinstance(vc, dict) else getattr(vc, "thresholds", None)
    if given is not None:
        items = given.items() if isinstance(given, dict) else vars(given).items()
        for key, value in items:
            if key in out and value is not None:
                out[key] = float(value)
    return out


def judge_media(figures: dict[str, Any], limits: dict[str, float]) -> LayerResult:
    """A test call's figures → ready / degraded / not ready against the thresholds.

    ``figures`` holds ``loss_pct``, ``jitter_ms`` (RTCP, worst direction and stream), ``rtt_ms``
    (RTCP's, or the SIP OPTIONS round trip during the call: :mod:`provnet.vc.media`), and
    optionally ``audio``/``video`` booleans saying media flowed both ways.
    """
    for stream in ("audio", "video"):
        if figures.get(stream) is False:
            return LayerResult(False, f"no {stream} received both ways in the test call", figures)
    bad, warn = [], []
    for key, label, unit in (("loss_pct", "loss", "%"), ("jitter_ms", "jitter", " ms"), ("rtt_ms", "RTT", " ms")):
        value = figures.get(key)
        if value is None:
            continue
        if value > limits[f"max_{key}"]:
            bad.append(f"{label} {value:g}{unit} > {limits[f'max_{key}']:g}{unit}")
        elif value > limits[f"degraded_{key}"]:
            warn.append(f"{label} {value:g}{unit} > {limits[f'degraded_{key}']:g}{unit}")
    if bad:
        return LayerResult(False, "media beyond limits: " + ", ".join(bad + warn), figures)
    if warn:
        return LayerResult(True, "media degraded: " + ", ".join(warn), figures, degraded=True)
    return LayerResult(True, "", figures)


# ------------------------------------------------------------------ running


class _Gate:
    """The media layer's bound: a semaphore of the probe's call slots."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.sem = threading.BoundedSemaphore(self.slots)


def _call(probes: Probes, layer: str, ep: Endpoint) -> LayerResult:
    try:
        res = getattr(probes, method_of(layer))(ep)
    except NotImplementedError as exc:
        return LayerResult(False, f"{layer} probe not implemented: {exc}")
    except Exception as exc:  # noqa: BLE001 - one probe's error is that endpoint's failed layer
        return LayerResult(False, f"{layer} probe error: {type(exc).__name__}: {exc}")
    if not isinstance(res, LayerResult):
        return LayerResult(False, f"{layer} probe returned {type(res).__name__}, not a LayerResult")
    return res


def run_ladder(ep: Endpoint, probes: Probes, *, until: str = "media", media_gate: _Gate | None = None,
               clock: Callable[[], float] = time.perf_counter) -> EndpointResult:
    """Climb the layers for one endpoint; stop at the first failing one."""
    if until not in LAYERS:
        raise ValueError(f"unknown layer '{until}' (layers: {', '.join(LAYERS)})")
    last = LAYERS.index(until)
    result = EndpointResult(ep, READY, LAYERS[0], "")
    notes: list[str] = []
    for layer in LAYERS[: last + 1]:
        if layer == "media":
            gate = media_gate or _Gate(1)
            t0 = clock()
            with gate.sem:
                result.timings["media-wait"] = clock() - t0
                t1 = clock()
                res = _call(probes, layer, ep)
                result.timings[layer] = clock() - t1
        else:
            t0 = clock()
            res = _call(probes, layer, ep)
            result.timings[layer] = clock() - t0
        result.layers[layer] = res
        if res.figures:
            result.figures[layer] = res.figures
        result.layer = layer
        if not res.ok:
            result.verdict, result.reason = NOT_READY, res.reason or f"{layer} failed"
            return result
        if res.degraded:
            result.verdict = DEGRADED
            notes.append(res.reason or f"{layer} degraded")
    result.reason = "; ".join(notes)
    if last < len(LAYERS) - 1 and not result.reason:
        result.reason = f"checked up to {until}"
    return result


@dataclass
class ScopeResult:
    scope: str
    results: list[EndpointResult]
    elapsed: float
    workers: int
    media_slots: int
    until: str = "media"
    max_media_concurrency: int = 0

    @property
    def ready(self) -> bool:
        return all(r.ready for r in self.results)

    def counts(self) -> dict[str, int]:
        out = {READY: 0, DEGRADED: 0, NOT_READY: 0}
        for r in self.results:
            out[r.verdict] += 1
        return out

    def layer_timings(self) -> dict[str, dict[str, float]]:
        """Per layer (and media-wait): how many endpoints ran it, total, median and max seconds."""
        out: dict[str, dict[str, float]] = {}
        for name in (*LAYERS, "media-wait"):
            values = [r.timings[name] for r in self.results if name in r.timings]
            if values:
                out[name] = {"count": len(values), "total_s": round(sum(values), 3),
                             "median_s": round(statistics.median(values), 4), "max_s": round(max(values), 4)}
        return out

    def failing_layers(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            if r.verdict == NOT_READY:
                out[r.layer] = out.get(r.layer, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        return {"scope": self.scope, "endpoints": len(self.results), **self.counts(),
                "failing_layers": self.failing_layers(), "elapsed_s": round(self.elapsed, 3),
                "workers": self.workers, "media_slots": self.media_slots, "until": self.until,
                "layer_timings": self.layer_timings()}


@dataclass
class DistrictSummary:
    district: str  # slug, or "" for endpoints outside any district
    name: str
    ready: int = 0
    degraded: int = 0
    not_ready: int = 0
    not_ready_sites: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ready + self.degraded + self.not_ready

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def district_summary(m: Model | None, results: list[EndpointResult]) -> list[DistrictSummary]:
    """Ready / degraded / not ready per district (a district's own endpoint counts in it)."""
    by: dict[str, DistrictSummary] = {}
    for r in results:
        key = r.endpoint.district or ""
        if key not in by:
            site = m.sites.get(key) if (m is not None and key) else None
            by[key] = DistrictSummary(key, site.name if site else (key or "(no district)"))
        s = by[key]
        if r.verdict == READY:
            s.ready += 1
        elif r.verdict == DEGRADED:
            s.degraded += 1
        else:
            s.not_ready += 1
            s.not_ready_sites.append(r.endpoint.site)
    return sorted(by.values(), key=lambda s: (s.not_ready == 0, s.district))


def run_scope(m: Model | None, scope: str | list[Endpoint], probes: Probes, *, workers: int = DEFAULT_WORKERS,
              media_slots: int | None = None, progress: Progress | None = None, until: str = "media") -> ScopeResult:
    """Run the ladder for every endpoint of a scope concurrently.

    ``scope``: ``province`` | ``district <slug>`` | ``site <slug>`` (or a ready list of
    endpoints). At most ``workers`` endpoints climb at once; the media layer additionally
    waits for one of ``media_slots`` (default: the probe's ``media_slots``) so the probe's
    test calls never exceed what the bridge host handles.
    """
    if isinstance(scope, str):
        kind, slug = parse_scope(scope)
        if m is None:
            raise ScopeError("a scope given by name needs the model")
        eps, label = endpoints(m, kind, slug), scope_label(kind, slug)
    else:
        eps, label = list(scope), "endpoints"
    slots = media_slots if media_slots is not None else int(getattr(probes, "media_slots", DEFAULT_MEDIA_SLOTS))
    gate = _Gate(slots)
    active = {"media": 0, "max": 0}
    lock = threading.Lock()

    class _Counting:
        """Wraps the probes to count concurrent media calls (the bound is checked, not assumed)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(probes, name)

        def media(self, ep: Endpoint) -> LayerResult:
            with lock:
                active["media"] += 1
                active["max"] = max(active["max"], active["media"])
            try:
                return probes.media(ep)
            finally:
                with lock:
                    active["media"] -= 1

    counted: Any = _Counting()
    start = time.perf_counter()
    prepare = getattr(probes, "prepare", None)
    if callable(prepare):
        prepare(eps)
    results: dict[str, EndpointResult] = {}
    done = 0
    if progress:
        progress("readiness", 0, len(eps))
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vc-ladder") as pool:
            futures = {pool.submit(run_ladder, ep, counted, until=until, media_gate=gate): ep for ep in eps}
            for fut in as_completed(futures):
                ep = futures[fut]
                try:
                    results[ep.hostname] = fut.result()
                except Exception as exc:  # noqa: BLE001 - never lose an endpoint's row
                    results[ep.hostname] = EndpointResult(ep, NOT_READY, LAYERS[0], f"ladder error: {exc}")
                done += 1
                if progress:
                    progress("readiness", done, len(eps))
    finally:
        close = getattr(probes, "close", None)
        if callable(close):
            close()
    ordered = [results[ep.hostname] for ep in eps]
    return ScopeResult(label, ordered, time.perf_counter() - start, workers, gate.slots, until, active["max"])


def exit_code(result: ScopeResult) -> int:
    """0 when every endpoint in scope will join (ready or degraded), 1 otherwise."""
    return 0 if result.ready else 1
