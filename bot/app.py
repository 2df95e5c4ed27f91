"""Composition root: builds every service from settings, and closes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.config import Settings
from bot.metrics import Metrics
from bot.networks import build_networks
from bot.networks.base import InboundMessage, Network
from bot.networks.x import XNetwork
from bot.routing import Router
from bot.services.conversations import Conversations
from bot.services.corrections import Corrections
from bot.services.csat import Csat
from bot.services.delivery import Dispatcher
from bot.services.escalation import Escalations
from bot.services.handoff import Handoffs
from bot.services.health import Health
from bot.services.listening import Listening
from bot.services.moments import Moments
from bot.services.refs import Lookup
from bot.services.relay import Relay
from bot.services.replies import Replies
from bot.services.saved_replies import SavedReplies
from bot.services.spikes import Spikes
from bot.services.summary import DailySummary
from bot.services.x_search import XSearch
from bot.slack import Slack, make_web_client
from storage.coordination import DEFAULT_PREFIX, Coordinator, make_coordinator
from storage.db import Database
from storage.escalations import EscalationStore
from storage.listening import Mentions
from storage.models import utcnow
from storage.moments import MomentStore
from storage.repo import Repository, Stored
from storage.saved_replies import SavedReplyStore


@dataclass
class Services:
    settings: Settings
    db: Database
    repo: Repository
    coordinator: Coordinator
    slack: Slack
    networks: dict[str, Network]
    relay: Relay
    dispatcher: Dispatcher
    replies: Replies
    corrections: Corrections
    conversations: Conversations
    handoffs: Handoffs
    escalations: Escalations
    lookup: Lookup
    metrics: Metrics
    clock: Callable[[], datetime]
    summary: DailySummary
    health: Health
    saved_replies: SavedReplies
    moments: Moments
    spikes: Spikes
    csat: Csat
    listening: Listening
    x_search: XSearch | None  # polls X while listening is on and X is configured

    async def close(self) -> None:
        await self.relay.close()
        await self.csat.close()
        for network in self.networks.values():
            await network.close()
        await self.coordinator.close()
        await self.db.dispose()


def build_services(
    settings: Settings,
    clock: Callable[[], datetime] = utcnow,
    coordination_prefix: str = DEFAULT_PREFIX,
) -> Services:
    """`coordination_prefix` namespaces Redis keys (tests share one Redis)."""
    db = Database(settings.database_url)
    repo = Repository(db, settings.hours)
    coordinator = make_coordinator(settings.redis_url, prefix=coordination_prefix)
    metrics = Metrics()
    slack = Slack(
        make_web_client(settings.slack_bot_token, settings.slack_api_url), metrics, coordinator
    )
    networks = build_networks(settings)
    csat = Csat(
        settings=settings, db=db, slack=slack, networks=networks, clock=clock, metrics=metrics
    )
    conversations = Conversations(settings, repo, coordinator, csat)

    async def open_mention(messages: list[InboundMessage]) -> list[Stored]:
        return await relay.receive(messages)

    mentions = Mentions(db)
    listening = Listening(
        settings,
        mentions,
        slack,
        coordinator,
        open_mention,
        list(networks),
        clock,
        conversations.check_allowed,
    )
    relay = Relay(
        repo,
        coordinator,
        clock=clock,
        csat=csat,
        route=Router(settings.routing).route if settings.routing else None,
        mentions=listening.receive,
    )
    x = networks.get("x")
    x_search = (
        XSearch(
            x,
            settings.terms,
            listening,
            mentions,
            coordinator,
            settings.listen_x_poll_seconds,
            clock,
        )
        if isinstance(x, XNetwork) and settings.listening
        else None
    )
    dispatcher = Dispatcher(
        settings=settings,
        repo=repo,
        slack=slack,
        networks=networks,
        coordinator=coordinator,
        clock=clock,
        metrics=metrics,
        csat=csat,
    )
    replies = Replies(settings, repo, slack, coordinator, dispatcher.kick)
    escalations = Escalations(
        settings=settings,
        store=EscalationStore(db),
        repo=repo,
        slack=slack,
        coordinator=coordinator,
        clock=clock,
    )
    return Services(
        settings=settings,
        db=db,
        repo=repo,
        coordinator=coordinator,
        slack=slack,
        networks=networks,
        relay=relay,
        dispatcher=dispatcher,
        replies=replies,
        corrections=Corrections(repo, slack, networks),
        conversations=conversations,
        handoffs=Handoffs(settings, repo, coordinator, conversations, clock),
        escalations=escalations,
        lookup=Lookup(repo),
        metrics=metrics,
        clock=clock,
        summary=DailySummary(settings, db, slack, clock),
        health=Health(settings, db, repo, coordinator, clock),
        saved_replies=SavedReplies(settings, SavedReplyStore(db), repo, slack, replies, clock),
        moments=Moments(settings, MomentStore(db), repo, slack, coordinator, clock),
        spikes=Spikes(settings, db, slack, coordinator, escalations.on_call_user, clock),
        csat=csat,
        listening=listening,
        x_search=x_search,
    )
