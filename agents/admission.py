"""Admission after the resolve decision: content dedup, the daily cap, quiet hours.

``admit`` is pure; ``Gate`` reads what it needs from the user's tables (only for users who set
quiet hours or a cap does it read the ``timezone`` attribute) and writes what an admitted
notification counts against. Order, each step only for what passed the one before:

- content dedup (template requests): the same user, template and rendered content as one
  admitted inside ``NOTIFY_CONTENT_DEDUP_SECONDS`` is refused (``duplicate_content``), as the
  seed's ``dedup:<user>:<template>:<content hash>`` key does; a re-read of the same record is
  not a duplicate of itself;
- the daily cap, counted in the user's own calendar day (``timezone`` attribute): past it the
  notification is ``capped``, not sent;
- quiet hours, per channel: the channels inside their window are held until the earliest end
  of those windows (agents/holds.py), the others go now.

``security`` notifications and ``high`` priority ones pass the cap and quiet hours (a password
reset or a fraud alert at 3 a.m. is wanted); a notification coming back from its hold was
admitted when it arrived, so only quiet hours apply to it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from config.clock import Clock
from config.settings import Settings
from config.vocabulary import EventStatus, Priority, RejectReason
from streams.campaigns import TIMEZONE_ATTRIBUTE
from streams.holds import Release
from streams.localtime import UTC, local_day, window_end, zone_or_utc
from streams.records import NotificationRequest, Preferences
from tables import Tables, daily_caps, dedup, user_attributes

EXEMPT_CATEGORIES = frozenset({"security"})


@dataclass(frozen=True, slots=True)
class Admission:
    send_now: tuple[str, ...]  # channels to fan out now
    held: tuple[str, ...] = ()  # channels waiting for their quiet window to end
    release_at: float = 0.0
    refused: EventStatus | None = None  # CAPPED, or REJECTED (duplicate content)
    reason: str | None = None
    content_key: str | None = None  # to claim once admitted
    cap_day: str | None = None  # the user's day to count it on, when they have a cap


def is_exempt(request: NotificationRequest) -> bool:
    return request.category in EXEMPT_CATEGORIES or request.priority == Priority.HIGH


def content_key(request: NotificationRequest) -> str:
    """``content:<template_id>:<hash of every rendered part>``, a key in the user's dedup
    buckets that no idempotency key of the same user can be mistaken for in practice."""
    digest = hashlib.blake2s(digest_size=12)
    for channel in sorted(request.content):
        part = request.content[channel]
        for text in (channel, part.title, part.body, part.html or ""):
            digest.update(text.encode())
            digest.update(b"\x00")
    return f"\x00content:{request.template_id}:{digest.hexdigest()}"


def admit(
    request: NotificationRequest,
    channels: tuple[str, ...],
    preferences: Preferences | None,
    tz: ZoneInfo,
    now: float,
    *,
    count_today: int = 0,
    content_claim: str | None = None,
    source: str = "",
    release: Release | None = None,
    content_window: float = 0.0,
) -> Admission:
    """Pure: what happens to a notification the resolve decision accepted on ``channels``."""
    key = content_key(request) if request.template_id and content_window > 0 else None
    cap_day = None
    if release is None:
        if key is not None and content_claim is not None and content_claim != source:
            return Admission(
                (), refused=EventStatus.REJECTED, reason=RejectReason.DUPLICATE_CONTENT
            )
        cap = preferences.daily_cap if preferences else None
        if cap is not None and not is_exempt(request):
            cap_day = local_day(now, tz)
            if count_today >= cap:
                return Admission(
                    (), refused=EventStatus.CAPPED, reason=f"daily cap of {cap} reached"
                )
    quiet = preferences.quiet_hours if preferences else {}
    if not quiet or is_exempt(request):
        return Admission(channels, content_key=key, cap_day=cap_day)
    ends = {c: window_end(now, tz, *quiet[c]) for c in channels if c in quiet}
    held = tuple(c for c, end in ends.items() if end is not None)
    if not held:
        return Admission(channels, content_key=key, cap_day=cap_day)
    release_at = min(end for end in ends.values() if end is not None)
    return Admission(
        tuple(c for c in channels if c not in held),
        held=held,
        release_at=release_at,
        content_key=key,
        cap_day=cap_day,
    )


@dataclass
class Gate:
    settings: Settings
    tables: Tables
    clock: Clock

    def check(
        self,
        request: NotificationRequest,
        channels: tuple[str, ...],
        preferences: Preferences | None,
        source: str,
        release: Release | None,
        now: float,
    ) -> Admission:
        t = self.tables
        window = float(self.settings.content_dedup_seconds)
        tz = UTC
        count = 0
        if preferences is not None and (preferences.quiet_hours or preferences.daily_cap):
            attributes = user_attributes.get(t.user_attributes, request.user_id)
            tz = zone_or_utc(attributes.get(TIMEZONE_ATTRIBUTE))
        local_now = self.clock()
        if preferences is not None and preferences.daily_cap:
            count = daily_caps.count_on(t.daily_caps, request.user_id, local_day(local_now, tz))
        claim = None
        if request.template_id and window > 0 and release is None:
            claim = dedup.claim_of(t.dedup, request.user_id, content_key(request), now)
        return admit(
            request,
            channels,
            preferences,
            tz,
            local_now,
            count_today=count,
            content_claim=claim,
            source=source,
            release=release,
            content_window=window,
        )

    def record(
        self, request: NotificationRequest, admission: Admission, source: str, now: float
    ) -> None:
        """What an admitted notification counts against (never for a release)."""
        if admission.content_key is not None:
            dedup.claim(
                self.tables.dedup,
                request.user_id,
                admission.content_key,
                source,
                now,
                self.settings.content_dedup_seconds,
            )
        if admission.cap_day is not None:
            daily_caps.add_one(self.tables.daily_caps, request.user_id, admission.cap_day)
