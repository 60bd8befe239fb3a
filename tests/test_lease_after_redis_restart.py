"""A single healthy process whose Redis restarts: with its data (after longer than the lease),
and without it (a Redis without persistence, a replacement node, a replica that never had the
lease keys). README: on reconnect memory is written back and orders flow again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from riskgate.store.embedded import EmbeddedRedis
from tests.conftest import Services
from tests.support import decision
from tests.test_faults import own_redis  # noqa: F401


@pytest.mark.parametrize("data", ["kept", "lost"])
async def test_single_process_when_redis_restarts_after_lease_then_orders_flow_again(
        own_redis: EmbeddedRedis, tmp_path: Path, data: str) -> None:  # noqa: F811
    services = Services(own_redis.url)
    restarted: EmbeddedRedis | None = None
    try:
        _, client = await services.start(redis_stale_after_ms=300)
        await client.upsert_symbol(mark="50000", mark_price_max_age_ms=3_600_000)
        await client.trader(balance="100000")
        assert decision(await client.check(quantity="0.01")) == "DECISION_ACCEPT"
        await asyncio.sleep(1.5)  # the AOF (everysec) has the lease's generation
        own_redis.kill()
        await asyncio.sleep(2.0)  # longer than the lease (1 s)
        data_dir = own_redis.data_dir if data == "kept" else tmp_path / "empty"
        restarted = EmbeddedRedis(data_dir, port=own_redis.port).start()
        deadline = time.monotonic() + 10
        outcome = None
        while time.monotonic() < deadline:
            outcome = decision(await client.check(quantity="0.01"))
            if outcome == "DECISION_ACCEPT":
                break
            await asyncio.sleep(0.1)
        assert outcome == "DECISION_ACCEPT", f"still failing closed 10 s after Redis came back ({data})"
    finally:
        await services.stop_all()
        if restarted is not None:
            restarted.stop()
