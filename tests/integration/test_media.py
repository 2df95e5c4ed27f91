"""A customer's files reach the thread as Slack files, after the text, each once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.harness import INBOX, TELEGRAM_SECRET, Bot
from tests.signing import telegram_headers

PHOTO = b"\x89PNG fake photo bytes" * 100


async def telegram(bot: Bot, chat_id: int, **content: Any) -> None:
    update = {
        "update_id": bot.next_id("update"),
        "message": {
            "message_id": bot.next_id(f"tg:{chat_id}"),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Ada"},
            **content,
        },
    }
    response = await bot.post_raw(
        "/webhooks/telegram", json.dumps(update).encode(), telegram_headers(TELEGRAM_SECRET)
    )
    assert response.status == 200


def photo(file_id: str) -> list[dict[str, Any]]:
    small = {"file_id": file_id + "-small", "file_unique_id": "s", "width": 90, "height": 90}
    return [small, {"file_id": file_id, "file_unique_id": "b", "width": 800, "height": 600}]


def files_in(bot: Bot, thread_ts: str) -> list[dict[str, Any]]:
    return [f for m in bot.slack.replies(INBOX, thread_ts) for f in m.get("files", [])]


async def test_a_photo_with_a_caption_on_the_first_message(bot: Bot) -> None:
    bot.telegram.files.add("P1", PHOTO, "image/jpeg")  # Telegram photos are JPEG
    await telegram(bot, 7001, photo=photo("P1"), caption="The box arrived broken")

    root = await bot.root()
    assert "The box arrived broken" in json.dumps(root["blocks"])
    shared = await bot.until(lambda: files_in(bot, root["ts"]), what="the photo in the thread")
    upload = bot.slack.uploads[shared[0]["id"]]
    assert upload["data"] == PHOTO and upload["length"] == len(PHOTO)
    assert shared[0]["name"] == "photo.jpg"
    # the root was posted before the file was even asked for
    calls = [c.method for c in bot.slack.calls]
    assert calls.index("chat.postMessage") < calls.index("files.getUploadURLExternal")
    assert bot.telegram.calls_to("getFile")[0].params["file_id"] == "P1"  # the largest size


async def test_a_document_keeps_its_name_and_two_files_keep_their_order(bot: Bot) -> None:
    bot.telegram.files.add("D1", b"%PDF-1.4 invoice", "application/pdf")
    bot.telegram.files.add("V1", b"OggS voice", "audio/ogg")
    await telegram(bot, 7002, text="Here is the invoice")
    root = await bot.root()
    document = {"file_id": "D1", "file_unique_id": "d", "file_name": "invoice-42.pdf"}
    await telegram(bot, 7002, document=document, caption="invoice")
    await telegram(bot, 7002, voice={"file_id": "V1", "file_unique_id": "v", "duration": 3})

    shared = await bot.until(
        lambda: files_in(bot, root["ts"]) if len(files_in(bot, root["ts"])) == 2 else None,
        what="both files",
    )
    assert [f["name"] for f in shared] == ["invoice-42.pdf", "voice-note.oga"]
    texts = [m["text"] for m in bot.slack.replies(INBOX, root["ts"]) if not m.get("files")]
    assert "invoice" in texts[0]


async def test_a_file_too_large_is_said_in_the_thread(bot: Bot) -> None:
    bot.telegram.files.add("BIG", b"x", "video/mp4", size=30 * 1024 * 1024)
    await telegram(bot, 7003, video={"file_id": "BIG", "file_unique_id": "g", "duration": 9})

    root = await bot.root()
    note = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if ":paperclip:" in m["text"]],
        what="the reason in the thread",
    )
    assert "video could not be shown" in note[0]["text"] and "20 MB" in note[0]["text"]
    assert "tg-token" not in note[0]["text"]  # never the token-bearing file URL
    assert bot.slack.uploads == {}


async def test_a_failed_download_is_retried_then_a_gone_file_reported(bot: Bot) -> None:
    bot.telegram.files.add("R1", PHOTO, "image/jpeg")
    bot.telegram.fail("getFile", status=502, count=1)
    await telegram(bot, 7004, photo=photo("R1"))
    root = await bot.root()
    await bot.until(lambda: files_in(bot, root["ts"]), timeout=15, what="the retried photo")
    assert len(bot.telegram.calls_to("getFile")) == 2

    await telegram(bot, 7004, photo=photo("GONE"))  # the fake does not know it: a 400
    note = await bot.until(
        lambda: [m for m in bot.slack.replies(INBOX, root["ts"]) if ":paperclip:" in m["text"]],
        what="the reason",
    )
    assert "invalid file_id" in note[0]["text"]
    assert len(files_in(bot, root["ts"])) == 1


async def test_a_slack_upload_failure_is_retried_without_a_duplicate(bot: Bot) -> None:
    bot.telegram.files.add("S1", PHOTO, "image/jpeg")
    bot.slack.fail("files.completeUploadExternal", status=500, count=2)
    await telegram(bot, 7005, photo=photo("S1"), caption="again")
    root = await bot.root()

    await bot.until(lambda: files_in(bot, root["ts"]), timeout=15, what="the photo")
    await asyncio.sleep(1.5)  # time for a duplicate to show, were there one
    assert len(files_in(bot, root["ts"])) == 1
    assert len(bot.slack.calls_to("files.completeUploadExternal")) >= 3
