"""Opens and closes the provider clients with the worker (a faust/mode Service, never globals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from mode import Service

from config.settings import Settings
from providers.base import (
    ConfigurationError,
    OutboundMessage,
    Provider,
    ProviderName,
    ReportsBreakers,
    SendResult,
)
from providers.breaker import Breakers, EndpointBreakers, GuardedProvider

log = logging.getLogger(__name__)

# Providers with a breaker per endpoint (providers/breaker.py, EndpointBreakers): each webhook
# subscriber, the in-app gateway and each caller's callback endpoint is a server of its own,
# and one breaker for all would let one dead server hold back every other one's sends.
PER_ENDPOINT = frozenset({ProviderName.WEBHOOK, ProviderName.CALLBACK})


def configured_providers(settings: Settings) -> dict[str, Provider]:
    """One client per provider whose credentials are present in the settings."""
    from providers.apns import ApnsProvider
    from providers.fcm import FcmProvider
    from providers.sms import SmsProvider
    from providers.smtp import SmtpProvider
    from providers.webhook import CallbackProvider, WebhookProvider

    providers: dict[str, Provider] = {
        ProviderName.SMTP: SmtpProvider(settings),
        ProviderName.WEBHOOK: WebhookProvider(settings),
        ProviderName.CALLBACK: CallbackProvider(settings),
    }
    if settings.apns_key_file is not None:
        providers[ProviderName.APNS] = ApnsProvider(settings)
    if settings.fcm_credentials_file is not None:
        providers[ProviderName.FCM] = FcmProvider(settings)
    if settings.sms_account_sid:
        providers[ProviderName.SMS] = SmsProvider(settings)
    return providers


class ProviderRegistry(Service):
    """Starts every provider when the worker starts; stops them when it stops. With
    ``breakers``, each provider is called through its own circuit breaker, which lives as long
    as the registry (providers/breaker.py)."""

    def __init__(
        self, providers: Mapping[str, Provider], breakers: Breakers | None = None, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.breakers = breakers
        self.providers: dict[str, Provider] = dict(providers)
        if breakers is not None:
            self.providers = {
                name: _guarded(name, provider, breakers)
                for name, provider in self.providers.items()
            }
        self._clients_open = False
        self._opening: asyncio.Lock | None = None

    async def on_start(self) -> None:
        await self.open_clients()

    async def open_clients(self) -> None:
        """Idempotent. Faust starts app services only after the agents have begun consuming
        (and after recovery), so the first delivery may arrive before ``on_start``: whichever
        comes first opens the clients, once."""
        if self._clients_open:
            return
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._clients_open:
                return
            for name, provider in self.providers.items():
                await provider.start()
                log.info("provider %s started", name)
            self._clients_open = True

    async def on_stop(self) -> None:
        if self._clients_open:
            for provider in self.providers.values():
                await provider.stop()
            self._clients_open = False

    def breaker_states(self) -> dict[str, str]:
        """Every provider's circuit breakers: name -> state (providers.base.ReportsBreakers)."""
        states: dict[str, str] = {}
        for provider in self.providers.values():
            if isinstance(provider, ReportsBreakers):
                states.update(provider.breaker_states())
        return states

    def check_admits(self, provider_name: str, message: OutboundMessage) -> None:
        """Raises the ``CircuitOpenError`` a send would raise now: the lanes ask before they
        take a provider rate token, so a delivery the breaker refuses spends no token and
        does not wait for one behind the deliveries that will be sent."""
        provider = self.providers.get(provider_name)
        if isinstance(provider, GuardedProvider):
            if (refusal := provider.refusal(message)) is not None:
                raise refusal

    async def send(self, provider_name: str, message: OutboundMessage) -> SendResult:
        await self.open_clients()
        provider = self.providers.get(provider_name)
        if provider is None:
            raise ConfigurationError(provider_name, "not_configured", "no credentials in settings")
        return await provider.send(message)


def _guarded(name: str, provider: Provider, breakers: Breakers) -> GuardedProvider:
    if name in PER_ENDPOINT:
        return GuardedProvider(provider, EndpointBreakers(name, breakers))
    return GuardedProvider(provider, breakers.get(name))
