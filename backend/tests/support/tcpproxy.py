"""A TCP proxy that tests can cut, to take a real database away from a real server.

``TcpProxy(5432).start()`` listens on a free port of 127.0.0.1 and forwards every connection to
127.0.0.1:<target>. :meth:`TcpProxy.cut` resets every open connection and, until
:meth:`TcpProxy.restore`, resets each new one as soon as it is accepted, which is what a server
sees when its database restarts or a firewall rejects it. :meth:`TcpProxy.cut_on` arms a cut
that happens the moment a client sends some bytes (say ``COMMIT``, on the connection that sent
a request's unique value before), which are never delivered: a failure at an exact point of a
transaction. The proxy runs its own event loop in a daemon
thread, so it keeps working while a test blocks on synchronous calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (linger 0), not FIN: the peer's next read or write fails at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.cut_active = False
        #: Connections accepted while cut (each reset at once); for assertions and debugging.
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._trigger: tuple[bytes, bytes | None] | None = None
        #: Set (from the proxy's thread) when an armed :meth:`cut_on` has fired.
        self.triggered = threading.Event()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> TcpProxy:
        self._thread.start()
        self._server = self._call(self._listen())
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_active:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        if self.cut_active:  # cut while connecting upstream
            self.refused += 1
            _reset(writer)
            up_writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, self._interceptor()), _pipe(up_reader, writer)
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _cut(self) -> None:
        self._reset_all()

    def _reset_all(self) -> None:
        self.cut_active = True
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def cut(self) -> None:
        """Reset every open connection and every new one until :meth:`restore`."""
        self._call(self._cut())

    def cut_on(self, pattern: bytes, after: bytes | None = None) -> None:
        """Cut (as :meth:`cut`) when a client next sends ``pattern`` on a connection that has
        sent ``after`` earlier (any connection when None); that chunk is never delivered."""
        self.triggered.clear()
        self._trigger = (pattern, after)

    def _interceptor(self) -> Callable[[bytes], bool]:
        """A per-connection filter for client bytes; True means "drop the chunk, cut now"."""
        sent_after = False
        tail = b""  # so an ``after`` split over two chunks is still seen

        def intercept(data: bytes) -> bool:
            nonlocal sent_after, tail
            if self._trigger is None:
                return False
            pattern, after = self._trigger
            rest = data
            if after is not None and not sent_after:
                window = tail + data
                tail = window[-len(after) :]
                if after not in window:
                    return False
                sent_after = True
                rest = window[window.index(after) + len(after) :]
            if pattern not in rest:
                return False
            self._trigger = None
            self._reset_all()
            self.triggered.set()
            return True

        return intercept

    def restore(self) -> None:
        """Forward new connections again (connections reset by the cut stay gone)."""
        self.cut_active = False

    def stop(self) -> None:
        async def close() -> None:
            await self._cut()
            if self._server is not None:
                self._server.close()

        if self._thread.is_alive():
            self._call(close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    intercept: Callable[[bytes], bool] | None = None,
) -> None:
    try:
        while data := await reader.read(65536):
            if intercept is not None and intercept(data):
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.transport.abort()
