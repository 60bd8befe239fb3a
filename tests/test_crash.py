"""A riskgate process that dies: what Redis keeps after a SIGKILL holds every acknowledged
fill and is a consistent prefix (no reservation of an order whose fill it already counts:
no zombies after the restart)."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aioredis
from grpc.aio import AioRpcError

from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from tests.processes import order_ids_in_redis, serving
from tests.support import Client

LOT = Decimal("0.001")


async def _orders_and_position(url: str) -> tuple[set[str], Decimal]:
    orders = await order_ids_in_redis(url)
    redis = aioredis.Redis.from_url(url)
    try:
        account = json.loads(await redis.hget(Keys("rg").accounts, "demo-alice"))["d"]
        btc = [p for p in account["positions"] if p["symbol"] == "BTCUSDT"]
        return orders, Decimal(btc[0]["quantity"]) if btc else Decimal(0)
    finally:
        await redis.aclose()


async def _trade_back_to_back(client: Client) -> int:
    """One at a time: order n is checked only after order n-1 filled. Returns how many fills
    were acknowledged."""
    for n in range(1_000_000):
        order_id = f"o{n}"
        try:
            await client.pretrade.CheckOrder(client.request(
                account="demo-alice", quantity="0.001", price="60000", leverage=20, order_id=order_id), timeout=5)
            await client.fill("demo-alice", order_id, "0.001", "60000")
        except AioRpcError:
            return n
    return n


async def test_sigkill_when_orders_fill_back_to_back_then_acknowledged_fills_kept_and_no_zombie_reservation(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    rng = random.Random(11)
    for round_ in range(5):
        async with serving(redis_server.url, tmp_path / f"serve-{round_}.log") as (process, client):
            trader = asyncio.get_running_loop().create_task(_trade_back_to_back(client))
            await asyncio.sleep(rng.uniform(0.2, 0.6))
            process.send_signal(signal.SIGKILL)
            process.wait()
            acknowledged = await trader
            orders, position = await _orders_and_position(redis_server.url)
            filled = int(position / LOT)
            # An acknowledged fill is in Redis: the sender will not report it again.
            assert filled >= acknowledged > 0
            # Redis holds a prefix: fills 0..filled-1, and at most the next order still open.
            assert orders <= {f"o{filled}"}, (filled, sorted(orders))


async def test_sigkill_when_right_after_a_fill_is_acknowledged_then_redis_already_has_it(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    rng = random.Random(5)
    for round_ in range(5):
        async with serving(redis_server.url, tmp_path / f"serve-{round_}.log") as (process, client):
            fills = rng.randint(1, 30)
            for n in range(fills):
                await client.pretrade.CheckOrder(client.request(
                    account="demo-alice", quantity="0.001", price="60000", leverage=20, order_id=f"o{n}"), timeout=5)
                await client.fill("demo-alice", f"o{n}", "0.001", "60000")
            # Well inside the write-behind window of the last fill.
            process.send_signal(signal.SIGKILL)
            process.wait()
            orders, position = await _orders_and_position(redis_server.url)
            assert (position, orders) == (fills * LOT, set())
