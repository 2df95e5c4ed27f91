"""Routing rules (`bot.routing`): matching, table-driven, and the file's mistakes by line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.networks.registry import labels
from bot.routing import Router, Rules, RulesError, load_rules
from storage.inbound import NewCustomerMessage, Routed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = ["support", "sales"]
CHANNELS = {"support": "C0SUPPORT1", "sales": "C0SALES01"}

RULES = """\
# ordered: team and priority from the first match naming one, tags from all
[[rule]]
name = "refunds"
keywords = ["refund", "reembolso", "money back"]
team = "support"
priority = "urgent"
tags = ["refund"]

[[rule]]
regex = ['order\\s*#?\\d{5,}']
tags = ["order"]

[[rule]]
network = ["whatsapp", "instagram"]
language = "es"
team = "sales"
tags = ["spanish"]

[[rule]]
handle = ["@BigCorp_CEO", "4242"]
priority = "high"
tags = ["vip"]
"""


def message(
    text: str,
    network: str = "telegram",
    *,
    handle: str | None = None,
    author: str = "100",
    channel: str | None = None,
) -> NewCustomerMessage:
    return NewCustomerMessage(
        network=network,
        conversation_key="k",
        external_id="m",
        author_id=author,
        author_name="Customer",
        author_handle=handle,
        text=text,
        sent_at=T0,
        received_at=T0,
        reply_context={"channel": channel} if channel else {},
    )


def load(tmp_path: Path, text: str, **overrides: Any) -> Rules:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    options: dict[str, Any] = {
        "teams": TEAMS,
        "team_channels": CHANNELS,
        "networks": labels(),
        **overrides,
    }
    return load_rules(path, **options)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Router:
    return Router(load(tmp_path_factory.mktemp("rules"), RULES))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # keywords: whole words, any case, accents ignored, phrases as word sequences
        (message("I want a REFUND now"), Routed("support", "urgent", ["refund"])),
        (message("Quiero un reembolsó"), Routed("support", "urgent", ["refund"])),
        (message("give my money  back!"), Routed("support", "urgent", ["refund"])),
        (message("refunded already, thanks"), None),  # a whole word, not a prefix
        (message("where is my money?"), None),
        # regex, ignoring case, anywhere in the text
        (message("ORDER #123456 is late"), Routed(None, None, ["order"])),
        (message("order 12 is late"), None),
        # every matching rule adds its tags; the first naming a team or priority wins
        (
            message("refund for order 99999", handle="bigcorp_ceo"),
            Routed("support", "urgent", ["refund", "order", "vip"]),
        ),
        # network (or Meta's channel) and detected language, both required
        (
            message("Hola, ¿dónde está mi pedido? Lo necesito mañana", "whatsapp"),
            Routed("sales", None, ["spanish"]),
        ),
        (
            message("Hola, ¿dónde está mi pedido? Lo necesito mañana", "meta", channel="instagram"),
            Routed("sales", None, ["spanish"]),
        ),
        (message("Hola, ¿dónde está mi pedido? Lo necesito mañana", "telegram"), None),
        (message("Hello, where is my parcel? I need it tomorrow", "whatsapp"), None),
        # handle or id, ignoring case and a leading @
        (message("hi", handle="@bigcorp_ceo"), Routed(None, "high", ["vip"])),
        (message("hi", author="4242"), Routed(None, "high", ["vip"])),
        (message("hi", handle="bigcorp"), None),
    ],
)
def test_rules_route_a_first_message(
    router: Router, given: NewCustomerMessage, expected: Routed | None
) -> None:
    assert router.route(given) == expected


def test_language_is_detected_only_when_a_rule_gets_that_far(tmp_path: Path) -> None:
    router = Router(load(tmp_path, RULES))
    asked: list[str] = []

    def detect(text: str) -> str | None:
        asked.append(text)
        return router.detect(text)

    router.rules.decide(message("refund", "telegram"), detect)
    assert asked == []  # the network rule failed first
    router.rules.decide(message("Hola amigo, ¿qué tal?", "whatsapp"), detect)
    assert asked == ["Hola amigo, ¿qué tal?"]


def test_a_rule_without_conditions_matches_every_conversation(tmp_path: Path) -> None:
    router = Router(load(tmp_path, '[[rule]]\ntags = ["inbound"]\n'))
    assert router.route(message("anything")) == Routed(None, None, ["inbound"])
    assert not router.rules.wants_language  # no model loaded


def test_an_empty_file_routes_nothing(tmp_path: Path) -> None:
    assert Router(load(tmp_path, "# no rules yet\n")).route(message("refund")) is None


def test_detection_chooses_among_the_named_languages(tmp_path: Path) -> None:
    rules = load(tmp_path, 'languages = ["en", "fr"]\n[[rule]]\nlanguage = "de"\ntags = ["de"]\n')
    assert rules.languages == ("en", "fr", "de")
    router = Router(rules)
    assert router.detect("Wo ist meine Bestellung? Ich warte seit einer Woche.") == "de"
    assert router.detect("Bonjour, je voudrais annuler ma commande") == "fr"
    assert router.detect("") is None


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ('[[rule]]\nteam = "support"\ntags = ["a"\n', 3, "not valid TOML: Unclosed array"),
        ("[[rule]]\nteam = support\n", 2, "not valid TOML: Invalid value"),
        (
            '[[rule]]\ntags = ["a"]\n\n[[rule]]\nkeywords = ["x"]\nteam = "billing"\n',
            6,
            "unknown team 'billing' (TEAMS: support, sales)",
        ),
        (
            '[[rule]]\nregex = ["ok", "(unclosed"]\ntags = ["a"]\n',
            2,
            "regex '(unclosed' is not a valid regular expression",
        ),
        (
            '[[rule]]\ntags = ["a"]\n  priority = "asap"\n',
            3,
            "unknown priority 'asap' (priorities: low, normal, high, urgent)",
        ),
        ('[[rule]]\nnetwork = "myspace"\ntags = ["a"]\n', 2, "unknown network 'myspace'"),
        ('[[rule]]\nlanguage = ["klingon"]\ntags = ["a"]\n', 2, "unknown language 'klingon'"),
        ('[[rule]]\nkeyword = ["refund"]\ntags = ["a"]\n', 2, "unknown key 'keyword' in rule 1"),
        (
            '[[rule]]\ntags = ["a"]\n[[rule]]\nkeywords = ["refund"]\n',
            3,
            "rule 2 sets no team, priority or tags",
        ),
        ('[[rule]]\ntags = ["two words"]\n', 2, "tag 'two words' must be"),
        ('[[rule]]\nkeywords = 3\ntags = ["a"]\n', 2, "keywords must be a string or a list"),
        ('[[rule]]\n"team" = "Sales"\n', 0, ""),  # a quoted key, any case: fine
    ],
)
def test_mistakes_name_their_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    if not line:
        assert load(tmp_path, text).rules[0].team == "sales"
        return
    with pytest.raises(RulesError) as raised:
        load(tmp_path, text)
    message = str(raised.value)
    assert message.startswith(f"ROUTING_RULES: {tmp_path / 'rules.toml'}, line {line}: "), message
    assert expected in message


def test_a_team_without_a_channel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="line 2: team 'sales' has no channel.*SALES"):
        load(tmp_path, '[[rule]]\nteam = "sales"\n', team_channels={"support": "C0SUPPORT1"})


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"ROUTING_RULES: .*nope.toml: cannot be read"):
        load_rules(tmp_path / "nope.toml", teams=TEAMS, team_channels=CHANNELS, networks=[])
