"""The Faust settings every worker of this project runs with, from the one Settings object.

Shared by the app and by the benchmark's minimal agent, so that the two differ only in what
the pipeline itself does."""

from __future__ import annotations

from typing import Any

from config.settings import Compression, Settings

# A count of acked records no worker reaches: Faust's setting is an int and None is refused.
NEVER = 2**62


def faust_settings(settings: Settings) -> dict[str, Any]:
    return dict(
        broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        stream_processing_timeout=settings.stream_processing_timeout_seconds,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_compression_type=None
        if settings.producer_compression is Compression.NONE
        else str(settings.producer_compression),
        # Per partition. A paused stream still takes up to two of these per partition beyond
        # its buffer (streams/stream_buffer.py), so this bounds what a held lane holds in memory.
        consumer_max_fetch_size=settings.fetch_bytes_per_partition,
        stream_buffer_maxsize=settings.stream_buffer_size,
        # Faust would otherwise hold a rebalance until every record a stream took is acked,
        # retries held for minutes included. Held work is handled per agent instead: lanes
        # finish their sends in flight, retry tiers drop what they hold (agents/deliver.py,
        # agents/retry.py), and the commit guard keeps commits behind unfinished records.
        stream_wait_empty=False,
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        web_in_thread=False,
        autodiscover=False,
        # Faust's drain loop commits inline after every N acks, and hands no record of any
        # topic to an agent until the commit (a producer flush and a broker round trip) is
        # done; the commit task's interval alone bounds what a restart reads again.
        broker_commit_every=settings.commit_every_records or NEVER,
    )
