"""The loop the service runs on takes a burst of new connections at once."""

import asyncio
import socket

from service import serving

BURST = 200


def test_every_pending_connection_is_taken_in_one_turn_of_the_loop() -> None:
    # uvloop alone takes one pending connection per turn: under load, each
    # turn long, a burst's last connections waited seconds to be read.
    loop = serving.new_event_loop()
    made: list[asyncio.BaseTransport] = []

    class Counted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    async def burst() -> int:
        server = await loop.create_server(Counted, "127.0.0.1", 0, backlog=BURST * 2)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(BURST)]
        for _ in range(3):  # the accepts, the transports, their connection_made
            await asyncio.sleep(0)
        taken = len(made)
        for client in clients:
            client.close()
        for transport in made:
            transport.close()
        server.close()
        await server.wait_closed()
        return taken

    try:
        assert loop.run_until_complete(burst()) == BURST
    finally:
        loop.close()
