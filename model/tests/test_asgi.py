"""The predict path's raw ASGI reading and answering (serving.asgi), message by message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from serving.asgi import Answer, BodyTooLargeError, content_length, read_body
from starlette.requests import ClientDisconnect
from starlette.types import Message


def _receiver(*messages: dict[str, Any]) -> Any:
    queued = list(messages)

    async def receive() -> dict[str, Any]:
        return queued.pop(0)

    return receive


def _read(receive: Any, declared_length: str | None = None, limit: int = 10) -> bytes:
    return asyncio.run(read_body(receive, declared_length, limit))


def test_chunks_are_joined_until_the_last() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"cd"},
    )
    assert _read(receive) == b"abcd"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    receive = _receiver()  # any read would fail: nothing is queued
    with pytest.raises(BodyTooLargeError, match="exceeds the limit of 10 bytes") as raised:
        _read(receive, declared_length="11")
    assert raised.value.status == 413


def test_an_undeclared_body_is_counted_as_it_arrives() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b"123456", "more_body": True},
        {"type": "http.request", "body": b"78901", "more_body": True},
    )
    with pytest.raises(BodyTooLargeError):
        _read(receive, declared_length="4")  # a wrong declaration does not let it through


def test_a_client_leaving_mid_body_is_a_disconnect() -> None:
    receive = _receiver(
        {"type": "http.request", "body": b"12", "more_body": True},
        {"type": "http.disconnect"},
    )
    with pytest.raises(ClientDisconnect):
        _read(receive)


def test_content_length_is_found_among_the_headers() -> None:
    headers = [(b"host", b"x"), (b"content-length", b"42")]
    assert content_length({"headers": headers}) == "42"
    assert content_length({"headers": headers[:1]}) is None


@pytest.mark.parametrize("close", [False, True])
def test_an_answer_is_a_start_and_a_body(close: bool) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(Answer(b'{"a": 1}', 503, close).send(send))
    start, body = sent
    assert start["status"] == 503
    assert (b"content-type", b"application/json") in start["headers"]
    assert (b"content-length", b"8") in start["headers"]
    assert ((b"connection", b"close") in start["headers"]) is close
    assert body == {"type": "http.response.body", "body": b'{"a": 1}'}
