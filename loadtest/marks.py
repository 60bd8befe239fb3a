"""Feeds riskgate mark prices while a run lasts, as a market-data service would.

A few ticks a second, each symbol in turn, random-walking within half a percent of its starting
mark: the marks stay fresh (riskgate fails closed on a stale one) and the planned price-band
rejects stay outside the band. Sent on the market-data path (one PublishMarks stream, as a feed
does); a server without it (UNIMPLEMENTED) gets SetMarkPrice calls instead.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Iterator
from decimal import Decimal

import grpc

from loadtest.riskgate_config import ADMIN_TOKEN
from loadtest.workload import Market, on_grid, text
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc

UPDATES_PER_SECOND = 6.0
MAX_DRIFT = 0.005
STEP = 0.0005


class MarkFeeder:
    def __init__(self, target: str, markets: list[Market], seed: int = 1,
                 updates_per_second: float = UPDATES_PER_SECOND) -> None:
        self.target = target
        self.markets = markets
        self.updates_per_second = updates_per_second
        self.sent = 0
        self.failed = 0
        self._rng = random.Random(seed)
        self._drift = {m.symbol: 0.0 for m in markets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mark-feeder", daemon=True)

    def start(self) -> MarkFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def next_price(self, market: Market) -> Decimal:
        drift = self._drift[market.symbol] + self._rng.uniform(-STEP, STEP)
        drift = max(-MAX_DRIFT, min(MAX_DRIFT, drift))
        self._drift[market.symbol] = drift
        return on_grid(float(market.mark) * (1 + drift), market.spec.tick_size)

    def _run(self) -> None:
        metadata = [("authorization", f"Bearer {ADMIN_TOKEN}")]
        with grpc.insecure_channel(self.target) as channel:
            stub = admin_grpc.RiskAdminStub(channel)
            if self._stream(stub, metadata):
                return
            turn = 0
            while not self._stop.wait(1 / self.updates_per_second):
                market = self.markets[turn % len(self.markets)]
                turn += 1
                try:
                    stub.SetMarkPrice(admin.MarkPrice(symbol=market.symbol, price=text(self.next_price(market))),
                                      metadata=metadata, timeout=2.0)
                    self.sent += 1
                except grpc.RpcError:
                    self.failed += 1

    def _stream(self, stub: admin_grpc.RiskAdminStub, metadata: list[tuple[str, str]]) -> bool:
        """Feeds on PublishMarks until stopped (opening a stream again if one ends); False when
        the server does not serve it."""
        while not self._stop.is_set():
            ticks: queue.SimpleQueue[admin.MarkTicks | None] = queue.SimpleQueue()
            ended = threading.Event()

            def requests(source: queue.SimpleQueue[admin.MarkTicks | None] = ticks) -> Iterator[admin.MarkTicks]:
                while (message := source.get()) is not None:
                    yield message

            def pace(sink: queue.SimpleQueue[admin.MarkTicks | None] = ticks, ended: threading.Event = ended) -> None:
                turn = 0
                while not self._stop.wait(1 / self.updates_per_second) and not ended.is_set():
                    market = self.markets[turn % len(self.markets)]
                    turn += 1
                    sink.put(admin.MarkTicks(ticks=[admin.MarkTick(symbol=market.symbol,
                                                                   price=text(self.next_price(market)))]))
                    self.sent += 1
                sink.put(None)

            pacer = threading.Thread(target=pace, name="mark-feeder-pace", daemon=True)
            pacer.start()
            try:
                for ack in stub.PublishMarks(requests(), metadata=metadata):
                    self.failed += len(ack.rejections)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                    return False
                self.failed += 1
                self._stop.wait(0.5)
            finally:
                ended.set()
                pacer.join(5)
        return True
