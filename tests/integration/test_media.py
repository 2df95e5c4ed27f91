"""A customer's files reach the thread as Slack files, after the text, each once."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.harness import INBOX, META_SECRET, TELEGRAM_SECRET, X_SECRET, Bot
from tests.refs import ref_json
from tests.signing import meta_headers, telegram_headers, x_headers

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


# -- WhatsApp, Messenger, Instagram and X ----------------------------------------------
WA_PHONE_ID = "106540352242922"


async def signed(bot: Bot, network: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = x_headers(body, X_SECRET) if network == "x" else meta_headers(body, META_SECRET)
    response = await bot.post_raw(f"/webhooks/{network}", body, headers)
    assert response.status == 200, await response.text()


def whatsapp(wa_id: str, message_id: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp Cloud API `messages` webhook (shape of refs/social/whatsapp_text.json)."""
    message = {"from": wa_id, "id": message_id, "timestamp": str(int(time.time()))}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": WA_PHONE_ID},
        "contacts": [{"profile": {"name": "Grace"}, "wa_id": wa_id}],
        "messages": [{**message, "type": kind, kind: content}],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def meta_message(
    kind: str, customer: str, mid: str, text: str | None, attachments: list[dict[str, Any]]
) -> dict[str, Any]:
    """A Messenger (`page`) or Instagram (`instagram`) `messaging` webhook."""
    account = "1691462197845448" if kind == "page" else "17841400000000001"
    message: dict[str, Any] = {"mid": mid, "attachments": attachments}
    if text is not None:
        message["text"] = text
    now = int(time.time() * 1000)
    item = {
        "sender": {"id": customer},
        "recipient": {"id": account},
        "timestamp": now,
        "message": message,
    }
    return {"object": kind, "entry": [{"id": account, "time": now, "messaging": [item]}]}


def thread_texts(bot: Bot, thread_ts: str) -> list[str]:
    return [m["text"] for m in bot.slack.replies(INBOX, thread_ts) if not m.get("files")]


def notes_in(bot: Bot, thread_ts: str) -> list[str]:
    return [t for t in thread_texts(bot, thread_ts) if ":paperclip:" in t]


async def files_count(bot: Bot, thread_ts: str, count: int) -> list[dict[str, Any]]:
    return await bot.until(
        lambda: files_in(bot, thread_ts) if len(files_in(bot, thread_ts)) >= count else None,
        what=f"{count} file(s) in the thread",
    )


def text_before_upload(bot: Bot) -> None:
    """The message's text reached Slack before its file was even asked for."""
    calls = [c.method for c in bot.slack.calls]
    assert calls.index("chat.postMessage") < calls.index("files.getUploadURLExternal")
    assert calls.index("files.getUploadURLExternal") < calls.index("files.completeUploadExternal")


async def test_whatsapp_media_ids_are_looked_up_and_fetched_with_the_token(bot: Bot) -> None:
    bot.graph.files.add("MEDIA-IMG-1", PHOTO, "image/jpeg")
    bot.graph.files.add("MEDIA-PDF-2", b"%PDF-1.7 order 1042", "application/pdf")
    image = {"caption": "The lid is cracked", "mime_type": "image/jpeg", "id": "MEDIA-IMG-1"}
    await signed(bot, "whatsapp", whatsapp("15550001001", "wamid.M1", "image", image))
    root = await bot.root()
    assert "The lid is cracked" in json.dumps(root["blocks"])
    document = {"filename": "order-1042.pdf", "mime_type": "application/pdf", "id": "MEDIA-PDF-2"}
    await signed(bot, "whatsapp", whatsapp("15550001001", "wamid.M2", "document", document))

    shared = await files_count(bot, root["ts"], 2)
    assert [f["name"] for f in shared] == ["photo.jpg", "order-1042.pdf"]  # message order
    assert bot.slack.uploads[shared[0]["id"]]["data"] == PHOTO
    text_before_upload(bot)
    # media id -> URL, then the URL; both with the WhatsApp token
    lookups = bot.graph.calls_to("/MEDIA-*")
    downloads = [c for c in bot.graph.calls if c.path.startswith("/lookaside/")]
    assert [c.path.rsplit("/", 1)[1] for c in lookups] == ["MEDIA-IMG-1", "MEDIA-PDF-2"]
    assert [c.params["mid"] for c in downloads] == ["MEDIA-IMG-1", "MEDIA-PDF-2"]
    for call in [*lookups, *downloads]:
        assert call.headers["Authorization"] == "Bearer wa-token"
    completes = bot.slack.calls_to("files.completeUploadExternal")
    assert {c.params["thread_ts"] for c in completes} == {root["ts"]}


async def test_messenger_and_instagram_attachment_urls_are_fetched(bot: Bot) -> None:
    bot.graph.cdn.add("fb-photo", PHOTO, "image/jpeg")
    bot.graph.cdn.add("ig-video", b"\x00\x00\x00\x18ftypmp42 video" * 50, "video/mp4")
    photo_part = {"type": "image", "payload": {"url": bot.graph.cdn_url("fb-photo")}}
    await signed(bot, "meta", meta_message("page", "2400001", "m_fb1", "See", [photo_part]))
    fb_root = await bot.root()
    video_part = {"type": "video", "payload": {"url": bot.graph.cdn_url("ig-video")}}
    await signed(bot, "meta", meta_message("instagram", "8800001", "m_ig1", None, [video_part]))
    ig_root = await bot.root(index=1)

    [fb_file] = await files_count(bot, fb_root["ts"], 1)
    [ig_file] = await files_count(bot, ig_root["ts"], 1)
    assert (fb_file["name"], ig_file["name"]) == ("photo.jpg", "video.mp4")
    assert bot.slack.uploads[fb_file["id"]]["data"] == PHOTO
    text_before_upload(bot)
    cdn = [c for c in bot.graph.calls if c.path.startswith("/cdn/")]
    assert sorted(c.path for c in cdn) == ["/cdn/fb-photo", "/cdn/ig-video"]
    assert not [c for c in cdn if "Authorization" in c.headers]  # the page token stays home


async def test_x_dm_media_come_through_download_dm_media_with_the_token(bot: Bot) -> None:
    dm_id, media_id, resource = "1209117907864571901", "1209117874389843901", "oP5p359h.jpg"
    bot.x.files.add(f"{dm_id}/{media_id}/{resource}", PHOTO, "image/jpeg")
    payload = ref_json("social/twitter_dm.json")
    event = payload["direct_message_events"][0]
    event["id"] = dm_id
    event["created_timestamp"] = str(int(time.time() * 1000))
    event["message_create"]["message_data"].update(
        text="my receipt https://t.co/rcpt",
        attachment={
            "type": "media",
            "media": {
                "id_str": media_id,
                "type": "photo",
                "url": "https://t.co/rcpt",
                "media_url_https": bot.x.ton_url(dm_id, media_id, resource),
            },
        },
    )
    await signed(bot, "x", payload)
    root = await bot.root()
    assert "my receipt" in json.dumps(root["blocks"])

    [shared] = await files_count(bot, root["ts"], 1)
    assert bot.slack.uploads[shared["id"]]["data"] == PHOTO and shared["name"] == "photo.jpg"
    [download] = bot.x.calls_to("*dm_conversations/media*")
    assert download.path == f"/2/dm_conversations/media/{dm_id}/{media_id}/{resource}"
    assert download.headers["Authorization"] == "Bearer x-bearer"
    text_before_upload(bot)


async def test_files_too_large_or_gone_say_why_with_a_link_where_one_exists(bot: Bot) -> None:
    bot.graph.cdn.add("huge", b"v", "video/mp4", size=300 * 1024 * 1024)
    huge = {"type": "video", "payload": {"url": bot.graph.cdn_url("huge")}}
    gone = {"type": "file", "payload": {"url": bot.graph.cdn_url("expired")}}
    await signed(bot, "meta", meta_message("page", "2400002", "m_big", "Two files", [huge, gone]))
    root = await bot.root()
    notes = await bot.until(
        lambda: notes_in(bot, root["ts"]) if len(notes_in(bot, root["ts"])) == 2 else None,
        what="both reasons",
    )
    assert "video could not be shown" in notes[0] and "larger than 256 MB" in notes[0]
    assert "no longer serves this file (HTTP 404)" in notes[1]
    assert "/cdn/huge" in notes[0] and "/cdn/expired" in notes[1]  # links to open them
    assert bot.slack.uploads == {}

    missing = {"mime_type": "audio/ogg", "id": "MEDIA-UNKNOWN", "voice": True}
    await signed(bot, "whatsapp", whatsapp("15550001002", "wamid.M3", "audio", missing))
    wa_root = await bot.root(index=1)
    [note] = await bot.until(lambda: notes_in(bot, wa_root["ts"]), what="the reason")
    assert "voice could not be shown" in note and "WhatsApp refused the download" in note
    assert "Open it" not in note and "wa-token" not in note
