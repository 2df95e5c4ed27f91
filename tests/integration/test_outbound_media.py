"""Files, edits and deletes of team replies on WhatsApp, Messenger, Instagram, Page
comments and X (issue 15), through the real app: a signed Slack `file_share` thread reply,
the fakes' record of what the network received."""

from __future__ import annotations

import json
from pathlib import Path

from tests.harness import INBOX, Bot, start_bot
from tests.integration.test_meta_relay import post_meta
from tests.integration.test_outbound import PNG, changed, deleted, file_share, thread_says
from tests.integration.test_x_whatsapp_relay import post_whatsapp, post_x
from tests.refs import ref_json

MB = 1024 * 1024
PDF = b"%PDF-1.4 the manual"


async def replied_with_files(bot: Bot, text: str, *files: dict) -> tuple[str, str]:  # type: ignore[type-arg]
    """A person answers the conversation's root with `text` and `files`; (root ts, ts)."""
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], text, subtype="file_share", files=list(files))
    return root["ts"], ts


async def delivered(bot: Bot, ts: str) -> None:
    await bot.until(lambda: "white_check_mark" in bot.slack.reactions(INBOX, ts), timeout=10)


# -- WhatsApp: upload to /{phone-number-id}/media, then send by media id ---------------


async def test_whatsapp_gets_files_uploaded_then_sent_by_media_id(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    manual = file_share(bot, "manual.pdf", "application/pdf", PDF)
    _, ts = await replied_with_files(bot, "Here you go", photo, manual)
    await delivered(bot, ts)
    image, document = bot.graph.uploads
    assert image["kind"] == "whatsapp" and image["type"] == "image/png"
    assert image["file"]["data"] == PNG and image["file"]["filename"] == "label.png"
    assert document["file"]["data"] == PDF and document["type"] == "application/pdf"
    text, image_sent, document_sent = bot.graph.sent
    assert text["text"]["body"] == "Here you go"
    assert image_sent["type"] == "image" and image_sent["media"] == {"id": image["id"]}
    assert document_sent["type"] == "document"
    assert document_sent["media"] == {"id": document["id"], "filename": "manual.pdf"}
    assert image["node"] == text["node"] == image_sent["node"]  # the phone number id
    (reply,) = await bot.services.repo.replies(1)
    assert json.loads(reply.sent_ids or "[]") == [m["message_id"] for m in bot.graph.sent]


async def test_whatsapp_sends_an_image_over_its_image_limit_as_a_document(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    big = file_share(bot, "scan.png", "image/png", PNG + bytes(6 * MB))  # WhatsApp: 5 MB
    _, ts = await replied_with_files(bot, "", big)
    await delivered(bot, ts)
    (sent,) = bot.graph.sent
    assert sent["type"] == "document" and sent["media"]["filename"] == "scan.png"
    assert bot.graph.uploads[0]["file"]["size"] == len(PNG) + 6 * MB


async def test_whatsapp_refuses_a_file_over_100_mb_and_the_text_still_goes(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    huge = file_share(bot, "backup.zip", "application/zip", b"x", size=120 * MB)
    root_ts, ts = await replied_with_files(bot, "See the backup", huge)
    await delivered(bot, ts)
    assert [s["text"]["body"] for s in bot.graph.sent] == ["See the backup"]
    said = thread_says(bot, root_ts, "was not sent")
    assert "backup.zip was not sent: it is 120.0 MB, over WhatsApp's limit of 100.0 MB" in said[0]
    assert bot.graph.uploads == [] and bot.slack.calls_to("/files-pri/*") == []


async def test_a_file_whatsapp_refuses_is_named_and_the_rest_of_the_reply_goes(bot: Bot) -> None:
    assert await post_whatsapp(bot, ref_json("social/whatsapp_text.json")) == 200
    refusal = {
        "error": {
            "message": "(#131053) Media upload error",
            "type": "OAuthException",
            "code": 131053,
            "error_data": {"details": "Unsupported file type"},
        }
    }
    bot.graph.fail("/*/media", status=400, body=refusal)
    odd = file_share(bot, "notes.xyz", "application/x-xyz", b"odd")
    photo = file_share(bot, "label.png", "image/png", PNG)
    root_ts, ts = await replied_with_files(bot, "Two files", odd, photo)
    await delivered(bot, ts)
    assert [s["type"] for s in bot.graph.sent] == ["text", "image"]
    said = thread_says(bot, root_ts, "notes.xyz was not sent")
    assert "WhatsApp refused the upload: (#131053) Media upload error" in said[0]
    (reply,) = await bot.services.repo.replies(1)
    assert reply.state == "sent"


# -- Messenger and Instagram: the Attachment Upload API, then the Send API ------------


async def test_messenger_gets_a_file_through_the_attachment_upload_api(bot: Bot) -> None:
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    manual = file_share(bot, "manual.pdf", "application/pdf", PDF)
    _, ts = await replied_with_files(bot, "", photo, manual)
    await delivered(bot, ts)
    image, document = bot.graph.uploads
    assert (image["kind"], image["type"], image["platform"]) == ("attachment", "image", None)
    assert image["file"]["data"] == PNG and image["file"]["content_type"] == "image/png"
    assert document["type"] == "file" and document["file"]["data"] == PDF
    sent = [s["message"] for s in bot.graph.sent]
    assert sent == [
        {"attachment": {"type": "image", "payload": {"attachment_id": image["id"]}}},
        {"attachment": {"type": "file", "payload": {"attachment_id": document["id"]}}},
    ]
    assert {s["recipient"]["id"] for s in bot.graph.sent} == {"1134343043305865"}


async def test_messenger_refuses_a_file_over_25_mb(bot: Bot) -> None:
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    video = file_share(bot, "demo.mp4", "video/mp4", b"x", size=30 * MB)
    root_ts, ts = await replied_with_files(bot, "A demo", video)
    await delivered(bot, ts)
    assert [s["message"] for s in bot.graph.sent] == [{"text": "A demo"}]
    said = thread_says(bot, root_ts, "was not sent")
    assert "demo.mp4 was not sent: it is 30.0 MB, over Messenger's limit of 25.0 MB" in said[0]


async def test_instagram_takes_its_types_and_sizes_only(bot: Bot) -> None:
    assert await post_meta(bot, ref_json("conformance/meta/ig_text.json")) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    archive = file_share(bot, "all.zip", "application/zip", b"zip")
    big = file_share(bot, "poster.jpg", "image/jpeg", b"x", size=9 * MB)
    root_ts, ts = await replied_with_files(bot, "Files", photo, archive, big)
    await delivered(bot, ts)
    (upload,) = bot.graph.uploads
    assert upload["platform"] == "instagram" and upload["type"] == "image"
    text, image = bot.graph.sent
    assert text["message"] == {"text": "Files"}
    assert image["message"]["attachment"]["payload"] == {"attachment_id": upload["id"]}
    said = " ".join(thread_says(bot, root_ts, "was not sent"))
    assert "all.zip was not sent: Instagram takes images (PNG, JPEG, GIF), videos" in said
    assert "not application/zip" in said
    assert "poster.jpg was not sent: it is 9.0 MB, over Instagram's limit of 8.0 MB" in said


# -- Facebook Page comments: text only; the Page edits and deletes its own comment ----


async def page_comment_reply(bot: Bot, text: str) -> tuple[str, str, str]:
    """A customer comments on the Page, the team replies; (root ts, reply ts, comment id)."""
    assert await post_meta(bot, ref_json("conformance/meta/fb_comment_reply_other_user.json"))
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], text)
    await delivered(bot, ts)
    (sent,) = bot.graph.sent
    return root["ts"], ts, sent["id"]


async def test_editing_a_page_comment_reply_edits_the_page_comment(bot: Bot) -> None:
    root_ts, ts, comment_id = await page_comment_reply(bot, "It ships *today*")
    await bot.slack_event(changed(ts, "It ships *tomorrow*", "It ships *today*"))
    await bot.until(lambda: bot.graph.edits, what="the comment edit")
    assert bot.graph.edits == [{"node": comment_id, "message": "It ships tomorrow"}]
    await bot.until(lambda: "pencil2" in bot.slack.reactions(INBOX, ts), what="edited mark")
    assert len(bot.graph.sent) == 1  # never sent again
    (reply,) = await bot.services.repo.replies(1)
    assert reply.text == "It ships *tomorrow*"


async def test_deleting_a_page_comment_reply_deletes_the_page_comment(bot: Bot) -> None:
    root_ts, ts, comment_id = await page_comment_reply(bot, "Wrong post, sorry")
    await bot.slack_event(deleted(ts, "Wrong post, sorry"))
    said = await bot.until(lambda: thread_says(bot, root_ts, "deleted too"))
    assert "The customer's copy was deleted too" in said[0]
    assert bot.graph.deleted == [comment_id]
    await bot.slack_event(deleted(ts, "Wrong post, sorry"))  # Slack's retry: nothing more
    assert len(bot.graph.calls_to(f"/{comment_id}")) == 1


async def test_a_page_comment_reply_takes_no_file_and_says_so(bot: Bot) -> None:
    assert await post_meta(bot, ref_json("conformance/meta/fb_comment_reply_other_user.json"))
    photo = file_share(bot, "label.png", "image/png", PNG)
    root_ts, ts = await replied_with_files(bot, "See the label", photo)
    await delivered(bot, ts)
    assert [s["message"] for s in bot.graph.sent] == ["See the label"]
    said = thread_says(bot, root_ts, "was not sent")
    assert "label.png was not sent: replies to Facebook Page comments take text only" in said[0]


async def test_messenger_cannot_edit_and_the_thread_says_the_customer_kept_it(bot: Bot) -> None:
    assert await post_meta(bot, ref_json("social/messenger_message.json")) == 200
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], "Hello")
    await delivered(bot, ts)
    await bot.slack_event(changed(ts, "Hello again", "Hello"))
    said = await bot.until(lambda: thread_says(bot, root["ts"], "Edited in Slack only"))
    assert "the customer kept the original: Messenger do" in said[0]
    assert bot.graph.edits == []


# -- X: the one-call media upload, then a DM or a post naming the media id ------------


async def test_x_dm_gets_an_image_by_media_id_and_refuses_other_files(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_dm.json")) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    manual = file_share(bot, "manual.pdf", "application/pdf", PDF)
    root_ts, ts = await replied_with_files(bot, "Here", photo, manual)
    await delivered(bot, ts)
    (media,) = bot.x.media
    assert media["media_category"] == "dm_image" and media["upload"]["data"] == PNG
    text, image = bot.x.dms
    assert text["text"] == "Here" and text["attachments"] is None
    assert image["attachments"] == [{"media_id": media["id"]}] and image["text"] is None
    said = thread_says(bot, root_ts, "manual.pdf was not sent")
    assert "X takes images, GIFs and MP4 videos only, not application/pdf" in said[0]


async def test_x_dm_gets_a_video_uploaded_in_segments_then_processed(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_dm.json")) == 200
    content = bytes(range(256)) * (9 * MB // 256)  # three 4 MB segments
    video = file_share(bot, "demo.mp4", "video/mp4", content)
    _, ts = await replied_with_files(bot, "", video)
    await delivered(bot, ts)
    (media,) = bot.x.media
    assert media["media_category"] == "dm_video" and media["media_type"] == "video/mp4"
    assert media["total_bytes"] == len(content) and media["upload"]["segments"] == 3
    assert media["upload"]["data"] == content and media["state"] == "succeeded"
    (dm,) = bot.x.dms
    assert dm["attachments"] == [{"media_id": media["id"]}]
    assert [c.method for c in bot.x.calls_to("/2/media/upload*")] == [
        "/2/media/upload/initialize",
        *[f"/2/media/upload/{media['id']}/append"] * 3,
        f"/2/media/upload/{media['id']}/finalize",
        "/2/media/upload",  # STATUS, until processed
    ]


async def test_x_refuses_an_image_over_5_mb(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_dm.json")) == 200
    big = file_share(bot, "poster.png", "image/png", b"x", size=6 * MB)
    root_ts, ts = await replied_with_files(bot, "Poster", big)
    await delivered(bot, ts)
    assert [d["text"] for d in bot.x.dms] == ["Poster"] and bot.x.media == []
    said = thread_says(bot, root_ts, "was not sent")
    assert "poster.png was not sent: it is 6.0 MB, over X's limit of 5.0 MB" in said[0]


async def test_x_public_reply_carries_an_image_as_a_post(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    _, ts = await replied_with_files(bot, "", photo)
    await delivered(bot, ts)
    (media,) = bot.x.media
    (post,) = bot.x.tweets
    assert media["media_category"] == "tweet_image"
    assert post["media_ids"] == [media["id"]]
    assert post["in_reply_to_tweet_id"] == "1065035365336141825"


async def test_deleting_an_x_reply_deletes_the_post_and_an_edit_is_refused(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
    root = await bot.root()
    _, ts = await bot.thread_reply(INBOX, root["ts"], "Thanks!")
    await delivered(bot, ts)
    await bot.slack_event(changed(ts, "Thanks a lot!", "Thanks!"))
    kept = await bot.until(lambda: thread_says(bot, root["ts"], "Edited in Slack only"))
    assert "kept the original: X does not let a post or a DM be edited" in kept[0]
    await bot.slack_event(deleted(ts, "Thanks a lot!"))
    await bot.until(lambda: thread_says(bot, root["ts"], "deleted too"))
    assert bot.x.deleted == [("tweets", bot.x.tweets[0]["id"])]


async def test_deleting_an_x_dm_reply_deletes_every_dm_it_went_as(bot: Bot) -> None:
    assert await post_x(bot, ref_json("social/twitter_dm.json")) == 200
    photo = file_share(bot, "label.png", "image/png", PNG)
    root_ts, ts = await replied_with_files(bot, "Label attached", photo)
    await delivered(bot, ts)
    await bot.slack_event(deleted(ts, "Label attached"))
    await bot.until(lambda: thread_says(bot, root_ts, "deleted too"))
    assert bot.x.deleted == [("dm_events", dm["dm_event_id"]) for dm in bot.x.dms]
    assert len(bot.x.deleted) == 2


# -- Telegram: a one-message reply with files goes as the first file's caption --------


async def test_telegram_sends_the_text_as_the_caption_and_an_edit_edits_the_caption(
    bot: Bot,
) -> None:
    await bot.from_telegram(6401, "Hello?")
    photo = file_share(bot, "label.png", "image/png", PNG)
    manual = file_share(bot, "manual.pdf", "application/pdf", PDF)
    _, ts = await replied_with_files(bot, "Your *label*", photo, manual)
    await delivered(bot, ts)
    assert bot.telegram.calls_to("sendMessage") == []
    captioned, document = bot.telegram.messages(6401)
    assert captioned["caption"] == "Your label" and captioned["upload"]["data"] == PNG
    (call,) = bot.telegram.calls_to("sendPhoto")
    assert json.loads(call.params["caption_entities"]) == [
        {"type": "bold", "offset": 5, "length": 5}
    ]
    assert "caption" not in document and document["upload"]["data"] == PDF

    await bot.slack_event(changed(ts, "Your *new* label", "Your *label*"))
    await bot.until(lambda: bot.telegram.edited, what="editMessageCaption")
    (edit,) = bot.telegram.edited
    assert edit["caption"] == "Your new label"
    assert edit["caption_entities"] == [{"type": "bold", "offset": 5, "length": 3}]
    assert bot.telegram.calls_to("editMessageText") == []
    await bot.until(lambda: "pencil2" in bot.slack.reactions(INBOX, ts), what="edited mark")


async def test_telegram_caption_falls_back_to_a_message_when_the_file_is_refused(
    bot: Bot,
) -> None:
    await bot.from_telegram(6402, "Hello?")
    photo = file_share(bot, "label.png", "image/png", PNG)
    bot.telegram.fail(
        "sendPhoto",
        status=400,
        body={"ok": False, "error_code": 400, "description": "Bad Request: IMAGE_PROCESS_FAILED"},
    )
    root_ts, ts = await replied_with_files(bot, "Your label", photo)
    await delivered(bot, ts)
    assert [m["text"] for m in bot.telegram.messages(6402)] == ["Your label"]
    said = thread_says(bot, root_ts, "label.png was not sent")
    assert "Telegram refused the file: Bad Request: IMAGE_PROCESS_FAILED" in said[0]


async def test_a_captioned_file_in_a_telegram_group_quotes_the_customer(bot: Bot) -> None:
    await bot.from_telegram(-100888, "Which label?", message_id=42)
    photo = file_share(bot, "label.png", "image/png", PNG)
    _, ts = await replied_with_files(bot, "This one", photo)
    await delivered(bot, ts)
    (call,) = bot.telegram.calls_to("sendPhoto")
    assert call.params["caption"] == "This one"
    assert json.loads(call.params["reply_parameters"]) == {
        "message_id": 42,
        "allow_sending_without_reply": True,
    }


# -- a file the network does not take: a download link in private, never in public ----


async def test_a_file_x_cannot_take_goes_to_a_dm_as_a_signed_link(tmp_path: Path) -> None:
    bot, stop = await start_bot(tmp_path, env={"PUBLIC_URL": "https://desk.example"})
    try:
        assert await post_x(bot, ref_json("social/twitter_dm.json")) == 200
        manual = file_share(bot, "manual.pdf", "application/pdf", PDF)
        root_ts, ts = await replied_with_files(bot, "The manual", manual)
        await delivered(bot, ts)
        text, link = bot.x.dms
        assert text["text"] == "The manual" and bot.x.media == []
        name, _, url = link["text"].partition(": ")
        assert name == "manual.pdf" and url.startswith("https://desk.example/files/")
        answer = await bot.client.get(url.removeprefix("https://desk.example"))
        assert answer.status == 200 and await answer.read() == PDF
        said = thread_says(bot, root_ts, "went as a download link")
        assert "manual.pdf went as a download link (valid 24 hours): X takes images" in said[0]

        assert await post_x(bot, ref_json("social/twitter_mention.json")["params"]) == 200
        (public,) = await bot.until(
            lambda: [r for r in bot.slack.roots(INBOX) if r["ts"] != root_ts], what="the root"
        )
        again = file_share(bot, "manual.pdf", "application/pdf", PDF)
        _, public_ts = await bot.thread_reply(
            INBOX, public["ts"], "See the manual", subtype="file_share", files=[again]
        )
        await delivered(bot, public_ts)
        assert [t["text"] for t in bot.x.tweets] == ["See the manual"]  # no link in public
        refused = thread_says(bot, public["ts"], "was not sent")
        assert "manual.pdf was not sent: X takes images" in refused[0]
    finally:
        await stop()
