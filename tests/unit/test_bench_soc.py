"""benchmarks/bench_soc.py's generator and parsers in a smoke mode: no rsyslogd, no store.

The generated lines (a small day and every kind of attack burst) go through the real ``lognormalizer``
with the role's rulebase, as tests/unit/test_soc_normalise.py does with the recorded samples: each
line becomes the event the generator meant (action, outcome, source address), the lines meant to be
unknown stay unparsed, every address is inside 198.18.0.0/15 and every host is a model device.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_soc  # noqa: E402

from provnet import guard  # noqa: E402

LOGNORMALIZER = shutil.which("lognormalizer")
N = 3000
DAY_END = 1_796_428_800.0  # 2026-12-05T00:00:00Z (07:00 at +07:00), an hour boundary
RFC5424 = re.compile(r"^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+07:00) (\S+) (\S+) (\S+) - - (.*)$")


@pytest.fixture(scope="module")
def province() -> bench_soc.Province:
    return bench_soc.Province.load()


@pytest.fixture(scope="module")
def day(province: bench_soc.Province) -> list[bench_soc.Event]:
    return list(bench_soc.Generator(province).background(N, DAY_END))


@pytest.fixture(scope="module")
def bursts(province: bench_soc.Province) -> list[bench_soc.Attack]:
    gen = bench_soc.Generator(province)
    return [gen.attack(bench_soc.burst_kind(i), i, DAY_END + 60 * i) for i in range(bench_soc.BURSTS)]


def lognormalize(lines: list[str]) -> list[dict]:
    assert LOGNORMALIZER
    res = subprocess.run([LOGNORMALIZER, "-r", str(bench_soc.RULEBASE), "-e", "json", "-T"],
                         input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert len(out) == len(lines)
    return out


def test_the_province_is_thanhhoa_lab(province: bench_soc.Province) -> None:
    assert len(province.sites) == 339 and len(province.ces) == 166 and len(province.vcs) == 166
    assert set(province.site_hosts) - {"dc"} and len(province.site_hosts) == 167
    assert province.dc_sip == "dc-sip" and province.dc_fw == "dc-fw"
    bench_soc.check_addresses(province)  # refuses anything outside 198.18.0.0/15


def test_the_day_is_the_mix_in_send_order(day: list[bench_soc.Event], province: bench_soc.Province) -> None:
    assert len(day) == N
    times = [e.ts for e in day]
    assert all(DAY_END - bench_soc.DAY_S <= t <= DAY_END for t in times)
    assert times == sorted(times, reverse=True)  # newest first
    assert times[0] > DAY_END - 600 and times[-1] < DAY_END - bench_soc.DAY_S + 600  # the whole day
    actions = Counter(e.action for e in day)
    assert actions.most_common(1)[0][0] == "firewall-drop"
    assert actions["firewall-drop"] > N * 0.45 and actions["sip-register"] > N * 0.12
    assert actions["ssh-login"] + actions["ssh-logout"] > N * 0.05
    assert {e.host for e in day} <= set(province.sites)
    for e in day:  # engine commits only inside the change window (08:00-17:00 local)
        if e.action == "config-commit":
            assert 8 <= datetime.fromtimestamp(e.ts, bench_soc.LOCAL).hour < 17


def test_frames_are_rfc5424_and_addresses_in_the_lab_range(day: list[bench_soc.Event],
                                                           bursts: list[bench_soc.Attack]) -> None:
    stamp = bench_soc.Stamps()
    for e in [*day, *(x for a in bursts for x in a.events)]:
        frame = e.frame(stamp(e.ts))
        assert frame.endswith("\n") and frame.count("\n") == 1
        m = RFC5424.match(frame[:-1])
        assert m, frame
        assert int(m.group(1)) < 192 and m.group(3) == e.host and m.group(6) == e.msg
        assert datetime.fromisoformat(m.group(2)).timestamp() == pytest.approx(e.ts, abs=1e-5)
        for address in bench_soc.addresses_in(e.msg):
            assert guard.in_lab_range(address), (address, e.msg)
        assert ":" not in (e.source_ip or "")  # no IPv6 either


def test_the_bursts_are_what_the_rules_count(bursts: list[bench_soc.Attack]) -> None:
    assert [a.kind for a in bursts] == list(bench_soc.KINDS) * 3
    assert sum(len(a.events) for a in bursts) == bench_soc.attack_lines()
    for a in bursts:
        assert len(a.events) == bench_soc.ATTACK_EVENTS[a.kind]
        times = [e.ts for e in a.events]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert {e.source_ip for e in a.events} == {a.group["source.ip"]}
        assert a.group["source.ip"] in map(str, bench_soc.ATTACKERS)
    ssh = bursts[0]
    assert [e.outcome for e in ssh.events] == ["failure"] * 8 + ["success"]
    assert len({e.msg.split("DPT=")[1].split()[0] for e in bursts[1].events}) == 30
    assert len({a.group["source.ip"] for a in bursts}) == len(bursts)  # never merged into one alert
    assert bench_soc.burst_points(1000) == [100, 200, 300, 400, 500, 600, 700, 800, 900]


@pytest.mark.skipif(LOGNORMALIZER is None, reason="no lognormalizer (scripts/bootstrap.sh installs liblognorm-utils)")
def test_the_rulebase_parses_every_generated_line(day: list[bench_soc.Event], bursts: list[bench_soc.Attack]) -> None:
    events = [*day, *(x for a in bursts for x in a.events)]
    results = lognormalize([e.msg.lstrip(" ") for e in events])  # what the collector hands mmnormalize
    for e, r in zip(events, results):
        if e.action == "unparsed":
            assert "unparsed-data" in r, (e.msg, r)
            continue
        assert "unparsed-data" not in r, e.msg
        assert r["event.action"] == e.action and r["event.outcome"] == e.outcome, (e.msg, r)
        if e.source_ip:
            assert r["source.ip"] == e.source_ip, (e.msg, r)
        for key in ("source.port", "destination.port"):
            if key in r:
                assert type(r[key]) is int
    assert Counter(e.action for e in events)["unparsed"] > 0


def test_the_parsers() -> None:
    assert bench_soc.ingest_counts('{"lines": 5, "inserted": 4, "duplicates": 0, "unparsed": 1, "rejected": 1, '
                                   '"late": 0}\n') == {"lines": 5, "inserted": 4, "duplicates": 0, "unparsed": 1,
                                                       "rejected": 1, "late": 0}
    with pytest.raises(ValueError):
        bench_soc.ingest_counts('{"since": "x"}')
    assert bench_soc.failed_per_source("      8 from 198.19.250.10 port\n      2 from 198.19.160.7 port\nnoise\n") \
        == {"198.19.250.10": 8, "198.19.160.7": 2}
    assert bench_soc.percentile([1, 2, 3, 4, 5], 0.95) == pytest.approx(4.8)
    assert bench_soc.percentile([7.0], 0.95) == 7.0
    # 2026-12-04T00:00Z .. 2026-12-05T00:30Z at +07:00: 07:00 on the 4th through 07:00 on the 5th
    start, end = DAY_END - 86400, DAY_END + 1800
    prefixes = bench_soc.hour_prefixes(start, end)
    assert prefixes[0] == "2026-12-04T07" and prefixes[-1] == "2026-12-05T07" and len(prefixes) == 25
    pattern = bench_soc.day_grep_pattern(start, end)
    assert pattern.startswith("^(2026-12-04T(07|08|") and "|2026-12-05T(00|" in pattern
    regex = re.compile(pattern)
    assert regex.match("2026-12-04T07:00:00.000001+07:00 dong-dang-ce sshd[1]: x")
    assert regex.match("2026-12-05T07:29:00.000001+07:00 dong-dang-ce sshd[1]: x")
    assert not regex.match("2026-12-04T06:59:59.999999+07:00 dong-dang-ce sshd[1]: x")
    assert bench_soc.span_s("20s") == 20 and bench_soc.span_s("1min") == 60 and bench_soc.detect_every() == 20
    a = bench_soc.Attack("sip", 0, "provnet_sip_register_brute_force", {"source.ip": "198.19.250.12"}, [])
    assert a.matches("provnet_sip_register_brute_force", {"source.ip": "198.19.250.12"})
    assert not a.matches("provnet_port_scan", {"source.ip": "198.19.250.12", "host.name": "dc-fw"})


def test_the_collector_listens_on_loopback_only(tmp_path: Path, province: bench_soc.Province) -> None:
    c = bench_soc.Collector(tmp_path, province.sites)
    conf = c.conf.read_text()
    assert re.findall(r'input\(type="im(?:udp|tcp)" address="([^"]*)"', conf) == ["127.0.0.1", "127.0.0.1"]
    assert f'port="{c.port}"' in conf and c.port > 1024
    assert str(tmp_path / "events") in conf and str(bench_soc.RULEBASE) in conf
    # every file it writes or reads is in its folder (a role default never leads elsewhere), or the rulebase
    paths = re.findall(r'"(/[^"]*)"', conf)
    assert len(paths) == 4 and all(x.startswith(f"{tmp_path}/") or x == str(bench_soc.RULEBASE) for x in paths)
    table = json.loads((tmp_path / "sites.json").read_text())
    assert len(table["table"]) == 339 and {"index": "dc-sip", "value": "dc"} in table["table"]
