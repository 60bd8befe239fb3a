"""A writer paused past its lease while Redis lost its data and a successor took the shard and
left: the paused one must not take the shard back with its stale book (found by review: the
first lease kept an epoch counter, which a Redis that lost its data counts again from 1)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import redis.asyncio as aioredis

from riskgate.store.embedded import EmbeddedRedis, free_port
from tests.conftest import Services
from tests.processes import end, ready, serve
from tests.support import Client, decision
from tests.test_faults import _wait_stopped, own_redis  # noqa: F401


async def test_paused_writer_when_redis_lost_data_and_successor_came_and_went_then_not_retaken(
        own_redis: EmbeddedRedis, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    p1 = serve(own_redis.url, port, tmp_path / "p1.log")
    c1 = Client(port)
    services = Services(own_redis.url)
    redis = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        await ready(p1)
        os.kill(p1.pid, signal.SIGSTOP)
        _wait_stopped(p1.pid)
        await asyncio.sleep(2.5)  # past P1's lease
        await redis.flushall()  # Redis lost its data (restart without persistence, new node)
        service2, c2 = await services.start()
        await c2.upsert_symbol(mark="60000")
        await c2.trader("demo-alice", balance="100000")
        assert decision(await c2.check(account="demo-alice", quantity="11", price="60000", leverage=10,
                                       order_id="on-p2")) == "DECISION_ACCEPT"  # 66,000 of 100,000
        await services.stop(service2)  # releases its lease; its reservation stays (order is live)
        os.kill(p1.pid, signal.SIGCONT)
        await asyncio.sleep(2.0)
        second = await c1.check(account="demo-alice", quantity="11", price="60000", leverage=10, order_id="on-p1")
        assert decision(second) != "DECISION_ACCEPT", "P1 took the shard back over P2's reservation"
    finally:
        if p1.poll() is None:
            os.kill(p1.pid, signal.SIGCONT)
        await c1.close()
        end(p1)
        await services.stop_all()
        await redis.aclose()
