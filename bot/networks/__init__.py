"""The configured networks, by the name used in `/webhooks/<network>`."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.networks.base import Network
from bot.networks.generic import GenericNetwork
from bot.networks.meta import MetaNetwork
from bot.networks.telegram import TelegramNetwork
from bot.networks.whatsapp import WhatsAppNetwork
from bot.networks.x import XNetwork

ADAPTERS: dict[str, Callable[[Settings], Network]] = {
    "telegram": TelegramNetwork.from_settings,
    "meta": MetaNetwork.from_settings,
    "whatsapp": WhatsAppNetwork.from_settings,
    "x": XNetwork.from_settings,
    "generic": GenericNetwork.from_settings,
}


def build_networks(settings: Settings) -> dict[str, Network]:
    """One adapter per network whose settings are complete."""
    return {
        name: ADAPTERS[name](settings) for name in settings.enabled_networks() if name in ADAPTERS
    }
