"""A TCP proxy between riskgate and Redis that loses Redis's answers once a chosen command has
gone through: Redis runs it, riskgate never hears back (a link that breaks at the worst time)."""

from __future__ import annotations

import asyncio


class LossyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.trigger: bytes | None = None
        self.only_its_link = False
        self.fired = asyncio.Event()
        self._dropping = False
        self._links: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def lose_answers_after(self, command: bytes, only_its_link: bool = False) -> None:
        """Once `command` passes (e.g. b'EVALSHA'), answers stop and every link is cut shortly;
        with only_its_link, only the answers of the link that carried it stop and only that link
        is cut (the others, the change feed's among them, carry on)."""
        self.trigger = command
        self.only_its_link = only_its_link

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        link = (client_writer, redis_writer)
        self._links.append(link)
        lost = False  # this link's answers only

        def cut_link() -> None:
            for writer in link:
                writer.transport.abort()

        async def upstream() -> None:
            nonlocal lost
            tail = b""
            while data := await client_reader.read(65536):
                redis_writer.write(data)
                await redis_writer.drain()
                window, tail = tail + data, (tail + data)[-200:]
                if self.trigger is not None and self.trigger in window:
                    self.trigger = None
                    if self.only_its_link:
                        lost = True
                    else:
                        self._dropping = True
                    self.fired.set()
                    asyncio.get_running_loop().call_later(0.3, cut_link if self.only_its_link else self._cut)

        async def downstream() -> None:
            while data := await redis_reader.read(65536):
                if not self._dropping and not lost:
                    client_writer.write(data)
                    await client_writer.drain()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_writer, redis_writer):
                writer.transport.abort()

    def _cut(self) -> None:
        for pair in self._links:
            for writer in pair:
                writer.transport.abort()
        self._links.clear()
        self._dropping = False

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._cut()
