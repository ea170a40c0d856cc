"""The user's own clock: IANA time zones (``tzdata`` from PyPI, so a slim container without
/usr/share/zoneinfo has them too), quiet windows and the user's calendar day.

A quiet window is ``[start, end)`` in the user's local wall time, minutes after midnight; a
window whose start is after its end wraps midnight (22:00-07:00). Local times are built with
``zoneinfo``, so a window around a DST change opens at the wall-clock time the user set.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.records import InvalidRecord

UTC = ZoneInfo("UTC")
MINUTES_PER_DAY = 24 * 60


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; raises InvalidRecord for a name tzdata does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRecord(
            f"unknown time zone {name[:64]!r} (an IANA name: Europe/Lisbon)"
        ) from None


def zone_or_utc(name: object) -> ZoneInfo:
    """For a stored attribute (checked when it was written); UTC when unset."""
    if not isinstance(name, str) or not name:
        return UTC
    try:
        return zone(name)
    except InvalidRecord:
        return UTC


def local_day(now: float, tz: ZoneInfo) -> str:
    """The user's calendar day at ``now``, ``YYYY-MM-DD``: a daily cap resets at their
    midnight, not the server's."""
    return datetime.fromtimestamp(now, tz).date().isoformat()


def in_window(minute: int, start: int, end: int) -> bool:
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end  # wraps midnight


def window_end(now: float, tz: ZoneInfo, start: int, end: int) -> float | None:
    """When the window holding ``now`` ends (epoch seconds); None when ``now`` is outside."""
    local = datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    if not in_window(minute, start, end):
        return None
    day: date = local.date()
    if start > end and minute >= start:
        day += timedelta(days=1)  # 23:00 in a 22:00-07:00 window: tomorrow's 07:00
    opening = datetime.combine(day, time(end // 60, end % 60), tzinfo=tz)
    return max(opening.timestamp(), now)
