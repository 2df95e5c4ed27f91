"""The configured networks, by the name used in `/webhooks/<network>`."""

from __future__ import annotations

from bot.config import Settings
from bot.networks.base import Network
from bot.networks.generic import GenericNetwork
from bot.networks.meta import MetaNetwork
from bot.networks.telegram import TelegramNetwork
from bot.networks.whatsapp import WhatsAppNetwork
from bot.networks.x import XNetwork

ADAPTERS: dict[str, type] = {
    "telegram": TelegramNetwork,
    "meta": MetaNetwork,
    "whatsapp": WhatsAppNetwork,
    "x": XNetwork,
    "generic": GenericNetwork,
}


def build_networks(settings: Settings) -> dict[str, Network]:
    """One adapter per network whose settings are complete."""
    return {
        name: ADAPTERS[name].from_settings(settings)
        for name in settings.enabled_networks()
        if name in ADAPTERS
    }
