"""Handoffs between teams (support, sales, ...): validation and the words users see."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.config import Settings
from bot.services.conversations import Conversations
from bot.services.refusal import Refusal
from bot.services.relay import WAKE_TOPIC
from storage.coordination import Coordinator
from storage.core import Unchanged
from storage.models import utcnow
from storage.repo import HandoffRepository, Repository

log = logging.getLogger(__name__)


class Handoffs:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        coordinator: Coordinator,
        conversations: Conversations,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._repo = repo
        self._handoffs = HandoffRepository(repo)
        self._coordinator = coordinator
        self._conversations = conversations
        self._clock = clock

    def team_channel(self, team: str) -> str:
        """The team's channel, or a refusal that says which setting to fill."""
        team = team.lower()
        if team not in self._settings.teams:
            teams = ", ".join(self._settings.teams)
            raise Refusal(f"There is no team called '{team}'. Teams: {teams}.")
        channel = self._settings.team_channels.get(team)
        if not channel:
            raise Refusal(
                f"The {team} team has no channel yet: set SLACK_TEAM_CHANNEL_{team.upper()} "
                "to its channel ID and restart Relaydesk."
            )
        return channel

    async def hand_off(
        self, conversation_id: int, team: str, by_user: str, note: str | None = None
    ) -> str:
        """Hand off and return what to tell the person; raise `Refusal`."""
        self._conversations.check_allowed(by_user)
        team = team.lower()
        channel = self.team_channel(team)
        if await self._repo.conversation(conversation_id) is None:
            raise Refusal(f"There is no conversation #{conversation_id}.")
        result, last = await self._handoffs.hand_off(
            conversation_id,
            team=team,
            channel=channel,
            by_user=by_user,
            note=(note or "").strip() or None,
            now=self._clock(),
        )
        if result.unchanged is Unchanged.SAME_TEAM:
            who = f" by <@{last.by_user}>" if last else ""
            raise Refusal(f"#{conversation_id} is already with {team.title()}{who}.")
        if result.unchanged is Unchanged.IN_FLIGHT:
            assert last is not None
            raise Refusal(
                f"<@{last.by_user}> is handing #{conversation_id} off to "
                f"{last.to_team.title()} right now; nothing changed."
            )
        assert result.ok, result.unchanged  # every reason a handoff can change nothing is worded
        await self._coordinator.publish(WAKE_TOPIC)
        log.info("conversation %s: handed off to %s by %s", conversation_id, team, by_user)
        return f"#{conversation_id} is handed off to {team.title()}."
