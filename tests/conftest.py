"""Fixtures: a real redis-server (the embedded binary) and real riskgate services over loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from riskgate.api.server import RiskgateService
from riskgate.compiled import HOT_PATH, compiled_modules
from riskgate.config import Config
from riskgate.store.embedded import EmbeddedRedis
from tests.support import Client, test_config

# `riskgate serve` processes the tests start take the sample configuration, whose operators'
# listener and (with the embedded Redis) demo monitor have fixed ports: give them ephemeral
# ones instead.
os.environ.setdefault("RISKGATE_ADMIN_LISTEN", "127.0.0.1:0")
os.environ.setdefault("RISKGATE_MONITOR_LISTEN", "127.0.0.1:0")
os.environ.setdefault("RISKGATE_METRICS_LISTEN", "127.0.0.1:0")
os.environ.setdefault("RISKGATE_MONITOR_METRICS_LISTEN", "127.0.0.1:0")


def pytest_report_header() -> str:
    return f"riskgate hot path: {len(compiled_modules())} of {len(HOT_PATH)} modules compiled (mypyc)"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def flushed_redis(redis_server: EmbeddedRedis) -> AsyncIterator[EmbeddedRedis]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    await client.aclose()
    yield redis_server


class Services:
    """Starts services against the test Redis; stops them all at the end of the test."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.running: list[tuple[RiskgateService, Client]] = []

    async def start(self, config: Config | None = None, **server: Any) -> tuple[RiskgateService, Client]:
        service = RiskgateService(config or test_config(**server), self.redis_url)
        port = await service.start()
        client = Client(port, service.admin_port)
        self.running.append((service, client))
        return service, client

    async def stop(self, service: RiskgateService) -> None:
        for entry in list(self.running):
            if entry[0] is service:
                await entry[1].close()
                await service.stop()
                self.running.remove(entry)

    async def stop_all(self) -> None:
        for service, client in reversed(self.running):
            await client.close()
            await service.stop()
        self.running.clear()


@pytest.fixture
async def services(flushed_redis: EmbeddedRedis) -> AsyncIterator[Services]:
    started = Services(flushed_redis.url)
    yield started
    await started.stop_all()


@pytest.fixture
async def client(services: Services) -> Client:
    _, started = await services.start()
    return started


@pytest.fixture
async def btc(client: Client) -> Client:
    """A service with BTCUSDT (Binance brackets, mark 50,000) and acct-1 holding 100,000 USDT."""
    await client.upsert_symbol(mark="50000")
    await client.trader()
    return client


@pytest.fixture
async def compat_btc(services: Services) -> Client:
    """As `btc`, on a service that still takes fills without an execution id."""
    _, started = await services.start(require_execution_id=False)
    await started.upsert_symbol(mark="50000")
    await started.trader()
    return started


RequestBuilder = Callable[..., Any]
