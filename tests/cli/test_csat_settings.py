"""CSAT_ENABLED and CSAT_MESSAGE: defaults, a blank message, and what stops the bot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_CSAT_MESSAGE, load_settings
from tests.cli.test_config_errors import GOOD
from tests.cli.test_settings_ranges import assert_one_sentence, run


def test_off_by_default_and_a_blank_message_is_the_default() -> None:
    assert load_settings(GOOD, env_file=None).csat_enabled is False
    settings = load_settings({**GOOD, "CSAT_ENABLED": "true", "CSAT_MESSAGE": " "}, env_file=None)
    assert settings.csat_enabled and settings.csat_message == DEFAULT_CSAT_MESSAGE
    custom = load_settings({**GOOD, "CSAT_MESSAGE": " Rate us 1-5 "}, env_file=None)
    assert custom.csat_message == "Rate us 1-5"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"CSAT_MESSAGE": "x" * 1001}, "CSAT_MESSAGE: must be at most 1000 characters"),
        ({"CSAT_ENABLED": "maybe"}, "CSAT_ENABLED: Input should be a valid boolean"),
    ],
)
def test_a_bad_value_stops_the_bot_with_one_sentence(
    overrides: dict[str, str], expected: str, tmp_path: Path
) -> None:
    assert_one_sentence(run("check", overrides, tmp_path), expected)
