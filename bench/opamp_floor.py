"""The Python floor for OpAMP: the least a server on FlowGate's own stack can do per message.

A raw ASGI app under uvicorn with the very options ``flowgate serve`` uses
(:func:`flowgate.serving.uvicorn_options`: uvloop, httptools, the same WebSocket implementation,
no permessage-deflate, no pings, no access log). Under ``flowgate serve``'s own WebSocket class
the floor detaches each socket after its handshake exactly as FlowGate does
(:mod:`flowgate.opamp.websocket`: one task per message, synchronous writes); with ``--ws`` naming
one of uvicorn's implementations it stays on uvicorn's ASGI events. It parses
every ``AgentToServer`` (WebSocket frames after the 0x00 header, or plain-HTTP POST bodies) and
answers one fixed ``ServerToAgent`` carrying the agent's ``instance_uid``, nothing else: no
authentication, state, database or logging. ``bench/opamp_load.py --floor`` runs the same
agents against it right after FlowGate, so FlowGate's CPU per message and memory per agent can
be read as ratios to this floor on a noisy shared machine.

    python bench/opamp_floor.py --port 8099 [--ws websockets-sansio|wsproto|websockets]
"""

from __future__ import annotations

import argparse
import contextvars
from typing import Any

import uvicorn

from flowgate.opamp import websocket
from flowgate.opamp.proto import opamp_pb2
from flowgate.serving import WS_IMPLEMENTATION, uvicorn_options

PROTOBUF = b"application/x-protobuf"
#: What FlowGate offers in every non-error reply (flowgate.opamp.core.SERVER_CAPABILITIES).
CAPABILITIES = int(
    opamp_pb2.ServerCapabilities_AcceptsStatus
    | opamp_pb2.ServerCapabilities_OffersRemoteConfig
    | opamp_pb2.ServerCapabilities_AcceptsEffectiveConfig
    | opamp_pb2.ServerCapabilities_OffersConnectionSettings
)


def reply_for(data: bytes) -> bytes:
    """Parse one AgentToServer and serialise the fixed reply (the protocol work, no more)."""
    msg = opamp_pb2.AgentToServer()
    msg.ParseFromString(data)
    reply = opamp_pb2.ServerToAgent(instance_uid=msg.instance_uid, capabilities=CAPABILITIES)
    return reply.SerializeToString()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The whole server: WebSocket echo of a fixed reply, or one POST answered."""
    kind = scope["type"]
    if kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "http":
        await _http(scope, receive, send)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Lean:
    """The floor's handler of a detached socket: answer each message, nothing else."""

    __slots__ = ("context", "idle_timeout", "socket")

    def __init__(self) -> None:
        self.context = contextvars.copy_context()
        self.idle_timeout = None
        self.socket: websocket.LeanWebSocket | None = None

    def attached(self, socket: websocket.LeanWebSocket) -> None:
        self.socket = socket

    async def received(self, data: bytes, text: bool) -> None:
        assert self.socket is not None
        self.socket.send(b"\x00" + reply_for(data[1:] if data else b""))

    def idle(self) -> None:
        pass

    def lost(self) -> None:
        pass


async def _websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    if websocket.DETACH in scope.get("extensions", {}):
        await send({"type": "websocket.accept", websocket.HANDLER: _Lean()})
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        data = event.get("bytes") or b"\x00"
        await send({"type": "websocket.send", "bytes": b"\x00" + reply_for(data[1:])})


async def _http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["method"] != "POST":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    payload = reply_for(b"".join(chunks))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", PROTOBUF),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws", help=f"uvicorn --ws implementation (default {WS_IMPLEMENTATION})")
    args = parser.parse_args()
    options = uvicorn_options(64 * 1024 * 1024)  # flowgate serve's own choices
    if args.ws:
        options["ws"] = args.ws
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", **options)


if __name__ == "__main__":
    main()
