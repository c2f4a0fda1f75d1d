"""The readiness ladder with fake probes: order, stop at the first failure, concurrency bound,
thresholds, district summary, exit code, history and --compare-last (no sockets)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provnet import history, model
from provnet.vc import readiness, report
from provnet.vc.readiness import LAYERS, Endpoint, LayerResult

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventory" / "lab"


class FakeProbes:
    """Every layer passes unless told otherwise; records calls and concurrent media calls."""

    def __init__(self, fail: dict[str, tuple[str, str]] | None = None, degraded: set[str] | None = None,
                 media_seconds: float = 0.0, media_slots: int = 4, raise_on: dict[str, str] | None = None) -> None:
        self.fail = fail or {}
        self.degraded = degraded or set()
        self.raise_on = raise_on or {}
        self.media_seconds = media_seconds
        self.media_slots = media_slots
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.in_media = 0
        self.max_in_media = 0
        self.prepared: list[str] = []
        self.closed = False

    def prepare(self, endpoints: list[Endpoint]) -> None:
        self.prepared = [e.hostname for e in endpoints]

    def close(self) -> None:
        self.closed = True

    def _layer(self, layer: str, ep: Endpoint) -> LayerResult:
        with self.lock:
            self.calls.append((ep.hostname, layer))
        if self.raise_on.get(ep.hostname) == layer:
            raise RuntimeError("probe exploded")
        if self.fail.get(ep.hostname, ("", ""))[0] == layer:
            return LayerResult(False, self.fail[ep.hostname][1], {"where": layer})
        return LayerResult(True, "", {"ok": 1})

    def wan(self, ep: Endpoint) -> LayerResult:
        return self._layer("wan", ep)

    def router(self, ep: Endpoint) -> LayerResult:
        return self._layer("router", ep)

    def endpoint_host(self, ep: Endpoint) -> LayerResult:
        return self._layer("endpoint-host", ep)

    def registration(self, ep: Endpoint) -> LayerResult:
        return self._layer("registration", ep)

    def signalling(self, ep: Endpoint) -> LayerResult:
        return self._layer("signalling", ep)

    def media(self, ep: Endpoint) -> LayerResult:
        with self.lock:
            self.in_media += 1
            self.max_in_media = max(self.max_in_media, self.in_media)
        try:
            time.sleep(self.media_seconds)
            res = self._layer("media", ep)
            if res.ok and ep.hostname in self.degraded:
                return readiness.judge_media({"loss_pct": 10.0, "jitter_ms": 12, "rtt_ms": 40},
                                             readiness.DEFAULT_THRESHOLDS)
            return res
        finally:
            with self.lock:
                self.in_media -= 1


def ep(name: str = "dong-dang-vc", district: str | None = "huyen-cao-loc", site: str | None = None) -> Endpoint:
    site = site or name.removesuffix("-vc")
    return Endpoint(name, site, f"Xã {site}", district, "commune", "baresip", "198.18.64.98",
                    f"sip:{site}@vc.langson.lab", site, f"{site}-ce")


def synthetic(n: int, districts: int = 3) -> list[Endpoint]:
    return [ep(f"xa-{i:03d}-vc", f"huyen-{i % districts}") for i in range(n)]


@pytest.fixture(scope="module")
def m() -> model.Model:
    return model.load(LAB)


def test_probes_satisfy_the_protocol() -> None:
    assert isinstance(FakeProbes(), readiness.Probes)
    assert LAYERS == ("wan", "router", "endpoint-host", "registration", "signalling", "media")


def test_a_ready_endpoint_climbs_every_layer_in_order() -> None:
    probes = FakeProbes()
    r = readiness.run_ladder(ep(), probes)
    assert (r.verdict, r.layer, r.reason) == ("ready", "media", "")
    assert [layer for _, layer in probes.calls] == list(LAYERS)
    assert set(r.timings) == set(LAYERS) | {"media-wait"}
    assert r.figures["wan"] == {"ok": 1}


@pytest.mark.parametrize("layer", LAYERS)
def test_the_ladder_stops_at_the_first_failing_layer(layer: str) -> None:
    probes = FakeProbes(fail={"dong-dang-vc": (layer, f"{layer} is broken")})
    r = readiness.run_ladder(ep(), probes)
    assert (r.verdict, r.layer, r.reason) == ("not ready", layer, f"{layer} is broken")
    assert [l for _, l in probes.calls] == list(LAYERS[: LAYERS.index(layer) + 1])
    assert r.figures[layer] == {"where": layer}


def test_a_probe_exception_is_that_layer_failing() -> None:
    r = readiness.run_ladder(ep(), FakeProbes(raise_on={"dong-dang-vc": "registration"}))
    assert (r.verdict, r.layer) == ("not ready", "registration")
    assert r.reason == "registration probe error: RuntimeError: probe exploded"


def test_until_stops_early_and_says_so() -> None:
    probes = FakeProbes()
    r = readiness.run_ladder(ep(), probes, until="signalling")
    assert (r.verdict, r.layer, r.reason) == ("ready", "signalling", "checked up to signalling")
    assert "media" not in [l for _, l in probes.calls]
    with pytest.raises(ValueError):
        readiness.run_ladder(ep(), probes, until="moon")


def test_degraded_media_is_flagged_not_failed() -> None:
    r = readiness.run_ladder(ep(), FakeProbes(degraded={"dong-dang-vc"}))
    assert (r.verdict, r.layer) == ("degraded", "media")
    assert r.reason == "media degraded: loss 10% > 1%"
    assert r.ready


def test_media_thresholds() -> None:
    limits = dict(readiness.DEFAULT_THRESHOLDS)
    assert readiness.judge_media({"loss_pct": 0.2, "jitter_ms": 5, "rtt_ms": 20}, limits).ok
    bad = readiness.judge_media({"loss_pct": 35.0, "jitter_ms": 40, "rtt_ms": 20}, limits)
    assert not bad.ok and bad.reason == "media beyond limits: loss 35% > 20%, jitter 40 ms > 30 ms"
    one_way = readiness.judge_media({"audio": True, "video": False}, limits)
    assert not one_way.ok and "no video" in one_way.reason


def test_thresholds_come_from_the_model_when_it_has_them() -> None:
    assert readiness.thresholds(None) == readiness.DEFAULT_THRESHOLDS

    class M:
        vc = {"thresholds": {"max_loss_pct": 5, "unknown": 1}}

    t = readiness.thresholds(M())  # type: ignore[arg-type]
    assert t["max_loss_pct"] == 5.0 and "unknown" not in t and t["max_rtt_ms"] == 800.0


def test_scope_runs_concurrently_with_media_bounded_by_the_slots() -> None:
    eps = synthetic(24)
    probes = FakeProbes(media_seconds=0.05, media_slots=3)
    progress: list[tuple[int, int]] = []
    res = readiness.run_scope(None, eps, probes, workers=12, progress=lambda s, d, t: progress.append((d, t)))
    assert probes.max_in_media == 3  # bounded, and the bound was actually reached
    assert res.max_media_concurrency == 3 and res.media_slots == 3
    assert all(r.verdict == "ready" for r in res.results)
    assert [r.endpoint.hostname for r in res.results] == [e.hostname for e in eps]  # model order kept
    assert progress[0] == (0, 24) and progress[-1] == (24, 24)
    assert probes.prepared == [e.hostname for e in eps] and probes.closed
    # 24 calls of 50 ms through 3 slots take >= 8 rounds; unbounded they would take one
    assert res.elapsed >= 0.05 * 8 * 0.9
    timings = res.layer_timings()
    assert timings["media"]["count"] == 24 and timings["media-wait"]["max_s"] > 0
    summary = res.summary()
    assert summary["ready"] == 24 and summary["media_slots"] == 3 and "layer_timings" in summary


def test_explicit_media_slots_override_the_probe() -> None:
    probes = FakeProbes(media_seconds=0.02, media_slots=8)
    res = readiness.run_scope(None, synthetic(10), probes, workers=10, media_slots=1)
    assert probes.max_in_media == 1 and res.media_slots == 1


def test_scopes_select_endpoints_from_the_model(m: model.Model) -> None:
    province = readiness.endpoints(m, "province")
    assert len(province) == 7 and province[0].site == "ubnd-tinh"   # the province-level hall first
    assert (province[0].level, province[0].ce, province[0].district) == ("province", None, None)
    district = readiness.endpoints(m, "district", "huyen-cao-loc")
    assert [e.site for e in district] == ["huyen-cao-loc", "dong-dang", "cao-loc"]  # the district's own first
    [one] = readiness.endpoints(m, "site", "dong-dang")
    assert (one.hostname, one.address, one.aor, one.ce, one.site_name) == (
        "dong-dang-vc", "198.18.64.98", "sip:dong-dang@vc.langson.lab", "dong-dang-ce", "Xã Đồng Đăng")
    with pytest.raises(readiness.ScopeError, match="no district 'dong-dang'"):
        readiness.endpoints(m, "district", "dong-dang")
    with pytest.raises(readiness.ScopeError, match="no site"):
        readiness.endpoints(m, "site", "atlantis")
    assert readiness.parse_scope("district huyen-cao-loc") == ("district", "huyen-cao-loc")
    assert readiness.parse_scope("site:dong-dang") == ("site", "dong-dang")
    # a rollout's wave: several sites in one scope, the model's order, an unknown one named
    assert readiness.parse_scope("site quan-son,dong-dang") == ("site", "quan-son,dong-dang")
    assert [e.site for e in readiness.endpoints(m, "site", "quan-son,dong-dang")] == ["dong-dang", "quan-son"]
    with pytest.raises(readiness.ScopeError, match="no site 'atlantis'"):
        readiness.endpoints(m, "site", "dong-dang,atlantis")
    with pytest.raises(readiness.ScopeError):
        readiness.parse_scope("commune x")


def test_district_summary_and_exit_code(m: model.Model) -> None:
    probes = FakeProbes(fail={"cao-loc-vc": ("registration", "not registered"),
                              "quan-son-vc": ("wan", "no route")},
                        degraded={"chi-lang-vc"})
    res = readiness.run_scope(m, "province", probes, workers=4)
    by = {s.district: s for s in readiness.district_summary(m, res.results)}
    assert (by["huyen-cao-loc"].ready, by["huyen-cao-loc"].not_ready, by["huyen-cao-loc"].not_ready_sites) == \
        (2, 1, ["cao-loc"])
    assert (by["huyen-chi-lang"].ready, by["huyen-chi-lang"].degraded, by["huyen-chi-lang"].not_ready) == (1, 1, 1)
    assert by["huyen-cao-loc"].name == "Huyện Cao Lộc"
    assert res.failing_layers() == {"registration": 1, "wan": 1}
    assert readiness.exit_code(res) == 1
    healthy = readiness.run_scope(m, "district huyen-chi-lang", FakeProbes(degraded={"chi-lang-vc"}))
    assert readiness.exit_code(healthy) == 0  # degraded endpoints join
    # rows: not ready first, lowest layer first
    rows = report.sort_rows(res.results)
    assert [(r.endpoint.site, r.layer) for r in rows[:3]] == [("quan-son", "wan"), ("cao-loc", "registration"),
                                                              ("chi-lang", "media")]
    page = report.as_html(m, res, "t", "2025-03-01T01:00:00Z")
    assert "Xã Đồng Đăng" in page and "2025-03-01 08:00:00" in page and 'class="fail"' in page


def test_history_and_compare_last(m: model.Model, tmp_path: Path) -> None:
    with history.open_store(tmp_path / "h.sqlite") as store:
        first = readiness.run_scope(m, "province", FakeProbes())
        first.scope = "province"
        r1 = report.record(store, "inventory/lab", first)
        prev, changes = report.compare_last(store, "province", "inventory/lab", r1)
        assert prev is None and changes == []
        second = readiness.run_scope(m, "province", FakeProbes(fail={"dong-dang-vc": ("endpoint-host", "no ping")}))
        second.scope = "province"
        r2 = report.record(store, "inventory/lab", second)
        prev, changes = report.compare_last(store, "province", "inventory/lab", r2)
        assert prev is not None and prev.id == r1
        assert [(c.subject, c.before_verdict, c.after_verdict, c.after_layer, c.after_reason) for c in changes] == [
            ("dong-dang-vc", "ready", "not ready", "endpoint-host", "no ping")]
        stored = {r.subject: r for r in store.results(r2)}
        assert stored["dong-dang-vc"].figures["site"] == "dong-dang"
        assert "wan.ok" in stored["huyen-cao-loc-vc"].figures
        assert store.run(r2).summary["not ready"] == 1  # type: ignore[union-attr]


# ------------------------------------------------------------------ the CLI, with fake probes


def _cli(monkeypatch: pytest.MonkeyPatch, probes: Any, *args: str) -> Any:
    from provnet.cli import app
    from provnet.vc import probes as probes_mod

    monkeypatch.setattr(probes_mod, "lab_probes", lambda m: probes)
    return CliRunner().invoke(app, ["vc", "readiness", "-i", str(LAB), *args])


def test_cli_json_exit_code_and_compare_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    ok = _cli(monkeypatch, FakeProbes(), "--json")
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["summary"]["ready"] == 7 and data["ready"] and data["run_id"] == 1
    assert data["started_local"].endswith("(giờ VN)")
    broken = FakeProbes(fail={"cao-loc-vc": ("signalling", "no answer to SIP OPTIONS")})
    bad = _cli(monkeypatch, broken, "--json", "--compare-last")
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["compare"]["previous_run_id"] == 1
    assert data["compare"]["changes"] == [{"subject": "cao-loc-vc", "change": "changed",
                                           "before": {"verdict": "ready", "layer": "media"},
                                           "after": {"verdict": "not ready", "layer": "signalling",
                                                     "reason": "no answer to SIP OPTIONS"}}]
    row = next(e for e in data["endpoints"] if e["endpoint"] == "cao-loc-vc")
    assert (row["site_name"], row["site"], row["verdict"]) == ("Xã Cao Lộc", "cao-loc", "not ready")
    assert (tmp_path / "home" / "history.sqlite").exists()


def test_cli_table_scope_and_html(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVNET_HOME", str(tmp_path / "home"))
    page = tmp_path / "r.html"
    res = _cli(monkeypatch, FakeProbes(fail={"dong-dang-vc": ("wan", "dc-core has no BGP route")}),
               "--scope", "district huyen-cao-loc", "--html", str(page), "--compare-last")
    assert res.exit_code == 1, res.output
    assert "dc-core has no BGP route" in res.stdout and "Xã Đồng Đăng" in res.stdout
    assert "district huyen-cao-loc: 2 ready, 0 degraded, 1 not ready of 3" in res.stdout
    assert "no earlier run over district huyen-cao-loc" in res.stdout
    assert "Huyện Cao Lộc" in page.read_text(encoding="utf-8")
    again = _cli(monkeypatch, FakeProbes(fail={"dong-dang-vc": ("wan", "dc-core has no BGP route")}),
                 "--scope", "district huyen-cao-loc", "--compare-last")
    assert "nothing changed since run 1" in again.stdout


def test_cli_refuses_a_bad_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    res = _cli(monkeypatch, FakeProbes(), "--scope", "district atlantis")
    assert res.exit_code == 2 and "no district 'atlantis'" in res.output
