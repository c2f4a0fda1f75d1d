"""The SOC node's program (roles/soc_collector/files/provnet_soc.py) end to end, without a lab.

Events are the normaliser's JSON lines (tests/fixtures/soc/events/): ``attack`` holds, on
2026-12-04 UTC, 6 failed sshd logins then a success from 198.18.64.2 to dong-dang-ce (whose
admin logged in from 198.18.0.10 two days earlier), a sweep of 30 ports dropped at dc-fw, 10
refused SIP registrations at dc-sip, an engine commit at 20:00Z (03:00 at +07:00, outside
08:00–17:00), chrony losing its sources, a unit failing 5 times, ban-xa going silent, one
``unparsed`` and one truncated line. ``quiet`` is a normal morning of the same sites (a commit at
10:00 local, an admin's two typos, 3 drops, 2 refused registrations, one unit failure).
Each run is the program as a subprocess, as the node's timer runs it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from provnet.soc import sigma
from provnet.soc.fields import FIELDS

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "roles" / "soc_collector" / "files" / "provnet_soc.py"
EVENTS = ROOT / "tests" / "fixtures" / "soc" / "events"
ATTACK_NOW = "2026-12-04T21:00:00Z"
QUIET_NOW = "2026-12-04T04:00:00Z"


def run(tmp: Path, *args: str, now: str | None = ATTACK_NOW, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(NODE), "--store", str(tmp / "store"), "--events", str(tmp / "events")]
    cmd += ["--now", now] if now else []
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def compiled_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "compiled.json"
    path.write_text(json.dumps(sigma.compile_sqlite()), encoding="utf-8")
    return path


def scenario(tmp: Path, name: str) -> Path:
    shutil.copytree(EVENTS / name, tmp / "events")
    return tmp


def alerts(tmp: Path, *extra: str, now: str = ATTACK_NOW) -> list[dict]:
    return json.loads(run(tmp, "alerts", "--since", "30d", "--json", *extra, now=now).stdout)["alerts"]


def write_line(path: Path, obj: dict | str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")


def event(ts: str, host: str = "dong-dang-ce", site: str = "dong-dang", **fields: object) -> dict:
    base = {"@timestamp": ts, "host.name": host, "labels.site": site, "event.dataset": "sshd",
            "event.category": "authentication", "event.action": "ssh-login", "event.outcome": "success",
            "source.ip": "198.18.0.10", "message": "Accepted publickey for provnet"}
    return {**base, **{k.replace("__", "."): v for k, v in fields.items()}}


def test_the_node_copy_of_fields_is_fields_py() -> None:
    spec = importlib.util.spec_from_file_location("provnet_soc", NODE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.FIELDS == tuple(FIELDS)


def test_the_node_program_is_stdlib_only() -> None:
    text = NODE.read_text(encoding="utf-8")
    for forbidden in ("import sigma", "from sigma", "import provnet", "from provnet", "import yaml"):
        assert forbidden not in text


def test_ingest_partitions_by_day_counts_unparsed_and_keeps_rejects(tmp_path: Path) -> None:
    scenario(tmp_path, "attack")
    out = json.loads(run(tmp_path, "ingest", "--json").stdout)
    assert out == {"lines": 99, "inserted": 98, "duplicates": 0, "unparsed": 1, "rejected": 1, "late": 0}
    day = tmp_path / "store" / "2026" / "12" / "events-2026-12-04.sqlite"
    assert (tmp_path / "store" / "2026" / "12" / "events-2026-12-02.sqlite").exists()
    conn = sqlite3.connect(day)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
    assert columns == [*FIELDS, "raw"]
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 95
    (reason, line), = conn.execute("SELECT reason, line FROM rejects").fetchall()
    assert reason.startswith("malformed JSON") and line.endswith('"message": "truncat')
    raw, port = conn.execute('SELECT raw, "destination.port" FROM events WHERE "event.action" = '
                             "'firewall-drop' LIMIT 1").fetchone()
    assert json.loads(raw)["source.ip"] == "198.18.65.7" and port == 21
    assert conn.execute('SELECT COUNT(DISTINCT "event.id") FROM events').fetchone()[0] == 95
    # nothing new: nothing read; a new line and a half-written one: only the complete line
    assert json.loads(run(tmp_path, "ingest", "--json").stdout)["lines"] == 0
    log = tmp_path / "events" / "events-2026-12-04.json"
    write_line(log, event("2026-12-04T20:59:00Z"))
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('{"@timestamp": "2026-12-04T20:59:30Z", "host.n')
    assert json.loads(run(tmp_path, "ingest", "--json").stdout)["inserted"] == 1
    with open(log, "a", encoding="utf-8") as fh:
        fh.write('ame": "dc-fw", "labels.site": "dc"}\n')
    assert json.loads(run(tmp_path, "ingest", "--json").stdout) == \
        {"lines": 1, "inserted": 1, "duplicates": 0, "unparsed": 0, "rejected": 0, "late": 0}


EXPECTED = {  # rule → (site, hosts, count)
    "provnet_ssh_brute_force": ("dong-dang", ["dong-dang-ce"], 6),  # the 5 failures of the burst + the success
    "provnet_new_admin_source": ("dong-dang", ["dong-dang-ce"], 1),
    "provnet_port_scan": ("dc", ["dc-fw"], 30),
    "provnet_sip_register_brute_force": ("dc", ["dc-sip"], 10),
    "provnet_commit_outside_change_window": ("dong-dang", ["dong-dang-ce"], 1),
    "provnet_time_sync_lost": ("chi-lang", ["chi-lang-ce"], 1),
    "provnet_unit_keeps_failing": ("chi-lang", ["chi-lang-ep1"], 5),
    "provnet_site_silent": ("ban-xa", ["ban-xa-ep1"], 1),
}


def test_detect_raises_each_expected_alert_once(tmp_path: Path, compiled_file: Path) -> None:
    scenario(tmp_path, "attack")
    run(tmp_path, "ingest")
    first = run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog")
    found = alerts(tmp_path)
    assert sorted(a["rule_name"] for a in found) == sorted(EXPECTED)
    for a in found:
        assert (a["site"], a["hosts"], a["count"]) == EXPECTED[a["rule_name"]], a
        assert len(a["event_ids"]) == a["count"]
    by_rule = {a["rule_name"]: a for a in found}
    assert by_rule["provnet_ssh_brute_force"]["group"] == {"host.name": "dong-dang-ce", "source.ip": "198.18.64.2"}
    assert by_rule["provnet_ssh_brute_force"]["level"] == "critical"
    assert (by_rule["provnet_ssh_brute_force"]["first_event"], by_rule["provnet_ssh_brute_force"]["last_event"]) \
        == ("2026-12-04T20:10:00Z", "2026-12-04T20:11:10Z")
    assert by_rule["provnet_new_admin_source"]["group"]["source.ip"] == "198.18.64.2"
    assert by_rule["provnet_port_scan"]["group"] == {"host.name": "dc-fw", "source.ip": "198.18.65.7"}
    assert by_rule["provnet_sip_register_brute_force"]["group"] == {"source.ip": "198.18.66.4"}
    assert by_rule["provnet_commit_outside_change_window"]["first_event"] == "2026-12-04T20:00:00Z"
    assert by_rule["provnet_site_silent"]["last_event"] == "2026-12-04T19:22:00Z"
    # each new alert is logged once with the stable prefix, with its final count
    lines = [l for l in first.stdout.splitlines() if l.startswith("provnet-soc-alert ")]
    assert len(lines) == len(EXPECTED)
    scan = next(l for l in lines if "rule=provnet_port_scan" in l)
    assert "site=dc hosts=dc-fw" in scan and "count=30" in scan and "level=high" in scan
    # the same windows again: nothing new, nothing logged
    again = run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog")
    assert "provnet-soc-alert" not in again.stdout and "0 new alerts" in again.stderr
    assert alerts(tmp_path) == found
    # later, with the attack still in the window, still nothing new
    later = run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog", now="2026-12-04T21:20:00Z")
    assert "provnet-soc-alert" not in later.stdout
    # alerts --site, events --site --category
    assert {a["rule_name"] for a in alerts(tmp_path, "--site", "dc")} == {"provnet_port_scan",
                                                                         "provnet_sip_register_brute_force"}
    shown = json.loads(run(tmp_path, "events", "--site", "dong-dang", "--category", "authentication",
                           "--since", "2h", "--json").stdout)
    assert [e["event.outcome"] for e in shown["events"]] == ["failure"] * 6 + ["success"]
    assert all(e["source.ip"] == "198.18.64.2" for e in shown["events"])
    text = run(tmp_path, "alerts", "--since", "30d", "--site", "ban-xa").stdout
    assert "Site silent for longer than its threshold" in text


def test_a_quiet_day_raises_no_alert(tmp_path: Path, compiled_file: Path) -> None:
    scenario(tmp_path, "quiet")
    run(tmp_path, "ingest", now=QUIET_NOW)
    proc = run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog", now=QUIET_NOW)
    assert "provnet-soc-alert" not in proc.stdout
    assert alerts(tmp_path, now=QUIET_NOW) == []


def test_a_success_before_the_failures_is_no_brute_force(tmp_path: Path, compiled_file: Path) -> None:
    (tmp_path / "events").mkdir()
    log = tmp_path / "events" / "events-2026-12-04.json"
    write_line(log, event("2026-12-04T20:00:00Z", source__ip="198.18.64.3"))
    for i in range(6):
        write_line(log, event(f"2026-12-04T20:01:{i * 5:02d}Z", source__ip="198.18.64.3", event__outcome="failure"))
    run(tmp_path, "ingest")
    run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog")
    assert "provnet_ssh_brute_force" not in {a["rule_name"] for a in alerts(tmp_path)}


def test_detect_refuses_a_missing_compiled_file(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    proc = run(tmp_path, "detect", "--compiled", str(tmp_path / "none.json"), check=False)
    assert proc.returncode == 2 and "cannot read the compiled rules" in proc.stderr


def three_days(tmp: Path) -> None:
    (tmp / "events").mkdir()
    for day in ("2026-12-01", "2026-12-02", "2026-12-03"):
        for hour in range(0, 24, 6):
            write_line(tmp / "events" / f"events-{day}.json", event(f"{day}T{hour:02d}:00:00Z"))


def test_archive_chains_closed_days_and_verify_finds_a_tampered_database(tmp_path: Path) -> None:
    three_days(tmp_path)
    now = "2026-12-04T02:00:00Z"
    run(tmp_path, "ingest", now=now)
    out = run(tmp_path, "archive", now=now).stdout
    assert out.count("archive: 2026-12-0") == 3
    chain = [json.loads(l) for l in (tmp_path / "store" / "archive-chain.jsonl").read_text().splitlines()]
    assert [e["day"] for e in chain] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert chain[0]["prev"] == "0" * 64 and chain[1]["prev"] == chain[0]["hash"]
    assert all(e["db_sha256"] and e["events_sha256"] for e in chain)
    assert run(tmp_path, "archive", now=now).stdout == ""  # each day once
    ok = run(tmp_path, "verify-archive", now=now)
    assert "3 days verified" in ok.stdout
    # an event of an archived day arriving late is kept among the rejects, the archived file untouched
    write_line(tmp_path / "events" / "events-2026-12-04.json", event("2026-12-02T23:59:00Z"))
    assert json.loads(run(tmp_path, "ingest", "--json", now=now).stdout)["late"] == 1
    assert "3 days verified" in run(tmp_path, "verify-archive", now=now).stdout
    # someone deletes an event from 2026-12-02
    db = tmp_path / "store" / "2026" / "12" / "events-2026-12-02.sqlite"
    conn = sqlite3.connect(db)
    conn.execute('DELETE FROM events WHERE "@timestamp" = ?', ("2026-12-02T06:00:00Z",))
    conn.commit()
    conn.close()
    bad = run(tmp_path, "verify-archive", now=now, check=False)
    assert bad.returncode == 1
    assert bad.stdout.startswith("verify-archive: 2026-12-02: the database ")
    assert "changed after archiving" in bad.stdout


def test_verify_finds_a_tampered_raw_file_and_an_edited_chain(tmp_path: Path) -> None:
    three_days(tmp_path)
    now = "2026-12-04T02:00:00Z"
    run(tmp_path, "ingest", now=now)
    run(tmp_path, "archive", now=now)
    raw = tmp_path / "events" / "events-2026-12-03.json"
    original = raw.read_bytes()
    raw.write_bytes(original.replace(b"198.18.0.10", b"198.18.0.11", 1))
    bad = run(tmp_path, "verify-archive", now=now, check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("verify-archive: 2026-12-03: the raw events file")
    raw.write_bytes(original)
    chain_file = tmp_path / "store" / "archive-chain.jsonl"
    lines = chain_file.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["db_sha256"] = "0" * 64
    chain_file.write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    bad = run(tmp_path, "verify-archive", now=now, check=False)
    assert bad.returncode == 1 and bad.stdout.startswith("verify-archive: 2026-12-01: its entry was edited")
    chain_file.write_text("\n".join([lines[0], lines[2]]) + "\n")  # a day's entry removed
    bad = run(tmp_path, "verify-archive", now=now, check=False)
    assert bad.returncode == 1 and "2026-12-03: its link to the previous entry is broken" in bad.stdout


def test_prune_keeps_at_least_90_days_and_the_chain_stays_valid(tmp_path: Path) -> None:
    three_days(tmp_path)
    run(tmp_path, "ingest", now="2026-12-04T02:00:00Z")
    run(tmp_path, "archive", now="2026-12-04T02:00:00Z")
    refused = run(tmp_path, "prune", "--days", "30", now="2027-03-15T00:00:00Z", check=False)
    assert refused.returncode == 2 and "at least 90 days" in refused.stderr
    # 2026-12-01 is 91 days before 2027-03-02; the others stay
    out = run(tmp_path, "prune", "--days", "90", now="2027-03-02T00:00:00Z").stdout
    assert "1 days older than 2026-12-02 removed" in out
    assert not (tmp_path / "store" / "2026" / "12" / "events-2026-12-01.sqlite").exists()
    assert not (tmp_path / "events" / "events-2026-12-01.json").exists()
    assert (tmp_path / "store" / "2026" / "12" / "events-2026-12-02.sqlite").exists()
    assert "3 days verified" in run(tmp_path, "verify-archive", now="2027-03-02T00:00:00Z").stdout
    assert "0 days" in run(tmp_path, "prune", now="2027-03-02T00:00:00Z").stdout  # default 180


def test_a_correlation_across_midnight_reads_both_day_partitions(tmp_path: Path, compiled_file: Path) -> None:
    (tmp_path / "events").mkdir()
    for i in range(10):
        second = 40 + 3 * i  # 23:59:40 … 00:00:07
        ts = f"2026-12-04T23:59:{second:02d}Z" if second < 60 else f"2026-12-05T00:00:{second - 60:02d}Z"
        write_line(tmp_path / "events" / f"events-{ts[:10]}.json",
                   event(ts, host="dc-sip", site="dc", event__dataset="kamailio", event__action="sip-register",
                         event__outcome="failure", source__ip="198.18.66.9"))
    run(tmp_path, "ingest", now="2026-12-05T00:10:00Z")
    assert (tmp_path / "store" / "2026" / "12" / "events-2026-12-05.sqlite").exists()
    run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog", now="2026-12-05T00:10:00Z")
    (sip,) = [a for a in alerts(tmp_path, now="2026-12-05T00:10:00Z")
              if a["rule_name"] == "provnet_sip_register_brute_force"]
    assert (sip["count"], sip["first_event"], sip["last_event"]) == (10, "2026-12-04T23:59:40Z", "2026-12-05T00:00:07Z")


def test_a_new_alert_goes_to_syslog_with_the_stable_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("provnet_soc_syslog", NODE)
    assert spec and spec.loader
    node = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(node)
    sent: list[tuple] = []

    class FakeSyslog:
        LOG_AUTH, LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 32, 2, 3, 4, 5, 6

        def openlog(self, ident: str, option: int, facility: int) -> None:
            sent.append(("open", ident, facility))

        def syslog(self, priority: int, message: str) -> None:
            sent.append(("log", priority, message))

        def closelog(self) -> None:
            pass

    monkeypatch.setattr(node, "syslog", FakeSyslog())
    node.send_syslog({"level": "critical", "rule_name": "provnet_ssh_brute_force", "site": "dong-dang",
                      "hosts": ["dong-dang-ce"], "first_event": "2026-12-04T20:10:00Z",
                      "last_event": "2026-12-04T20:11:10Z", "count": 6, "alert_id": "b467a465f315b980",
                      "group": {"source.ip": "198.18.64.2"}, "title": "SSH brute force"})
    assert sent[0] == ("open", "provnet-soc", 32)
    assert sent[1][1] == 2 and sent[1][2].startswith("provnet-soc-alert level=critical rule=provnet_ssh_brute_force "
                                                     "site=dong-dang hosts=dong-dang-ce ")


def test_a_time_service_stopped_and_not_started_again(tmp_path: Path, compiled_file: Path) -> None:
    """chronyd's exit alone is an alert once a minute has passed without its start; a restart (both within
    seconds, what every converge does) raises nothing, and the check waits the minute before judging."""
    (tmp_path / "events").mkdir()
    log = tmp_path / "events" / "events-2026-12-04.json"
    chrony = {"event__dataset": "chrony", "event__category": "host", "event__outcome": "unknown"}
    write_line(log, event("2026-12-04T20:50:00Z", host="cao-loc-vc", site="cao-loc", event__action="time-service-stopped",
                          **chrony))
    write_line(log, event("2026-12-04T20:50:03Z", host="cao-loc-vc", site="cao-loc", event__action="time-service-started",
                          **chrony))
    write_line(log, event("2026-12-04T20:59:30Z", host="chi-lang-vc", site="chi-lang",
                          event__action="time-service-stopped", **chrony))
    run(tmp_path, "ingest")
    run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog")   # 30 s after: not yet judged
    assert "provnet_time_service_stopped" not in {a["rule_name"] for a in alerts(tmp_path)}
    later = "2026-12-04T21:01:00Z"
    run(tmp_path, "detect", "--compiled", str(compiled_file), "--no-syslog", now=later)
    stopped = [a for a in alerts(tmp_path, now=later) if a["rule_name"] == "provnet_time_service_stopped"]
    assert [(a["site"], a["hosts"]) for a in stopped] == [("chi-lang", ["chi-lang-vc"])]
