"""Create every pipeline topic with the configured partition count (idempotent).

Producers may start before the first worker; without this a broker that auto-creates topics
would create ``notification-requests`` with its own default partition count, and users' records
would not line up with their table shards.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from config.settings import Settings, get_settings
from streams import topics
from streams.records import CHANNELS, PRIORITIES

# Only each key's latest record matters on these (a flag, a partition's rate).
COMPACT = {"cleanup.policy": "compact"}


def topic_names(settings: Settings) -> list[str]:
    return [
        topics.REQUESTS,
        topics.REQUESTS_BY_USER,
        topics.REQUESTS_HIGH,
        topics.REQUESTS_NORMAL,
        topics.REQUESTS_LOW,
        topics.REQUESTS_DLQ,
        topics.PREFERENCES,
        topics.DEVICES,
        topics.CONTACTS,
        topics.SUPPRESSIONS,
        topics.USER_ATTRIBUTES,
        topics.USER_ERASURES,
        topics.USER_UNSUBSCRIBES,
        topics.ERASED_USERS,
        topics.AUDIT_EVENTS,
        topics.INBOX_ACTIONS,
        topics.CONTROL_BY_USER,
        topics.CONTROL_DLQ,
        topics.DELIVERY_EVENTS,
        topics.DELIVERY_EVENTS_DLQ,
        topics.CALLBACKS,
        topics.DELIVERIES_DLQ,
        topics.DLQ_REDRIVE_LOG,
        topics.REPLAY_AUDIT,
        topics.CAMPAIGNS,
        topics.CAMPAIGN_PARTITIONS,
        topics.CAMPAIGNS_DLQ,
        topics.HOT_KEYS,
        topics.HOT_KEY_RATES,
        topics.HOT_KEYS_DLQ,
        topics.REQUESTS_HELD,
        topics.TEMPLATES,
        topics.TEMPLATES_DLQ,
        topics.PROVIDER_CIRCUITS,
        topics.API_KEYS,
        topics.API_KEYS_DLQ,
        *[topics.delivery_topic(c, p) for c in CHANNELS for p in PRIORITIES],
        *[topics.retry_topic(d) for d in settings.retry_delays()],
    ]


def _new_topic(name: str, settings: Settings) -> NewTopic:
    single = {
        topics.TEMPLATES: topics.TEMPLATES_PARTITIONS,
        topics.API_KEYS: topics.API_KEYS_PARTITIONS,
        topics.ERASED_USERS: topics.ERASED_USERS_PARTITIONS,
    }
    if name in single:
        # Read whole by every worker, keyed by what they hold (a template, a key, an erased
        # user): one partition, and compaction keeps the newest of each (on Kafka; the
        # embedded broker accepts the policy and keeps everything, BROKER.md).
        return NewTopic(name, single[name], settings.replication_factor, topic_configs=COMPACT)
    compact = COMPACT if name in topics.COMPACTED else {}
    return NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=compact)


async def create_topics(settings: Settings) -> list[str]:
    """Create what is missing; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topic_names(settings) if name not in existing]
        if missing:
            try:
                await admin.create_topics([_new_topic(name, settings) for name in missing])
            except TopicAlreadyExistsError:
                pass  # another process won the race: fine
        return missing
    finally:
        await admin.close()


if __name__ == "__main__":
    print("created:", asyncio.run(create_topics(get_settings())))
