"""Every network has one complete descriptor, and everything that names networks reads it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import bot.networks
from bot.blocks.conversation import NETWORK_LABELS
from bot.config import Settings, load_settings
from bot.networks import build_networks
from bot.networks.registry import BY_NAME, NETWORKS, NetworkDescriptor


def adapter_classes() -> dict[str, type]:
    """Every class in bot/networks/* that implements the Network protocol, by `name`."""
    found: dict[str, type] = {}
    for module_info in pkgutil.iter_modules(bot.networks.__path__, "bot.networks."):
        module = importlib.import_module(module_info.name)
        classes: list[tuple[str, Any]] = inspect.getmembers(module, inspect.isclass)
        for _, cls in classes:
            if cls.__module__ != module.__name__:
                continue
            if all(hasattr(cls, a) for a in ("parse", "verify", "send", "from_settings")):
                found[cls.name] = cls
    return found


def test_every_adapter_has_a_descriptor_naming_it() -> None:
    adapters = adapter_classes()
    assert adapters, "no adapter found: the discovery above is broken"
    assert sorted(adapters) == sorted(BY_NAME)
    for name, cls in adapters.items():
        assert BY_NAME[name].adapter_class() is cls


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.name)
def test_each_descriptor_is_complete(network: NetworkDescriptor) -> None:
    fields = set(Settings.model_fields)
    assert network.name.isidentifier() and network.name == network.name.lower()
    assert network.label and all(network.channel_labels.values())
    assert network.settings and set(network.settings) <= fields
    assert set(network.required) <= set(network.settings)
    assert set(network.secrets) <= set(network.settings)
    assert network.own and set(network.own) <= set(network.required)
    assert network.adapter_class().name == network.name
    assert NETWORK_LABELS[network.name] == network.label
    # Its required settings, and nothing else, turn it on.
    only = {name.upper(): f"{name}-value" for name in network.required}
    assert load_settings(only, env_file=None).enabled_networks() == [network.name]
    for missing in network.required:
        partial = {k: v for k, v in only.items() if k != missing.upper()}
        assert network.name not in load_settings(partial, env_file=None).enabled_networks()


def test_a_setting_two_networks_read_is_a_secret_for_both_or_neither() -> None:
    for network in NETWORKS:
        for other in NETWORKS:
            for name in set(network.settings) & set(other.settings):
                assert (name in network.secrets) == (name in other.secrets), name


def test_every_network_gets_a_route_and_its_own_inbox_override() -> None:
    environ = {
        name.upper(): f"{name}-value"
        for network in NETWORKS
        for name in network.required
        if not name.endswith("_url")
    }
    environ["GENERIC_REPLY_URL"] = "http://127.0.0.1:9/replies"
    channels = {network.name: f"C{index:03d}INBOX" for index, network in enumerate(NETWORKS)}
    environ.update({network.channel_setting: channels[network.name] for network in NETWORKS})
    settings = load_settings(environ, env_file=None)

    networks = build_networks(settings)

    assert list(networks) == [network.name for network in NETWORKS]
    for name, adapter in networks.items():
        assert isinstance(adapter, BY_NAME[name].adapter_class())  # type: ignore[arg-type]
        assert settings.inbox_channel(name) == channels[name]
