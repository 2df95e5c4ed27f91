"""Typed settings: the only place that reads the environment.

Settings come from the process environment, then from `.env` (python-dotenv);
the environment wins. `load_settings()` turns every validation failure into a
`ConfigError` with one human sentence, which the CLI prints and exits 2 on.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.networks.registry import BY_NAME, NETWORKS, REQUIRED_SETTINGS
from bot.networks.registry import SECRET_SETTINGS as NETWORK_SECRETS
from bot.networks.registry import labels as network_labels
from bot.routing import Rules, load_rules
from bot.services.listen_terms import Term, parse_terms
from storage.business_hours import ALWAYS_OPEN, BusinessHours, parse_holidays, parse_hours

_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")
MAX_MINUTES = 525_600  # SLA_MINUTES, ESCALATION_REPEAT_MINUTES: a year
# Timers are checked at least hourly, or the daily summary and pages run late.
MAX_SWEEP_SECONDS = 3_600
MAX_UNDO_SECONDS = 300  # an undo window, not a schedule
# A shift longer than a year is no rotation (likely hours typed as days), and
# dates stay far from the calendar's end.
MAX_ROTATION_DAYS = 365
MAX_SPIKE_WINDOW = 1_440  # a day: the baseline compares the same window on earlier days
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]{1,100}$")
DEFAULT_CSAT_MESSAGE = (
    "How did we do? Please rate your conversation with us from 1 (poor) to 5 (great)."
)
MAX_CSAT_MESSAGE = 1000  # WhatsApp's interactive body takes 1,024 characters
MIN_POLL_SECONDS = 2.0  # X allows 450 recent searches per 15 minutes: one every 2 s


class ConfigError(Exception):
    """A missing or invalid setting, worded for a person."""


class Secret:
    """Marks a Settings field `check` shows masked: `Annotated[str, SECRET]`.

    Networks declare theirs in their descriptor (`bot.networks.registry`).
    """


SECRET = Secret()


def _split_ids(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_file=None)

    host: str = "0.0.0.0"
    port: int = 3000
    database_url: str = "sqlite+aiosqlite:///relaydesk.db"
    redis_url: str | None = None
    auto_migrate: bool = True
    log_format: str = "text"
    api_token: Annotated[str | None, SECRET] = None
    public_url: str | None = None  # links to /reports are built on it

    slack_bot_token: Annotated[str, SECRET] = ""
    slack_signing_secret: Annotated[str | None, SECRET] = None
    slack_app_token: Annotated[str | None, SECRET] = None
    slack_api_url: str = "https://slack.com/api/"
    slack_inbox_channel: str = ""
    slack_summary_channel: str | None = None
    # Filled from SLACK_CHANNEL_<NETWORK> and SLACK_TEAM_CHANNEL_<TEAM>.
    network_channels: dict[str, str] = Field(default_factory=dict)
    team_channels: dict[str, str] = Field(default_factory=dict)

    teams: list[str] = Field(default_factory=lambda: ["support", "sales"])
    summary_time: time = time(9, 0)
    timezone: str = "UTC"
    stats_users: list[str] = Field(default_factory=list)
    allowed_users: list[str] = Field(default_factory=list)

    sla_minutes: Decimal = Decimal(30)
    sla_minutes_urgent: Decimal | None = None  # unset: SLA_MINUTES
    escalation_repeat_minutes: Decimal = Decimal(15)
    escalation_manager: str | None = None
    oncall_users: list[str] = Field(default_factory=list)
    oncall_admins: list[str] = Field(default_factory=list)
    oncall_rotation_days: int = 7
    oncall_handoff: time = time(9, 0)
    oncall_start: date = date(2026, 1, 5)
    sweep_seconds: float = 15.0
    undo_seconds: int = 0  # a team reply waits this long; deleting or editing it meanwhile counts

    # Business hours (in TIMEZONE): the SLA clock runs only while open.
    business_hours: str | None = None
    holidays: str | None = None
    out_of_hours_message: str | None = None  # sent once per conversation per closed period
    # Filled from TONE_<NETWORK>: guidance shown on each root of that network.
    tones: dict[str, str] = Field(default_factory=dict)
    response_rate_target: float | None = None  # shown against each network's rate
    mrm_reaction: str = "sparkles"  # this reaction on a thread message records a moment
    # A volume spike: more than SPIKE_FACTOR times the window's 7-day average, and SPIKE_MIN.
    spike_window_minutes: int = 15
    spike_factor: float = 3.0
    spike_min: int = 20
    # Customer satisfaction: resolving a conversation asks the customer for a 1-5 rating.
    csat_enabled: bool = False
    csat_message: str = DEFAULT_CSAT_MESSAGE
    routing_rules: str | None = None  # path of the TOML rules file (bot.routing)
    # Listening: brand terms (`name|variant, ...`) and where the mentions found go.
    listen_terms: str | None = None
    slack_listening_channel: str | None = None
    listen_x_poll_seconds: float = 60.0  # X recent search, while LISTEN_TERMS and X are set

    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    meta_page_token: str | None = None
    whatsapp_token: str | None = None
    whatsapp_phone_number_id: str | None = None
    meta_graph_url: str = "https://graph.facebook.com/v25.0"
    x_consumer_secret: str | None = None
    x_bearer_token: str | None = None
    x_api_url: str = "https://api.x.com"
    generic_webhook_secret: str | None = None
    generic_reply_url: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `load_settings` merges the environment and `.env` itself (it also needs the
        # prefixed SLACK_CHANNEL_* / SLACK_TEAM_CHANNEL_* names), so only init values count.
        return (init_settings,)

    @field_validator(
        "teams", "stats_users", "allowed_users", "oncall_users", "oncall_admins", mode="before"
    )
    @classmethod
    def _lists(cls, value: Any) -> list[str]:
        return _split_ids(value)

    @field_validator("teams")
    @classmethod
    def _teams_lower(cls, value: list[str]) -> list[str]:
        return [team.lower() for team in value]

    @field_validator(
        "redis_url",
        "slack_signing_secret",
        "slack_app_token",
        "slack_summary_channel",
        "escalation_manager",
        "api_token",
        "public_url",
        *REQUIRED_SETTINGS,
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (e.g. https://desk.example.com)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("must be 'text' or 'json'")
        return value

    @field_validator("sla_minutes", "escalation_repeat_minutes", "sla_minutes_urgent")
    @classmethod
    def _positive(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number of minutes")
        return value

    # -- ranges: a value outside them would fail later, mid-run, or mean something else
    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError("must be a port number from 1 to 65535")
        return value

    @field_validator("teams")
    @classmethod
    def _some_team(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one team, e.g. support,sales")
        return value

    @field_validator("sla_minutes", "escalation_repeat_minutes", "sla_minutes_urgent")
    @classmethod
    def _within_a_year(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value > MAX_MINUTES:
            raise ValueError(f"must be at most {MAX_MINUTES} minutes (a year)")
        return value

    @field_validator("sweep_seconds")
    @classmethod
    def _sweep(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value <= MAX_SWEEP_SECONDS):
            raise ValueError(f"must be a number of seconds above 0 and at most {MAX_SWEEP_SECONDS}")
        return value

    @field_validator("undo_seconds")
    @classmethod
    def _undo(cls, value: int) -> int:
        if not 0 <= value <= MAX_UNDO_SECONDS:
            raise ValueError(f"must be a whole number of seconds from 0 to {MAX_UNDO_SECONDS}")
        return value

    @field_validator("oncall_rotation_days")
    @classmethod
    def _rotation_days(cls, value: int) -> int:
        if not 1 <= value <= MAX_ROTATION_DAYS:
            raise ValueError(f"must be a whole number of days from 1 to {MAX_ROTATION_DAYS}")
        return value

    @field_validator("response_rate_target")
    @classmethod
    def _rate_target(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 0 < value <= 1):
            raise ValueError("must be a share above 0 and at most 1, e.g. 0.9")
        return value

    @field_validator("mrm_reaction", mode="before")
    @classmethod
    def _reaction(cls, value: Any) -> Any:
        """`:sparkles:` or `sparkles`: Slack names the reaction without colons."""
        name = value.strip().strip(":") if isinstance(value, str) else value
        if name == "":
            return cls.model_fields["mrm_reaction"].default
        if isinstance(name, str) and not _EMOJI_NAME.match(name):
            raise ValueError("must be an emoji name such as sparkles (letters, digits, - _ +)")
        return name

    @field_validator("spike_window_minutes")
    @classmethod
    def _spike_window(cls, value: int) -> int:
        if not 1 <= value <= MAX_SPIKE_WINDOW:
            raise ValueError(f"must be a whole number of minutes from 1 to {MAX_SPIKE_WINDOW}")
        return value

    @field_validator("spike_factor")
    @classmethod
    def _spike_factor(cls, value: float) -> float:
        if not (math.isfinite(value) and 1 <= value <= 1000):
            raise ValueError("must be a number from 1 to 1000, e.g. 3")
        return value

    @field_validator("spike_min")
    @classmethod
    def _spike_min(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a whole number of messages, at least 1")
        return value

    @field_validator(
        "business_hours",
        "holidays",
        "out_of_hours_message",
        "response_rate_target",
        "routing_rules",
        "sla_minutes_urgent",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("csat_message", mode="before")
    @classmethod
    def _csat_message(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return DEFAULT_CSAT_MESSAGE
        if isinstance(value, str) and len(value.strip()) > MAX_CSAT_MESSAGE:
            raise ValueError(f"must be at most {MAX_CSAT_MESSAGE} characters")
        return value.strip() if isinstance(value, str) else value

    @field_validator("listen_terms", "slack_listening_channel", mode="before")
    @classmethod
    def _listen_blank(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("listen_terms")
    @classmethod
    def _terms(cls, value: str | None) -> str | None:
        parse_terms(value)
        return value

    @field_validator("listen_x_poll_seconds")
    @classmethod
    def _poll(cls, value: float) -> float:
        if not (math.isfinite(value) and MIN_POLL_SECONDS <= value <= MAX_SWEEP_SECONDS):
            raise ValueError(
                f"must be a number of seconds from {MIN_POLL_SECONDS} to {MAX_SWEEP_SECONDS}"
            )
        return value

    @cached_property
    def terms(self) -> tuple[Term, ...]:
        """The brand terms to listen for (none: listening is off)."""
        return parse_terms(self.listen_terms)

    @property
    def listening(self) -> bool:
        return bool(self.terms and self.slack_listening_channel)

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        parse_hours(value)
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: str | None) -> str | None:
        parse_holidays(value)
        return value

    @cached_property
    def hours(self) -> BusinessHours:
        """The desk's business hours (always open when neither setting is given)."""
        spans, holidays = parse_hours(self.business_hours), parse_holidays(self.holidays)
        if not spans and not holidays:
            return ALWAYS_OPEN
        return BusinessHours(spans, holidays, self.tz)

    @cached_property
    def routing(self) -> Rules | None:
        """The checked, compiled ROUTING_RULES (None when unset); `RulesError` names the line."""
        if not self.routing_rules:
            return None
        return load_rules(
            self.routing_rules,
            teams=self.teams,
            team_channels=self.team_channels,
            networks=network_labels(),
        )

    @property
    def sla_urgent(self) -> Decimal:
        """The SLA of conversations a routing rule marks urgent."""
        return self.sla_minutes_urgent or self.sla_minutes

    @model_validator(mode="after")
    def _check(self) -> Settings:
        for name in ("slack_inbox_channel", "slack_summary_channel", "slack_listening_channel"):
            _check_channel(name, getattr(self, name))
        for network, channel in self.network_channels.items():
            _check_channel(BY_NAME[network].channel_setting, channel)
        for team, channel in self.team_channels.items():
            _check_channel(f"slack_team_channel_{team}", channel)
        for name in ("stats_users", "allowed_users", "oncall_users", "oncall_admins"):
            for user in getattr(self, name):
                _check_user(name, user)
        if self.escalation_manager:
            _check_user("escalation_manager", self.escalation_manager)
        if bool(self.terms) != bool(self.slack_listening_channel):
            raise ValueError(
                "LISTEN_TERMS and SLACK_LISTENING_CHANNEL go together: set both to listen "
                "for brand mentions, or neither"
            )
        if not self.database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        _ = self.routing  # read and checked once, here: a mistake stops every command
        return self

    # -- derived -------------------------------------------------------------
    @property
    def rotation_keepers(self) -> list[str]:
        """Who may change the rotation (`/oncall cover`)."""
        manager = [self.escalation_manager] if self.escalation_manager else []
        return [*self.oncall_users, *manager, *self.oncall_admins]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def inbox_channel(self, network: str) -> str:
        return self.network_channels.get(network, self.slack_inbox_channel)

    def root_channel(self, network: str, team: str | None) -> str:
        """Where a new conversation's root goes: its routed team's channel, else the inbox."""
        return (team and self.team_channels.get(team)) or self.inbox_channel(network)

    @property
    def summary_channel(self) -> str:
        return self.slack_summary_channel or self.slack_inbox_channel

    def enabled_networks(self) -> list[str]:
        """The networks whose required settings are all set, in registry order."""
        return [
            network.name
            for network in NETWORKS
            if all(getattr(self, name) for name in network.required)
        ]

    @classmethod
    def secret_names(cls) -> frozenset[str]:
        """The fields `check` masks: marked `SECRET` here, or a network's secrets."""
        marked = {name for name, info in cls.model_fields.items() if SECRET in info.metadata}
        return frozenset(marked) | NETWORK_SECRETS

    def require_slack(self) -> None:
        """What `serve` needs beyond what every command needs."""
        if not self.slack_bot_token:
            raise ValueError("SLACK_BOT_TOKEN is required (the xoxb-... token of the Slack app)")
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ValueError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if not self.slack_inbox_channel:
            raise ValueError("SLACK_INBOX_CHANNEL is required (a channel ID such as C0123456789)")
        if self.slack_app_token:
            if not self.slack_app_token.startswith("xapp-"):
                raise ValueError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        elif not self.slack_signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET is required in HTTP mode "
                "(or set SLACK_APP_TOKEN for Socket Mode)"
            )


def _check_channel(name: str, value: str | None) -> None:
    if value and not _CHANNEL_ID.match(value):
        raise ValueError(
            f"{name.upper()} must be a channel ID like C0123456789, not '{value}' "
            "(in Slack: channel details > About > Channel ID)"
        )


def _check_user(name: str, value: str) -> None:
    if not _USER_ID.match(value):
        raise ValueError(f"{name.upper()} must hold Slack user IDs like U0123456789, not '{value}'")


def _prefixed(environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {
        key[len(prefix) :].lower(): value
        for key, value in environ.items()
        if key.upper().startswith(prefix) and value
    }


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings from `environ` (default: the process environment) over `.env`."""
    merged: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    upper = {key.upper(): value for key, value in merged.items()}
    team_channels = _prefixed(upper, "SLACK_TEAM_CHANNEL_")
    network_channels = {
        network.name: upper[network.channel_setting]
        for network in NETWORKS
        if upper.get(network.channel_setting)
    }
    tones = {
        network.name: upper[network.tone_setting].strip()
        for network in NETWORKS
        if upper.get(network.tone_setting, "").strip()
    }
    # Raw strings as the environment holds them: validating converts them to the fields' types.
    fields: dict[str, Any] = {
        key.lower(): value
        for key, value in upper.items()
        if key.lower() in Settings.model_fields
        and key.lower() not in ("network_channels", "team_channels", "tones")
    }
    try:
        return Settings(
            network_channels=network_channels, team_channels=team_channels, tones=tones, **fields
        )
    except ValidationError as exc:
        raise ConfigError(_humane(exc)) from None


def _humane(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    location = ".".join(str(part) for part in error["loc"])
    if not location:
        return message
    return f"{location.upper()}: {message} (got {error.get('input')!r})"
