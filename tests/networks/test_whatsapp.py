"""WhatsApp adapter: handshake, signature, message types, statuses, Cloud API sends."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from bot.config import ConfigError, Settings
from bot.networks.base import (
    Attachment,
    DeliveryError,
    DeliveryStatus,
    ForbiddenError,
    InboundMessage,
    PayloadError,
    SignatureError,
)
from bot.networks.whatsapp import WhatsAppNetwork
from tests.fakes.graph_api import FakeGraph
from tests.networks import (
    IDS,
    JSON_VALUES,
    TIMES,
    dumps,
    hub_signature,
    outbound,
    payload_bytes,
    payload_json,
    shaped,
)
from tests.networks.events import message_ids
from tests.refs import ref_bytes, ref_json

SECRET = "meta-app-secret"
PHONE_ID = "1122334455667"
WA_ID = "972987654321"


def network(graph_url: str = "https://graph.invalid/v25.0") -> WhatsAppNetwork:
    return WhatsAppNetwork(
        app_secret=SECRET,
        verify_token="verify-me",
        token="wa-token",
        phone_number_id="999000",
        graph_url=graph_url,
    )


def single(body: bytes) -> Any:
    [event] = network().parse(body)
    return event


def test_handshake_is_metas() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"}
    assert network().handshake(query).body == "42"
    with pytest.raises(ForbiddenError):
        network().handshake({**query, "hub.verify_token": "nope"})


def test_signature_is_the_meta_app_secret_over_raw_bytes() -> None:
    body = ref_bytes("social/whatsapp_text.json")
    headers = CIMultiDictProxy(CIMultiDict({"X-HUB-SIGNATURE-256": hub_signature(SECRET, body)}))
    network().verify(headers, body)
    with pytest.raises(SignatureError):
        network().verify(headers, body + b" ")
    with pytest.raises(SignatureError):
        network().verify({}, body)


def test_text_message_from_the_real_capture() -> None:
    message = single(ref_bytes("social/whatsapp_text.json"))
    sent_at = datetime.fromtimestamp(1697043223, tz=UTC)
    assert isinstance(message, InboundMessage)
    assert message.network == "whatsapp"
    assert message.conversation_key == f"wa:{PHONE_ID}:{WA_ID}"
    assert (message.message_id, message.text) == ("wamid.xyzxyz", "Body Text")
    assert (message.author_id, message.author_name) == (WA_ID, "Test Name")
    assert message.sent_at == sent_at
    assert message.reply_context == {
        "phone_number_id": PHONE_ID,
        "wa_id": WA_ID,
        "window_closes_at": (sent_at + timedelta(hours=24)).isoformat(),
    }


def test_sent_status_from_the_real_capture() -> None:
    status = single(ref_bytes("social/whatsapp_status.json"))
    assert status == DeliveryStatus(
        network="whatsapp",
        message_id="wamid.xyzxyz",
        status="sent",
        at=datetime.fromtimestamp(1698266945, tz=UTC),
    )


def test_failed_status_carries_the_error_title() -> None:
    status = single(payload_bytes("whatsapp_status_failed.json"))
    assert (status.status, status.error) == ("failed", "User's number is part of an experiment")


def test_failed_status_for_a_closed_window_says_to_send_a_template() -> None:
    data = payload_json("whatsapp_status_failed.json")
    data["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = [
        {"code": 131047, "title": "Re-engagement message"}
    ]
    status = single(dumps(data))
    assert "template" in status.error and "Re-engagement message" in status.error


@pytest.mark.parametrize("state", ["delivered", "read"])
def test_delivered_and_read_statuses(state: str) -> None:
    data = ref_json("social/whatsapp_status.json")
    data["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = state
    assert single(dumps(data)).status == state


def test_image_without_caption_gets_a_placeholder() -> None:
    message = single(payload_bytes("whatsapp_image.json"))
    assert message.attachments == (
        Attachment("image", title="image/jpeg", media_id="65463453", mimetype="image/jpeg"),
    )
    assert message.text == "[image]"


def test_document_keeps_its_caption_and_file_name() -> None:
    message = single(payload_bytes("whatsapp_document.json"))
    assert message.attachments == (
        Attachment(
            "file", title="filename.pdf", media_id="1234567890987654321", mimetype="application/pdf"
        ),
    )
    assert message.text == "caption"


def test_location_becomes_a_map_link_with_its_name() -> None:
    message = single(payload_bytes("whatsapp_location.json"))
    [location] = message.attachments
    assert location.kind == "location"
    assert location.url == "https://maps.google.com/?cid=2000000000000000000"
    assert location.title is not None and location.title.startswith("Facebook HQ")
    assert message.text.startswith("[location: Facebook HQ")


def test_location_without_url_links_to_its_coordinates() -> None:
    data = payload_json("whatsapp_location.json")
    data["entry"][0]["changes"][0]["value"]["messages"][0]["location"] = {
        "latitude": 12.25089,
        "longitude": 43.90539,
    }
    [location] = single(dumps(data)).attachments
    assert location.url == "https://www.google.com/maps/search/?api=1&query=12.25089,43.90539"


def test_sticker_and_reaction_say_what_they_are() -> None:
    sticker = single(payload_bytes("whatsapp_sticker.json"))
    assert (sticker.attachments[0].kind, sticker.text) == ("sticker", "[sticker]")
    reaction = single(payload_bytes("whatsapp_reaction.json"))
    assert reaction.attachments[0].kind == "unsupported"
    assert reaction.text == "[unsupported message type: reaction]"


@pytest.mark.parametrize(
    ("kind", "content", "text"),
    [
        ("audio", {"id": "1", "mime_type": "audio/ogg"}, "[audio]"),
        ("video", {"id": "1", "caption": "look"}, "look"),
        ("button", {"text": "Yes please", "payload": "YES"}, "Yes please"),
        (
            "interactive",
            {"type": "button_reply", "button_reply": {"id": "a", "title": "Track"}},
            "Track",
        ),
        ("contacts", [{"name": {"formatted_name": "X"}}], "[unsupported message type: contacts]"),
    ],
)
def test_other_message_types(kind: str, content: Any, text: str) -> None:
    data = ref_json("social/whatsapp_text.json")
    message = data["entry"][0]["changes"][0]["value"]["messages"][0]
    del message["text"]
    message.update({"type": kind, kind: content})
    assert single(dumps(data)).text == text


def test_batch_keeps_good_items_and_reports_the_bad_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = ref_json("social/whatsapp_text.json")
    value = data["entry"][0]["changes"][0]["value"]
    good = value["messages"][0]
    broken = {**copy.deepcopy(good), "id": "wamid.broken", "text": {"body": "private words"}}
    del broken["timestamp"]
    second = {**copy.deepcopy(good), "id": "wamid.second"}
    value["messages"] = [good, broken, second]
    value["statuses"] = ref_json("social/whatsapp_status.json")["entry"][0]["changes"][0]["value"][
        "statuses"
    ]
    template_update = {"field": "message_template_status_update", "value": {"event": "x"}}
    data["entry"][0]["changes"].append(template_update)
    data["entry"].append({"id": "2", "changes": [{"field": "messages", "value": {}}]})

    report = network().parse_report(dumps(data))
    assert message_ids(report.events) == [
        "wamid.xyzxyz",
        "wamid.second",
        "wamid.xyzxyz",
    ]
    assert [s.where for s in report.skipped] == [
        "entry[0].changes[0].messages[1]",
        "entry[1].changes[0]",
    ]
    with caplog.at_level(logging.WARNING, logger="bot.networks.payload"):
        network().parse(dumps(data))
    assert "wamid.broken" in caplog.text and "private words" not in caplog.text


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"object": "page", "entry": []}', b'{"object": "whatsapp_business_account"}'],
)
def test_unusable_bodies_raise_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        network().parse(body)


MESSAGE = {
    "from": IDS,
    "id": IDS,
    "timestamp": TIMES,
    "type": st.sampled_from(["text", "image", "location", "button", "interactive", "x"]),
    "text": {"body": st.text(max_size=3)},
    "image": {"id": IDS, "caption": JSON_VALUES},
    "location": {"latitude": JSON_VALUES, "longitude": st.floats(), "name": JSON_VALUES},
    "button": {"text": JSON_VALUES},
    "interactive": {"button_reply": {"title": JSON_VALUES}, "list_reply": JSON_VALUES},
}
STATUS = {
    "id": IDS,
    "timestamp": TIMES,
    "status": st.sampled_from(["sent", "failed", "deleted"]),
    "errors": [{"code": st.sampled_from([131047, 1]), "title": JSON_VALUES}],
}
BODIES = shaped(
    {
        "object": st.just("whatsapp_business_account"),
        "entry": [
            {
                "changes": [
                    {
                        "field": st.sampled_from(["messages", "x"]),
                        "value": {
                            "metadata": {"phone_number_id": IDS},
                            "contacts": [{"wa_id": IDS, "profile": {"name": JSON_VALUES}}],
                            "messages": [MESSAGE],
                            "statuses": [STATUS],
                        },
                    }
                ]
            }
        ],
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(BODIES.map(dumps), st.binary(max_size=40)))
def test_fuzz_parse_only_ever_raises_payload_error(body: bytes) -> None:
    try:
        events = network().parse(body)
    except PayloadError:
        return
    assert isinstance(events, list)
    for event in events:
        assert event.network == "whatsapp"


async def test_reply_is_a_text_message_and_returns_the_wamid() -> None:
    async with FakeGraph(token="wa-token") as graph:
        adapter = network(graph.url)
        message = single(ref_bytes("social/whatsapp_text.json"))
        receipt = await adapter.send(outbound(dict(message.reply_context)))
        await adapter.close()
    [call] = graph.calls_to(f"/{PHONE_ID}/messages")
    assert call.json == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "text",
        "text": {"body": "Thanks, on it!", "preview_url": False},
    }
    assert call.headers["Authorization"] == "Bearer wa-token"
    assert receipt.message_id == graph.sent[0]["message_id"]
    assert receipt.message_id is not None and receipt.message_id.startswith("wamid.")


async def test_configured_number_is_used_when_the_context_has_none() -> None:
    async with FakeGraph() as graph:
        adapter = network(graph.url)
        await adapter.send(outbound({"wa_id": WA_ID}))
        await adapter.close()
    assert graph.calls[0].method == "/999000/messages"


async def test_closed_window_asks_for_a_template() -> None:
    async with FakeGraph() as graph:
        graph.closed_window.add(WA_ID)
        adapter = network(graph.url)
        with pytest.raises(DeliveryError) as caught:
            await adapter.send(outbound({"wa_id": WA_ID, "phone_number_id": PHONE_ID}))
        await adapter.close()
    error = caught.value
    assert (error.window_closed, error.temporary) == (True, False)
    assert "template" in error.message and "131047" in error.message


async def test_rate_limit_is_temporary_and_bad_token_permanent() -> None:
    async with FakeGraph(token="other") as graph:
        graph.throttle(code=130429)
        adapter = network(graph.url)
        with pytest.raises(DeliveryError) as throttled:
            await adapter.send(outbound({"wa_id": WA_ID}))
        with pytest.raises(DeliveryError) as refused:
            await adapter.send(outbound({"wa_id": WA_ID}))
        await adapter.close()
    assert throttled.value.temporary is True
    assert refused.value.temporary is False
    assert "Invalid OAuth access token." in refused.value.message


async def test_without_wa_id_the_reply_fails_permanently() -> None:
    with pytest.raises(DeliveryError) as caught:
        await network().send(outbound({"phone_number_id": PHONE_ID}))
    assert caught.value.temporary is False


def test_from_settings_needs_the_whatsapp_settings() -> None:
    complete = Settings(
        meta_app_secret="s", meta_verify_token="v", whatsapp_token="t", whatsapp_phone_number_id="1"
    )
    assert isinstance(WhatsAppNetwork.from_settings(complete), WhatsAppNetwork)
    with pytest.raises(ConfigError):
        WhatsAppNetwork.from_settings(Settings(whatsapp_token="t"))
