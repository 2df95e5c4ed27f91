"""OUT_OF_HOURS_MESSAGE, TONE_<NETWORK> and RESPONSE_RATE_TARGET as settings."""

from __future__ import annotations

import pytest

from bot.check import settings_table
from bot.config import ConfigError, load_settings


@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "nan", "ninety"])
def test_response_rate_target_must_be_a_share(value: str) -> None:
    with pytest.raises(ConfigError, match="RESPONSE_RATE_TARGET"):
        load_settings({"RESPONSE_RATE_TARGET": value}, env_file=None)


def test_desk_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "RESPONSE_RATE_TARGET": "0.9",
            "OUT_OF_HOURS_MESSAGE": "Back on Monday",
            "TONE_TELEGRAM": " Friendly ",
            "TONE_X": "",
            "TONE_NOSUCHNETWORK": "ignored",
        },
        env_file=None,
    )
    assert settings.response_rate_target == 0.9
    assert settings.out_of_hours_message == "Back on Monday"
    assert settings.tones == {"telegram": "Friendly"}
    assert ("TONE_TELEGRAM", "Friendly") in settings_table(settings)

    unset = load_settings({"RESPONSE_RATE_TARGET": "", "OUT_OF_HOURS_MESSAGE": " "}, env_file=None)
    assert unset.response_rate_target is None and unset.out_of_hours_message is None
    assert unset.tones == {}
