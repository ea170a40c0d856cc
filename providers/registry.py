"""Opens and closes the provider clients with the worker (a faust/mode Service, never globals)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from mode import Service

from config.settings import Settings
from providers.base import ConfigurationError, OutboundMessage, Provider, SendResult

log = logging.getLogger(__name__)


def configured_providers(settings: Settings) -> dict[str, Provider]:
    """One client per provider whose credentials are present in the settings."""
    from providers.apns import ApnsProvider
    from providers.fcm import FcmProvider
    from providers.sms import SmsProvider
    from providers.smtp import SmtpProvider
    from providers.webhook import WebhookProvider

    providers: dict[str, Provider] = {
        "smtp": SmtpProvider(settings),
        "webhook": WebhookProvider(settings),
    }
    if settings.apns_key_file is not None:
        providers["apns"] = ApnsProvider(settings)
    if settings.fcm_credentials_file is not None:
        providers["fcm"] = FcmProvider(settings)
    if settings.sms_account_sid:
        providers["sms"] = SmsProvider(settings)
    return providers


class ProviderRegistry(Service):
    """Starts every provider when the worker starts; stops them when it stops."""

    def __init__(self, providers: Mapping[str, Provider], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.providers = dict(providers)

    async def on_start(self) -> None:
        for name, provider in self.providers.items():
            await provider.start()
            log.info("provider %s started", name)

    async def on_stop(self) -> None:
        for provider in self.providers.values():
            await provider.stop()

    async def send(self, provider_name: str, message: OutboundMessage) -> SendResult:
        provider = self.providers.get(provider_name)
        if provider is None:
            raise ConfigurationError(provider_name, "not_configured", "no credentials in settings")
        return await provider.send(message)
