"""What the team writes is what the customer gets (issue 15), through the real app."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.harness import AGENT, INBOX, Bot, start_bot
from tests.integration.test_x_whatsapp_relay import explanations, post_whatsapp, post_x
from tests.refs import ref_json


async def answered(bot: Bot, chat_id: int, text: str) -> str:
    """A Telegram customer writes, a person answers `text`; the reply's ts."""
    await bot.from_telegram(chat_id, "Hello?")
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], text)
    return ts


async def test_telegram_gets_plain_text_with_entities_never_slack_markup(bot: Bot) -> None:
    bot.slack.add_user("U0123456", "Alice Martin", "Alice")
    ts = await answered(
        bot,
        6001,
        "<!here> Under &lt;$50 &amp; free shipping: <https://shop.example/x|our shop> :smile: "
        "*ask* <@U0123456> in <#C0123|general>",
    )
    (sent,) = await bot.telegram.wait_for("sendMessage")
    assert sent.params["text"] == ("Under <$50 & free shipping: our shop 😄 ask Alice in #general")
    assert "parse_mode" not in sent.params
    assert sent.params["entities"] == [
        {"type": "text_link", "offset": 28, "length": 8, "url": "https://shop.example/x"},
        {"type": "bold", "offset": 40, "length": 3},  # 😄 is 2 UTF-16 units,
    ]
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))


async def test_unformatted_text_goes_exactly_as_typed(bot: Bot) -> None:
    await answered(bot, 6002, "Hello &amp; &lt;world&gt; 1 &lt; 2")
    (sent,) = await bot.telegram.wait_for("sendMessage")
    assert sent.params["text"] == "Hello & <world> 1 < 2"
    assert "entities" not in sent.params and "parse_mode" not in sent.params


async def test_a_formatted_note_stays_internal(bot: Bot) -> None:
    await bot.from_telegram(6003, "Hello?")
    root = await bot.root()
    await bot.thread_reply(INBOX, root["ts"], "&gt; *Note:* refund approved")
    await bot.thread_reply(INBOX, root["ts"], "_`private:` VIP_")
    _, ts = await bot.thread_reply(INBOX, root["ts"], "On it")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    assert [m["text"] for m in bot.telegram.messages()] == ["On it"]


async def test_a_long_private_reply_goes_as_ordered_messages_and_a_failure_resends_the_rest(
    bot: Bot,
) -> None:
    await bot.from_telegram(6004, "Hello?")
    root = await bot.root()
    long = "\n\n".join(f"Part {n}. " + "word " * 600 for n in range(3))  # 3,000+ each
    sends_before = len(bot.telegram.calls_to("sendMessage"))
    bot.telegram.fail("sendMessage", status=502, skip=1)  # the second message, once
    _, ts = await bot.thread_reply(INBOX, root["ts"], long)
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts), timeout=15)
    calls = bot.telegram.calls_to("sendMessage")[sends_before:]
    assert [c.status for c in calls] == [200, 502, 200, 200]
    texts = [m["text"] for m in bot.telegram.messages(6004)]
    assert [t.split(".")[0] for t in texts] == ["Part 0", "Part 1", "Part 2"]
    assert all(len(text) <= 4096 for text in texts)
    (reply,) = await bot.services.repo.replies(1)
    assert reply.state == "sent" and reply.external_id is not None
    assert reply.sent_ids is not None and len(json.loads(reply.sent_ids)) == 3


async def test_a_public_reply_over_the_limit_is_not_sent_and_the_thread_says_by_how_much(
    bot: Bot,
) -> None:
    assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], "a" * 300)
    await bot.until(lambda: "warning" in bot.slack.reactions(INBOX, ts), what="warning")
    said = await bot.until(lambda: explanations(bot, root["ts"]), what="the explanation")
    assert (
        "X public replies are limited to 280 characters; this reply is 300 (20 over)" in (said[-1])
    )
    assert not bot.x.tweets


async def test_whatsapp_gets_its_own_formatting(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    root = await bot.root()
    await bot.thread_reply(INBOX, root["ts"], "*Done* ~old~ <https://shop.example|shop>")
    await bot.until(lambda: bot.graph.sent, what="WhatsApp send")
    assert bot.graph.sent[0]["text"]["body"] == "*Done* ~old~ shop (https://shop.example)"


def thread_says(bot: Bot, root_ts: str, needle: str) -> list[str]:
    return [m["text"] for m in bot.slack.replies(INBOX, root_ts) if needle in m["text"]]


def changed(ts: str, text: str, old: str) -> dict[str, object]:
    """Slack's `message_changed` for a thread reply (as in the conformance corpus)."""
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": INBOX,
        "hidden": True,
        "message": {"type": "message", "user": AGENT, "text": text, "ts": ts, "edited": {}},
        "previous_message": {"type": "message", "user": AGENT, "text": old, "ts": ts},
        "ts": f"{time.time():.6f}",
    }


def deleted(ts: str, old: str) -> dict[str, object]:
    return {
        "type": "message",
        "subtype": "message_deleted",
        "channel": INBOX,
        "hidden": True,
        "deleted_ts": ts,
        "previous_message": {"type": "message", "user": AGENT, "text": old, "ts": ts},
        "ts": f"{time.time():.6f}",
    }


async def test_editing_a_sent_telegram_reply_edits_the_customers_copy(bot: Bot) -> None:
    ts = await answered(bot, 6101, "It ships *today*")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    await bot.slack_event(changed(ts, "It ships *tomorrow*", "It ships *today*"))
    await bot.until(lambda: bot.telegram.edited, what="editMessageText")
    (edit,) = bot.telegram.edited
    assert edit["text"] == "It ships tomorrow"
    assert edit["entities"] == [{"type": "bold", "offset": 9, "length": 8}]
    assert [m["text"] for m in bot.telegram.messages(6101)] == ["It ships tomorrow"]
    assert len(bot.telegram.calls_to("sendMessage")) == 1  # never sent again
    await bot.until(lambda: "pencil2" in bot.slack.reactions(INBOX, ts), what="edited mark")
    (reply,) = await bot.services.repo.replies(1)
    assert reply.text == "It ships *tomorrow*"


async def test_deleting_a_sent_telegram_reply_deletes_the_customers_copy(bot: Bot) -> None:
    ts = await answered(bot, 6102, "Wrong customer, sorry")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    await bot.slack_event(deleted(ts, "Wrong customer, sorry"))
    await bot.until(lambda: bot.telegram.deleted, what="deleteMessage")
    assert bot.telegram.messages(6102) == []
    root = await bot.root()
    said = await bot.until(lambda: thread_says(bot, root["ts"], "deleted too"))
    assert "The customer's copy was deleted too" in said[0]


async def test_a_network_without_edits_says_the_customer_kept_the_original(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], "Hello from the team")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    await bot.slack_event(changed(ts, "Hello again", "Hello from the team"))
    await bot.slack_event(deleted(ts, "Hello again"))
    said = await bot.until(lambda: thread_says(bot, root["ts"], "Deleted in Slack only"))
    assert "WhatsApp does not let a sent message be deleted" in said[0]
    kept = thread_says(bot, root["ts"], "Edited in Slack only")
    assert "the customer kept the original: WhatsApp does not let" in kept[0]
    assert len(bot.graph.sent) == 1


async def test_undo_window_holds_a_reply_and_a_deletion_or_an_edit_in_it_counts(
    tmp_path: Path,
) -> None:
    bot, stop = await start_bot(tmp_path, env={"UNDO_SECONDS": "2"})
    try:
        await bot.from_telegram(6103, "Hello?")
        root = await bot.root()
        _, withdrawn = await bot.thread_reply(INBOX, root["ts"], "Oops, wrong thread")
        _, corrected = await bot.thread_reply(INBOX, root["ts"], "Price: 10 EUR")
        assert "hourglass" in bot.slack.reactions(INBOX, withdrawn)
        await bot.slack_event(deleted(withdrawn, "Oops, wrong thread"))
        await bot.slack_event(changed(corrected, "Price: 12 EUR", "Price: 10 EUR"))
        assert bot.telegram.messages(6103) == []  # still held
        await bot.until(
            lambda: "white_check_mark" in bot.slack.reactions(INBOX, corrected), timeout=10
        )
        assert [m["text"] for m in bot.telegram.messages(6103)] == ["Price: 12 EUR"]
        assert "hourglass" not in bot.slack.reactions(INBOX, corrected)
        assert [r.text for r in await bot.services.repo.replies(1)] == ["Price: 12 EUR"]
    finally:
        await stop()


def file_share(bot: Bot, name: str, mimetype: str, content: bytes, size: int | None = None) -> dict:  # type: ignore[type-arg]
    """A `file_share` message's `files[]` entry, the file served by the fake Slack."""
    url = bot.slack.add_file(f"T0001-F{len(bot.slack.files)}/download/{name}", content)
    return {
        "id": f"F{len(bot.slack.files)}",
        "name": name,
        "mimetype": mimetype,
        "size": len(content) if size is None else size,
        "url_private_download": url,
        "mode": "hosted",
    }


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


async def test_files_from_the_team_reach_telegram_as_uploads(bot: Bot) -> None:
    await bot.from_telegram(6201, "Hello?")
    root = await bot.root()
    photo = file_share(bot, "label.png", "image/png", PNG)
    manual = file_share(bot, "manual.pdf", "application/pdf", b"%PDF-1.4 tiny")
    _, ts = await bot.thread_reply(
        INBOX, root["ts"], "Here you go", subtype="file_share", files=[photo, manual]
    )
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    sent = bot.telegram.messages(6201)
    assert sent[0]["caption"] == "Here you go"  # a one-message reply captions its first file
    assert sent[0]["upload"]["data"] == PNG and sent[0]["upload"]["filename"] == "label.png"
    assert sent[0]["upload"]["content_type"] == "image/png"
    assert sent[1]["upload"]["data"] == b"%PDF-1.4 tiny"
    assert [c.method for c in bot.telegram.calls_to("send*")][-2:] == [
        "sendPhoto",
        "sendDocument",
    ]


async def test_a_file_only_reply_sends_no_empty_text(bot: Bot) -> None:
    await bot.from_telegram(6202, "Hello?")
    root = await bot.root()
    photo = file_share(bot, "label.png", "image/png", PNG)
    _, ts = await bot.thread_reply(INBOX, root["ts"], "", subtype="file_share", files=[photo])
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    assert bot.telegram.calls_to("sendMessage") == []
    assert len(bot.telegram.calls_to("sendPhoto")) == 1


async def test_a_file_over_the_limit_is_refused_in_the_thread_and_the_text_still_goes(
    bot: Bot,
) -> None:
    await bot.from_telegram(6203, "Hello?")
    root = await bot.root()
    huge = file_share(bot, "video.mov", "video/quicktime", b"x", size=60 * 1024 * 1024)
    _, ts = await bot.thread_reply(
        INBOX, root["ts"], "See video", subtype="file_share", files=[huge]
    )
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    assert [m["text"] for m in bot.telegram.messages(6203)] == ["See video"]
    said = thread_says(bot, root["ts"], "was not sent")
    assert "video.mov was not sent: it is 60.0 MB, over Telegram's limit of 50.0 MB" in said[0]
    assert bot.slack.calls_to("/files-pri/*") == []  # not even downloaded


async def test_a_reply_in_a_telegram_group_quotes_the_customers_latest_message(bot: Bot) -> None:
    await bot.from_telegram(-100777, "Anyone there?", message_id=41)
    await bot.from_telegram(-100777, "Order 42 is late", message_id=42)
    root = await bot.root()
    await bot.thread_reply(INBOX, root["ts"], "Looking now")
    (sent,) = await bot.telegram.wait_for("sendMessage")
    assert sent.params["reply_parameters"] == {
        "message_id": 42,
        "allow_sending_without_reply": True,
    }
    assert bot.telegram.messages(-100777)[0]["reply_to_message"] == {"message_id": 42}


async def test_a_private_chat_reply_quotes_nothing(bot: Bot) -> None:
    await answered(bot, 6301, "Hi")
    (sent,) = await bot.telegram.wait_for("sendMessage")
    assert "reply_parameters" not in sent.params


async def test_public_conversations_say_so_and_a_public_reply_links_to_itself(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
    root = await bot.root()
    assert "*public*" in root["blocks"][0]["text"]["text"]
    _, ts = await bot.thread_reply(INBOX, root["ts"], "Thanks, we're on it")
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
    tweet_id = bot.x.tweets[0]["id"]
    said = await bot.until(lambda: thread_says(bot, root["ts"], "Public reply"))
    assert f"<https://x.com/i/web/status/{tweet_id}|see it on X>" in said[0]


async def test_a_private_conversation_is_not_marked_public(bot: Bot) -> None:
    await bot.from_telegram(6302, "Hello?")
    root = await bot.root()
    assert "public" not in root["blocks"][0]["text"]["text"]


async def test_generic_replies_carry_signed_download_links_served_by_the_bot(
    tmp_path: Path,
) -> None:
    bot, stop = await start_bot(tmp_path, env={"PUBLIC_URL": "https://desk.example"})
    try:
        await bot.from_generic("web-1", "m1", "Hello?")
        root = await bot.root()
        photo = file_share(bot, "label.png", "image/png", PNG)
        _, ts = await bot.thread_reply(INBOX, root["ts"], "", subtype="file_share", files=[photo])
        await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts))
        (body,) = [c.json for c in bot.sink.calls_to("*replies")]
        (linked,) = body["files"]
        assert linked["name"] == "label.png" and linked["size"] == len(PNG)
        assert linked["url"].startswith("https://desk.example/files/")
        path = linked["url"].removeprefix("https://desk.example")
        answer = await bot.client.get(path)
        assert answer.status == 200 and await answer.read() == PNG
        assert answer.headers["Content-Type"] == "image/png"
        tampered = path[:-1] + ("0" if path[-1] != "0" else "1")
        assert (await bot.client.get(tampered)).status == 404
        assert (await bot.client.get("/files/nonsense")).status == 404
    finally:
        await stop()
