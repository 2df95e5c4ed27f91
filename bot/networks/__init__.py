"""The configured networks, by the name used in `/webhooks/<network>`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.networks.registry import BY_NAME

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.networks.base import Network


def build_networks(settings: Settings) -> dict[str, Network]:
    """One adapter per network whose settings are complete."""
    return {name: BY_NAME[name].build(settings) for name in settings.enabled_networks()}
