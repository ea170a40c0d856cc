"""One settings object, read once from ``NOTIFY_*`` environment variables.

Secrets are ``SecretStr`` so that ``repr()`` and log lines never show them.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.vocabulary import Channel, Priority


class BrokerFlavor(StrEnum):
    KAFKA = "kafka"  # a real cluster
    TANSU = "tansu"  # the embedded broker: switches on its work-arounds only (patches/tansu)


class Compression(StrEnum):
    """What the worker's producers compress record batches with (aiokafka's codecs)."""

    LZ4 = "lz4"
    NONE = "none"
    GZIP = "gzip"
    SNAPPY = "snappy"
    ZSTD = "zstd"


class TracingExporter(StrEnum):
    NONE = "none"  # no spans are made
    OTLP = "otlp"  # OTLP over HTTP (protobuf) to NOTIFY_TRACING_OTLP_ENDPOINT


class Settings(BaseSettings):
    """Everything a worker, a sandbox stack or a script needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", frozen=True, extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------
    app_id: str = Field(default="notify", description="consumer group and changelog prefix")
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", description="comma-separated `host:port` list"
    )
    broker_flavor: BrokerFlavor = Field(
        default=BrokerFlavor.KAFKA,
        description="`tansu` installs the embedded-broker patches (README, The embedded "
        "broker), nothing else",
    )
    partitions: int = Field(
        default=8,
        ge=1,
        description="partitions of every topic and table (must match on all topics)",
    )
    standby_replicas: int = Field(
        default=0,
        ge=0,
        description="workers that keep a warm copy of each table partition they do not own, by "
        "reading its changelog: a failover promotes one instead of rebuilding the partition "
        "from the changelog; each costs the group about a quarter more CPU per delivery "
        "(Performance, sixth sitting)",
    )
    replication_factor: int = Field(
        default=1, ge=1, description="replication of the topics created"
    )
    session_timeout_seconds: float = Field(
        default=10.0, description="consumer group session timeout (the embedded broker runs with 2)"
    )
    heartbeat_interval_seconds: float = Field(
        default=1.0, description="consumer group heartbeat (the embedded broker runs with 0.5)"
    )
    stream_processing_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Faust's livelock check logs an ERROR for a partition with records waiting "
        "that its agent took none of for this long, unless a CPU ceiling held it back "
        "(`patches/livelock_holds.py`)",
    )
    revoke_drain_seconds: float = Field(
        default=5.0,
        ge=0,
        description="at a rebalance, how long sends in flight may take to finish before their "
        "partitions go (one still running after it may be sent again by the next owner)",
    )
    commit_every_records: int = Field(
        default=0,
        ge=0,
        description="also commit offsets after this many acked records, from the loop that "
        "hands fetched records to the agents, which hands none over meanwhile (0: commit "
        "only every 2.8 s, from a task of its own; Faust's default is 10,000)",
    )
    producer_linger_ms: float = Field(
        default=20.0,
        description="producer batching wait: the largest single throughput setting measured "
        "(BROKER.md); the delivery ledger's changelog has its own producer, whose wait is "
        "NOTIFY_LEDGER_LINGER_MS",
    )
    ledger_linger_ms: float = Field(
        default=0.0,
        ge=0,
        description="batching wait of the delivery ledger's own changelog producer: a send "
        "whose ledger write is still waiting when its worker dies is sent again by the next owner",
    )
    producer_compression: Compression = Field(
        default=Compression.LZ4,
        description="record batch compression of every topic the worker writes",
    )
    eager_handoff: bool = Field(
        default=True,
        description="hand fetched records to the streams inline when they have room "
        "(`patches/eager_handoff.py`)",
    )
    log_commits: bool = Field(
        default=False, description="one INFO line per offset commit (logger `notify.commits`)"
    )
    tracing_exporter: TracingExporter = Field(
        default=TracingExporter.NONE,
        description="`otlp`: one trace per notification (intake, each send, the status fold) "
        "exported over OTLP/HTTP (agents/tracing.py); `none`: no spans",
    )
    tracing_otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318/v1/traces",
        description="the OTLP/HTTP traces endpoint (a collector's)",
    )
    tracing_sample_ratio: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="share of new traces kept; a request carrying a `traceparent` keeps its "
        "producer's decision",
    )
    consumer_prefetch_backoff_ms: float = Field(
        default=5.0,
        gt=0,
        description="how long one partition's unread records may hold back fetching the others "
        "(`patches/fetch_backoff.py`; aiokafka's fixed default is 100)",
    )
    fetch_rest_ms: float = Field(
        default=300.0,
        ge=0,
        description="how long a caught-up partition of a non-urgent topic stays out of the "
        "consumer's fetches, so that each fetch names the partitions with records and the "
        "high-priority ones (`patches/resting_partitions.py`); 0 names every partition always",
    )
    urgent_fetch: bool = Field(
        default=True,
        description="the urgent topics' partitions are fetched by a fetch loop and broker "
        "connections of their own, never behind a fetch of bulk records "
        "(`patches/urgent_fetch.py`)",
    )
    gc_freeze_when_ready: bool = Field(
        default=True,
        description="once the worker is ready, every object alive then is frozen out of the "
        "garbage collector's full passes, which otherwise paused every agent 150-275 ms "
        "(`agents/gc_policy.py`)",
    )
    gc_young_threshold: int = Field(
        default=50_000,
        ge=700,
        description="allocations between two collections of the garbage collector's youngest "
        "generation (CPython's default is 700; `agents/gc_policy.py`)",
    )
    tansu_fetch_wait_ms: int = Field(
        default=50,
        ge=1,
        description="embedded broker only: how long an empty fetch may wait "
        "(`patches/tansu/fetch_wait.py`)",
    )
    fetch_bytes_per_partition: int = Field(
        default=16 * 1024,
        ge=4 * 1024,
        description="largest fetch per partition: a paused stream still takes up to two of them "
        "per partition beyond its buffer, so this bounds what a held lane holds in memory",
    )
    stream_buffer_size: int = Field(
        default=65536,
        ge=1024,
        description="records every other stream buffers before Faust stops fetching its partitions",
    )
    # Faust stops fetching a stream's partitions once its buffer holds this many, and its one
    # hand-off never waits on the buffer (streams/stream_buffer.py), so a held lane costs this
    # plus what was in flight at the pause, and other streams flow past it.
    lane_buffer_size: int = Field(
        default=4096,
        ge=1024,
        description="records one deliver lane (and the normal, low, held and callback request "
        "streams) buffers before Faust stops fetching its partitions; the fetches in flight "
        "still come in, at most two per partition (README, Performance, eighth sitting)",
    )
    changelog_buffer_messages: int = Field(
        default=4096,
        ge=100,
        description="table changelog writes waiting for the producer before Faust's one "
        "hand-off task waits for them, holding every topic's records (Faust's own limit is 100; "
        "`streams/changelog_buffer.py`)",
    )
    data_dir: Path = Field(default=Path(".notify-data"), description="RocksDB tables")
    store: str = Field(default="rocksdb://", description="table store; `memory://` only for tests")
    web_port: int = Field(default=6066, description="the worker's web views (HTTP)")
    web_enabled: bool = Field(default=True, description="serve the web views")
    api_keys: str = Field(
        default="",
        description="the HTTP API's keys, a JSON list of `{id, sha256, scopes, "
        "rate_per_second?, callback_url?}` (`python -m scripts.api_keys new <id>` makes one); "
        "empty: the API and the web views are open (local runs only)",
    )
    api_rate_per_second: float = Field(
        default=100.0, gt=0, description="requests per second per API key, per worker"
    )

    # --- Resolution ------------------------------------------------------------------------
    dedup_ttl_seconds: int = Field(
        default=24 * 3600, ge=1, description="idempotency window and delivery-ledger window"
    )
    rate_limit_per_user: int = Field(
        default=10, ge=1, description="notifications per user per window"
    )
    rate_window_seconds: int = Field(default=3600, ge=1, description="the per-user sliding window")
    content_dedup_seconds: int = Field(
        default=3600,
        ge=0,
        description="a template notification with the same user, template and rendered "
        "content as one inside this window is refused as `duplicate_content` (0: off)",
    )
    clock_file: Path | None = Field(
        default=None,
        description="tests only: quiet hours and daily caps read the time from this file "
        "(epoch seconds, running on from when it was written) instead of the system clock",
    )

    # --- APNs (token-based auth) -----------------------------------------------------------
    apns_host: str = Field(default="api.sandbox.push.apple.com", description="APNs host")
    apns_port: int = Field(default=443, description="APNs port")
    apns_ca_file: Path | None = Field(default=None, description="CA bundle for APNs (a sandbox's)")
    apns_key_file: Path | None = Field(default=None, description="token-auth key (.p8)")
    apns_key_id: str = Field(default="", description="key id of the .p8 key")
    apns_team_id: str = Field(default="", description="Apple team id")
    apns_topic: str = Field(default="com.example.notify", description="the app's bundle id")

    # --- FCM (HTTP v1 through firebase-admin) ----------------------------------------------
    fcm_credentials_file: Path | None = Field(default=None, description="service account JSON")
    fcm_project_id: str = Field(default="", description="Firebase project id")
    fcm_endpoint: str = Field(
        default="https://fcm.googleapis.com",
        description="base URL of the FCM v1 API; only changed to point at a sandbox",
    )

    # --- Email (SMTP) ----------------------------------------------------------------------
    smtp_host: str = Field(default="127.0.0.1", description="SMTP relay host")
    smtp_port: int = Field(default=25, description="SMTP relay port")
    smtp_username: str = Field(default="", description="SMTP login (empty: none)")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password")
    smtp_start_tls: bool = Field(default=False, description="STARTTLS on the relay connection")
    smtp_pool_size: int = Field(
        default=4,
        ge=1,
        description="relay connections kept open per worker; more sends wait for one",
    )
    smtp_backup_host: str = Field(
        default="",
        description="backup relay (same credentials and TLS; empty: none): after "
        "`NOTIFY_SMTP_FAILOVER_THRESHOLD` consecutive connection failures, timeouts or 4xx "
        "replies on the primary, mail goes here for `NOTIFY_SMTP_FAILOVER_SECONDS`, then one "
        "mail probes the primary (5xx replies are about the recipient: not counted)",
    )
    smtp_backup_port: int = Field(default=25, description="backup relay port")
    smtp_failover_threshold: int = Field(
        default=5, ge=1, description="consecutive primary failures before mail moves to the backup"
    )
    smtp_failover_seconds: float = Field(
        default=60.0, gt=0, description="how long mail stays on the backup before a probe"
    )
    email_from: str = Field(default="notifications@example.com", description="From: address")
    public_base_url: str = Field(
        default="",
        description="the API's public address (`https://notify.example.com`): e-mails carry "
        "one-click unsubscribe links under it (RFC 8058); empty: a mailto: to "
        "`NOTIFY_EMAIL_FROM` only",
    )
    unsubscribe_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC-SHA256 key of the unsubscribe links (no link without one)",
    )
    unsubscribe_link_days: float = Field(
        default=60.0, gt=0, description="how long an e-mail's unsubscribe link stays valid"
    )

    # --- SMS (Twilio-compatible REST) ------------------------------------------------------
    sms_base_url: str = Field(default="https://api.twilio.com", description="SMS API base URL")
    sms_account_sid: str = Field(default="", description="account SID")
    sms_auth_token: SecretStr = Field(default=SecretStr(""), description="auth token")
    sms_from_number: str = Field(default="+15550000000", description="sender number")
    sms_status_callback_url: str = Field(
        default="",
        description="delivery-status callback the provider calls (the delivery id rides in "
        "its query string)",
    )

    # --- Webhooks / in-app -----------------------------------------------------------------
    webhook_signing_secret: SecretStr = Field(
        default=SecretStr(""), description="HMAC-SHA256 key for `X-Notify-Signature`"
    )
    webhook_timeout_seconds: float = Field(default=5.0, description="per webhook POST")
    callbacks_enabled: bool = Field(
        default=True,
        description="POST status changes to requests' `callback_url` (false: the URL is kept "
        "in the status row and nothing is posted; no worker reads `deliveries.callbacks`)",
    )
    callback_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="per status-callback POST to a caller's `callback_url` (a slower answer is "
        "a transient failure, retried through the webhook tiers)",
    )
    callback_concurrency: int = Field(
        default=16,
        ge=1,
        description="status callbacks in flight at once, in their own lane (never a slot of "
        "the users' deliveries)",
    )
    inapp_url: str = Field(
        default="",
        description="where in-app notifications are posted (the inbox service); per-user "
        "webhook URLs come from the user's contacts",
    )
    provider_timeout_seconds: float = Field(default=10.0, description="per provider request")

    # --- Failure handling ------------------------------------------------------------------
    # The seeds' schedules: push 1 s -> 5 s -> 30 s; e-mail 5 min -> 15 min -> 30 min -> 1 h;
    # SMS and webhooks back off exponentially. After the last wait's attempt: dead letter.
    retry_push: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0), description="waits before each push retry (JSON list, seconds)"
    )
    retry_email: tuple[float, ...] = Field(
        default=(300.0, 900.0, 1800.0, 3600.0), description="waits before each e-mail retry"
    )
    retry_sms: tuple[float, ...] = Field(
        default=(5.0, 30.0, 300.0), description="waits before each SMS retry"
    )
    retry_webhook: tuple[float, ...] = Field(
        default=(1.0, 2.0, 4.0, 8.0, 16.0), description="waits before each webhook retry"
    )
    retry_in_app: tuple[float, ...] = Field(
        default=(1.0, 2.0, 4.0, 8.0, 16.0), description="waits before each in-app retry"
    )
    retry_pending_cap: int = Field(
        default=50_000,
        ge=1,
        description="retries held in memory per tier; past it the tier stops reading (they "
        "wait in Kafka), so an outage cannot exhaust a worker's memory",
    )
    # Seed 000 §2's breaker: 50 % failures over the last 100 calls open it for 30 s, then 10
    # trial calls decide. Only transient and throttled failures count (providers/breaker.py).
    breaker_enabled: bool = Field(
        default=True,
        description="a circuit breaker per provider: while open, its deliveries wait in a "
        "retry tier without spending an attempt, or take their fallback channel",
    )
    breaker_failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="share of failed calls in the window that opens it"
    )
    breaker_window: int = Field(
        default=100, ge=1, description="calls the failure rate is computed over (sliding)"
    )
    breaker_open_seconds: float = Field(
        default=30.0, gt=0, description="how long an open breaker refuses calls"
    )
    breaker_half_open_calls: int = Field(
        default=10, ge=1, description="trial calls let through once the open time is over"
    )
    max_age_by_category: dict[str, float] = Field(
        default={},
        description="per category, the age (seconds since the request) past which a delivery "
        'is not sent but `expired` (JSON object, e.g. `{"otp": 300}`); a request\'s '
        "`ttl_seconds` applies as well, the shorter wins",
    )
    feedback_token: SecretStr = Field(
        default=SecretStr(""),
        description="bearer token the provider feedback webhook must present (empty: any)",
    )
    inbox_size: int = Field(default=50, ge=1, description="in-app notifications kept per user")
    inbox_stream_queue: int = Field(
        default=64,
        ge=1,
        description="new messages a live inbox stream (`GET /v1/users/{id}/inbox/stream`) may "
        "have waiting for its client; a client further behind is disconnected (it reconnects "
        "with its `Last-Event-ID` and gets what it missed from the inbox)",
    )
    inbox_stream_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="a live inbox stream sends a comment line after this long without a "
        "message, so that proxies keep it open and a gone client is noticed",
    )

    # --- Delivery lanes --------------------------------------------------------------------
    deliver_concurrency_high: int = Field(
        default=16, ge=1, description="in-flight sends, high lane"
    )
    deliver_concurrency_normal: int = Field(
        default=8, ge=1, description="in-flight sends, normal lane"
    )
    deliver_concurrency_low: int = Field(default=4, ge=1, description="in-flight sends, low lane")
    # 0.85 for both normal ceilings: `bench.run storm --storm-via priority-topics` took the
    # high p99 from 4,507 to 377 ms (max 5,335 -> 535) while a 20,000-request normal burst
    # drained at 335-360 deliveries/s instead of 719 (two runs: p99 377 and 327 ms); the low
    # ones stay below, at 0.75.
    deliver_cpu_ceiling_normal: float = Field(
        default=0.85,
        ge=0,
        description="the normal lane takes no new record while the worker uses more than this "
        "share of a core (0: never), so a saturated worker keeps CPU for the high lane",
    )
    deliver_cpu_ceiling_low: float = Field(
        default=0.75, ge=0, description="the same for the low lane, and for low-priority requests"
    )
    give_way_to_urgent_ms: float = Field(
        default=50.0,
        ge=0,
        description="the longest a normal or low lane or request agent waits, before taking "
        "its next record, while high-priority records are being handled, ceiling or not "
        "(`agents/cpu_headroom.py`; 0: never)",
    )
    low_requests_wait: bool = Field(
        default=True,
        description="low-priority requests are resolved by their own agent, behind the low "
        "ceiling (false: in line with every other request)",
    )
    normal_requests_wait: bool = Field(
        default=True,
        description="normal-priority requests on the public topic are passed on to "
        "`notification-requests.normal` and resolved by their own agent, so only high ones "
        "are resolved in line (false: in line with the high ones)",
    )
    normal_requests_cpu_ceiling: float = Field(
        default=0.85,
        ge=0,
        description="the normal-request agent takes no new request while the worker uses more "
        "than this share of a core (0: never), so a burst of them leaves CPU for high ones",
    )

    # --- Metrics ---------------------------------------------------------------------------
    # Seed 000 §5's cost per 1000 notifications: push and in-app $0.002 (compute), e-mail $0.10
    # (SendGrid), SMS $7.50 (Twilio, per segment). Webhooks cost nothing per message.
    prices_usd: dict[str, dict[str, float]] = Field(
        default={
            "push": {"apns": 0.000002, "fcm": 0.000002},
            "email": {"smtp": 0.0001, "smtp-backup": 0.0001},
            "sms": {"sms": 0.0075},
            "in_app": {"webhook": 0.000002},
        },
        description="US dollars per accepted message (SMS: per segment), channel -> provider, "
        "JSON; counted in `notify_delivery_cost_dollars_total`",
    )

    # --- Provider rate limits (providers/rate_limits.py) -----------------------------------
    redis_url: str = Field(
        default="",
        description="Redis holding the provider token buckets every worker shares, e.g. "
        "`redis://127.0.0.1:6379/0`; empty: each worker keeps to its share of each rate "
        "(the rate divided by the workers in the group)",
    )
    # The seeds' provider table (000 §1): APNs ~100K/s per connection x 100 connections, FCM
    # 400K/s over several projects, SendGrid 100K/s, Twilio 100/s per number x 600 numbers.
    rate_apns_per_second: float = Field(
        default=10_000_000, ge=0, description="APNs sends per second, all workers (0: no limit)"
    )
    rate_fcm_per_second: float = Field(
        default=400_000, ge=0, description="FCM sends per second, all workers (0: no limit)"
    )
    rate_smtp_per_second: float = Field(
        default=100_000, ge=0, description="e-mails per second, all workers (0: no limit)"
    )
    rate_sms_per_second: float = Field(
        default=60_000, ge=0, description="SMS per second, all workers (0: no limit)"
    )
    rate_webhook_per_second: float = Field(
        default=10_000,
        ge=0,
        description="webhook and in-app posts per second, all workers (0: no limit; not in the "
        "seeds' table)",
    )
    rate_burst_seconds: float = Field(
        default=1.0,
        gt=0,
        description="bucket capacity in seconds of the rate: how far above it a quiet "
        "provider may burst",
    )
    rate_decrease_factor: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a 429 / QUOTA_EXCEEDED / TooManyRequests multiplies that provider's rate "
        "by this (at most once a second), and its Retry-After shuts the bucket",
    )
    rate_recovery_per_second: float = Field(
        default=0.05,
        gt=0,
        description="share of the configured rate regained per second of sending after a "
        "throttle (additive increase: 0.05 climbs from half to full in 10 s)",
    )
    rate_lease_seconds: float = Field(
        default=0.05,
        ge=0,
        description="each worker takes this many seconds' worth of tokens per Redis call "
        "(at least one), so a call is not paid per send",
    )

    # --- Hot keys (streams/hot_keys.py, agents/hot_keys.py) ----------------------------------
    hot_key_enabled: bool = Field(
        default=True,
        description="watch per-partition delivery rates and salt the deliveries of flagged hot "
        "users over several lane partitions (false: no detector, every delivery keyed by user)",
    )
    hot_key_factor: float = Field(
        default=2.0,
        gt=1.0,
        description="a partition is hot above this multiple of the mean partition rate "
        "(deliveries fanned out per second, over every partition of every worker)",
    )
    hot_key_min_partition_rate: float = Field(
        default=5.0,
        ge=0.0,
        description="deliveries/s below which a partition is never hot, whatever the mean: "
        "when traffic has all but stopped, a trickle on one partition is not a bottleneck",
    )
    hot_key_sustain_seconds: float = Field(
        default=30.0,
        ge=0.0,
        description="how long a partition must stay hot before its heaviest users are flagged",
    )
    hot_key_share: float = Field(
        default=0.25,
        gt=0.0,
        le=1.0,
        description="share of a hot partition's deliveries a user must carry to be flagged",
    )
    hot_key_cooldown_factor: float = Field(
        default=0.25,
        ge=0.0,
        description="a flag clears once the user's rate stays at or below this multiple of the "
        "mean partition rate for `NOTIFY_HOT_KEY_COOLDOWN_SECONDS`",
    )
    hot_key_cooldown_seconds: float = Field(
        default=60.0, ge=0.0, description="how long a flagged user must stay cool to be cleared"
    )
    hot_key_lease_seconds: float = Field(
        default=300.0,
        gt=0.0,
        description="a flag's lifetime unless its detector renews it (at half of it): a flag "
        "whose worker died without clearing it expires on every worker",
    )
    hot_key_window_buckets: int = Field(
        default=6, ge=1, description="time buckets in the detector's sliding window"
    )
    hot_key_bucket_seconds: float = Field(
        default=10.0, gt=0.0, description="length of one bucket of the detector's window"
    )
    hot_key_sketch_capacity: int = Field(
        default=64,
        ge=1,
        description="heavy-hitter counters per partition and bucket (Space-Saving): memory is "
        "bounded by partitions x buckets x this, whatever the number of users",
    )
    hot_key_fanout: int = Field(
        default=8,
        ge=2,
        description="sub-keys `user_id#n` a flagged user's deliveries are spread over (each "
        "on a partition of its own while there are partitions enough)",
    )
    hot_key_evaluate_seconds: float = Field(
        default=2.0,
        gt=0.0,
        description="how often a worker publishes its partitions' rates to `hot-keys.rates` "
        "and applies the rule",
    )

    def retry_schedule(self, channel: str) -> tuple[float, ...]:
        schedules: dict[str, tuple[float, ...]] = {
            Channel.PUSH: self.retry_push,
            Channel.EMAIL: self.retry_email,
            Channel.SMS: self.retry_sms,
            Channel.WEBHOOK: self.retry_webhook,
            Channel.IN_APP: self.retry_in_app,
        }
        return schedules[channel]

    def passed_on_priorities(self) -> frozenset[Priority]:
        """The priorities the intake passes on to their own request topic."""
        waits = {Priority.NORMAL: self.normal_requests_wait, Priority.LOW: self.low_requests_wait}
        return frozenset(p for p, wait in waits.items() if wait)

    def retry_delays(self) -> list[float]:
        """Every distinct wait in any schedule: one retry tier topic each."""
        return sorted({d for c in Channel for d in self.retry_schedule(c)})


def configuration_table() -> str:
    """The README's configuration table, generated from the fields above
    (``python -m config.settings`` prints it; a unit test checks the README holds it)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(secret)" if default.get_secret_value() else ""
        elif isinstance(default, tuple):
            shown = f"`{list(default)}`"
        elif isinstance(default, dict):
            shown = f"`{json.dumps(default)}`"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        elif default is None or default == "":
            shown = ""
        else:
            shown = f"`{default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows) + "\n"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment the first time they are asked for."""
    return Settings()


if __name__ == "__main__":
    print(configuration_table(), end="")
