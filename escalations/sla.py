"""Business hours and SLA due times: pure functions of the settings' text, no models.

`BUSINESS_HOURS` is one or more clauses separated by `;`, each a set of weekdays and a range of
local wall-clock time: `mon-fri 09:00-17:00`, `mon-fri 09:00-17:00; sat 10:00-14:00`,
`mon,wed,fri 08:30-12:00`, `sun-thu 22:00-06:00` (an end at or before the start runs past
midnight into the next day), `mon-sun 00:00-24:00`. Empty or unset: always open. The wall-clock
times are read in `BUSINESS_TIMEZONE` (an IANA zone name, via zoneinfo), so "09:00" follows the
zone through daylight-saving changes.

Due times count *elapsed* time inside opening hours: each open interval is turned into two
instants (local wall time → UTC) and only the real time between them counts. On the night the
clocks go forward a 00:00-24:00 day is 23 hours long, and 8 business hours that start at 16:00
on Friday end at 15:00 on Monday, whatever the offsets in between. A wall time that does not
exist (inside the spring-forward gap) is read with the offset before the change, as zoneinfo
does with `fold=0`; a repeated one (autumn) is its first occurrence.

Settings read this module at start-up (config/settings.py) to refuse a malformed value with a
clear message, so nothing here imports Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLAUSE = re.compile(
    r"^(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2})$"
)
# A due date further away than this is refused rather than searched for day after day: no
# opening hours would leave it unreachable (cannot happen with a valid specification).
_MAX_DAYS_AHEAD = 3660


class InvalidBusinessHours(ValueError):
    """The BUSINESS_HOURS text does not parse; the message says where."""


@dataclass(frozen=True)
class Opening:
    """Open from `start` on each of `weekdays` (0 = Monday) for `minutes` wall-clock minutes
    (past midnight when the range crosses it)."""

    weekdays: frozenset[int]
    start: time
    minutes: int


@dataclass(frozen=True)
class BusinessHours:
    openings: tuple[Opening, ...]  # empty: always open

    @property
    def always(self) -> bool:
        return not self.openings


def _clock(text: str, *, allow_24: bool) -> tuple[int, int]:
    hours, minutes = int(text[:2]), int(text[3:])
    if allow_24 and (hours, minutes) == (24, 0):
        return 24, 0
    if hours > 23 or minutes > 59:
        raise InvalidBusinessHours(
            f"{text!r} is not a time of day (00:00-23:59, or 24:00 as an end)"
        )
    return hours, minutes


def _weekdays(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        for name in (first, last or first):
            if name not in DAYS:
                raise InvalidBusinessHours(f"{name!r} is not a weekday (mon, tue, … sun)")
        a, b = DAYS.index(first), DAYS.index(last or first)
        # "fri-mon" wraps through the weekend.
        span = (b - a) % 7
        found.update((a + step) % 7 for step in range(span + 1))
    return frozenset(found)


@lru_cache(maxsize=32)
def business_hours_parse(text: str | None) -> BusinessHours:
    """Parse BUSINESS_HOURS (see the module's docstring). Raises InvalidBusinessHours."""
    if text is None or not text.strip():
        return BusinessHours(openings=())
    openings = []
    for raw in text.lower().split(";"):
        clause = " ".join(raw.split())
        if not clause:
            continue
        match = _CLAUSE.match(clause)
        if match is None:
            raise InvalidBusinessHours(
                f"{clause!r} should look like 'mon-fri 09:00-17:00' (weekdays, a space, a range)"
            )
        start_h, start_m = _clock(match["start"], allow_24=False)
        end_h, end_m = _clock(match["end"], allow_24=True)
        start_minutes, end_minutes = start_h * 60 + start_m, end_h * 60 + end_m
        length = end_minutes - start_minutes
        if length <= 0:
            length += 24 * 60  # runs past midnight
        openings.append(
            Opening(
                weekdays=_weekdays(match["days"]),
                start=time(start_h, start_m),
                minutes=length,
            )
        )
    if not openings:
        return BusinessHours(openings=())
    return BusinessHours(openings=tuple(openings))


@lru_cache(maxsize=32)
def business_timezone(name: str) -> ZoneInfo:
    """The zone of BUSINESS_TIMEZONE. Raises InvalidBusinessHours for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidBusinessHours(
            f"{name!r} is not a time zone name (e.g. Europe/Berlin)"
        ) from None


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """Local wall time → aware UTC instant (fold=0: see the module's docstring)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _open_intervals(
    day: date, hours: BusinessHours, zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """The open intervals that start on local calendar `day`, as UTC instants, sorted."""
    intervals = []
    for opening in hours.openings:
        if day.weekday() not in opening.weekdays:
            continue
        start_wall = datetime.combine(day, opening.start)
        end_wall = start_wall + timedelta(minutes=opening.minutes)
        start = _instant(start_wall.date(), start_wall.time(), zone)
        end = _instant(end_wall.date(), end_wall.time(), zone)
        if end > start:
            intervals.append((start, end))
    return sorted(intervals)


def business_time_add(
    start: datetime, minutes: float, *, hours: BusinessHours, zone: ZoneInfo
) -> datetime:
    """The instant at which `minutes` of opening hours have passed since `start` (aware). With
    no opening hours configured, simply `start + minutes`. Overlapping clauses count once."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    remaining = timedelta(minutes=minutes)
    if hours.always:
        return start + remaining
    cursor = start.astimezone(UTC)
    # Begin the day before: an interval that started yesterday may still be open (overnight).
    day = cursor.astimezone(zone).date() - timedelta(days=1)
    for _ in range(_MAX_DAYS_AHEAD):
        for begin, end in _open_intervals(day, hours, zone):
            begin = max(begin, cursor)
            if end <= begin:
                continue
            available = end - begin
            if available >= remaining:
                return begin + remaining
            remaining -= available
            cursor = end
        day += timedelta(days=1)
    raise InvalidBusinessHours("no opening hours within ten years")


def due_at(
    start: datetime, minutes: float, *, business_hours: str | None, zone_name: str
) -> datetime:
    """`start` plus `minutes` of business time under the given settings' text."""
    return business_time_add(
        start,
        minutes,
        hours=business_hours_parse(business_hours),
        zone=business_timezone(zone_name),
    )
