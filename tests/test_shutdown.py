"""Stopping under load: bounded, and nothing acknowledged is lost.

In-process stops exercise the stop sequence itself many times; `riskgate serve` processes
stopped by SIGTERM show the same through the real entry point and its signal handling."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

from grpc.aio import AioRpcError

from riskgate.api.server import RiskgateService
from riskgate.store.embedded import EmbeddedRedis
from tests.processes import flush, order_ids_in_redis, serving
from tests.support import Client, decision, test_config

ROUNDS = 20
SENDERS = 4
EXIT_BOUND_S = 15.0


async def _send_until_refused(client: Client, prefix: str, account: str, price: str, acked: set[str]) -> None:
    """Sends risk-increasing orders back to back until the service stops answering."""
    for n in range(1_000_000):
        order_id = f"{prefix}-{n}"
        try:
            response = await client.pretrade.CheckOrder(
                client.request(account=account, quantity="0.001", price=price, leverage=20, order_id=order_id),
                timeout=5)
        except AioRpcError:
            return
        if decision(response) == "DECISION_ACCEPT":
            acked.add(order_id)


async def test_stop_when_orders_in_flight_then_bounded_and_every_acknowledged_reservation_in_redis(
        redis_server: EmbeddedRedis) -> None:
    rng = random.Random(7)
    for round_ in range(ROUNDS):
        await flush(redis_server.url)
        service = RiskgateService(test_config(), redis_server.url)
        client = Client(await service.start(), service.admin_port)
        try:
            await client.upsert_symbol(mark="50000")
            await client.trader(balance="1000000000")
            acked: set[str] = set()
            senders = [asyncio.get_running_loop().create_task(
                _send_until_refused(client, f"r{round_}s{i}", "acct-1", "50000", acked)) for i in range(SENDERS)]
            # Stop at a random point of the write-behind cycle.
            await asyncio.sleep(rng.uniform(0.005, 0.05))
            report = await service.stop(grace_s=0.5)
            assert report.clean, report.unfinished
            await asyncio.gather(*senders)
            assert acked, "the load never got going"
            stored = await order_ids_in_redis(redis_server.url)
            assert acked <= stored, f"round {round_}: acknowledged but not in Redis: {sorted(acked - stored)[:5]}"
        finally:
            await client.close()
            await service.stop()


async def test_sigterm_when_serve_is_loaded_then_exits_in_bound_with_write_behind_flushed(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        log = tmp_path / f"serve-{round_}.log"
        async with serving(redis_server.url, log) as (process, client):
            acked: set[str] = set()
            # The bundled sample configuration: demo-alice, BTCUSDT marked at 60,000.
            senders = [asyncio.get_running_loop().create_task(
                _send_until_refused(client, f"t{round_}s{i}", "demo-alice", "60000", acked)) for i in range(SENDERS)]
            while len(acked) < 20:
                await asyncio.sleep(0.005)
            process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await asyncio.to_thread(process.wait, EXIT_BOUND_S)
            assert time.monotonic() - signalled < EXIT_BOUND_S
            assert code == 0, log.read_text()
            await asyncio.gather(*senders)
            stored = await order_ids_in_redis(redis_server.url)
            assert acked <= stored, f"round {round_}: acknowledged but not in Redis: {sorted(acked - stored)[:5]}"
