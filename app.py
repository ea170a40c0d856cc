"""The Faust application: ``faust -A app worker -l info`` starts a worker.

Everything is built from one Settings object by ``build_app``; the module-level ``app`` is what
the faust command line imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import faust

import patches
from agents import (
    campaign_views,
    campaigns,
    circuit,
    control,
    deliver,
    feedback,
    health,
    intake,
    metrics_view,
    retry,
    status,
)
from agents.cpu_headroom import CpuHeadroom
from agents.metrics import Metrics
from agents.views import register_views
from config.logging import configure_logging
from config.settings import Settings, get_settings
from providers.breaker import BreakerPolicy, Breakers
from providers.registry import ProviderRegistry, configured_providers
from streams.faust_config import faust_settings
from streams.faust_types import Agent
from streams.quiet_monitor import QuietMonitor
from streams.topics import Topics, declare_topics
from tables import Tables, declare_tables


@dataclass(frozen=True)
class Pipeline:
    app: faust.App
    settings: Settings
    topics: Topics
    tables: Tables
    providers: ProviderRegistry
    agents: dict[str, Agent]
    metrics: Metrics


def faust_app(settings: Settings) -> faust.App:
    patches.install(settings)
    return faust.App(settings.app_id, Monitor=QuietMonitor, **faust_settings(settings))


def build_app(
    settings: Settings | None = None,
    topics_for: Callable[[faust.App, Settings], Topics] = declare_topics,
) -> Pipeline:
    """``topics_for`` is swapped only by functional tests, for in-memory channels."""
    settings = settings or get_settings()
    app = faust_app(settings)
    topics = topics_for(app, settings)
    tables = declare_tables(app, settings)
    # One breaker per provider, as long-lived as the registry that owns them.
    breakers = Breakers(BreakerPolicy.from_settings(settings)) if settings.breaker_enabled else None
    providers = ProviderRegistry(configured_providers(settings), breakers)
    if breakers is not None:
        circuit.publish_transitions(app, topics, breakers)
    app.service(providers)  # type: ignore[arg-type]  # an instance is accepted and started
    # One CPU sampler for every agent that gives way to urgent work.
    headroom = CpuHeadroom()
    # One declared metrics object, in a registry of this app's own (agents/metrics.py).
    metrics = Metrics(settings.prices_usd)
    agents: dict[str, Agent] = {
        **intake.register(app, settings, topics, tables, headroom, metrics),
        "control": control.register(app, settings, topics, tables, metrics),
        "status": status.register(app, settings, topics, tables, metrics),
    }
    lanes = deliver.register(app, settings, topics, tables, providers, headroom, metrics)
    for priority, agent in lanes.items():
        agents[f"deliver_{priority}"] = agent
    agents.update(retry.register(app, settings, topics))
    agents.update(campaigns.register(app, settings, topics, tables))
    register_views(app, tables)
    health.register_views(app)
    campaign_views.register_views(app, topics, tables, settings.partitions)
    feedback.register(app, settings, topics)
    metrics_view.register(app, tables, providers, metrics)
    return Pipeline(app, settings, topics, tables, providers, agents, metrics)


pipeline = build_app()
configure_logging(log_commits=pipeline.settings.log_commits)
app = pipeline.app


def main() -> None:
    app.main()


if __name__ == "__main__":
    main()
