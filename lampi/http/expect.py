"""``Expect: 100-continue``, deferred: ``lampi.gateway.app.expect_handler`` (S3) and
``lampi.swift.handlers.expect_handler`` (Swift) mark the request instead of answering at
once; the handler sends the interim response once the request was accepted, just before
it reads the body, so a refused upload is never sent."""

from __future__ import annotations

from aiohttp import web

EXPECT_CONTINUE = "swift.expect_continue"  # request key: a "100 Continue" is still owed


async def send_continue(request: web.Request) -> None:
    """Send the deferred ``100 Continue`` (once)."""
    if request.get(EXPECT_CONTINUE):
        request[EXPECT_CONTINUE] = False
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0
