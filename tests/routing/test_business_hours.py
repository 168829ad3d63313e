"""Business hours and due times (escalations.sla): parsing, counting across nights, weekends
and daylight-saving changes, and start-up refusing a malformed setting."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from escalations.sla import (
    InvalidBusinessHours,
    business_hours_parse,
    business_time_add,
    business_timezone,
    due_at,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE_HOURS = "mon-fri 09:00-17:00"
OFFICE = business_hours_parse(OFFICE_HOURS)


def _local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_unset_is_always_open() -> None:
    start = datetime(2026, 3, 7, 23, 50, tzinfo=UTC)  # a Saturday night
    assert due_at(start, 15, business_hours="", zone_name="UTC") == start + timedelta(minutes=15)
    assert due_at(start, 0.5, business_hours=None, zone_name="UTC") == start + timedelta(seconds=30)


NIGHTS = "mon-fri 22:00-06:00"
SEVERAL = "mon,wed 09:00-12:00; sat 10:00-14:00"
OVERLAPPING = "mon 09:00-12:00; mon 11:00-13:00"  # 09:00-13:00


@pytest.mark.parametrize(
    ("hours", "start", "minutes", "due"),
    [
        pytest.param(OFFICE_HOURS, (2026, 3, 4, 10, 0), 15, (2026, 3, 4, 10, 15), id="same-day"),
        # 10 minutes on Friday, the other 5 on Monday from 09:00.
        pytest.param(OFFICE_HOURS, (2026, 3, 6, 16, 50), 15, (2026, 3, 9, 9, 5), id="after-hours"),
        pytest.param(OFFICE_HOURS, (2026, 3, 8, 12, 0), 0.5, (2026, 3, 9, 9, 0, 30), id="weekend"),
        pytest.param(
            OFFICE_HOURS, (2026, 3, 9, 13, 0), 480, (2026, 3, 10, 13, 0), id="8h-is-a-day"
        ),
        pytest.param(NIGHTS, (2026, 3, 9, 23, 30), 60, (2026, 3, 10, 0, 30), id="past-midnight"),
        # Saturday 05:00 still belongs to Friday's night.
        pytest.param(NIGHTS, (2026, 3, 14, 5, 0), 30, (2026, 3, 14, 5, 30), id="friday-night"),
        pytest.param(SEVERAL, (2026, 3, 10, 8, 0), 60, (2026, 3, 11, 10, 0), id="day-list"),
        pytest.param(SEVERAL, (2026, 3, 11, 11, 30), 60, (2026, 3, 14, 10, 30), id="clauses"),
        pytest.param(OVERLAPPING, (2026, 3, 9, 9, 0), 240, (2026, 3, 9, 13, 0), id="overlap"),
        pytest.param(OVERLAPPING, (2026, 3, 9, 9, 0), 241, (2026, 3, 16, 9, 1), id="overlap+1"),
    ],
)
def test_due_times_in_berlin(
    hours: str, start: tuple[int, ...], minutes: float, due: tuple[int, ...]
) -> None:
    """Business minutes counted from a Berlin wall-clock start (all in March 2026, before the
    clocks change): across closing time, nights, weekends, day lists and overlapping clauses."""
    opening = business_hours_parse(hours)
    added = business_time_add(_local(BERLIN, *start), minutes, hours=opening, zone=BERLIN)
    assert added == _local(BERLIN, *due)


def test_spring_forward_keeps_wall_clock_hours() -> None:
    """Europe/Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29. Friday 16:00 plus two
    business hours ends Monday 10:00 local, which is 08:00 UTC (it was 15:00 UTC on Friday)."""
    friday = _local(BERLIN, 2026, 3, 27, 16, 0)
    due = business_time_add(friday, 120, hours=OFFICE, zone=BERLIN)
    assert due == _local(BERLIN, 2026, 3, 30, 10, 0)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert friday.astimezone(UTC).hour == 15


def test_a_day_open_round_the_clock_has_23_hours_when_the_clocks_go_forward() -> None:
    """Business time is real time inside opening hours: 24 of them from midnight on the short
    day end at 01:00 local the next day, 24 real hours later (the day itself had 23)."""
    always_open = business_hours_parse("mon-sun 00:00-24:00")
    start = _local(BERLIN, 2026, 3, 29, 0, 0)
    due = business_time_add(start, 24 * 60, hours=always_open, zone=BERLIN)
    assert due - start == timedelta(hours=24)
    assert due == _local(BERLIN, 2026, 3, 30, 1, 0)


def test_fall_back_counts_the_repeated_hour() -> None:
    """New York falls back on Sunday 2026-11-01 at 02:00 EDT to 01:00 EST: an opening of
    00:00-04:00 that night lasts five real hours. Three business hours from midnight end three
    real hours later, at 02:00 EST (01:00 came twice)."""
    night = business_hours_parse("sun 00:00-04:00")
    start = _local(NEW_YORK, 2026, 11, 1, 0, 0)
    due = business_time_add(start, 180, hours=night, zone=NEW_YORK)
    assert due - start == timedelta(hours=3)
    local = due.astimezone(NEW_YORK)
    assert (local.hour, local.utcoffset()) == (2, timedelta(hours=-5))
    # All five hours are business time: 300 minutes end exactly at 04:00 EST.
    end = business_time_add(start, 300, hours=night, zone=NEW_YORK)
    assert end == _local(NEW_YORK, 2026, 11, 1, 4, 0)


def test_a_wrapping_day_range() -> None:
    assert business_hours_parse("fri-mon 09:00-10:00").openings[0].weekdays == frozenset(
        {4, 5, 6, 0}
    )


@pytest.mark.parametrize(
    "text",
    [
        "mon-fri",
        "09:00-17:00",
        "mon-fry 09:00-17:00",
        "mon-fri 9:00-17:00",
        "mon-fri 09:00-25:00",
        "mon-fri 24:00-17:00",
        "mon-fri 09:60-17:00",
        "mon-fri 09:00 17:00",
        "mon-fri 09:00-17:00; x",
        "always",
    ],
)
def test_malformed_hours_are_refused(text: str) -> None:
    with pytest.raises(InvalidBusinessHours):
        business_hours_parse(text)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidBusinessHours):
        business_timezone("Mars/Olympus_Mons")


def test_naive_start_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        business_time_add(datetime(2026, 3, 9, 9, 0), 5, hours=OFFICE, zone=BERLIN)  # noqa: DTZ001


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BUSINESS_HOURS", "weekdays 9-5", "BUSINESS_HOURS"),
        ("BUSINESS_TIMEZONE", "Mars/Olympus_Mons", "BUSINESS_TIMEZONE"),
        ("ASSIGNMENT_MODE", "round-robin", "ASSIGNMENT_MODE"),
        ("SLA_FIRST_RESPONSE_MINUTES", "-1", "SLA_FIRST_RESPONSE_MINUTES"),
        ("OPERATOR_CAPACITY", "-2", "OPERATOR_CAPACITY"),
    ],
)
def test_start_up_refuses_a_bad_setting_with_a_clear_message(
    name: str, value: str, message: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, name: value, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Parley configuration error" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
