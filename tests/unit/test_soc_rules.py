"""The SOC's Sigma rules (soc/rules): every rule compiles for the SOC node's SQLite and for OpenSearch;
a bad rule is refused naming its file and what is wrong (tests/fixtures/soc/bad-rules/<case>/expected.txt)."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from provnet.soc import sigma
from provnet.soc.fields import FIELDS

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "fixtures" / "soc" / "bad-rules"
CASES = sorted(p for p in BAD.iterdir() if (p / "expected.txt").is_file())
NODE = ROOT / "roles" / "soc_collector" / "files" / "provnet_soc.py"

ALERTING = {
    "provnet_ssh_brute_force": "correlation", "provnet_port_scan": "correlation",
    "provnet_sip_register_brute_force": "correlation", "provnet_commit_outside_change_window": "sigma",
    "provnet_time_sync_lost": "sigma", "provnet_unit_keeps_failing": "correlation",
    "provnet_site_silent": "builtin", "provnet_new_admin_source": "builtin",
    "provnet_time_service_stopped": "builtin",
}


def node_module():
    spec = importlib.util.spec_from_file_location("provnet_soc", NODE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compiled() -> dict:
    return sigma.compile_sqlite()


@pytest.fixture(scope="module")
def opensearch() -> dict[str, dict]:
    return {q["name"]: q for q in sigma.compile_opensearch()}


def test_every_rule_compiles_and_the_alerting_ones_are_listed(compiled: dict) -> None:
    assert {r["name"]: r["kind"] for r in compiled["rules"]} == ALERTING
    assert compiled["format"] == 1 and compiled["pysigma"] == "1.5.1"
    assert compiled["backend"] == "pySigma-backend-sqlite 2.0.0"
    assert compiled["fields"] == list(FIELDS)
    assert compiled["lookback_seconds"] == 3600  # the longest timespan (unit keeps failing: 1h)
    for rule in compiled["rules"]:
        assert rule["id"] and rule["title"] and rule["level"] in {"informational", "low", "medium", "high", "critical"}
        assert all(f in FIELDS for f in rule["group_by"])


def test_base_rules_referenced_by_a_correlation_do_not_alert_alone(compiled: dict) -> None:
    names = {r["name"] for r in compiled["rules"]}
    assert not names & {"provnet_ssh_login_failed", "provnet_ssh_failed_burst", "provnet_firewall_drop",
                        "provnet_sip_register_failed", "provnet_unit_failed"}


def test_the_sql_runs_on_the_node_schema(compiled: dict) -> None:
    node = node_module()
    conn = sqlite3.connect(":memory:")
    node.create_events_schema(conn)
    for rule in compiled["rules"]:
        if rule.get("sql"):
            conn.execute(rule["sql"]).fetchall()  # valid SQL over the store's columns, no event: no row


def test_logsource_becomes_the_dataset_condition(compiled: dict) -> None:
    by_name = {r["name"]: r for r in compiled["rules"]}
    assert by_name["provnet_time_sync_lost"]["sql"] == \
        "SELECT * FROM events WHERE `event.dataset`='chrony' AND `event.action`='time-sync-lost'"
    assert "`event.dataset`='sshd'" in by_name["provnet_new_admin_source"]["sql"]


def test_correlation_parameters_come_from_the_rule(compiled: dict) -> None:
    by_name = {r["name"]: r for r in compiled["rules"]}
    assert by_name["provnet_port_scan"]["correlation"] == {
        "type": "value_count", "rules": ["provnet_firewall_drop"], "group_by": ["source.ip", "host.name"],
        "timespan_seconds": 300, "condition": {"op": "gte", "count": 20, "field": "destination.port"},
        "generate": False}
    assert by_name["provnet_ssh_brute_force"]["correlation"]["type"] == "temporal_ordered"
    assert by_name["provnet_ssh_brute_force"]["correlation"]["rules"] == ["provnet_ssh_failed_burst",
                                                                          "provnet_ssh_login_success"]
    assert by_name["provnet_unit_keeps_failing"]["correlation"]["group_by"] == ["host.name", "service.name"]
    assert by_name["provnet_site_silent"]["threshold_seconds"] == 1800
    assert by_name["provnet_new_admin_source"]["history_seconds"] == 30 * 86400


def test_datasets_are_the_ones_fields_py_describes() -> None:
    for dataset in sigma.DATASETS:
        if dataset != "unparsed":
            assert dataset in FIELDS["event.dataset"]


def test_change_window_is_a_compile_time_parameter(compiled: dict) -> None:
    assert compiled["parameters"] == {"change_window": "08:00-17:00", "utc_offset": "+07:00"}
    assert compiled["placeholders"] == {"change_window_hours": [1, 2, 3, 4, 5, 6, 7, 8, 9]}
    sql = {r["name"]: r for r in compiled["rules"]}["provnet_commit_outside_change_window"]["sql"]
    assert "strftime('%H', `@timestamp`) AS INTEGER)=9" in sql and "AS INTEGER)=10" not in sql
    other = sigma.compile_sqlite(parameters={"change_window": "22:00-02:00", "utc_offset": "+07:00"})
    sql = {r["name"]: r for r in other["rules"]}["provnet_commit_outside_change_window"]["sql"]
    assert other["placeholders"]["change_window_hours"] == [15, 16, 17, 18]  # 22, 23, 0, 1 local
    assert "AS INTEGER)=15" in sql and "AS INTEGER)=1 " not in sql


@pytest.mark.parametrize("params, message", [
    ({"change_window": "08:30-17:00"}, "change_window: '08:30-17:00' is not a window of whole hours"),
    ({"utc_offset": "+05:30"}, "utc_offset: '+05:30' is not a whole-hour offset"),
    ({"window": "08:00-17:00"}, "window: is not a SOC rule parameter"),
])
def test_a_bad_parameter_is_refused(params: dict, message: str) -> None:
    with pytest.raises(sigma.SigmaRuleError) as exc:
        sigma.load(parameters=params)
    assert message in str(exc.value)


def test_there_are_bad_rule_cases() -> None:
    assert {c.name for c in CASES} >= {"unknown-field", "yaml-syntax", "not-sigma", "missing-reference",
                                       "unknown-group-by", "builtin-unknown-field"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_rule_is_refused_naming_file_and_problem(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case)
    builtins = "checks/builtins.yml" if (case / "checks").is_dir() else None
    with pytest.raises(sigma.SigmaRuleError) as exc:
        sigma.load(".", builtins=builtins)
    expected = (case / "expected.txt").read_text(encoding="utf-8").replace("{known}", ", ".join(FIELDS))
    assert str(exc.value).splitlines() == expected.splitlines()
    for line in str(exc.value).splitlines():
        assert line.split(":")[0].endswith(".yml") and " — fix: " in line


def test_unknown_field_names_the_field_and_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD / "unknown-field")
    with pytest.raises(sigma.SigmaRuleError) as exc:
        sigma.load(".", builtins=None)
    text = str(exc.value)
    assert text.startswith("ssh.yml: ") and "'src.ip'" in text and "source.ip, source.port" in text


def test_the_compile_command_refuses_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "provnet.soc.sigma", "compile", "--rules",
                           str(BAD / "unknown-field"), "--builtins", "", "--out", str(tmp_path / "c.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "src.ip" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "c.json").exists()


def test_the_compile_command_writes_compiled_json_opensearch_and_template(tmp_path: Path) -> None:
    out, queries, template = tmp_path / "compiled.json", tmp_path / "os.json", tmp_path / "template.json"
    assert sigma.main(["compile", "--out", str(out), "--opensearch", str(queries), "--template", str(template),
                       "--param", "change_window=07:00-18:00"]) == 0
    doc = json.loads(out.read_text())
    assert doc["parameters"]["change_window"] == "07:00-18:00"
    assert len(json.loads(queries.read_text())) == len(ALERTING)
    assert json.loads(template.read_text())["index_patterns"] == ["provnet-events-*"]


def test_opensearch_queries_carry_the_rules_terms(opensearch: dict[str, dict]) -> None:
    assert set(opensearch) == set(ALERTING)
    sync = opensearch["provnet_time_sync_lost"]
    assert sync["lucene"] == "event.dataset:chrony AND event.action:time\\-sync\\-lost"
    assert sync["dsl"]["query"]["bool"]["must"][0]["query_string"]["query"] == sync["lucene"]
    scan = opensearch["provnet_port_scan"]
    assert "event.dataset:nftables" in scan["lucene"] and "event.action:firewall\\-drop" in scan["lucene"]
    assert "dc(destination.port)" in scan["ppl"] and "by source.ip, host.name" in scan["ppl"]
    assert "value_count >= 20" in scan["ppl"] and "earliest=-300s" in scan["ppl"]
    assert "source=provnet-events-*" in scan["ppl"]
    sip = opensearch["provnet_sip_register_brute_force"]
    assert "event.action:sip\\-register" in sip["lucene"] and "event.outcome:failure" in sip["lucene"]
    assert "event_count >= 10" in sip["ppl"]
    unit = opensearch["provnet_unit_keeps_failing"]
    assert "by host.name, service.name" in unit["ppl"] and "event_count >= 3" in unit["ppl"]
    brute = opensearch["provnet_ssh_brute_force"]
    assert "event.outcome:failure" in brute["lucene"] and "event.outcome:success" in brute["lucene"]
    assert brute["ppl"] is None and "correlation of a correlation" in brute["unsupported"]
    assert brute["correlation"]["type"] == "temporal_ordered"


def test_opensearch_does_not_emit_a_wrong_hour_query(opensearch: dict[str, dict]) -> None:
    # the Lucene and PPL backends turn `@timestamp|hour` into @timestamp:(1 OR 2 …): refused instead
    commit = opensearch["provnet_commit_outside_change_window"]
    assert commit["lucene"] is None and commit["ppl"] is None and "|hour" in commit["unsupported"]
    for name in ("provnet_site_silent", "provnet_new_admin_source"):
        assert opensearch[name]["kind"] == "builtin" and "built-in" in opensearch[name]["unsupported"]


def test_index_template_maps_every_field() -> None:
    template = sigma.index_template()
    props = template["template"]["mappings"]["properties"]
    for name in FIELDS:
        node = {"properties": props}
        for part in name.split("."):
            node = node["properties"][part]
        expected = ("date" if name == "@timestamp" else "ip" if name.endswith(".ip")
                    else "integer" if name.endswith(".port") else "keyword")
        assert node == {"type": expected}, name
    assert props["source"]["properties"]["ip"] == {"type": "ip"}
    assert props["destination"]["properties"]["port"] == {"type": "integer"}
    assert template["template"]["mappings"]["dynamic"] is False


def test_the_converge_lookup_refuses_a_bad_rule_naming_file_field_and_known_fields() -> None:
    """plugins/lookup/provnet_soc_rules.py: what the soc_collector role's converge calls."""
    from ansible.errors import AnsibleError

    spec = importlib.util.spec_from_file_location("provnet_soc_rules", ROOT / "plugins" / "lookup" / "provnet_soc_rules.py")
    assert spec and spec.loader
    lookup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lookup)
    (doc,) = lookup.LookupModule().run([], change_window="07:00-18:00", utc_offset="+07:00")
    assert "compiled_at" not in doc and doc["parameters"]["change_window"] == "07:00-18:00"  # idempotent output
    with pytest.raises(AnsibleError) as caught:
        lookup.LookupModule().run([], rules=str(BAD / "unknown-field"))
    text = str(caught.value)
    assert "the SOC's Sigma rules are refused" in text and "src.ip" in text and "source.ip" in text
    assert str(BAD / "unknown-field") in text or "unknown-field" in text
