"""Streaming ``multipart/form-data`` for browser form uploads: Swift FormPost
(``lampi.swift.formpost``) and S3 PostObject (``lampi.s3.post``) read their forms here.

A ``Form`` hands out the parts in order; a field's value is read up to a cap (the rest
drained and reported), a file part is read chunk by chunk, so a body is never held
whole. aiohttp's ``MultipartReader`` does the parsing; its many ways of failing on a
malformed body (``ValueError``, ``AssertionError``, ``BadHttpMessage``) come out as one
``MalformedForm``, which each front-end answers in its own protocol's format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from lampi.http.expect import send_continue

CHUNK = 64 * 1024


class MalformedForm(Exception):
    """The body is not well-formed multipart/form-data (the message says where)."""


def is_form(content_type: str) -> bool:
    """A ``multipart/form-data`` Content-Type with a boundary."""
    main, _, params = content_type.partition(";")
    return main.strip().lower() == "multipart/form-data" and "boundary=" in params.lower()


class Part:
    """One part of the form: a field (``filename`` None) or a file."""

    def __init__(self, reader: BodyPartReader) -> None:
        self._reader = reader
        self.name: str = reader.name or ""
        self.filename: str | None = reader.filename
        self.headers = reader.headers

    async def value(self, limit: int) -> tuple[bytes, bool]:
        """The value's first ``limit`` bytes, and whether there was more (drained)."""
        data = bytearray()
        over = False
        async for chunk in self.chunks(max(limit, CHUNK)):
            room = limit - len(data)
            if len(chunk) > room:
                over = True
            data += chunk[:max(room, 0)]
        return bytes(data), over

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The part's bytes, at most ``size`` at a time."""
        while True:
            try:
                chunk = await self._reader.read_chunk(size)
            except (ValueError, AssertionError) as exc:
                raise MalformedForm(str(exc) or "malformed multipart body") from None
            if not chunk:
                if not self._reader.at_eof():
                    # aiohttp ends a part cut off by the end of the body quietly: refuse it,
                    # or a truncated upload would be stored as if complete
                    raise MalformedForm("the body ended inside a part (no closing boundary)")
                return
            yield chunk


class Form:
    def __init__(self, reader: MultipartReader) -> None:
        self._reader = reader

    @classmethod
    async def open(cls, request: web.Request) -> Form:
        """Start reading the request's form (sending a deferred ``100 Continue`` first)."""
        await send_continue(request)
        try:
            return cls(await request.multipart())
        except (ValueError, AssertionError) as exc:
            raise MalformedForm(f"invalid starting boundary ({exc})") from None

    async def next(self) -> Part | None:
        """The next part (the previous one is skipped if unread); None after the last."""
        try:
            part = await self._reader.next()
        except (ValueError, AssertionError) as exc:
            raise MalformedForm(str(exc) or "malformed multipart body") from None
        except BadHttpMessage as exc:  # a part's header line malformed or too long
            raise MalformedForm(f"malformed part header ({exc.message})") from None
        if part is None:
            return None
        if not isinstance(part, BodyPartReader):
            raise MalformedForm("nested multipart not supported")
        return Part(part)
