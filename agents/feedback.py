"""Provider feedback in: a SendGrid-style event webhook on the worker's web server.

``POST /feedback/sendgrid/`` takes SendGrid's JSON array of events. The SMTP provider stamps every
mail with ``X-SMTPAPI`` unique args (notification, delivery and user ids), which SendGrid echoes
in each event, so an event maps back to its delivery. Events become ``delivery-events``; hard
bounces and spam reports also become ``user-suppressions`` records, checked at resolve time.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from config.settings import Settings
from config.vocabulary import Channel, EventStatus
from providers.base import ProviderName
from streams.deliveries import DeliveryEvent
from streams.records import Suppression, SuppressionFields, to_json
from streams.topics import Topics

log = logging.getLogger(__name__)

# SendGrid's event names (its vocabulary, not ours) -> our statuses.
STATUS_BY_EVENT = {
    "delivered": EventStatus.DELIVERED,
    "open": EventStatus.OPENED,
    "click": EventStatus.CLICKED,
    "bounce": EventStatus.BOUNCED,
    "dropped": EventStatus.FAILED,
    "spamreport": EventStatus.COMPLAINED,
}


def map_event(
    event: Mapping[str, Any],
) -> tuple[DeliveryEvent | None, Suppression | None]:
    """One SendGrid event -> (delivery event, suppression); (None, None) when it says nothing
    we track (processed, deferred) or cannot be tied to a delivery."""
    status = STATUS_BY_EVENT.get(str(event.get("event")))
    notification_id, user_id = event.get("notification_id"), event.get("user_id")
    if status is None or not isinstance(notification_id, str) or not isinstance(user_id, str):
        return None, None
    reason = event.get("reason") or event.get("type") or event.get("url")
    at = float(event.get("timestamp") or time.time())
    delivery_event = DeliveryEvent(
        notification_id=notification_id,
        user_id=user_id,
        status=status,
        at=at,
        delivery_id=event.get("delivery_id"),
        channel=Channel.EMAIL,
        provider=ProviderName.SMTP,
        provider_message_id=event.get("sg_message_id"),
        reason=str(reason) if reason else None,
    )
    # A "blocked" bounce is the receiving server refusing for now: not about the address.
    hard_bounce = status is EventStatus.BOUNCED and event.get("type", "bounce") == "bounce"
    address = event.get("email")
    if (hard_bounce or status is EventStatus.COMPLAINED) and isinstance(address, str):
        return delivery_event, Suppression(user_id, address, f"{event['event']}: {reason or ''}")
    return delivery_event, None


def _authorised(request: Request, token: str) -> bool:
    if not token:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


def register(app: faust.App, settings: Settings, topics: Topics) -> None:
    token = settings.feedback_token.get_secret_value()

    @app.page("/feedback/sendgrid/")
    class SendgridFeedback(View):
        async def post(self, request: Request) -> Response:
            if not _authorised(request, token):
                return self.error(401, "bad or missing bearer token")
            try:
                payload = orjson.loads(await request.read())
            except orjson.JSONDecodeError as exc:
                return self.error(400, f"malformed JSON: {exc}")
            if not isinstance(payload, list):
                return self.error(400, "expected a JSON array of events")
            recorded = 0
            for item in payload:
                delivery_event, suppression = (
                    map_event(item) if isinstance(item, dict) else (None, None)
                )
                if delivery_event is None:
                    continue
                recorded += 1
                await topics.delivery_events.send(
                    key=delivery_event.notification_id.encode(), value=delivery_event.to_json()
                )
                if suppression is not None:
                    record = SuppressionFields(
                        user_id=suppression.user_id,
                        address=suppression.address,
                        reason=suppression.reason,
                    )
                    await topics.suppressions.send(
                        key=suppression.user_id.encode(), value=to_json(record)
                    )
            # 2xx even for events we ignore: SendGrid retries the whole batch on any error.
            return self.json({"recorded": recorded, "ignored": len(payload) - recorded})
