"""The SOC's view (provnet.compliance.socview): recorded SOC answers, the command on real files, the report.

Every address is in 198.18.0.0/15. The nightly run starts at 02:00 Asia/Ho_Chi_Minh = 19:00 UTC, so
the window is 2026-12-01T19:00:00Z … 2026-12-02T19:00:00Z.

The SOC's alerts (tests/fixtures/soc/compliance-alerts.json) are what the SOC's own program
(roles/soc_collector/files/provnet_soc.py) answered to ``alerts --since 2026-12-01T19:00:00Z --json``
after ingesting and detecting over tests/fixtures/soc/events/compliance: test_soc_store's attack
scenario moved 2 days 20 hours back into this window (ban-xa renamed quan-son, a lab site), plus a
host the collector's site table does not list (labels.site unknown) losing its time source.
:func:`test_the_recorded_alerts_are_the_programs_own` runs the program again and compares.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from provnet import history, model, secrets
from provnet.compliance import backups, report, run as crun, socview
from provnet.compliance.trend import Finding
from provnet.drivers.ssh import ConnectError, Result
from provnet.engine import device as engine

NOW = datetime(2026, 12, 2, 19, 0, 0, tzinfo=timezone.utc)
SINCE = NOW - timedelta(hours=24)
ROOT = Path(__file__).resolve().parents[2]
SOC_FIXTURES = ROOT / "tests" / "fixtures" / "soc"
NODE = ROOT / "roles" / "soc_collector" / "files" / "provnet_soc.py"
ALERTS_JSON = (SOC_FIXTURES / "compliance-alerts.json").read_text(encoding="utf-8")
DETECTED = "2026-12-02T01:00:00Z"  # when the SOC's detect ran over the fixture's events
NO_PROGRAM = "/nonexistent/provnet-soc"  # the command run here never finds a provnet-soc of this machine


def ep(t: datetime) -> int:
    return int(t.timestamp())


@pytest.fixture(scope="module")
def lab() -> model.Model:
    return model.load("inventory/lab")


# ---------------------------------------------------------------- a recorded answer

#: What the SOC's command printed one night (its format: M = a matching line of the last 24 h,
#: L = host, files' mtime, last line; K = matching lines it did not print), after the alerts.
LOGS = "\n".join([
    f"#provnet-soc\t1\t{ep(NOW) + 3}",
    # dong-dang-ce: one password try = PAM line + sshd line, same sshd pid → 1
    "M\tdong-dang-ce\t2026-12-02T03:10:01.114201+00:00 dong-dang-ce sshd[4101]: pam_unix(sshd:auth): "
    "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.18.77.9  user=netops",
    "M\tdong-dang-ce\t2026-12-02T03:10:03.502118+00:00 dong-dang-ce sshd[4101]: Failed password for netops "
    "from 198.18.77.9 port 50122 ssh2",
    # three tries on one connection → 3
    "M\tdong-dang-ce\t2026-12-02T04:00:00.000001+00:00 dong-dang-ce sshd[4200]: Failed password for root "
    "from 198.18.77.10 port 40000 ssh2",
    "M\tdong-dang-ce\t2026-12-02T04:00:02.000001+00:00 dong-dang-ce sshd[4200]: Failed password for root "
    "from 198.18.77.10 port 40000 ssh2",
    "M\tdong-dang-ce\t2026-12-02T04:00:04.000001+00:00 dong-dang-ce sshd[4200]: Failed password for root "
    "from 198.18.77.10 port 40000 ssh2",
    # an unknown account, keys only: "Invalid user" alone → 1 (its "Connection closed" line is no failure)
    "M\tdong-dang-ce\t2026-12-02T05:00:00.000000+00:00 dong-dang-ce sshd[4300]: Invalid user admin "
    "from 198.18.77.11 port 40100",
    "M\tdong-dang-ce\t2026-12-02T05:00:00.200000+00:00 dong-dang-ce sshd[4301]: Connection closed by "
    "authenticating user netops 198.18.1.20 port 40200 [preauth]",
    # a commit and a revert that fired, as the engine logs them
    "M\tdong-dang-ce\t2026-12-02T09:15:42.000000+07:00 dong-dang-ce provnet: frr commit: user=netops "
    "ticket=CHG-2026-1201 diff=0123456789ab",
    "M\tdong-dang-ce\t2026-12-02T02:31:00.000000+00:00 dong-dang-ce provnet[7712]: revert of nftables applied",
    # drops, as ulogd2's SYSLOG output would print them
    "M\tdong-dang-ce\t2026-12-02T06:00:00.000000+00:00 dong-dang-ce ulogd[611]: provnet-drop-in IN=wan0 OUT= "
    "MAC= SRC=198.18.200.7 DST=198.18.2.1 LEN=60 PROTO=TCP SPT=51000 DPT=23",
    "M\tdong-dang-ce\t2026-12-02T06:00:01.000000+00:00 dong-dang-ce ulogd[611]: provnet-drop-fwd IN=wan0 "
    "OUT=lan10 SRC=198.18.200.7 DST=198.18.32.10 LEN=60 PROTO=TCP SPT=51001 DPT=445",
    # the 24 h boundary: exactly at the start counts, a second before does not (both formats)
    "M\tdong-dang-ce\t2026-12-01T19:00:00.000000+00:00 dong-dang-ce sshd[4400]: Failed publickey for netops "
    "from 198.18.77.12 port 1 ssh2: ED25519 SHA256:xyz",
    "M\tdong-dang-ce\t2026-12-01T18:59:59.999999+00:00 dong-dang-ce sshd[4401]: Failed publickey for netops "
    "from 198.18.77.13 port 1 ssh2: ED25519 SHA256:xyz",
    # an offset: 01:30 +07:00 is 18:30 UTC the day before, outside the window
    "M\tdong-dang-ce\t2026-12-02T01:30:00.000000+07:00 dong-dang-ce sshd[4402]: Failed password for root "
    "from 198.18.77.14 port 1 ssh2",
    f"L\tdong-dang-ce\t{ep(NOW) - 30}\t2026-12-02T18:59:30.118822+00:00 dong-dang-ce systemd[1]: Started "
    "session-81.scope.",
    # dong-dang-vc: its last line is 30 h old → silent (its site is not: the CE speaks)
    f"L\tdong-dang-vc\t{ep(NOW) - 30 * 3600}\t2026-12-01T13:00:00.000000+00:00 dong-dang-vc baresip[900]: "
    "registered",
    # chi-lang-ce: traditional timestamps (a SOC set to RSYSLOG_TraditionalFileFormat); su's PAM failure
    "M\tchi-lang-ce\tDec  2 10:20:30 chi-lang-ce su[2001]: pam_unix(su:auth): authentication failure; "
    "logname=netops uid=1000 euid=0 tty=/dev/pts/0 ruser=netops rhost=  user=root",
    "M\tchi-lang-ce\tDec  1 19:00:00 chi-lang-ce sshd[2002]: Invalid user test from 198.18.77.20 port 2",
    "M\tchi-lang-ce\tDec  1 18:59:59 chi-lang-ce sshd[2003]: Invalid user test from 198.18.77.21 port 2",
    "M\tchi-lang-ce\tDec  2 11:00:00 chi-lang-ce kernel: [81234.5] provnet-drop-in IN=wan0 OUT= "
    "SRC=198.18.201.1 DST=198.18.2.3 PROTO=UDP SPT=53 DPT=161",
    "L\tchi-lang-ce\t0\tDec  2 18:00:00 chi-lang-ce CRON[3001]: (root) CMD (true)",
    # the data center: dc-fw capped by the SOC (K: lines it counted but did not print), an address as folder
    "M\tdc-fw\t2026-12-02T12:00:00.000000+00:00 dc-fw ulogd[700]: provnet-drop-in IN=wan0 SRC=198.18.202.1",
    "K\tdc-fw\tdrop\t41",
    f"L\tdc-fw\t{ep(NOW) - 5}\t2026-12-02T18:59:55.000000+00:00 dc-fw ulogd[700]: provnet-drop-in IN=wan0",
    f"L\t198.19.0.11\t{ep(NOW) - 60}\t2026-12-02T18:59:00.000000+00:00 198.19.0.11 rsyslogd[1]: hello",
    # a folder no device matches (a spoofed name on UDP 514)
    "M\tevil-host\t2026-12-02T12:00:00.000000+00:00 evil-host sshd[1]: Invalid user x from 198.18.99.1 port 1",
    f"L\tevil-host\t{ep(NOW) - 60}\t2026-12-02T12:00:00.000000+00:00 evil-host sshd[1]: hi",
    "#end",
]) + "\n"
ALERTS_BLOCK = f"#alerts-begin\n{ALERTS_JSON}\n#alerts-end\t0\n"
RECORDED = ALERTS_BLOCK + LOGS
ABSENT = f"#alerts-absent\t{socview.PROGRAM}\n" + LOGS


def host(view: socview.SocView, name: str) -> socview.HostLog:
    return next(h for s in view.sites for h in s.hosts if h.host == name)


def site(view: socview.SocView, slug: str | None) -> socview.SiteLog:
    return next(s for s in view.sites if s.site == slug)


def test_failed_logins_are_counted_per_attempt_with_their_sources(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    ce = host(v, "dong-dang-ce")
    # 1 (PAM + Failed, one try) + 3 + 1 (Invalid user) + 1 (the boundary's Failed publickey)
    assert ce.failed_logins == 6
    assert dict(ce.sources) == {"198.18.77.9": 2, "198.18.77.10": 3, "198.18.77.11": 1, "198.18.77.12": 1}
    assert "198.18.1.20" not in ce.sources  # "Connection closed by authenticating user" is no failure
    cl = host(v, "chi-lang-ce")
    assert cl.failed_logins == 2  # su's PAM failure + the boundary's Invalid user
    assert dict(cl.sources) == {"198.18.77.20": 1}


def test_the_24h_window_holds_its_first_second_and_reads_offsets(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    ce, cl = host(v, "dong-dang-ce"), host(v, "chi-lang-ce")
    assert "198.18.77.12" in ce.sources and "198.18.77.13" not in ce.sources  # RFC 3339
    assert "198.18.77.14" not in ce.sources  # 01:30+07:00 is before the window
    assert "198.18.77.20" in cl.sources and "198.18.77.21" not in cl.sources  # traditional


def test_drops_and_a_capped_count(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    ce = host(v, "dong-dang-ce")
    assert (ce.drops_in, ce.drops_fwd, ce.drops) == (1, 1, 2)
    assert host(v, "chi-lang-ce").drops == 1  # a kernel LOG line counts as well
    fw = host(v, "dc-fw")
    assert fw.drops == 42 and fw.truncated and not ce.truncated
    assert v.truncated and any("tối đa" in n for n in v.notes())


def test_commits_with_host_time_and_message(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    assert [(c.host, c.site, c.kind, c.platform, c.time) for c in v.commits] == [
        ("dong-dang-ce", "dong-dang", "commit", "frr", datetime(2026, 12, 2, 2, 15, 42, tzinfo=timezone.utc)),
        ("dong-dang-ce", "dong-dang", "revert", "nftables", datetime(2026, 12, 2, 2, 31, tzinfo=timezone.utc)),
    ]
    first = v.commits[0]
    assert first.message == "user=netops ticket=CHG-2026-1201 diff=0123456789ab"
    assert first.fields() == {"user": "netops", "ticket": "CHG-2026-1201", "diff": "0123456789ab"}
    assert len(site(v, "dong-dang").commits) == 2 and site(v, "chi-lang").commits == []


def test_silent_sites_and_hosts(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    dd = site(v, "dong-dang")
    assert not dd.silent and dd.silent_hosts == ["dong-dang-vc"]
    assert dd.last_received == NOW - timedelta(seconds=30)
    assert host(v, "dong-dang-vc").silent
    # no mtime: the last line's own (traditional) timestamp
    assert host(v, "chi-lang-ce").last_received == datetime(2026, 12, 2, 18, 0, tzinfo=timezone.utc)
    assert not site(v, "chi-lang").silent
    assert site(v, "quan-son").silent and site(v, "quan-son").last_received is None  # never heard of
    # the hall (ubnd-tinh) is in the model but not in the recording: silent too
    assert {s.site for s in v.silent_sites} == {"huyen-cao-loc", "huyen-chi-lang", "cao-loc", "quan-son", "ubnd-tinh"}
    assert v.sites[0].silent  # silent sites come first
    dc = site(v, None)
    assert dc.name == report.NO_SITE and not dc.silent
    assert not host(v, "dc-soc").silent  # its folder was named by its address (198.19.0.11)
    assert v.unknown_hosts == {"evil-host": 1}
    assert v.soc == "dc-soc" and v.clock_skew == 3 and v.complete and v.error == ""


def test_a_site_scope_leaves_the_others_out(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab, hosts=["dong-dang-ce", "dong-dang-vc"])
    assert [s.site for s in v.sites] == ["dong-dang"]
    assert v.unknown_hosts == {}


@pytest.mark.parametrize("line,expected", [
    ("2026-12-02T18:59:30.118822+00:00 h p: m", datetime(2026, 12, 2, 18, 59, 30, 118822, tzinfo=timezone.utc)),
    ("2026-12-02T09:00:00+07:00 h p: m", datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc)),
    ("2026-12-02T09:00:00.5-03:30 h p: m", datetime(2026, 12, 2, 12, 30, 0, 500000, tzinfo=timezone.utc)),
    ("2026-12-02T09:00:00Z h p: m", datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)),
    ("Dec  2 17:14:53 h p: m", datetime(2026, 12, 2, 17, 14, 53, tzinfo=timezone.utc)),
    ("Nov 30 01:02:03 h p: m", datetime(2026, 11, 30, 1, 2, 3, tzinfo=timezone.utc)),
    ("Dec  3 18:00:00 h p: m", datetime(2026, 12, 3, 18, 0, tzinfo=timezone.utc)),  # less than a day ahead
    ("Dec  4 20:00:00 h p: m", datetime(2025, 12, 4, 20, 0, tzinfo=timezone.utc)),  # more: last year's
    ("garbage h p: m", None),
])
def test_line_time_in_both_formats(line: str, expected: datetime | None) -> None:
    assert socview.line_time(line, NOW) == expected


def test_a_december_line_read_in_january_is_last_years() -> None:
    jan = datetime(2027, 1, 1, 0, 30, tzinfo=timezone.utc)
    assert socview.line_time("Dec 31 23:59:00 h p: m", jan) == datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
    assert socview.line_time("Jan  1 00:10:00 h p: m", jan) == datetime(2027, 1, 1, 0, 10, tzinfo=timezone.utc)


@pytest.mark.parametrize("line,kind", [
    ("2026-12-02T01:00:00+00:00 h sshd[1]: Failed password for root from 198.18.0.9 port 1 ssh2", "auth"),
    ("2026-12-02T01:00:00+00:00 h sshd-session[1]: Failed publickey for a from 198.18.0.9 port 1 ssh2", "auth"),
    ("2026-12-02T01:00:00+00:00 h sshd[1]: Invalid user bob from 198.18.0.9 port 1", "auth"),
    ("2026-12-02T01:00:00+00:00 h sshd[1]: pam_unix(sshd:auth): authentication failure; rhost=198.18.0.9", "auth"),
    ("2026-12-02T01:00:00+00:00 h sshd[1]: Connection closed by authenticating user a 198.18.0.9 port 1", ""),
    ("2026-12-02T01:00:00+00:00 h sshd[1]: Accepted publickey for netops from 198.18.0.9 port 1 ssh2", ""),
    ("2026-12-02T01:00:00+00:00 h provnet: frr commit: user=a ticket=- diff=0", "commit"),
    ("2026-12-02T01:00:00+00:00 h provnet: revert of frr applied", "commit"),
    ("2026-12-02T01:00:00+00:00 h netops: frr commit: by hand", ""),  # not the engine's tag
    ("2026-12-02T01:00:00+00:00 h provnet: frr commit: Failed password for root from 198.18.0.9", "commit"),
    ("2026-12-02T01:00:00+00:00 h ulogd[1]: provnet-drop-fwd IN=a OUT=b", "drop"),
    ("2026-12-02T01:00:00+00:00 h kernel: provnet-accept IN=a", ""),
    # as the lab's dc-soc stores what it received (RFC 5424: APP-NAME[PROCID], no colon)
    ("2026-12-03T17:50:17.210279+00:00 chi-lang-ce provnet frr commit: user=root ticket=compliance remediate "
     "diff=9f12c9263208", "commit"),
    ("2026-12-03T18:49:23.537268+00:00 quan-son-vc sshd[2591] Failed password for root from 198.18.0.9 port 1 ssh2",
     "auth"),
    ("2026-12-03T18:49:23.537268+00:00 quan-son-vc sshd[2591] Invalid user bob from 198.18.0.9 port 1", "auth"),
    ("2026-12-03T18:49:28.500420+00:00 quan-son-vc sshd[2591] pam_unix(sshd:session): session closed for user netops",
     ""),
    ("2026-12-03T18:49:23.537268+00:00 quan-son-vc sshd[2591] pam_unix(sshd:auth): authentication failure; "
     "rhost=198.18.0.9", "auth"),
    ("2026-12-03T17:50:17.200336+00:00 chi-lang-ce sudo   netops : COMMAND=/usr/bin/sh -c 'logger -t provnet "
     "\\'frr commit: user=root\\''", ""),  # sudo's record of the logger call is not the commit
])
def test_classification(line: str, kind: str) -> None:
    assert socview.classify(line) == kind


def test_a_commit_as_the_soc_stores_it(lab: model.Model) -> None:
    line = ("2026-12-03T17:50:17.210279+00:00 chi-lang-ce provnet frr commit: user=root ticket=compliance-remediate "
            "diff=9f12c9263208")
    view = socview.parse(f"L\tchi-lang-ce\t{ep(NOW) - 60:.0f}\n" + f"M\tchi-lang-ce\t{line}\n#provnet-soc-end\n",
                         NOW, lab, ["chi-lang-ce"])
    (commit,) = view.commits
    assert (commit.host, commit.platform) == ("chi-lang-ce", "frr") and "ticket=compliance-remediate" in commit.message


# ---------------------------------------------------------------- the command, on real files

def _write(path: Path, lines: list[str], mtime: datetime | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (ep(mtime), ep(mtime)))


def _soc_dir(root: Path) -> Path:
    d = root / "remote dir"  # a space: the command quotes its paths
    ce = d / "dong-dang-ce"
    # the newest rotated file, plain (delaycompress): holds the window's start
    _write(ce / "syslog.log-20261202", [
        "2026-12-01T18:59:59.000000+00:00 dong-dang-ce sshd[10]: Failed password for root from 198.18.5.1 port 1 ssh2",
        "2026-12-01T19:00:00.000000+00:00 dong-dang-ce sshd[11]: Failed password for root from 198.18.5.2 port 1 ssh2",
        "Dec  1 20:00:00 dong-dang-ce ulogd[5]: provnet-drop-in IN=wan0 SRC=198.18.200.1",
        # offsets: 01:30+07:00 is 18:30Z (before the window), 15:30-04:00 is 19:30Z (inside)
        "2026-12-02T01:30:00.000000+07:00 dong-dang-ce sshd[15]: Failed password for root from 198.18.5.6 port 1 ssh2",
        "2026-12-01T15:30:00.000000-04:00 dong-dang-ce sshd[16]: Failed password for root from 198.18.5.7 port 1 ssh2",
    ], NOW - timedelta(hours=19))
    # older rotations: never read (an older plain one, and the compressed ones)
    _write(ce / "syslog.log-20261201", [
        "2026-12-02T10:00:00.000000+00:00 dong-dang-ce sshd[12]: Failed password for root from 198.18.5.3 port 1 ssh2",
    ], NOW - timedelta(hours=43))
    with gzip.open(ce / "syslog.log-20261130.gz", "wt") as fh:
        fh.write("2026-12-02T10:00:00.000000+00:00 dong-dang-ce sshd[13]: Failed password for x from "
                 "198.18.5.4 port 1 ssh2\n")
    _write(ce / "syslog.log", [
        "2026-12-02T00:00:01.000000+00:00 dong-dang-ce systemd[1]: rotated",
        "2026-12-02T08:00:00.000000+07:00 dong-dang-ce provnet: nftables commit: user=netops ticket=- diff=abc",
        "2026-12-02T05:00:00.000000+00:00 dong-dang-ce sshd[14]: Invalid user bob from 198.18.5.5 port 1",
        # the vendor forms (a site with an IOS router or a FortiGate): one failure each
        "2026-12-02T10:00:00.000000+00:00 dong-dang-ce 341: *Dec  2 10:00:00.123: %SEC_LOGIN-4-LOGIN_FAILED: Login "
        "failed [user: admin] [Source: 198.18.5.12] [localport: 22] [Reason: Login Authentication Failed] at "
        "10:00:00 UTC Wed Dec 2 2026",
        '2026-12-02T10:05:00.000000+00:00 dong-dang-ce date=2026-12-02 time=10:05:00 devname="fw" '
        'logid="0100032002" type="event" subtype="system" level="alert" logdesc="Admin login failed" '
        'srcip=198.18.5.13 user="admin" action="login" status="failed"',
        "2026-12-02T18:58:00.000000+00:00 dong-dang-ce systemd[1]: last line",
    ], NOW - timedelta(minutes=2))
    # a host silent since its last rotation: no syslog.log, only last night's file
    _write(d / "dong-dang-vc" / "syslog.log-20261201", [
        "2026-11-30T22:00:00.000000+00:00 dong-dang-vc baresip[9]: bye",
    ], NOW - timedelta(hours=45))
    # a brute force on dc-fw: more lines than the SOC prints
    _write(d / "dc-fw" / "syslog.log", [
        f"2026-12-02T12:{i // 60:02d}:{i % 60:02d}.000000+00:00 dc-fw sshd[{100 + i}]: Failed password for root "
        f"from 198.18.6.{i % 200 + 1} port 1 ssh2" for i in range(socview.CAPS["auth"] + 50)
    ], NOW - timedelta(minutes=1))
    return d


needs_shell = pytest.mark.skipif(not (shutil.which("awk") and shutil.which("find")), reason="no awk/find here")


def _local(cmd: str) -> tuple[int, str]:
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout


@needs_shell
def test_the_command_reads_the_current_and_newest_rotated_file(tmp_path: Path, lab: model.Model) -> None:
    d = _soc_dir(tmp_path)
    rc, out = _local(socview.command(NOW, directory=str(d), program=NO_PROGRAM))
    assert rc == 0 and out.startswith(f"#alerts-absent\t{NO_PROGRAM}\n#provnet-soc\t1\t")
    assert out.rstrip().endswith("#end")
    assert "198.18.5.1 " not in out  # before the window: filtered on the SOC already
    assert "198.18.5.3" not in out and "198.18.5.4" not in out  # older rotations are not read
    assert "198.18.5.6" not in out and "198.18.5.7" in out  # the SOC reads offsets too
    v = socview.parse(out, NOW, lab, directory=str(d))
    ce = host(v, "dong-dang-ce")
    assert ce.failed_logins == 5
    assert set(ce.sources) == {"198.18.5.2", "198.18.5.5", "198.18.5.7", "198.18.5.12", "198.18.5.13"}
    assert ce.drops == 1
    assert [(c.platform, c.time) for c in ce.commits] == [("nftables", datetime(2026, 12, 2, 1, tzinfo=timezone.utc))]
    assert ce.last_received == NOW - timedelta(minutes=2) and not ce.silent
    assert ce.last_line == datetime(2026, 12, 2, 18, 58, tzinfo=timezone.utc)
    vc = host(v, "dong-dang-vc")
    assert vc.silent and vc.last_received == NOW - timedelta(hours=45)
    fw = host(v, "dc-fw")
    printed = sum(1 for line in out.splitlines() if line.startswith("M\tdc-fw\t"))
    assert printed == socview.CAPS["auth"] and "K\tdc-fw\tauth\t50" in out
    assert fw.failed_logins == socview.CAPS["auth"] + 50 and fw.truncated


@needs_shell
def test_the_soc_filters_as_the_parser_does(tmp_path: Path, lab: model.Model) -> None:
    """Every line of the files, unfiltered, read by the parser alone gives the same view as the SOC's
    awk: one set of patterns and time rules on both sides."""
    d = _soc_dir(tmp_path)
    _, out = _local(socview.command(NOW, directory=str(d), program=NO_PROGRAM))
    hosts = ["dong-dang-ce", "dong-dang-vc"]
    raw = [f"M\t{h}\t{line}" for h in hosts for name in ("syslog.log-20261202", "syslog.log")
           if (d / h / name).exists() for line in (d / h / name).read_text().splitlines()]
    raw += [line for line in out.splitlines() if line.startswith("L\t") or line.startswith("#")]
    a = socview.parse(out, NOW, lab, hosts)
    b = socview.parse("\n".join(raw), NOW, lab, hosts)
    assert a.as_dict() == b.as_dict()


@needs_shell
def test_the_soc_reads_traditional_times_across_new_year(tmp_path: Path, lab: model.Model) -> None:
    jan = datetime(2027, 1, 1, 0, 30, tzinfo=timezone.utc)
    _write(tmp_path / "chi-lang-ce" / "syslog.log", [
        "Dec 25 10:00:00 chi-lang-ce sshd[1]: Invalid user a from 198.18.5.10 port 1",  # last year's: out
        "Dec 31 23:59:00 chi-lang-ce sshd[2]: Invalid user a from 198.18.5.9 port 1",
        "Jan  1 00:10:00 chi-lang-ce sshd[3]: Invalid user a from 198.18.5.11 port 1",
    ], jan)
    rc, out = _local(socview.command(jan, directory=str(tmp_path), program=NO_PROGRAM))
    assert rc == 0 and "198.18.5.10" not in out
    v = socview.parse(out, jan, lab)
    assert set(host(v, "chi-lang-ce").sources) == {"198.18.5.9", "198.18.5.11"}


@needs_shell
def test_a_site_scope_reads_only_its_folders(tmp_path: Path, lab: model.Model) -> None:
    d = _soc_dir(tmp_path)
    cmd = socview.command(NOW, ["dong-dang-vc", "dong-dang-ce"], directory=str(d), program=NO_PROGRAM)
    _, out = _local(cmd)
    assert "\tdc-fw\t" not in out and "L\tdong-dang-vc\t" in out


@needs_shell
def test_a_missing_directory_is_an_error_not_a_crash(tmp_path: Path, lab: model.Model) -> None:
    v = socview.collect(lab, _local, NOW, directory=str(tmp_path / "nowhere"))
    assert "no directory" in v.error and v.sites == []


def test_the_command_is_pure_and_quoted() -> None:
    one = socview.command(NOW, directory="/var/log/remote dir")
    assert one == socview.command(NOW, directory="/var/log/remote dir")
    assert one.startswith("cd '/var/log/remote dir' ")
    assert f"-v since={ep(SINCE)}" in one and f"-v now={ep(NOW)}" in one and "-v year=2026" in one
    assert "TZ=UTC awk" in one and "! -name '*.gz'" in one
    assert socview.command(NOW, ["b", "a"]) == socview.command(NOW, ["a", "b", "a"])
    assert "'./x;reboot'" in socview.command(NOW, ["x;reboot"])
    with pytest.raises(ValueError):
        socview.command(NOW, [])


# ---------------------------------------------------------------- collect: a SOC that fails

def test_an_unreachable_soc_is_an_error_in_the_view(lab: model.Model) -> None:
    def down(cmd: str) -> tuple[int, str]:
        raise ConnectError("198.19.0.11: unreachable over SSH (timed out)")

    v = socview.collect(lab, down, NOW)
    assert "timed out" in v.error and v.sites == []
    assert socview.collect(lab, None, NOW, reason="no route").error == "no route"
    failed = socview.collect(lab, lambda cmd: (2, "awk: line 9: function mktime never defined\n"), NOW)
    assert "exited 2" in failed.error and "mktime" in failed.error
    cut = socview.collect(lab, lambda cmd: (0, RECORDED.replace("#end\n", "")), NOW)
    assert "cut short" in cut.error and cut.sites == []  # no numbers from half an answer
    odd = socview.collect(lab, lambda cmd: (0, "#provnet-soc\t2\t0\n#end\n"), NOW)
    assert "format '2'" in odd.error


def test_collect_runs_one_command(lab: model.Model) -> None:
    seen: list[str] = []

    def runner(cmd: str) -> tuple[int, str]:
        seen.append(cmd)
        return 0, RECORDED

    v = socview.collect(lab, runner, NOW)
    assert seen == [socview.command(NOW)] and v.error == "" and len(v.sites) == 1 + len(lab.sites)


# ---------------------------------------------------------------- the SOC's alerts (provnet-soc alerts --json)

def _rules(alerts: list[socview.Alert] | None) -> list[str]:
    assert alerts is not None
    return [a.rule_name for a in alerts]


def _answer(alerts: Any, rc: int = 0) -> str:
    body = alerts if isinstance(alerts, str) else json.dumps({"since": "2026-12-01T19:00:00Z", "alerts": alerts},
                                                             indent=1)
    return f"#alerts-begin\n{body}\n#alerts-end\t{rc}\n" + LOGS


def test_alerts_go_to_the_sites_of_their_label(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab)
    assert v.alerts_problem == "" and not any("provnet-soc" in n for n in v.notes())
    # by level (critical, high, medium, low), then time
    assert _rules(site(v, "dong-dang").alerts) == ["provnet_ssh_brute_force", "provnet_new_admin_source",
                                                   "provnet_commit_outside_change_window"]
    assert _rules(site(v, "chi-lang").alerts) == ["provnet_unit_keeps_failing", "provnet_time_sync_lost"]
    assert _rules(site(v, "quan-son").alerts) == ["provnet_site_silent"]
    # "dc": the data center's row (site None)
    assert _rules(site(v, None).alerts) == ["provnet_port_scan", "provnet_sip_register_brute_force"]
    assert site(v, "cao-loc").alerts == []  # read, none
    # "unknown": the view's unknown bucket, in the view's list too
    (stray,) = v.unknown_alerts
    assert (stray.site, stray.hosts, stray.sites, stray.level) == ("unknown", ["stray-ntp"], [], "medium")
    assert len(v.alerts or []) == 9 and stray in (v.alerts or [])
    assert [a.level for a in v.alerts or []] == ["critical"] + ["high"] * 5 + ["medium"] * 3
    assert _rules(v.alerts)[1:6] == ["provnet_site_silent", "provnet_new_admin_source", "provnet_unit_keeps_failing",
                                     "provnet_port_scan", "provnet_sip_register_brute_force"]  # high: by time
    assert v.alert_levels == {"critical": 1, "high": 5, "medium": 3, "low": 0}
    brute = (v.alerts or [])[0]
    assert (brute.title, brute.hosts, brute.count, brute.sites) == (
        "SSH brute force - failed logins then a success", ["dong-dang-ce"], 6, ["dong-dang"])
    assert (brute.first_event, brute.last_event) == (datetime(2026, 12, 2, 0, 10, tzinfo=timezone.utc),
                                                     datetime(2026, 12, 2, 0, 11, 10, tzinfo=timezone.utc))
    # the log part is as without the alerts
    assert socview.parse(ABSENT, NOW, lab).as_dict()["sites"][0]["failed_logins"] == \
        v.as_dict()["sites"][0]["failed_logins"]
    assert host(v, "dong-dang-ce").failed_logins == 6 and v.complete and v.error == ""


def test_the_alerts_in_json(lab: model.Model) -> None:
    data = socview.parse(RECORDED, NOW, lab).as_dict()
    assert data["summary"]["alerts"] == 9
    assert data["summary"]["alert_levels"] == {"critical": 1, "high": 5, "medium": 3, "low": 0}
    sites = {s["site"]: s for s in data["sites"]}
    assert (sites["dong-dang"]["alerts"], sites[None]["alerts"], sites["cao-loc"]["alerts"]) == (3, 2, 0)
    assert sites["dong-dang"]["alert_levels"] == {"critical": 1, "high": 1, "medium": 1, "low": 0}
    assert data["unknown_alerts"] == 1
    first = data["alerts"][0]
    assert {k: first[k] for k in ("title", "level", "site", "hosts", "count", "first_event", "last_event")} == {
        "title": "SSH brute force - failed logins then a success", "level": "critical", "site": "dong-dang",
        "hosts": ["dong-dang-ce"], "count": 6, "first_event": "2026-12-02T00:10:00Z",
        "last_event": "2026-12-02T00:11:10Z"}
    assert (first["first_event_local"], first["last_event_local"]) == ("2026-12-02 07:10:00 (giờ VN)",
                                                                       "2026-12-02 07:11:10 (giờ VN)")


def test_a_site_scope_keeps_its_alerts_only(lab: model.Model) -> None:
    v = socview.parse(RECORDED, NOW, lab, hosts=["dong-dang-ce", "dong-dang-vc"])
    assert _rules(v.alerts) == ["provnet_ssh_brute_force", "provnet_new_admin_source",
                                "provnet_commit_outside_change_window"]
    assert v.unknown_alerts == []  # the unknown bucket is a province-wide run's, like unknown folders


def test_an_alert_of_two_sites_is_on_both_rows_and_the_window_holds(lab: model.Model) -> None:
    recorded = json.loads(ALERTS_JSON)["alerts"]
    two = {**recorded[0], "alert_id": "a" * 16, "site": "dong-dang,chi-lang", "level": "low"}
    old = {**recorded[0], "alert_id": "b" * 16, "first_event": "2026-12-01T18:00:00Z",
           "last_event": "2026-12-01T18:59:59Z"}  # ended a second before the window
    gone = {**recorded[0], "alert_id": "c" * 16, "site": "ban-xa"}  # a site the model no longer has
    v = socview.parse(_answer([two, old, gone]), NOW, lab)
    assert [a.alert_id for a in v.alerts or []] == ["c" * 16, "a" * 16]  # high before low
    assert [a.alert_id for a in site(v, "dong-dang").alerts or []] == ["a" * 16]
    assert [a.alert_id for a in site(v, "chi-lang").alerts or []] == ["a" * 16]
    assert [a.alert_id for a in v.unknown_alerts] == ["c" * 16]
    assert v.alert_levels == {"critical": 0, "high": 1, "medium": 0, "low": 1}


def test_without_provnet_soc_the_view_says_so_once(lab: model.Model) -> None:
    v = socview.parse(ABSENT, NOW, lab)
    assert v.alerts is None and v.unknown_alerts == [] and v.alert_levels is None
    assert [n for n in v.notes() if "provnet-soc" in n] == ["SOC chưa cài provnet-soc: không có cảnh báo tương quan."]
    assert all(s.alerts is None for s in v.sites) and v.error == "" and host(v, "dong-dang-ce").failed_logins == 6
    data = v.as_dict()
    assert data["summary"]["alerts"] is None and data["alerts"] is None and data["sites"][0]["alerts"] is None
    md = report.as_markdown(_report(lab, v))
    assert "| Xã Quan Sơn | chưa nhận được — **im lặng** | 0 | 0 | 0 | — |" in md
    assert "- SOC chưa cài provnet-soc: không có cảnh báo tương quan." in md and report.ALERTS_TITLE not in md
    page = report.as_html(_report(lab, v))
    assert "SOC chưa cài provnet-soc" in page and report.ALERTS_TITLE not in page
    # an answer with no alerts part at all (not this command's) is said too
    assert any("provnet-soc alerts" in n for n in socview.parse(LOGS, NOW, lab).notes())


@pytest.mark.parametrize("answer,said", [
    (_answer("{\"since\": \"2026-12-01T19:00:00Z\", \"alerts\": [{\"alert_id\": "), "không phải JSON"),
    (_answer('{"since": "2026-12-01T19:00:00Z"}'), "thiếu danh sách alerts"),
    (_answer("[1, 2]"), "thiếu danh sách alerts"),
    (_answer("provnet-soc alerts: SQLite error: database is locked", rc=2), "thoát với mã 2 (provnet-soc alerts: "
                                                                              "SQLite error: database is locked)"),
    (_answer("", rc=124), "thoát với mã 124"),  # timeout killed it
    # cut: the log part began before the alerts' end line
    ("#alerts-begin\n{\"since\": \"2026-12-01T19:00:00Z\", \"al\n" + LOGS, "không đầy đủ"),
])
def test_unreadable_alerts_are_a_note_not_an_error(lab: model.Model, answer: str, said: str) -> None:
    v = socview.collect(lab, lambda cmd: (0, answer), NOW)
    assert v.error == "" and v.alerts is None and said in v.alerts_problem
    assert v.alerts_problem.endswith("không có cảnh báo tương quan.") and v.alerts_problem in v.notes()
    assert host(v, "dong-dang-ce").failed_logins == 6 and site(v, "dong-dang").alerts is None  # the logs stand
    report.as_html(_report(lab, v)), report.as_markdown(_report(lab, v))


def test_a_malformed_alert_is_skipped_with_a_note(lab: model.Model) -> None:
    recorded = json.loads(ALERTS_JSON)["alerts"]
    bad = [{k: v for k, v in recorded[0].items() if k != "title"}, {**recorded[1], "first_event": "yesterday"},
           {**recorded[2], "hosts": "dong-dang-ce"}, "not an alert", None]
    v = socview.parse(_answer(bad + recorded[3:]), NOW, lab)
    assert len(v.alerts or []) == len(recorded) - 3
    assert v.alerts_problem == "5 cảnh báo trong kết quả provnet-soc alerts không đọc được (thiếu trường hoặc sai " \
                               "kiểu): đã bỏ qua." and v.alerts_problem in v.notes()


def test_a_failed_soc_has_no_alerts_either(lab: model.Model) -> None:
    cut = socview.collect(lab, lambda cmd: (0, RECORDED.replace("#end\n", "")), NOW)
    assert "cut short" in cut.error and cut.alerts is None and cut.unknown_alerts == []
    assert not any("provnet-soc" in n for n in cut.notes())  # the error says it all


def test_the_command_asks_provnet_soc_when_installed() -> None:
    cmd = socview.command(NOW)
    guarded = ("if [ -x /usr/local/sbin/provnet-soc ]; then echo '#alerts-begin'; timeout 120 "
               "/usr/local/sbin/provnet-soc alerts --since 2026-12-01T19:00:00Z --json 2>&1; "
               "printf '\\n#alerts-end\\t%s\\n' \"$?\"; else printf '#alerts-absent\\t%s\\n' /usr/local/sbin/provnet-soc; fi")
    assert guarded in cmd and cmd.count("provnet-soc alerts") == 1
    assert cmd.index(guarded) < cmd.index("find ")  # before the logs: #end stays the last line
    assert socview.alerts_command(NOW) == guarded and socview.command(NOW) == cmd
    assert "--since 2026-12-02T00:30:00Z" in socview.command(datetime(2026, 12, 3, 7, 30, 0, 999,
                                                                      tzinfo=timezone(timedelta(hours=7))))
    assert "[ -x '/opt/soc tools/provnet-soc' ]" in socview.command(NOW, program="/opt/soc tools/provnet-soc")


# ---------------------------------------------------------------- the alerts, from the SOC's own program

def _node(tmp: Path, *args: str, now: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(NODE), "--store", str(tmp / "store"), "--events",
                           str(tmp / "events"), "--now", now, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def soc_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SOC's store after ingest and detect over tests/fixtures/soc/events/compliance."""
    from provnet.soc import sigma

    tmp = tmp_path_factory.mktemp("soc")
    shutil.copytree(SOC_FIXTURES / "events" / "compliance", tmp / "events")
    (tmp / "compiled.json").write_text(json.dumps(sigma.compile_sqlite()), encoding="utf-8")
    _node(tmp, "ingest", now=DETECTED)
    _node(tmp, "detect", "--compiled", str(tmp / "compiled.json"), "--no-syslog", now=DETECTED)
    return tmp


def _program(tmp: Path, store: Path, body: str | None = None) -> str:
    """A provnet-soc on this machine: the real program over ``store`` (or a shell ``body``)."""
    path = tmp / "bin" / "provnet-soc"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = body or f'exec {sys.executable} {NODE} --store {store / "store"} --events {store / "events"} "$@"'
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def test_the_recorded_alerts_are_the_programs_own(soc_store: Path) -> None:
    out = _node(soc_store, "alerts", "--since", "2026-12-01T19:00:00Z", "--json", now="2026-12-02T19:00:00Z").stdout
    assert out == ALERTS_JSON


@needs_shell
def test_the_command_runs_the_program_beside_the_logs(tmp_path: Path, soc_store: Path, lab: model.Model) -> None:
    d = _soc_dir(tmp_path)
    rc, out = _local(socview.command(NOW, directory=str(d), program=_program(tmp_path, soc_store)))
    assert rc == 0 and out.startswith("#alerts-begin\n{") and out.rstrip().endswith("#end")
    v = socview.parse(out, NOW, lab, directory=str(d))
    assert v.alerts_problem == "" and [a.as_dict() for a in v.alerts or []] == \
        [a.as_dict() for a in socview.parse(RECORDED, NOW, lab).alerts or []]
    assert _rules(site(v, None).alerts) == ["provnet_port_scan", "provnet_sip_register_brute_force"]
    assert host(v, "dong-dang-ce").failed_logins == 5  # the logs as without the program


@needs_shell
def test_a_failing_program_leaves_the_logs_and_the_exit_status(tmp_path: Path, soc_store: Path,
                                                               lab: model.Model) -> None:
    d = _soc_dir(tmp_path)
    failing = _program(tmp_path, soc_store, "echo 'provnet-soc alerts: /var/lib/provnet-soc: Permission denied' >&2"
                                            "; printf '{\"half'; exit 2")
    rc, out = _local(socview.command(NOW, directory=str(d), program=failing))
    assert rc == 0 and "{\"half\n#alerts-end\t2\n" in out
    v = socview.parse(out, NOW, lab, directory=str(d))
    assert v.alerts is None and "thoát với mã 2" in v.alerts_problem and "Permission denied" in v.alerts_problem
    assert host(v, "dong-dang-ce").failed_logins == 5
    absent = socview.parse(_local(socview.command(NOW, directory=str(d), program=NO_PROGRAM))[1], NOW, lab)
    assert absent.alerts is None and absent.alerts_problem == socview.ALERTS_ABSENT


def test_the_alerts_in_the_report(lab: model.Model) -> None:
    rep = _report(lab, socview.parse(RECORDED, NOW, lab))
    page = report.as_html(rep)
    section = page[page.index(report.SOC_TITLE):page.index("Các phát hiện (")]
    assert "<th>Cảnh báo</th></tr>" in section
    dc = section[section.index("<td>Trung tâm tích hợp dữ liệu"):]
    assert dc[:dc.index("</tr>")].endswith('<td class="n">2<br><small>Cao 2</small></td>')
    alerts = section[section.index(f"{report.ALERTS_TITLE} (9)"):section.index("Các lần thay đổi cấu hình")]
    assert "Nghiêm trọng 1, Cao 5, Trung bình 3, Thấp 0." in alerts
    rows = alerts.split("<tr>")[2:]
    assert len(rows) == 9
    assert rows[0] == ('<td><span class="fail">Nghiêm trọng</span></td><td>SSH brute force - failed logins then a '
                       "success<br><small><code>provnet_ssh_brute_force</code></small></td><td>Xã Đồng Đăng</td>"
                       "<td><code>dong-dang-ce</code></td><td>2026-12-02 07:10:00 (giờ VN)</td>"
                       '<td>2026-12-02 07:11:10 (giờ VN)</td><td class="n">6</td></tr>')
    assert "<td>Trung tâm tích hợp dữ liệu</td><td><code>dc-fw</code></td>" in alerts
    assert "<td>Không rõ đơn vị (unknown)</td><td><code>stray-ntp</code></td>" in alerts
    md = report.as_markdown(rep)
    assert f"### {report.ALERTS_TITLE} (9)\n\n- Nghiêm trọng 1, Cao 5, Trung bình 3, Thấp 0\n" in md
    assert ("- **Nghiêm trọng** SSH brute force - failed logins then a success — Xã Đồng Đăng (`dong-dang-ce`): "
            "2026-12-02 07:10:00 (giờ VN) → 2026-12-02 07:11:10 (giờ VN), 6 sự kiện") in md
    assert "- **Cao** Port scan - many destination ports dropped from one address — Trung tâm tích hợp dữ liệu " in md
    assert md.index("Nghiêm trọng** SSH") < md.index("**Cao** Site silent") < md.index("**Trung bình** Configuration")
    assert "| Xã Đồng Đăng | 2026-12-03 01:59 (giờ VN) (im lặng: dong-dang-vc) | 6 (" in md
    assert "| 2 | 2 | 3 (Nghiêm trọng 1, Cao 1, Trung bình 1) |" in md
    assert md.index(report.ALERTS_TITLE) < md.index("### Các lần thay đổi cấu hình")


def test_an_alert_is_escaped_in_html(lab: model.Model) -> None:
    hostile = "<script>alert(1)</script> & \"q\""
    (first, *_) = json.loads(ALERTS_JSON)["alerts"]
    evil = {**first, "title": hostile, "rule_name": hostile, "hosts": [hostile], "site": hostile, "level": hostile}
    page = report.as_html(_report(lab, socview.parse(_answer([evil]), NOW, lab)))
    assert "<script>" not in page
    # title, rule, site label, host, level, and the level in the counts line
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;q&quot;") == 6
    assert "Không có cảnh báo nào." in report.as_html(_report(lab, socview.parse(_answer([]), NOW, lab)))


# ---------------------------------------------------------------- the report

def _report(lab: model.Model, view: socview.SocView | None) -> report.Report:
    findings = [Finding("dong-dang-ce", "ssh-001", "pass", site="dong-dang", title="SSH")]
    return report.Report(findings, 7, "2026-12-02T19:00:00Z", "inventory/lab", "all", lab.name,
                         report.site_names(lab), None, [], view)


def test_the_html_section(lab: model.Model) -> None:
    page = report.as_html(_report(lab, socview.parse(RECORDED, NOW, lab)))
    section = page[page.index("Giám sát an toàn thông tin (24 giờ qua)"):page.index("Các phát hiện (")]
    row = section[section.index("<td>Xã Đồng Đăng"):]
    row = row[:row.index("</tr>")]
    assert "2026-12-03 01:59 (giờ VN)" in row and "Im lặng: <code>dong-dang-vc</code>" in row
    assert '<td class="n">6<br><small>198.18.77.10 (3), 198.18.77.9 (2)' in row
    assert row.endswith('<td class="n">2</td><td class="n">2</td>'
                        '<td class="n">3<br><small>Nghiêm trọng 1, Cao 1, Trung bình 1</small></td>')
    quan_son = section[section.index("<td>Xã Quan Sơn"):]
    assert quan_son[:quan_son.index("</tr>")].count("chưa nhận được") == 1 and 'class="fail">Im lặng' in quan_son
    assert "Các lần thay đổi cấu hình trong 24 giờ qua (2)" in section
    assert "user=netops ticket=CHG-2026-1201 diff=0123456789ab" in section and "Hoàn tác tự động" in section
    assert "evil-host" in section  # the unknown folder is named


def test_the_markdown_and_json_sections(lab: model.Model) -> None:
    rep = _report(lab, socview.parse(RECORDED, NOW, lab))
    md = report.as_markdown(rep)
    assert "## Giám sát an toàn thông tin (24 giờ qua)" in md
    assert ("| Đơn vị | Nhật ký cuối cùng tại SOC | Đăng nhập quản trị thất bại | Gói tin bị chặn "
            "| Thay đổi cấu hình | Cảnh báo |\n|---|---|---|---|---|---|\n") in md
    assert "| Xã Quan Sơn | chưa nhận được — **im lặng** | 0 | 0 | 0 | 1 (Cao 1) |" in md
    assert "| Xã Đồng Đăng | 2026-12-03 01:59 (giờ VN) (im lặng: dong-dang-vc) | 6 (198.18.77.10 (3), " in md
    assert "- 2026-12-02 09:15:42 (giờ VN) `dong-dang-ce` (Xã Đồng Đăng) frr: user=netops" in md
    assert md.index("## Giám sát") < md.index("## Các phát hiện")
    data = json.loads(report.as_json_text(rep))["soc"]
    assert data["summary"] == {"sites": 8, "silent_sites": ["huyen-cao-loc", "huyen-chi-lang", "cao-loc", "quan-son",
                                                            "ubnd-tinh"],
                               "failed_logins": 8, "drops": 45, "commits": 2, "alerts": 9,
                               "alert_levels": {"critical": 1, "high": 5, "medium": 3, "low": 0}, "truncated": True}
    dd = next(s for s in data["sites"] if s["site"] == "dong-dang")
    assert dd["name"] == "Xã Đồng Đăng" and dd["silent_hosts"] == ["dong-dang-vc"] and dd["failed_logins"] == 6
    assert data["commits"][0]["ticket"] == "CHG-2026-1201" and data["error"] is None
    assert data["since"] == "2026-12-01T19:00:00Z" and data["until"] == "2026-12-02T19:00:00Z"


def test_an_unreachable_soc_is_shown_in_every_format(lab: model.Model) -> None:
    rep = _report(lab, socview.collect(lab, None, NOW, reason="198.19.0.11: unreachable over SSH (timed out)"))
    page = report.as_html(rep)
    assert ('<p class="bad">Không đọc được nhật ký từ SOC <code>dc-soc</code>: 198.19.0.11: unreachable over SSH '
            "(timed out)</p>") in page
    assert "Nhật ký cuối cùng tại SOC" not in page
    assert "**Không đọc được nhật ký từ SOC `dc-soc`**: 198.19.0.11" in report.as_markdown(rep)
    assert report.as_json(rep)["soc"]["error"].endswith("(timed out)")
    assert report.exit_code(rep.findings) == 0  # the SOC's state is reported, it is no finding


def test_without_the_soc_the_report_is_as_before(lab: model.Model) -> None:
    rep = _report(lab, None)
    assert "soc" not in report.as_json(rep)
    assert "Giám sát" not in report.as_html(rep) and "Giám sát" not in report.as_markdown(rep)


def test_no_drop_line_at_all_says_to_check_ulogd(lab: model.Model) -> None:
    quiet = "\n".join(line for line in RECORDED.splitlines() if "provnet-drop-" not in line and "\tdrop\t" not in line)
    v = socview.parse(quiet, NOW, lab)
    assert any("ulogd2" in n for n in v.notes())
    assert not any("ulogd2" in n for n in socview.parse(RECORDED, NOW, lab).notes())


# ---------------------------------------------------------------- the run: once, beside the devices

RULES = """\
rules:
  - id: ssh-001
    title: {vi: "Cấm đăng nhập SSH bằng root", en: "SSH: root login disabled"}
    clause: "TCVN 11930:2017 cấp độ 3 — Yêu cầu kỹ thuật › Bảo đảm an toàn máy chủ › Xác thực"
    applies_to: {platforms: [linux]}
    check: {type: command, command: /usr/sbin/sshd -T, expect: [{regex: '^permitrootlogin no$'}]}
    severity: critical
    remediation: "Converge the base role."
"""


class FakeSSH:
    def __init__(self, name: str, calls: list[tuple[str, str]], answer: str) -> None:
        self.name, self.calls, self.answer = name, calls, answer

    def run(self, command: str, input: str | None = None, timeout: float = 60) -> Result:  # noqa: A002
        self.calls.append((self.name, command))
        if command.startswith("cd /var/log/remote"):
            return Result(0, self.answer, "")
        if command == "hostname":
            return Result(0, self.name + "\n", "")
        return Result(1, "", "")

    def close(self) -> None: ...


@pytest.fixture()
def go(tmp_path: Path, lab: model.Model, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(history, "utc_now", lambda: "2026-12-02T19:00:00Z")  # the night RECORDED is of
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "ssh.yml").write_text(RULES, encoding="utf-8")
    waivers = tmp_path / "waivers.yml"
    waivers.write_text("waivers: []\n", encoding="utf-8")
    ctx = engine.Context(lab, {}, secrets.Masker({}), tmp_path / "engine-backups", tmp_path / "audit.log")
    store = history.open_store(tmp_path / "history.sqlite")
    repo = backups.BackupRepo.open(lab.root, path=tmp_path / "backups")
    calls: list[tuple[str, str]] = []

    def opener(ctx: engine.Context, dev: Any, platform: str) -> tuple[Any, str]:
        raise ConnectError(f"{dev.ansible_host}: unreachable over SSH (test)")

    def shell(ctx: engine.Context, dev: Any) -> FakeSSH:
        return FakeSSH(dev.hostname, calls, "")

    def run(scope: str = "all", soc_shell: Any = None, soc: bool = True) -> crun.RunResult:
        inputs = crun.load_inputs(lab, rules, waivers)
        return crun.run(lab, crun.parse_scope(scope, lab), inputs, workers=4, store=store, repo=repo, ctx=ctx,
                        today=date(2026, 12, 3), opener=opener, shell=shell, soc=soc, soc_shell=soc_shell)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_a_run_reads_the_soc_once(go: Any) -> None:
    calls: list[tuple[str, str]] = []
    opened: list[str] = []

    def soc_shell(ctx: engine.Context, dev: Any) -> FakeSSH:
        opened.append(dev.hostname)
        return FakeSSH(dev.hostname, calls, RECORDED)

    res = go(soc_shell=soc_shell)
    assert opened == ["dc-soc"] and len(calls) == 1
    v = res.report.soc
    assert v is not None and v.error == "" and host(v, "dong-dang-ce").failed_logins == 6
    assert v.now == NOW == history.parse_time(res.started_at)
    assert "Giám sát an toàn thông tin (24 giờ qua)" in report.as_html(res.report)


def test_a_run_whose_soc_is_down_still_reports(go: Any) -> None:
    def soc_shell(ctx: engine.Context, dev: Any) -> FakeSSH:
        raise ConnectError(f"{dev.ansible_host}: unreachable over SSH (timed out)")

    res = go(soc_shell=soc_shell)
    assert res.report.soc is not None and "198.19.0.11: unreachable over SSH (timed out)" in res.report.soc.error
    assert "Không đọc được nhật ký từ SOC" in report.as_html(res.report)


def test_a_site_run_reads_only_its_hosts_and_no_soc_means_none(go: Any) -> None:
    calls: list[tuple[str, str]] = []
    res = go("site chi-lang", soc_shell=lambda ctx, dev: FakeSSH(dev.hostname, calls, RECORDED))
    assert [s.site for s in res.report.soc.sites] == ["chi-lang"]
    assert "./chi-lang-ce ./chi-lang-vc -mindepth 1" in calls[0][1]
    assert go(soc=False).report.soc is None


def test_the_cli_has_no_soc(monkeypatch: pytest.MonkeyPatch, lab: model.Model) -> None:
    from typer.testing import CliRunner

    from provnet.cli import app

    seen: dict[str, Any] = {}

    def fake_run(m: Any, scope: Any, inputs: Any, **kw: Any) -> Any:
        seen.update(kw)
        rep = _report(lab, None)
        return crun.RunResult(1, rep.started_at, list(rep.findings), rep, "0" * 40, 0.1, [])

    monkeypatch.setattr(crun, "run", fake_run)
    result = CliRunner().invoke(app, ["compliance", "run", "-i", "inventory/lab", "--no-soc", "--json"])
    assert result.exit_code == 0, result.output
    assert seen["soc"] is False and "soc" not in json.loads(result.stdout)
    CliRunner().invoke(app, ["compliance", "run", "-i", "inventory/lab", "--json"])
    assert seen["soc"] is True
