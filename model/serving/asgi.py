"""The raw ASGI plumbing of the predict path: the body read whole under a size limit, and a
JSON answer sent as two messages. Starlette's Request and Response do the same with more
general machinery, which costs more per request than decoding the JSON does; the routed
calls still use them (``Answer.response``). bench/transport_ceiling.py answers through this
same code, so the ceiling measures exactly our transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class BodyTooLargeError(Exception):
    """The body passed the limit; ``str(error)`` says which, answered with ``status``."""

    status = 413

    @classmethod
    def of(cls, limit: int) -> BodyTooLargeError:
        # Built only when raised: its message is not formatted on every request.
        return cls(f"request body exceeds the limit of {limit} bytes")


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON answer, sent raw (``send``) or handed to Starlette (``response``)."""

    body: bytes
    status: int = 200
    # Connection: close on refusals while draining, so keep-alive clients reconnect to a
    # replica that is still serving.
    close: bool = False

    def response(self) -> Response:
        headers = {"connection": "close"} if self.close else None
        return Response(self.body, self.status, headers=headers, media_type="application/json")

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
        ]
        if self.close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


async def read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """The request's body; BodyTooLargeError once it passes ``limit`` bytes, ClientDisconnect if
    the client leaves first."""
    if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
        raise BodyTooLargeError.of(limit)
    chunks: list[bytes] = []
    size = 0
    # The declared length may be absent (chunked) or wrong: count what actually arrives.
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError.of(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def content_length(scope: Scope) -> str | None:
    """The request's Content-Length header (ASGI servers give header names in lower case)."""
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.decode("latin-1")
    return None
