"""`riskgate serve` as a real child process, for tests that signal or kill it, and what they
read back from Redis afterwards."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

from riskgate.store.embedded import free_port
from riskgate.store.keys import Keys
from tests.support import Client


def serve(redis_url: str, port: int, log: Path, *extra: str, admin_port: int = 0) -> subprocess.Popen[bytes]:
    """Starts `riskgate serve` on 127.0.0.1:port with the bundled sample configuration (and
    its operators' listener on admin_port when given; an ephemeral one otherwise)."""
    admin = ["--admin-listen", f"127.0.0.1:{admin_port}"] if admin_port else []
    return subprocess.Popen(
        [sys.executable, "-m", "riskgate.cli.main", "serve", "--redis-url", redis_url,
         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING", *admin, *extra],
        stdout=subprocess.PIPE, stderr=log.open("wb"), env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
    assert b"riskgate ready on" in line, line


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@asynccontextmanager
async def serving(redis_url: str, log: Path) -> AsyncIterator[tuple[subprocess.Popen[bytes], Client]]:
    """A ready `riskgate serve` on an emptied Redis, and a client of it; both ended after."""
    await flush(redis_url)
    port, admin_port = free_port(), free_port()
    process = serve(redis_url, port, log, admin_port=admin_port)
    client = Client(port, admin_port)
    try:
        await ready(process)
        yield process, client
    finally:
        await client.close()
        end(process)


async def flush(url: str) -> None:
    redis = aioredis.Redis.from_url(url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()


async def order_ids_in_redis(url: str) -> set[str]:
    redis = aioredis.Redis.from_url(url)
    try:
        return {field.decode().split("\x1f")[1] for field in await redis.hkeys(Keys("rg").orders)}
    finally:
        await redis.aclose()
