"""Reference servers for ``receiver bench ingest --baseline``, each run in its own process.

* ``noop``: a Starlette app whose ``POST /webhooks/dyte`` reads the body and
  answers a small JSON 200 - the floor cost of uvicorn + Starlette;
* ``verify``: the same route doing what the receiver does before storing -
  read the body, ``json.loads``, :func:`receiver.providers.dyte.events.parse_event` and
  :func:`receiver.providers.dyte.signature.verify_signature` with the trusted key from
  ``DYTE_WEBHOOK_PUBLIC_KEY`` - but no database, no metrics, no logging;
* ``raw``: a bare asyncio protocol answering every request with a canned
  200, no framework; it is the yardstick for the load generator itself
  (its ceiling on this machine).

Both Starlette apps are served like ``receiver serve``: ``uvicorn.run`` in one
process with ``log_config=None, access_log=False`` and uvicorn's default
(auto) loop and HTTP implementation.

Run: ``python -m receiver.devtools.bench.baseline {noop,verify,raw} --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["noop_app", "verify_app", "serve_raw", "main"]

_CANNED = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"status":"ok"}'


def noop_app() -> Starlette:
    """``POST /webhooks/dyte`` reads the body and answers ``{"status": "ok"}``."""

    async def noop(request: Request) -> Response:
        await request.body()
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/webhooks/dyte", noop, methods=["POST"])])


def verify_app(public_key_pems: list[str]) -> Starlette:
    """``POST /webhooks/dyte`` = body + JSON + ``parse_event`` + signature check; 401 on a bad signature."""
    from receiver.providers.dyte.events import EventParseError, parse_event
    from receiver.providers.dyte.signature import SignatureError, load_public_key, verify_signature

    keys = [load_public_key(pem) for pem in public_key_pems]

    async def verify(request: Request) -> Response:
        raw = await request.body()
        parsed = json.loads(raw)
        try:
            event = parse_event(parsed)
            event_name = event.event
        except EventParseError:
            event_name = None
        try:
            scheme = verify_signature(raw, request.headers.get("dyte-signature"), keys, parsed)
        except SignatureError as exc:
            return JSONResponse({"error": "invalid_signature", "detail": str(exc)}, status_code=401)
        return JSONResponse({"status": "verified", "event": event_name, "scheme": scheme})

    return Starlette(routes=[Route("/webhooks/dyte", verify, methods=["POST"])])


class _RawProtocol(asyncio.Protocol):
    """Answers each complete request (head + content-length body) with ``_CANNED``."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                return
            del buffer[:total]
            self.transport.write(_CANNED)


async def serve_raw(host: str, port: int) -> None:
    """Serve the canned-response protocol until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_RawProtocol, host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m receiver.devtools.bench.baseline``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["noop", "verify", "raw"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.kind == "raw":
        asyncio.run(serve_raw(args.host, args.port))
        return
    import uvicorn

    from receiver.logging_setup import configure_logging
    from receiver.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = noop_app() if args.kind == "noop" else verify_app(settings.webhook_public_key_pems())
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":  # pragma: no cover
    main()
