"""Time sync in `provnet verify`: a chrony that has just started is degraded, not failed."""

from __future__ import annotations

from provnet.verify import facts, timesync

DC_NTP = "198.18.9.10"

#: `chronyc -n tracking` of a chrony that has not selected a source yet (dc-mcu a minute after site.yml)
UNSYNCHRONISED = """\
Reference ID    : 00000000 ()
Stratum         : 0
Ref time (UTC)  : Thu Jan 01 00:00:00 1970
System time     : 0.000000000 seconds fast of NTP time
Last offset     : +0.000000000 seconds
RMS offset      : 0.000000000 seconds
Frequency       : 0.000 ppm slow
Residual freq   : +0.000 ppm
Skew            : 0.000 ppm
Root delay      : 1.000000000 seconds
Root dispersion : 1.000000000 seconds
Update interval : 0.0 seconds
Leap status     : Not synchronised
"""

SYNCHRONISED = """\
Reference ID    : C612090A (198.18.9.10)
Stratum         : 4
Ref time (UTC)  : Tue Mar 04 02:11:09 2025
System time     : 0.000012301 seconds slow of NTP time
Last offset     : -0.000004112 seconds
RMS offset      : 0.000021544 seconds
Frequency       : 3.125 ppm fast
Residual freq   : -0.001 ppm
Skew            : 0.042 ppm
Root delay      : 0.000532100 seconds
Root dispersion : 0.000412313 seconds
Update interval : 64.2 seconds
Leap status     : Normal
"""


def gathered(tracking: str, active_enter_us: int, uptime: str = "12345.67", state: str = "active") -> dict:
    """Facts parsed from one recorded facts command (the chrony sections as the node prints them)."""
    unit = (f"ActiveState={state}\nActiveEnterTimestampMonotonic={active_enter_us}\nUptime={uptime}\n")
    return facts.parse(f"@@@ system\nrunning\n@@@ active\nId=chrony.service\nActiveState={state}\nUnitFileState=enabled\n"
                       f"@@@ chrony\n{tracking}@@@ chrony_unit\n{unit}@@@ links\n[]\n")


def test_the_facts_command_gathers_the_chrony_unit_start() -> None:
    assert "ActiveEnterTimestampMonotonic" in facts.SECTIONS["chrony_unit"]
    got = gathered(UNSYNCHRONISED, 12_285_670_000)
    assert got["chrony"]["Reference ID"] == "00000000 ()"
    assert got["chrony_unit"] == {"ActiveState": "active", "ActiveEnterTimestampMonotonic": "12285670000",
                                  "Uptime": "12345.67"}
    assert round(timesync.chrony_started_ago(got)) == 60


def test_unsynchronised_chrony_started_a_minute_ago_is_degraded() -> None:
    sync = timesync.assess(gathered(UNSYNCHRONISED, 12_285_670_000), DC_NTP)  # uptime 12345.67 s: 60 s ago
    assert sync.severity == timesync.DEGRADED
    assert sync.message == "time not synchronised yet, chrony started 60 s ago"
    assert sync.expected == f"synchronised to {DC_NTP}"


def test_unsynchronised_chrony_past_the_settle_time_fails() -> None:
    started_us = int((12345.67 - timesync.CHRONY_SETTLE_S - 1) * 1e6)
    sync = timesync.assess(gathered(UNSYNCHRONISED, started_us), DC_NTP)
    assert sync.severity == timesync.FAILED
    assert sync.observed == "not synchronised (reference 00000000 ()), chrony started 601 s ago"


def test_unsynchronised_chrony_with_an_unknown_start_fails() -> None:
    for started_us, uptime in ((0, "12345.67"), (12_285_670_000, ""), (99_000_000_000, "12345.67")):
        sync = timesync.assess(gathered(UNSYNCHRONISED, started_us, uptime), DC_NTP)
        assert sync.severity == timesync.FAILED and "start time unknown" in sync.observed


def test_synchronised_to_the_dc_ntp_is_ok_and_to_another_source_fails() -> None:
    assert timesync.assess(gathered(SYNCHRONISED, 1), DC_NTP).severity == timesync.OK
    # the substring test of old took 198.18.9.1 for 198.18.9.10
    other = timesync.assess(gathered(SYNCHRONISED, 12_285_670_000), "198.18.9.1")
    assert (other.severity, other.observed) == (timesync.FAILED, "synchronised to 198.18.9.10")


def test_stopped_chrony_fails_even_just_after_a_start() -> None:
    sync = timesync.assess(gathered("", 12_285_670_000, state="inactive"), DC_NTP)
    assert (sync.severity, sync.observed) == (timesync.FAILED, "chrony inactive")
