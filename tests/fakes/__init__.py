"""Local HTTP stand-ins for Slack and the social networks (see base.py)."""

from tests.fakes.base import Call, FakeServer
from tests.fakes.graph_api import FakeGraph
from tests.fakes.sink import FakeSink
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.x_api import FakeX

__all__ = ["Call", "FakeGraph", "FakeServer", "FakeSink", "FakeSlack", "FakeTelegram", "FakeX"]
