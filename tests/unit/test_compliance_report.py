"""The compliance report: HTML parses and escapes, JUnit counts, JSON round-trips, Markdown, exit code."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from provnet import history
from provnet.compliance import report, trend
from provnet.compliance.report import Report
from provnet.compliance.trend import Finding

SITES = {"xa-dong-dang": "Xã Đồng Đăng", "huyen-chi-lang": "Huyện Chi Lăng", "dc": "Trung tâm tích hợp dữ liệu"}
HOSTILE = "<script>alert(1)</script> & \"quoted\" ]]> \x1b[0m ```"


def _findings() -> list[Finding]:
    return [
        Finding("ce-dong-dang", "ssh-001", "fail", f"PermitRootLogin yes\n{HOSTILE}",
                title="Cấm đăng nhập root qua SSH",
                severity="high", site="xa-dong-dang"),
        Finding("ce-dong-dang", "ntp-001", "pass", "", title="Đồng bộ thời gian về DC", site="xa-dong-dang"),
        Finding("ce-dong-dang", "drift:frr", "fail", "+ip route 0.0.0.0/0 198.18.1.1", kind="drift",
                title="Cấu hình chạy khác cấu hình dự kiến", severity="medium", site="xa-dong-dang"),
        Finding("ep-chi-lang", "ssh-002", "unreachable", "timed out after 10 s", title="SSH", severity="high",
                site="huyen-chi-lang"),
        Finding("ep-chi-lang", "ssh-003", "waived", "waiver CHG-1 until 2026-12-31", site="huyen-chi-lang"),
        Finding("dc-fw", "firewall-001", "error", "nft: command not found", severity="critical", site="dc"),
        Finding("dc-fw", "snmp-001", "not_applicable", "", site="dc"),
    ]


@pytest.fixture
def rep(tmp_path: Path) -> Report:
    with history.open_store(tmp_path / "h.sqlite") as store:
        trend.record_run(store, "inventory/lab", "all", [Finding("ce-dong-dang", "ssh-001", "fail"),
                                                        Finding("dc-fw", "firewall-001", "fail")],
                         started_at="2026-11-14T19:00:00Z")
        run = trend.record_run(store, "inventory/lab", "all", _findings(), started_at="2026-11-15T19:00:00Z")
        t = trend.compare(store, run)
    return Report(_findings(), run, "2026-11-15T19:00:00Z", "inventory/lab", "all", "Tỉnh Lạng Sơn", SITES, t,
                  notes=["Bản sao lưu: commit 0123456789"])


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.scripts += tag == "script"
        assert not any(k in ("src", "href") for k, _ in attrs)  # no external assets

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_parses_is_printable_and_vietnamese(rep: Report) -> None:
    page = report.as_html(rep)
    p = _Collect()
    p.feed(page)
    p.close()
    text = "".join(p.text)
    assert p.scripts == 0 and "<link" not in page and "http" not in page
    assert "@page { size: A4" in page and 'lang="vi"' in page
    for name in ("Xã Đồng Đăng", "Huyện Chi Lăng", "Tỉnh Lạng Sơn", "Tóm tắt theo đơn vị", "Tóm tắt theo nhóm quy tắc",
                 "Không đạt", "Không kết nối được", "Cấm đăng nhập root qua SSH", "Sai lệch cấu hình"):
        assert name in text, name
    assert "<script>alert(1)</script>" in text  # shown as text...
    assert "<script>alert" not in page  # ...never as markup
    assert "PermitRootLogin yes" in text and "mới" in text and "từ 2026-11-15 02:00:00 (giờ VN)" in text
    assert text.index("ce-dong-dang") < text.index("ep-chi-lang")  # failures before unreachable before waived
    assert "snmp-001" not in text  # not applicable: counted, not listed


def test_summary_per_site_and_family(rep: Report) -> None:
    sites = {row["site"]: row for row in report.by_site(rep)}
    assert sites["xa-dong-dang"]["name"] == "Xã Đồng Đăng" and sites["xa-dong-dang"]["fail"] == 2
    assert sites["xa-dong-dang"]["open"] == 2 and sites["huyen-chi-lang"]["waived"] == 1
    families = {row["family"]: row for row in report.by_family(rep)}
    assert set(families) == {"ssh", "ntp", "drift", "firewall", "snmp"}
    assert families["ssh"]["unreachable"] == 1 and families["ssh"]["devices"] == 2


def test_junit_one_testcase_per_device_and_rule(rep: Report) -> None:
    root = ET.fromstring(report.as_junit(rep).encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("7", "2", "2", "2")
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 7
    case = next(c for c in cases if c.get("name") == "ssh-001")
    assert case.get("classname") == "xa-dong-dang.ce-dong-dang"
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "high" and "<script>" in (failure.text or "")
    assert next(c for c in cases if c.get("name") == "ssh-002").find("error") is not None
    site = root.find("./testsuite[@name='xa-dong-dang']")
    assert site is not None and site.get("failures") == "2"


def test_json_round_trips(rep: Report) -> None:
    data = report.as_json(rep)
    assert json.loads(report.as_json_text(rep)) == data
    assert data["summary"]["compliant"] is False and data["exit_code"] == 1
    assert data["summary"]["open"] == 4 and data["summary"]["checks"] == 7
    assert data["report"]["started_local"] == "2026-11-16 02:00:00 (giờ VN)"
    # firewall-001 went fail → error: still open, not fixed
    assert [i["subject"] for i in data["trend"]["still_open"]] == ["ce-dong-dang:ssh-001", "dc-fw:firewall-001"]
    assert data["trend"]["fixed"] == [] and len(data["trend"]["new"]) == 2
    assert data["findings"][0]["status"] == "fail" and data["findings"][0]["site_name"] == "Xã Đồng Đăng"


def test_markdown_for_mail(rep: Report) -> None:
    md = report.as_markdown(rep)
    assert md.startswith("# Báo cáo tuân thủ") and "**Chưa tuân thủ**" in md
    assert "| Xã Đồng Đăng | 1 | 2 |" in md and "## Theo nhóm quy tắc" in md
    assert "````\n" in md  # evidence with ``` inside gets a longer fence
    assert "So với lần chạy 1: 2 mới" in md


def test_exit_code_and_a_compliant_report() -> None:
    clean = [Finding("a", "ssh-001", "pass"), Finding("a", "ssh-002", "waived"),
             Finding("b", "x-001", "not_applicable")]
    assert report.exit_code(clean) == 0 and report.exit_code(_findings()) == 1
    page = report.as_html(Report(clean, 3, "2026-11-15T19:00:00Z"))
    assert "Tuân thủ:" in page and "không có phát hiện mở" in page
    root = ET.fromstring(report.as_junit(Report(clean)).encode())
    assert root.get("failures") == "0" and root.get("errors") == "0"
    assert set(report.RENDERERS) == {"html", "md", "json", "junit"}


def test_title_from_a_rule_title_pair() -> None:
    class T:
        vi, en = "Cấm telnet", "No telnet"

    f = Finding("a", "mgmt-001", "fail", title=T())  # type: ignore[arg-type]
    assert report.title(f) == "Cấm telnet" and report.family(f) == "mgmt"
    assert report.family(Finding("a", "cisco_ios-004", "pass")) == "cisco_ios"
