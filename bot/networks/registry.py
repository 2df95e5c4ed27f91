"""One descriptor per network: everything outside its adapter module that names it.

Settings (`bot.config`), `python -m bot check`, the Slack labels (`bot.blocks`) and the
webhook routes (`build_networks`) all loop over `NETWORKS`; adding a network is its
adapter module plus one entry here.

This module imports neither `bot.config` nor the adapters (which import `bot.config`),
so that `bot.config` can read it: the adapter is named as `module:Class` and imported
only when `build` is called.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.networks.base import Network


class AdapterClass(Protocol):
    """What `build` needs of an adapter class."""

    name: str

    def from_settings(self, settings: Settings) -> Network: ...


@dataclass(frozen=True)
class NetworkDescriptor:
    """A network as settings, `check`, labels and routes see it.

    `name` is the path of `/webhooks/<name>`, the `network` of its messages and the
    suffix of its `SLACK_CHANNEL_<NAME>` override. `settings` lists every Settings
    field it reads; `secrets` those `check` masks; `required` those that must all be
    set to turn it on; `own` those that belong to it alone, so setting one of them
    without the rest is a half-done configuration (a required setting it borrows from
    another network, such as WhatsApp's META_APP_SECRET, is not among them).
    `channel_labels` names the sub-channels its conversations carry in
    `reply_context["channel"]` (Meta's Messenger and Instagram).
    """

    name: str
    label: str
    adapter: str
    settings: tuple[str, ...]
    secrets: tuple[str, ...]
    required: tuple[str, ...]
    own: tuple[str, ...]
    channel_labels: Mapping[str, str] = field(default_factory=dict)
    # `reply_context` entries that mark a public conversation (a comment, a mention):
    # nothing automatic is sent there (an auto-reply in public is spam).
    public_contexts: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @property
    def channel_setting(self) -> str:
        """The environment name of this network's own inbox channel."""
        return f"SLACK_CHANNEL_{self.name.upper()}"

    @property
    def tone_setting(self) -> str:
        """The environment name of the tone guidance shown on this network's roots."""
        return f"TONE_{self.name.upper()}"

    def is_public(self, reply_context: Mapping[str, object]) -> bool:
        return any(reply_context.get(key) in values for key, values in self.public_contexts.items())

    def adapter_class(self) -> AdapterClass:
        module, _, attribute = self.adapter.partition(":")
        return cast(AdapterClass, getattr(importlib.import_module(module), attribute))

    def build(self, settings: Settings) -> Network:
        return self.adapter_class().from_settings(settings)


NETWORKS: tuple[NetworkDescriptor, ...] = (
    NetworkDescriptor(
        name="telegram",
        label="Telegram",
        adapter="bot.networks.telegram:TelegramNetwork",
        settings=("telegram_bot_token", "telegram_webhook_secret", "telegram_api_url"),
        secrets=("telegram_bot_token", "telegram_webhook_secret"),
        required=("telegram_bot_token", "telegram_webhook_secret"),
        own=("telegram_bot_token", "telegram_webhook_secret"),
    ),
    NetworkDescriptor(
        name="meta",
        label="Facebook / Instagram",
        adapter="bot.networks.meta:MetaNetwork",
        settings=("meta_app_secret", "meta_verify_token", "meta_page_token", "meta_graph_url"),
        secrets=("meta_app_secret", "meta_verify_token", "meta_page_token"),
        required=("meta_app_secret", "meta_verify_token", "meta_page_token"),
        own=("meta_app_secret", "meta_verify_token", "meta_page_token"),
        channel_labels={"messenger": "Messenger", "instagram": "Instagram"},
        public_contexts={
            "channel": frozenset({"facebook_comment", "instagram_comment", "instagram_mention"})
        },
    ),
    NetworkDescriptor(
        name="whatsapp",
        label="WhatsApp",
        adapter="bot.networks.whatsapp:WhatsAppNetwork",
        settings=(
            "meta_app_secret",
            "meta_verify_token",
            "whatsapp_token",
            "whatsapp_phone_number_id",
            "meta_graph_url",
        ),
        secrets=("meta_app_secret", "meta_verify_token", "whatsapp_token"),
        required=(
            "meta_app_secret",
            "meta_verify_token",
            "whatsapp_token",
            "whatsapp_phone_number_id",
        ),
        own=("whatsapp_token", "whatsapp_phone_number_id"),
    ),
    NetworkDescriptor(
        name="x",
        label="X",
        adapter="bot.networks.x:XNetwork",
        settings=("x_consumer_secret", "x_bearer_token", "x_api_url"),
        secrets=("x_consumer_secret", "x_bearer_token"),
        required=("x_consumer_secret", "x_bearer_token"),
        own=("x_consumer_secret", "x_bearer_token"),
        public_contexts={"kind": frozenset({"tweet"})},
    ),
    NetworkDescriptor(
        name="generic",
        label="Webhook",
        adapter="bot.networks.generic:GenericNetwork",
        settings=("generic_webhook_secret", "generic_reply_url"),
        secrets=("generic_webhook_secret",),
        required=("generic_webhook_secret", "generic_reply_url"),
        own=("generic_webhook_secret", "generic_reply_url"),
    ),
)
BY_NAME: Mapping[str, NetworkDescriptor] = {network.name: network for network in NETWORKS}
# Settings a network needs to be on: an empty value means unset.
REQUIRED_SETTINGS: tuple[str, ...] = tuple(
    dict.fromkeys(name for network in NETWORKS for name in network.required)
)
SECRET_SETTINGS: frozenset[str] = frozenset(
    name for network in NETWORKS for name in network.secrets
)


def is_public(network: str, reply_context: Mapping[str, object]) -> bool:
    """Whether everyone sees the answers (a comment, a mention), by the network's rule."""
    descriptor = BY_NAME.get(network)
    return descriptor is not None and descriptor.is_public(reply_context)


def labels() -> dict[str, str]:
    """Network and sub-channel names as Slack shows them."""
    found: dict[str, str] = {}
    for network in NETWORKS:
        found[network.name] = network.label
        found.update(network.channel_labels)
    return found


def own_settings(network: NetworkDescriptor, settings: Settings) -> tuple[str, ...]:
    """The names that make `network` partly configured when set without the rest.

    Its `own` names, less those another network also requires while that network's
    own names are set: META_APP_SECRET counts for Meta only while WhatsApp is unset.
    """
    return tuple(
        name
        for name in network.own
        if not any(
            other is not network
            and name in other.required
            and any(getattr(settings, n) for n in other.own)
            for other in NETWORKS
        )
    )
