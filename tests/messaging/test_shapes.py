"""The message's shapes are listed once — ProcessOut, MessageOut, HistoryOut — and both the
OpenAPI document and the bytes come from them (core.schemas.schema_reader). Held two ways:

- against the bytes the code produced before the shapes were listed once
  (captured/message_shapes.json, taken from the live code of that time and never regenerated):
  the process body and the idempotency record, the websocket frame and the `message.created`
  data of every kind of message, history bodies, and the OpenAPI of both routes;
- against the schemas' own validating path (`Schema.from_orm`, what ninja does with a returned
  object): the reader must give what validation gives, value for value, type for type and key
  for key in the same order."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from accounts.sockets import frame_text
from core.schemas import client_json, rendered_json
from messaging.fastpath import HistoryPage
from messaging.schemas import (
    HistoryOut,
    MessageOut,
    ProcessOut,
    history_out,
    message_event_data,
    message_item,
    message_payload,
    process_out,
)
from messaging.services import MessageSendResult

CAPTURED = json.loads((Path(__file__).parent / "captured" / "message_shapes.json").read_text())


def assert_same_dict(new: dict[str, Any], validated: dict[str, Any]) -> None:
    assert new == validated
    assert list(new) == list(validated)
    assert [type(v) for v in new.values()] == [type(v) for v in validated.values()]


def _message(values: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**{**values, "created_at": datetime.fromisoformat(values["created_at"])})


@pytest.mark.parametrize("case", CAPTURED["process"], ids=lambda case: str(case["result"]))
def test_process_body_and_record_are_the_captured_bytes(case: dict[str, Any]) -> None:
    result = MessageSendResult(**case["result"])
    response = rendered_json(process_out(result))
    assert response.content.decode() == case["body"]
    assert response["Content-Type"] == case["content_type"]
    assert json.dumps(result.to_record()) == case["record"]
    # The schema's own path gives the same: ninja validating the result through ProcessOut's
    # fields and resolvers.
    assert_same_dict(process_out(result), ProcessOut.from_orm(result).model_dump())


@pytest.mark.parametrize("case", CAPTURED["messages"], ids=lambda case: str(case["message"]["id"]))
def test_message_frame_and_event_are_the_captured_bytes(case: dict[str, Any]) -> None:
    message = _message(case["message"])
    payload = message_payload(message)
    assert frame_text({"type": "message", "message": payload}) == case["frame"]
    event = message_event_data(payload, conversation_id=3, customer_id=9)
    assert json.dumps(event) == case["event_data"]
    assert_same_dict(payload, client_json(MessageOut.from_orm(message)))
    assert_same_dict(message_item(message), MessageOut.from_orm(message).model_dump())


@pytest.mark.parametrize("case", CAPTURED["history"], ids=lambda case: str(case["slice"]))
def test_history_body_is_the_captured_bytes(case: dict[str, Any]) -> None:
    start, stop = case["slice"]
    page = HistoryPage(
        conversation_id=3,
        messages=[_message(m["message"]) for m in CAPTURED["messages"][start:stop]],  # type: ignore[misc]
        has_more=case["has_more"],
    )
    assert rendered_json(history_out(page)).content.decode() == case["body"]
    assert history_out(page) == HistoryOut.from_orm(page).model_dump()


def test_openapi_of_both_routes_is_the_captured_document() -> None:
    from config.api import api

    # As JSON (status codes as the document's keys are text).
    schema = json.loads(json.dumps(api.get_openapi_schema()))
    captured = CAPTURED["openapi"]
    for name, component in captured["components"].items():
        assert schema["components"]["schemas"][name] == component, name
    for path, operations in captured["paths"].items():
        assert schema["paths"][path] == operations, path
