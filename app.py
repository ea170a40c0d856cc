"""The Faust application: ``faust -A app worker -l info`` starts a worker.

Everything is built from one Settings object by ``build_app``; the module-level ``app`` is what
the faust command line imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.assignor import PartitionAssignor

import api
import patches
from agents import (
    api_keys,
    campaign_views,
    campaigns,
    circuit,
    control,
    deliver,
    erasure,
    feedback,
    gc_policy,
    health,
    holds,
    hot_keys,
    intake_agents,
    metrics_view,
    operator_page,
    rate_limit_views,
    retry,
    status,
    templating,
)
from agents.cpu_headroom import CpuHeadroom
from agents.inbox_hub import InboxHub
from agents.inbox_owner import close_streams_that_move
from agents.metrics import Metrics
from agents.tracing import Tracing
from agents.views import register_views
from api.body import MAX_BODY_BYTES
from api.context import ApiContext
from config.clock import clock_from
from config.logging import configure_logging
from config.settings import Settings, get_settings
from providers.breaker import BreakerPolicy, Breakers
from providers.rate_limits import ProviderRateLimits
from providers.registry import ProviderRegistry, configured_providers
from streams.changelog_buffer import limit_changelog_buffer
from streams.faust_config import faust_settings
from streams.faust_types import Agent
from streams.quiet_monitor import QuietMonitor
from streams.topics import URGENT, Topics, declare_topics
from tables import Tables, declare_tables
from tables.notify_table import NotifyTable


@dataclass(frozen=True)
class Pipeline:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    providers: ProviderRegistry
    agents: dict[str, Agent]
    metrics: Metrics
    hot_keys: hot_keys.HotKeys | None = None  # None with NOTIFY_HOT_KEY_ENABLED=false
    # The live inbox streams open on this worker (agents/inbox_hub.py); the API serves them.
    inbox_hub: InboxHub | None = None
    # Every send's provider token (providers/rate_limits.py).
    limits: ProviderRateLimits | None = None


def faust_app(settings: Settings, web_middlewares: Sequence[Any] = ()) -> faust.App:
    patches.install(settings, URGENT)
    web_options = {"middlewares": list(web_middlewares), "client_max_size": MAX_BODY_BYTES}
    return faust.App(
        settings.app_id,
        Monitor=QuietMonitor,
        Table=NotifyTable,  # what every app.Table() builds: one read per lookup
        web_application_options=web_options,
        **faust_settings(settings),
    )


def group_members(app: faust.App) -> int:
    """Members of the consumer group at the last assignment: Faust hands every member the
    whole distribution of changelog partitions, keyed by each member's URL."""
    return len(cast(PartitionAssignor, app.assignor).changelog_distribution)


def build_app(
    settings: Settings | None = None,
    topics_for: Callable[[faust.App, Settings], Topics] = declare_topics,
) -> Pipeline:
    """``topics_for`` is swapped only by functional tests, for in-memory channels."""
    settings = settings or get_settings()
    # Every web request passes the API's gate (keys, scopes, request ids, JSON errors).
    api_gate = api.gate(settings)
    app = faust_app(settings, [api_gate.middleware])
    limit_changelog_buffer(app, settings.changelog_buffer_messages)
    topics = topics_for(app, settings)
    tables = declare_tables(app, settings)
    # One breaker per provider, as long-lived as the registry that owns them.
    breakers = Breakers(BreakerPolicy.from_settings(settings)) if settings.breaker_enabled else None
    providers = ProviderRegistry(configured_providers(settings), breakers)
    if breakers is not None:
        circuit.publish_transitions(app, topics, breakers)
    app.service(providers)  # type: ignore[arg-type]  # an instance is accepted and started
    # The group's members as of the last assignment (each member's URL in it): the share of
    # each provider rate a worker keeps to when the shared buckets in Redis are out of reach.
    limits = ProviderRateLimits(settings, live_workers=lambda: group_members(app))
    app.service(limits)  # type: ignore[arg-type]
    # One CPU sampler for every agent that gives way to urgent work.
    headroom = CpuHeadroom(give_way_seconds=settings.give_way_to_urgent_ms / 1000)
    # One declared metrics object, in a registry of this app's own (agents/metrics.py).
    metrics = Metrics(settings.prices_usd)
    # One trace per notification when NOTIFY_TRACING_EXPORTER says so (agents/tracing.py).
    tracing = Tracing(settings)
    app.service(tracing)  # type: ignore[arg-type]  # an instance is accepted and started
    detector = hot_keys.start(app, settings, topics) if settings.hot_key_enabled else None
    # The open live inbox streams, fed by the deliver lanes as in-app messages are added and
    # by the control agent as inbox actions are applied.
    inbox_hub = InboxHub(settings.inbox_stream_queue, metrics.inbox_streams_dropped.inc)
    metrics.watch_inbox_streams(lambda: inbox_hub.open_streams)
    app.service(inbox_hub)  # type: ignore[arg-type]  # an instance is accepted and started
    close_streams_that_move(app, inbox_hub, tables.inbox)
    agents: dict[str, Agent] = {
        **intake_agents.register(
            app, settings, topics, tables, headroom, metrics, tracing, detector
        ),
        "control": control.register(app, settings, topics, tables, metrics, inbox_hub),
        "status": status.register(app, settings, topics, tables, metrics, tracing),
        "templates": templating.register(app, settings, topics, tables),
        "erased_users": erasure.register(app, topics, tables),
        "holds": holds.register(app, settings, topics, clock_from(settings.clock_file)),
        "api_keys": api_keys.register(app, topics, tables),
    }
    lanes = deliver.register(
        app, settings, topics, tables, providers, headroom, metrics, tracing, limits, inbox_hub
    )
    for priority, agent in lanes.items():
        agents[f"deliver_{priority}"] = agent
    agents.update(retry.register(app, settings, topics, tracing))
    agents.update(campaigns.register(app, settings, topics, tables))
    register_views(app, tables)
    health.register_views(app)
    rate_limit_views.register_views(app, limits)
    campaign_views.register_views(app, topics, tables, settings.partitions)
    feedback.register(app, settings, topics)
    metrics_view.register(app, tables, providers, metrics)
    operator_page.register(app, metrics)
    gc_policy.register(app, settings)
    context = ApiContext(app, settings, topics, tables, api_gate.spec, inbox_hub)
    api.register_api(app, context, api_gate)
    return Pipeline(
        app, settings, topics, tables, providers, agents, metrics, detector, inbox_hub, limits
    )


pipeline = build_app()
configure_logging(log_commits=pipeline.settings.log_commits)
app = pipeline.app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
