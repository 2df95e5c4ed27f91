"""Customers' names from the networks' profile APIs (Messenger, Instagram).

Their webhooks carry only a scoped id; the name is looked up when the dispatcher
relays (never on the webhook path), cached in SQL per customer and looked up again
at most daily (an hour after a failure). A failed lookup leaves the name found
before, or the id: it never holds back a message for more than the lookup's few
seconds, and never fails it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.networks.base import Network, ProfileSource, ProfileUnavailable
from storage.db import Database
from storage.models import Conversation
from storage.profiles import KnownProfile, ProfileRepository

log = logging.getLogger(__name__)

FRESH_FOR = timedelta(days=1)
FAILED_RETRY_AFTER = timedelta(hours=1)


class Profiles:
    def __init__(
        self, db: Database, networks: Mapping[str, Network], clock: Callable[[], datetime]
    ) -> None:
        self._repo = ProfileRepository(db)
        self._networks = networks
        self._clock = clock

    async def name(self, conversation: Conversation) -> None:
        """Show the customer's name and handle on the conversation (its root follows)."""
        network = self._networks.get(conversation.network)
        if not isinstance(network, ProfileSource) or conversation.id is None:
            return
        known = await self._repo.get(conversation.network, conversation.customer_id)
        if known is None or self._stale(known):
            if not await self._look_up(network, conversation):
                return  # a conversation without a profile to look up (a comment thread)
            known = await self._repo.get(conversation.network, conversation.customer_id)
        if known is None or known.name is None:
            return  # never found: the id stays
        shown = (conversation.customer_name, conversation.customer_handle)
        if shown != (known.name, known.handle):
            await self._repo.show(conversation.id, known.name, known.handle)

    def _stale(self, known: KnownProfile) -> bool:
        age = self._clock() - known.looked_up_at
        return age >= (FRESH_FOR if known.name is not None else FAILED_RETRY_AFTER)

    async def _look_up(self, network: ProfileSource, conversation: Conversation) -> bool:
        """Ask the network and record its answer, a failure too; False when the
        conversation has no profile to ask for."""
        now = self._clock()
        try:
            found = await network.profile(conversation.reply_context, conversation.customer_id)
        except ProfileUnavailable as exc:
            log.info("conversation %s: no profile name (%s)", conversation.id, exc)
            await self._repo.save(conversation.network, conversation.customer_id, None, None, now)
            return True
        if found is None:
            return False
        await self._repo.save(
            conversation.network, conversation.customer_id, found.name, found.handle, now
        )
        return True
