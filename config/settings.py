"""One settings object, read once from ``NOTIFY_*`` environment variables.

Secrets are ``SecretStr`` so that ``repr()`` and log lines never show them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a worker, a sandbox stack or a script needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_", frozen=True, extra="ignore")

    # --- Kafka -----------------------------------------------------------------------------
    app_id: str = "notify"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # "kafka" for a real cluster; "tansu" switches on the embedded-broker work-arounds only.
    broker_flavor: str = Field(default="kafka", pattern="^(kafka|tansu)$")
    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    session_timeout_seconds: float = 10.0
    heartbeat_interval_seconds: float = 1.0
    # At a rebalance, how long sends already in flight may take to finish before the partitions
    # go (agents/deliver.py); a send still running after it may be sent again by the next owner.
    revoke_drain_seconds: float = Field(default=5.0, ge=0)
    # 20 ms: the largest single throughput setting measured (BROKER.md), well inside the
    # latency budget; every delivery fans into several topics, so batching matters.
    producer_linger_ms: float = 20.0
    # Hand fetched records to the streams inline when they have room (patches/eager_handoff.py).
    eager_handoff: bool = True
    # One INFO line per offset commit (logger ``notify.commits``): where the group stands.
    log_commits: bool = False
    # How long one partition's unread records may hold back fetches for every other partition
    # on the same broker (patches/fetch_backoff.py; aiokafka's fixed default is 100 ms).
    consumer_prefetch_backoff_ms: float = Field(default=5.0, gt=0)
    # Embedded broker only (see patches/tansu/fetch_wait.py): how long an empty fetch may wait.
    tansu_fetch_wait_ms: int = Field(default=50, ge=1)
    fetch_bytes_per_partition: int = Field(default=16 * 1024, ge=4 * 1024)
    stream_buffer_size: int = Field(default=65536, ge=1024)
    # Records one deliver lane holds in memory (its stream queue); at 80 % its partitions pause.
    # Must exceed 20 % of this by one fetch of every lane partition (16 KB each), or the shared
    # hand-off blocks on the full queue and holds up every other lane.
    lane_buffer_size: int = Field(default=8192, ge=1024)
    data_dir: Path = Path(".notify-data")
    store: str = "rocksdb://"  # tables; "memory://" only for functional tests
    web_port: int = 6066
    web_enabled: bool = True

    # --- Resolution ------------------------------------------------------------------------
    dedup_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    rate_limit_per_user: int = Field(default=10, ge=1)
    rate_window_seconds: int = Field(default=3600, ge=1)

    # --- APNs (token-based auth) -----------------------------------------------------------
    apns_host: str = "api.sandbox.push.apple.com"
    apns_port: int = 443
    apns_ca_file: Path | None = None
    apns_key_file: Path | None = None
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_topic: str = "com.example.notify"

    # --- FCM (HTTP v1 through firebase-admin) ----------------------------------------------
    fcm_credentials_file: Path | None = None
    fcm_project_id: str = ""
    # Base URL of the FCM v1 API; only changed to point at a local sandbox.
    fcm_endpoint: str = "https://fcm.googleapis.com"

    # --- Email (SMTP) ----------------------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_start_tls: bool = False
    # Connections kept open per worker; concurrent sends beyond this wait for a free one.
    smtp_pool_size: int = Field(default=4, ge=1)
    # A second relay (same credentials and TLS setting; "" = none). After
    # smtp_failover_threshold consecutive connection failures, timeouts or 4xx replies from the
    # primary, mail goes to the backup for smtp_failover_seconds; then one mail probes the
    # primary and its success moves mail back. 5xx replies are about the recipient: not counted.
    smtp_backup_host: str = ""
    smtp_backup_port: int = 25
    smtp_failover_threshold: int = Field(default=5, ge=1)
    smtp_failover_seconds: float = Field(default=60.0, gt=0)
    email_from: str = "notifications@example.com"
    # One-click unsubscribe endpoint (RFC 8058); empty means a mailto: to email_from only.
    email_unsubscribe_url: str = ""

    # --- SMS (Twilio-compatible REST) ------------------------------------------------------
    sms_base_url: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: SecretStr = SecretStr("")
    sms_from_number: str = "+15550000000"
    # Twilio calls this back with delivery status; the delivery id rides in its query string.
    sms_status_callback_url: str = ""

    # --- Webhooks / in-app -----------------------------------------------------------------
    webhook_signing_secret: SecretStr = SecretStr("")
    webhook_timeout_seconds: float = 5.0
    # Where in-app notifications are posted (the inbox service); per-user webhook URLs come
    # from the user's contacts.
    inapp_url: str = ""

    provider_timeout_seconds: float = 10.0

    # --- Failure handling ------------------------------------------------------------------
    # Waits before each retry, per channel (JSON list in the environment, e.g. "[1,5,30]").
    # From the seeds: push 1 s -> 5 s -> 30 s; e-mail 5 min -> 15 min -> 30 min -> 1 h; SMS and
    # webhooks back off exponentially from 1 s. After the last wait's attempt: dead letter.
    retry_push: tuple[float, ...] = (1.0, 5.0, 30.0)
    retry_email: tuple[float, ...] = (300.0, 900.0, 1800.0, 3600.0)
    retry_sms: tuple[float, ...] = (5.0, 30.0, 300.0)
    retry_webhook: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    retry_in_app: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    # Retries held in memory per tier while they wait; past this a tier stops reading (the
    # records wait in Kafka instead), so an outage cannot exhaust a worker's memory.
    retry_pending_cap: int = Field(default=50_000, ge=1)
    # Bearer token the provider feedback webhook must present ("" accepts any caller).
    feedback_token: SecretStr = SecretStr("")
    inbox_size: int = Field(default=50, ge=1)

    def retry_schedule(self, channel: str) -> tuple[float, ...]:
        return dict(
            push=self.retry_push,
            email=self.retry_email,
            sms=self.retry_sms,
            webhook=self.retry_webhook,
            in_app=self.retry_in_app,
        )[channel]

    def retry_delays(self) -> list[float]:
        """Every distinct wait in any schedule: one retry tier topic each."""
        return sorted(
            {
                d
                for c in ("push", "email", "sms", "webhook", "in_app")
                for d in self.retry_schedule(c)
            }
        )

    # In-flight sends per priority lane: the high lane gets the most so it never waits.
    deliver_concurrency_high: int = Field(default=16, ge=1)
    deliver_concurrency_normal: int = Field(default=8, ge=1)
    deliver_concurrency_low: int = Field(default=4, ge=1)
    # A lane stops taking records while the worker process uses more than this share of a core
    # (0: never), so a saturated worker keeps CPU for the high lane (agents/cpu_headroom.py).
    deliver_cpu_ceiling_normal: float = Field(default=0.0, ge=0)
    deliver_cpu_ceiling_low: float = Field(default=0.75, ge=0)
    # Low-priority requests are resolved by their own agent, behind the same ceiling
    # (agents/intake.py); False resolves them in line with every other request.
    low_requests_wait: bool = True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment the first time they are asked for."""
    return Settings()
