"""The smallest useful Faust app: one naive pass-through agent, for the benchmark's baseline.

``faust -A bench.minimal_app worker -l info``, configured through the same ``NOTIFY_*``
variables as the real worker. Its Faust settings copy ``app.faust_app`` wherever they apply
(``app`` itself cannot be imported here: importing it builds the whole pipeline), so that the
pipeline/minimal ratio measures the pipeline's own work, not a difference in configuration.
Keep the two in step. It runs without ``streams.faust_hotpath`` and the quiet monitor on
purpose: it is the naive baseline the issue measures the pipeline against.
"""

from __future__ import annotations

import os

import faust

from config.settings import get_settings

IN_TOPIC = os.environ.get("BENCH_MINIMAL_IN", "bench-minimal-in")
OUT_TOPIC = os.environ.get("BENCH_MINIMAL_OUT", "bench-minimal-out")

settings = get_settings()
app = faust.App(
    settings.app_id,
    broker=[f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")],
    store="memory://",  # no tables: nothing to store
    datadir=str(settings.data_dir),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=settings.heartbeat_interval_seconds,
    producer_linger=settings.producer_linger_ms / 1000.0,
    producer_compression_type="lz4",
    consumer_max_fetch_size=settings.fetch_bytes_per_partition,
    stream_buffer_maxsize=settings.stream_buffer_size,
    web_enabled=settings.web_enabled,
    web_port=settings.web_port,
    web_in_thread=False,
    autodiscover=False,
)

source = app.topic(IN_TOPIC, key_serializer="raw", value_serializer="raw")
sink = app.topic(OUT_TOPIC, key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def pass_through(stream: faust.StreamT) -> None:
    # The naive shape on purpose: one awaited send per event, as most Faust code is written.
    async for value in stream:
        await sink.send(value=value)
