"""A process paused past its lease must not take it back once a process with another
shard_count took over meanwhile (found by review: two writers of one account, both granting
its margin)."""

from __future__ import annotations

import asyncio
import os
import signal
from importlib import resources
from pathlib import Path

import redis.asyncio as aioredis

from riskgate.store.embedded import EmbeddedRedis, free_port
from tests.conftest import Services
from tests.processes import end, ready, serve
from tests.support import Client, decision
from tests.test_faults import _wait_stopped, own_redis  # noqa: F401


def _config(tmp_path: Path, index: int, count: int) -> Path:
    text = resources.files("riskgate").joinpath("sample_config.toml").read_text()
    text = text.replace("shard_index = 0\nshard_count = 1", f"shard_index = {index}\nshard_count = {count}")
    path = tmp_path / "p1.toml"
    path.write_text(text)
    return path


async def test_paused_writer_when_resumed_after_successor_with_other_shard_count_then_retakes_lease(
        own_redis: EmbeddedRedis, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    p1 = serve(own_redis.url, port, tmp_path / "p1.log", "--config", str(_config(tmp_path, 1, 2)))
    c1 = Client(port)
    services = Services(own_redis.url)
    redis = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        await ready(p1)
        # demo-alice (crc32 % 2 == 1: P1's account), balance 100,000, BTC mark 60,000.
        os.kill(p1.pid, signal.SIGSTOP)
        _wait_stopped(p1.pid)
        await asyncio.sleep(3.0)  # past P1's lease (2 x 1000 ms)
        # A new deployment with one shard: the layout key lapsed with P1's lease, so it starts.
        _, c2 = await services.start(shard_index=0, shard_count=1)
        # Accounts are stored per layout (each shard's hash tag, README "Redis Cluster and per-shard keys"): the new
        # deployment gets demo-alice's state as a migration to the new layout would give it.
        await c2.upsert_account("demo-alice", "100000")
        first = await c2.check(account="demo-alice", quantity="11", price="60000", leverage=10, order_id="on-p2")
        assert decision(first) == "DECISION_ACCEPT"  # reserves 6,600 x 10 = 66,000 of 100,000
        os.kill(p1.pid, signal.SIGCONT)
        await asyncio.sleep(2.0)
        second = await c1.check(account="demo-alice", quantity="11", price="60000", leverage=10, order_id="on-p1")
        # Margin that does not exist: 66,000 + 66,000 reserved against a 100,000 balance.
        assert decision(second) != "DECISION_ACCEPT", "P1 retook its lease and granted margin P2 had granted"
    finally:
        if p1.poll() is None:
            os.kill(p1.pid, signal.SIGCONT)
        await c1.close()
        end(p1)
        await services.stop_all()
        await redis.aclose()
