"""The event loop and HTTP protocol the service runs on.

The loop is uvloop, taking every pending connection at once; the protocol is
uvicorn's httptools one, noting when each request's bytes were read
(`scope["state"]["arrived_at"]`, for MAX_QUEUE_SECONDS: `service.overload`).

libuv, under uvloop, accepts one pending connection per turn of the loop.
Under load a turn runs the callbacks of every request in flight, so a burst
of new connections waits in the listening socket's queue, one turn each:
their first requests wait seconds while others are answered in
milliseconds. Here the listening socket is watched by the loop as any file,
and each time it is readable every pending connection is taken (as asyncio's
own loop does), each then served by uvloop as any other. Without uvloop
(Windows, PyPy), asyncio's loop does the same by itself. Several workers
each listen on a socket of their own (`worker_listening`).
"""

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is installed wherever it builds
    uvloop = None  # type: ignore[assignment]


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol, with each request's arrival: when its bytes were read;
    and each answer written at once, its head with its body (`HeldWrites`)."""

    received_at = 0.0

    def data_received(self, data: bytes) -> None:
        self.received_at = time.monotonic()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["state"]["arrived_at"] = self.received_at

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The request's cycle, made just now (an upgrade makes none).
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.transport, HeldWrites):
            cycle.transport = cast(asyncio.Transport, HeldWrites(self.transport))


class HeldWrites:
    """A connection's transport as one request's cycle writes its answer to it:
    each write is held until the next one or the end of the loop's turn, and
    then sent with it.

    uvicorn writes an answer's head (status line and headers) and its body
    apart: two system calls, and two TCP segments the client is woken for.
    The body follows the head in the same turn of the loop, so both leave
    in one. A streamed body's last piece waits for the end of the turn at
    most. Everything else is the transport's own.
    """

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            asyncio.get_running_loop().call_soon(self._write_held)
        else:
            self._held = None
            self._transport.writelines((held, data))

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._write_held()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class AcceptingServer:
    """What `create_server` returns (the parts uvicorn uses): listening
    sockets whose pending connections are all taken when one is readable."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        factory: Callable[[], Any],
        sockets: list[socket.socket],
    ) -> None:
        self._loop = loop
        self._factory = factory
        self._sockets = sockets
        for sock in sockets:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._accept_pending, sock)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def _accept_pending(self, sock: socket.socket) -> None:
        while True:
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            connection.setblocking(False)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._loop.create_task(self._loop.connect_accepted_socket(self._factory, connection))

    def close(self) -> None:
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    async def wait_closed(self) -> None:
        return None


# Where SO_REUSEPORT spreads connections: TCP over IPv4 and IPv6.
REUSABLE_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def worker_listening(shared: socket.socket, backlog: int) -> socket.socket:
    """A socket on which this worker listens, of the workers that share `shared`.

    Were they all to listen on `shared`, each would be woken by a new
    connection, and the first to run would take it: in a burst, often all of
    them, and keep them as long as their clients keep them alive. On Linux
    each worker listens on a socket of its own on the same address instead
    (SO_REUSEPORT), among which the kernel spreads new connections evenly;
    `shared` stays bound, never listening, so that the port stays taken.
    Elsewhere, or for a Unix socket, the workers listen on `shared`.
    """
    if not sys.platform.startswith("linux") or shared.family not in REUSABLE_FAMILIES:
        shared.listen(backlog)
        return shared
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own = socket.socket(shared.family, socket.SOCK_STREAM)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(shared.getsockname())
    own.listen(backlog)
    return own


def listening(host: str | None, port: int | None, backlog: int) -> list[socket.socket]:
    """Sockets listening on every address `host` names, as asyncio's
    `create_server` makes them (SO_REUSEADDR, IPv6 only on IPv6)."""
    addresses = socket.getaddrinfo(
        host or None, port or 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    families_and_addresses = dict.fromkeys((family, address) for family, *_, address in addresses)
    return [
        socket.create_server(address, family=family, backlog=backlog)
        for family, address in families_and_addresses
    ]


if uvloop is not None:

    class Loop(uvloop.Loop):
        async def create_server(  # type: ignore[override]
            self,
            protocol_factory: Callable[[], Any],
            host: str | None = None,
            port: int | None = None,
            *,
            sock: socket.socket | None = None,
            backlog: int = 100,
            ssl: Any = None,
            **options: Any,
        ) -> Any:
            unix = sock is not None and sock.family == socket.AF_UNIX
            if ssl is not None or options or unix:
                # As uvloop does it: TLS, Unix sockets, and options not read here.
                create: Any = super().create_server
                return await create(
                    protocol_factory, host, port, sock=sock, backlog=backlog, ssl=ssl, **options
                )
            if sock is None:
                sockets = listening(host, port, backlog)
            else:
                # The socket uvicorn bound for its workers (WEB_CONCURRENCY > 1).
                sockets = [worker_listening(sock, backlog)]
            return AcceptingServer(self, protocol_factory, sockets)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop uvicorn runs the service on (its `loop` setting)."""
    if uvloop is None:  # pragma: no cover
        return asyncio.new_event_loop()
    return Loop()
