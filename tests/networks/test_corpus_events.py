"""The shared conformance corpus through each adapter alone: what each payload becomes.

The whole-bot replay (tests/conformance) checks what reaches Slack; this table checks the
events themselves, so a wrong kind of event is named here first.
"""

from __future__ import annotations

import logging

import pytest

from bot.networks.base import (
    CustomerEdit,
    CustomerReaction,
    CustomerRemoval,
    InboundEvent,
    InboundMessage,
    Network,
    Notice,
)
from bot.networks.meta import MetaNetwork
from bot.networks.telegram import TelegramNetwork
from bot.networks.whatsapp import WhatsAppNetwork
from bot.networks.x import XNetwork
from tests.networks import dumps
from tests.refs import ref_bytes, ref_json

ADAPTERS: dict[str, Network] = {
    "telegram": TelegramNetwork(token="t", secret="s", api_url="https://telegram.invalid"),
    "meta": MetaNetwork(app_secret="a", verify_token="v", page_token="p"),
    "whatsapp": WhatsAppNetwork(app_secret="a", verify_token="v", token="t", phone_number_id="1"),
    "x": XNetwork(consumer_secret="c", bearer_token="b"),
}


def parse(path: str) -> list[InboundEvent]:
    return ADAPTERS[path.split("/")[0]].parse(ref_bytes(f"conformance/{path}"))


# file -> the lines the team reads (each must appear in the message's text)
SHOWN = {
    "telegram/tg_photo_caption.json": ["photo description", "[photo]"],
    "telegram/tg_document_caption.json": ["Read my document", "[document: test.docx]"],
    "telegram/tg_sticker.json": ["[sticker: 🛠]"],
    "telegram/tg_voice.json": ["[voice message (audio)]"],
    "telegram/tg_location.json": [
        "[location: 55.693416, 37.624605]",
        "https://www.google.com/maps?q=55.693416,37.624605",
    ],
    "telegram/tg_game.json": ["[game: Karate Kido]"],
    "telegram/tgdoc_forwarded.json": ["[forwarded from Forward Firstname Forward Lastname]"],
    "telegram/tgdoc_forwarded_channel.json": ["[forwarded from Test channel]", "/start"],
    "meta/fb_location.json": ["https://www.google.com/maps?q=12.34,43.21"],
    "meta/fb_fallback_link.json": ["Legacy Attachment", "https://www.messenger.com/"],
    "meta/fb_postback_get_started.json": ["tapped: USER_DEFINED_PAYLOAD", "SHORTLINK"],
    "meta/fb_quick_reply.json": ["tapped: quick reply text"],
    "meta/fb_customer_comment_video.json": ["and the next one", "[video] https://"],
    "meta/ig_story_reply.json": ["[replied to your story] https://", "This is the story reply"],
    "meta/ig_story_mention.json": ["[mentioned you in their story] https://www.example.com"],
    "meta/ig_text.json": ["This is the first message from the customer"],
    "whatsapp/wa_contacts.json": ["[contact: Chandler Bing · +1 555-555-5555]"],
    "whatsapp/wa_order.json": ["• HAMBURGER × 3 at 30 ILS", "• SODA × 2 at 10 ILS"],
    "whatsapp/wa_flow_completion.json": ["• comment text: Comment Text"],
    "whatsapp/wa_list_reply.json": ["tapped: title"],
    "whatsapp/wa_ad_referral_text.json": ["BODY", "[came from an ad: AD_TITLE"],
    "whatsapp/wa_video_caption.json": ["[forwarded]", "caption", "[video]"],
    "whatsapp/wa_voice_note.json": ["[voice message (audio)]"],
    "whatsapp/wa_unsupported.json": ["[unsupported message type:"],
    "x/x_dm_with_gif.json": ["[GIF] https://video.twimg.com/"],
}


@pytest.mark.parametrize(("path", "lines"), SHOWN.items(), ids=list(SHOWN))
def test_a_message_shows_each_of_its_parts(path: str, lines: list[str]) -> None:
    [message] = parse(path)
    assert isinstance(message, InboundMessage) and not message.from_team
    for line in lines:
        assert line in message.text


MEDIA = {
    "telegram/tg_document_caption.json": ("file", "test.docx", 21331),
    "telegram/tg_video_caption.json": ("video", None, 10099782),
    "whatsapp/wa_voice_note.json": ("voice", None, None),
}


@pytest.mark.parametrize(("path", "expected"), MEDIA.items(), ids=list(MEDIA))
def test_media_carry_what_a_download_needs(
    path: str, expected: tuple[str, str | None, int | None]
) -> None:
    [message] = parse(path)
    assert isinstance(message, InboundMessage)
    [media] = message.attachments
    assert (media.kind, media.title, media.size) == expected
    assert media.media_id and media.mimetype


ACTIONS: dict[str, tuple[type, str]] = {
    "telegram/tg_edited_aiogram.json": (CustomerEdit, "12345678:12345"),
    "telegram/tgdoc_edited.json": (CustomerEdit, "1111111:1365"),
    "telegram/tg_successful_payment.json": (Notice, ""),
    "telegram/tg_group_new_chat_members.json": (Notice, ""),
    "telegram/tg_private_bot_blocked.json": (Notice, ""),
    "meta/fb_message_edit.json": (CustomerEdit, "mid.1457764197618:41d102a3e1ae206a38"),
    "meta/fb_message_deleted.json": (CustomerRemoval, "message_id"),
    "meta/fb_reaction.json": (CustomerReaction, "original_message_id"),
    "meta/ig_unsend.json": (CustomerRemoval, "message-id-to-delete"),
    "whatsapp/wa_unreaction.json": (CustomerReaction, "wamid.yzxyzx="),
    "whatsapp/wa_revoke.json": (CustomerRemoval, "wamid.xyzxyz"),
    "whatsapp/wa_system_number_changed.json": (Notice, ""),
}


@pytest.mark.parametrize(("path", "expected"), ACTIONS.items(), ids=list(ACTIONS))
def test_non_messages_are_what_they_are(path: str, expected: tuple[type, str]) -> None:
    kind, target = expected
    [event] = parse(path)
    assert type(event) is kind
    if target:
        assert isinstance(event, CustomerEdit | CustomerRemoval | CustomerReaction)
        assert event.target_id == target


def test_a_customers_deleted_tweet_is_a_removal_and_the_accounts_own_is_nothing() -> None:
    data = ref_json("conformance/x/x_tweet_delete.json")
    assert ADAPTERS["x"].parse(dumps(data)) == []  # the account deleted its own tweet
    data["for_user_id"] = "2975699229"
    [removal] = ADAPTERS["x"].parse(dumps(data))
    assert isinstance(removal, CustomerRemoval)
    assert removal.target_id == "1045405559317569537"


def test_edits_carry_the_new_text() -> None:
    [edit] = parse("whatsapp/wa_edit_image_caption.json")
    assert isinstance(edit, CustomerEdit)
    assert "Updated image caption" in edit.text and "unsupported" not in edit.text
    [unreaction] = parse("whatsapp/wa_unreaction.json")
    assert isinstance(unreaction, CustomerReaction) and unreaction.removed


NOTHING = [
    "telegram/tgdoc_callback_query.json",
    "telegram/tgdoc_inline_query.json",
    "meta/fb_read.json",
    "meta/fb_delivery.json",
    "meta/ig_seen.json",
    "meta/fb_referral_shortlink.json",
    "meta/fb_comment_hidden.json",
    "meta/fb_feed_reaction.json",
    "x/x_favorite.json",
    "x/x_typing.json",
    "x/x_mark_read.json",
    "x/x_retweet_of_own.json",
]


@pytest.mark.parametrize("path", NOTHING)
def test_reads_typing_and_favorites_are_nothing(path: str) -> None:
    assert parse(path) == []


TEAM = {
    "meta/fb_echo_colleague_text.json": False,
    "meta/fb_echo_standby_template.json": True,
    "whatsapp/wa_smb_message_echo.json": False,
    "x/x_dm_sent_from_x_app.json": False,
}


@pytest.mark.parametrize(("path", "automated"), TEAM.items(), ids=list(TEAM))
def test_replies_made_outside_slack_are_the_teams(path: str, automated: bool) -> None:
    [message] = parse(path)
    assert isinstance(message, InboundMessage)
    assert message.from_team and message.automated is automated


def test_a_group_message_names_its_author_and_keeps_the_group_title() -> None:
    [message] = parse("telegram/tg_group_text_other_member.json")
    assert isinstance(message, InboundMessage)
    assert message.author_name == "Nelson II"
    assert message.reply_context["title"] == "RejuganBotTestingChannel"


def test_an_unknown_part_is_a_placeholder_and_a_warning_without_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = ref_json("conformance/meta/fb_fallback_link.json")
    message = data["entry"][0]["messaging"][0]["message"]
    message["text"] = "my secret words"
    message["attachments"].append({"type": "hologram", "payload": "BLOB"})
    with caplog.at_level(logging.WARNING):
        [parsed] = ADAPTERS["meta"].parse(dumps(data))
    assert isinstance(parsed, InboundMessage)
    assert "my secret words" in parsed.text and "Legacy Attachment" in parsed.text
    assert "[unsupported message part: hologram]" in parsed.text
    assert "hologram" in caplog.text and "my secret words" not in caplog.text
