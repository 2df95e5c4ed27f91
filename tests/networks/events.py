"""Small readers of parsed events shared by the network tests."""

from __future__ import annotations

from collections.abc import Sequence

from bot.networks.base import DeliveryStatus, InboundEvent, InboundMessage


def message_ids(events: Sequence[InboundEvent]) -> list[str]:
    """The ids of messages and delivery reports, failing on any other kind of event."""
    ids = [e.message_id for e in events if isinstance(e, InboundMessage | DeliveryStatus)]
    assert len(ids) == len(events), events
    return ids
