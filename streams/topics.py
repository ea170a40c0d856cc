"""Topic names and declarations. Every topic is keyed by ``user_id`` except where noted."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from config.settings import Settings
from streams.faust_types import Channel
from streams.records import CHANNELS, HIGH, PRIORITIES
from streams.stream_buffer import PausingTopic

REQUESTS = "notification-requests"  # public input, JSON
# Requests (and control records) that arrived on a partition their user_id does not hash to
# are re-keyed here first, so that every table write lands on the user's own partition.
REQUESTS_BY_USER = "notification-requests.by-user"
# Low-priority requests (campaigns, digests) wait here for spare CPU, so that a campaign's
# requests never queue in front of a password reset on the intake's partitions.
REQUESTS_LOW = "notification-requests.low"
# Normal-priority requests wait here, so that a burst of them never queues in front of a
# password reset either; urgent producers may write to the high topic, which no burst shares.
REQUESTS_NORMAL = "notification-requests.normal"
REQUESTS_HIGH = "notification-requests.high"
REQUESTS_DLQ = "notification-requests.dlq"  # malformed or schema-invalid requests + reason
# Requests waiting for the end of the user's quiet hours (streams/holds.py).
REQUESTS_HELD = "notification-requests.held"
# Public input, key = template_id, compacted, one partition (tables/held_whole.py says why).
TEMPLATES = "templates"
TEMPLATES_DLQ = "templates.dlq"  # template records that could not be read or compiled + reason
TEMPLATES_PARTITIONS = 1
# Public input (the API's admin routes write it), compacted, one partition, read whole by every
# worker: key = "<key id>:<sha256>", value = the key's entry, a tombstone revokes it.
API_KEYS = "api-keys"
API_KEYS_DLQ = "api-keys.dlq"
API_KEYS_PARTITIONS = 1
PREFERENCES = "user-preferences"
DEVICES = "device-registrations"
CONTACTS = "user-contacts"
SUPPRESSIONS = "user-suppressions"  # addresses never to use again (bounces, complaints)
USER_ATTRIBUTES = "user-attributes"  # what campaign segments filter on
USER_ERASURES = "user-erasures"  # forget a user (streams/erasure.py)
USER_UNSUBSCRIBES = "user-unsubscribes"  # mute one category or channel (streams/erasure.py)
# The control topics that name a user's data: an erasure writes a tombstone to each.
USER_DATA_CONTROL = (PREFERENCES, DEVICES, CONTACTS, SUPPRESSIONS, USER_ATTRIBUTES)
# Mark read, mark all read, archive: applied to the in-app inbox (streams/inbox_actions.py).
INBOX_ACTIONS = "user-inbox-actions"
CONTROL_BY_USER = "user-control.by-user"
CONTROL_DLQ = "user-control.dlq"
DELIVERY_EVENTS = "delivery-events"  # keyed by notification_id
DELIVERY_EVENTS_DLQ = "delivery-events.dlq"  # unreadable delivery events + reason
# Status callbacks to callers (agents/callbacks.py), read by a lane of their own so that a slow
# client endpoint never holds a user's delivery; key = user_id, like every lane (the ledger).
CALLBACKS = "deliveries.callbacks"
# Its key among ``Topics.deliveries`` (what agents.route.lane gives a callback), beside the
# (channel, priority) of every other lane.
CALLBACK_LANE = ("callback", "callback")
DELIVERIES_DLQ = "deliveries.dlq"  # final failures with their whole error history
DLQ_REDRIVE_LOG = "deliveries.dlq.redriven"  # key = "partition:offset" of each redriven record
# Every replay (scripts/replay.py): one "run" record per run (key = replay id), dry runs too,
# and one "record" record per record it re-sent (key = "topic:partition:offset").
REPLAY_AUDIT = "replay.audit"
CAMPAIGNS = "campaigns"  # public input, key = campaign_id, JSON (start or cancel)
# Every campaign record copied to every partition (key = campaign_id): each partition's agent
# scans its own share of the users.
CAMPAIGN_PARTITIONS = "campaigns.partitions"
CAMPAIGNS_DLQ = "campaigns.dlq"  # campaign records that could not be read + reason
# Compacted, read whole by every worker (agents/hot_keys.py): the flagged hot users (key = the
# user key, a tombstone clears) and each partition's delivery rate (key = the partition).
HOT_KEYS = "hot-keys"
HOT_KEY_RATES = "hot-keys.rates"
HOT_KEYS_DLQ = "hot-keys.dlq"  # unreadable records of either + reason
# Each erased user's marker (key = user_id), read whole by every worker (tables/erasures.py).
ERASED_USERS = "erased-users"
ERASED_USERS_PARTITIONS = 1
# What erasures and unsubscribes did (key = user_id; no PII beyond it, addresses masked).
AUDIT_EVENTS = "audit-events"
# Created with cleanup.policy=compact: only each key's latest record matters.
COMPACTED = (HOT_KEYS, HOT_KEY_RATES)

# Every circuit-breaker state change of every worker (key = the breaker's name: a provider).
PROVIDER_CIRCUITS = "provider-circuits"


def retry_topic(delay_seconds: float) -> str:
    return f"deliveries.retry.{tier_label(delay_seconds)}"


def tier_label(seconds: float) -> str:
    """1 -> 1s, 300 -> 5m, 3600 -> 1h, 0.5 -> 500ms."""
    if seconds < 1 or seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def delivery_topic(channel: str, priority: str) -> str:
    return f"deliveries.{channel}.{priority}"


# What a high-priority request may pass through: named in every fetch of the worker's consumer,
# while the caught-up partitions of other topics rest between fetches
# (patches/resting_partitions.py). The public topic and its re-keyed twin are in, since a
# producer may write a password reset there and the intake resolves it there.
URGENT = (
    REQUESTS,
    REQUESTS_BY_USER,
    REQUESTS_HIGH,
    *(delivery_topic(channel, HIGH) for channel in CHANNELS),
)


@dataclass(frozen=True)
class Topics:
    """The app's topic objects. Values are raw bytes: records are (de)serialised by streams/.

    Typed as channels (what agents read and stages send to), so functional tests can put
    in-memory channels in their place."""

    requests: Channel  # consumed: the public topic and its re-keyed twin
    requests_by_user: Channel
    requests_high: Channel  # consumed by its own agent: no burst shares its partitions
    requests_normal: Channel  # consumed by its own agent, behind the normal CPU ceiling
    requests_low: Channel  # consumed by its own agent, behind the low CPU ceiling
    requests_dlq: Channel
    control: Channel
    control_by_user: Channel
    control_dlq: Channel
    # produced: (channel, priority) -> topic, and CALLBACK_LANE -> the callbacks' topic
    deliveries: dict[tuple[str, str], Channel]
    delivery_lanes: dict[str, Channel]  # consumed: priority -> every channel's topic
    callback_lane: Channel  # consumed: the status callbacks' own lane
    deliveries_dlq: Channel
    delivery_events: Channel
    delivery_events_dlq: Channel
    retries: dict[float, Channel]  # delay -> tier topic
    suppressions: Channel  # produced: the control topic, for bounces and complaints
    devices: Channel  # produced: the control topic, to unregister dead tokens
    campaigns: Channel  # consumed: keyed by campaign_id, broadcast to campaign_partitions
    campaign_partitions: Channel
    campaigns_dlq: Channel
    hot_keys: Channel  # produced by the detector; read by every worker outside the group
    hot_key_rates: Channel
    hot_keys_dlq: Channel
    requests_held: Channel  # consumed by the hold agent (agents/holds.py)
    templates: Channel  # consumed: upserts into the templates GlobalTable
    templates_dlq: Channel
    provider_circuits: Channel  # produced: breaker transitions (agents/circuit.py)
    api_keys: Channel  # consumed: into the api_keys GlobalTable (agents/api_keys.py)
    api_keys_dlq: Channel
    # produced: a tombstone on each of them for an erased user
    user_data_control: tuple[Channel, ...]
    erased_users: Channel  # consumed: markers into the erased-users GlobalTable
    audit_events: Channel  # produced: erasures and unsubscribes
    inbox_actions: Channel  # produced by the HTTP API: read, read all, archive


def _topic(
    app: faust.App,
    settings: Settings,
    *names: str,
    buffer: int | None = None,
    partitions: int | None = None,
) -> faust.TopicT:
    # Built directly rather than through ``App.topic``, which (faust-streaming 0.15.3) takes
    # ``maxsize`` and never passes it on: a held lane then kept 52,428 records in memory before
    # Faust paused it, whatever ``lane_buffer_size`` said. Clones (the agent's) copy the size
    # and the class, whose streams pause at their size and never make the shared hand-off wait.
    topic = PausingTopic(
        app,
        topics=list(names),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions or settings.partitions,
        replicas=settings.replication_factor,
        maxsize=buffer,  # None: stream_buffer_maxsize
    )
    return topic


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    return Topics(
        requests=_topic(app, settings, REQUESTS, REQUESTS_BY_USER),
        requests_by_user=_topic(app, settings, REQUESTS_BY_USER),
        # Like a low lane: a campaign's requests wait in Kafka, not in this worker's memory.
        requests_high=_topic(app, settings, REQUESTS_HIGH),
        requests_normal=_topic(app, settings, REQUESTS_NORMAL, buffer=settings.lane_buffer_size),
        requests_low=_topic(app, settings, REQUESTS_LOW, buffer=settings.lane_buffer_size),
        requests_dlq=_topic(app, settings, REQUESTS_DLQ),
        control=_topic(
            app,
            settings,
            PREFERENCES,
            DEVICES,
            CONTACTS,
            SUPPRESSIONS,
            USER_ATTRIBUTES,
            USER_ERASURES,
            USER_UNSUBSCRIBES,
            INBOX_ACTIONS,
            CONTROL_BY_USER,
        ),
        control_by_user=_topic(app, settings, CONTROL_BY_USER),
        control_dlq=_topic(app, settings, CONTROL_DLQ),
        deliveries={
            **{
                (c, p): _topic(app, settings, delivery_topic(c, p))
                for c in CHANNELS
                for p in PRIORITIES
            },
            CALLBACK_LANE: _topic(app, settings, CALLBACKS),
        },
        # A lane sends at most its concurrency at once; records buffered beyond a few fetches
        # only cost memory. At 80 % of this Faust stops fetching the lane's partitions (and
        # nothing else), so a backlog waits in Kafka.
        delivery_lanes={
            p: _topic(
                app,
                settings,
                *(delivery_topic(c, p) for c in CHANNELS),
                buffer=settings.lane_buffer_size,
            )
            for p in PRIORITIES
        },
        callback_lane=_topic(app, settings, CALLBACKS, buffer=settings.lane_buffer_size),
        deliveries_dlq=_topic(app, settings, DELIVERIES_DLQ),
        delivery_events=_topic(app, settings, DELIVERY_EVENTS),
        delivery_events_dlq=_topic(app, settings, DELIVERY_EVENTS_DLQ),
        retries={d: _topic(app, settings, retry_topic(d)) for d in settings.retry_delays()},
        suppressions=_topic(app, settings, SUPPRESSIONS),
        devices=_topic(app, settings, DEVICES),
        campaigns=_topic(app, settings, CAMPAIGNS),
        campaign_partitions=_topic(app, settings, CAMPAIGN_PARTITIONS),
        campaigns_dlq=_topic(app, settings, CAMPAIGNS_DLQ),
        hot_keys=_topic(app, settings, HOT_KEYS),
        hot_key_rates=_topic(app, settings, HOT_KEY_RATES),
        hot_keys_dlq=_topic(app, settings, HOT_KEYS_DLQ),
        # Held records wait in Kafka, not in memory, beyond a lane's worth.
        requests_held=_topic(app, settings, REQUESTS_HELD, buffer=settings.lane_buffer_size),
        templates=_topic(app, settings, TEMPLATES, partitions=TEMPLATES_PARTITIONS),
        templates_dlq=_topic(app, settings, TEMPLATES_DLQ),
        provider_circuits=_topic(app, settings, PROVIDER_CIRCUITS),
        api_keys=_topic(app, settings, API_KEYS, partitions=API_KEYS_PARTITIONS),
        api_keys_dlq=_topic(app, settings, API_KEYS_DLQ),
        user_data_control=tuple(_topic(app, settings, name) for name in USER_DATA_CONTROL),
        erased_users=_topic(app, settings, ERASED_USERS, partitions=ERASED_USERS_PARTITIONS),
        audit_events=_topic(app, settings, AUDIT_EVENTS),
        inbox_actions=_topic(app, settings, INBOX_ACTIONS),
    )
