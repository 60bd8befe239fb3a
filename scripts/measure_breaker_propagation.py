"""How long a breaker set through one process takes to reach another process's book, the
admin RPC round trip included. Run: python scripts/measure_breaker_propagation.py"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from riskgate.api.server import RiskgateService
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import admin_pb2 as admin
from tests.support import Client, test_config

ROUNDS = 200


async def measure(redis_url: str) -> list[float]:
    first = RiskgateService(test_config(), redis_url)
    second = RiskgateService(test_config(), redis_url)
    client = Client(await first.start())
    await second.start()
    latencies_ms = []
    try:
        for i in range(ROUNDS):
            state = admin.BREAKER_HALTED if i % 2 == 0 else admin.BREAKER_NORMAL
            started = time.perf_counter()
            await client.set_breaker(state, reason="propagation probe")
            while second.book.platform_breaker.state != state:
                await asyncio.sleep(0)
            latencies_ms.append((time.perf_counter() - started) * 1000)
    finally:
        await client.close()
        await first.stop()
        await second.stop()
    return sorted(latencies_ms)


def main() -> None:
    with EmbeddedRedis(tempfile.mkdtemp(prefix="riskgate-propagation-")) as server:
        latencies = asyncio.run(measure(server.url))
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"breaker set on process A -> applied in process B, {ROUNDS} rounds: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {latencies[-1]:.2f} ms")


if __name__ == "__main__":
    main()
