"""Assembles one riskgate process: Redis store, in-memory book, gRPC services."""

from __future__ import annotations

import gc
import logging
import time

import grpc
import msgspec
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from riskgate.api.admin import RiskAdminServicer
from riskgate.api.auth import Authenticator
from riskgate.api.pretrade import PreTradeRiskServicer
from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec
from riskgate.book.state import Book
from riskgate.config import AccountSeed, Config
from riskgate.engine.codes import Restriction
from riskgate.engine.spec_rules import validate_account, validate_controls, validate_symbol
from riskgate.store.keys import Keys
from riskgate.store.redis_store import RedisStore
from riskgate.telemetry import DecisionCounters, setup_metrics
from riskgate.v1 import admin_pb2, admin_pb2_grpc, pretrade_pb2, pretrade_pb2_grpc

log = logging.getLogger(__name__)
REDIS_SOCKET_TIMEOUT_S = 2.0
FULL_COLLECTION_THRESHOLD = 1000


class RiskgateService:
    """One process. `start()` returns once the book is loaded and the port answers."""

    def __init__(self, config: Config, redis_url: str) -> None:
        self.config = config
        self.redis_url = redis_url
        server = config.server
        if not 0 <= server.shard_index < server.shard_count:
            raise ValueError("shard_index must be in [0, shard_count)")
        self.book = Book(server.default_max_orders_per_second, server.duplicate_window_seconds,
                         server.shard_index, server.shard_count)
        self.counters = DecisionCounters()
        self.auth = Authenticator(config.admin_tokens)
        self.store: RedisStore | None = None
        self.server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> int:
        server_config = self.config.server
        self._validate_seeds()
        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                                         socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S)
        self.store = RedisStore(client, self.book, Keys(server_config.key_prefix),
                                server_config.redis_stale_after_ms, server_config.audit_stream_maxlen,
                                server_config.write_behind_ms)
        await self._seed(self.store)
        await self.store.start()
        setup_metrics(self.counters)

        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        pretrade_pb2_grpc.add_PreTradeRiskServicer_to_server(PreTradeRiskServicer(self.book, self.counters),
                                                            self.server)
        admin_pb2_grpc.add_RiskAdminServicer_to_server(RiskAdminServicer(self.book, self.store, self.auth),
                                                      self.server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        service_names = (
            pretrade_pb2.DESCRIPTOR.services_by_name["PreTradeRisk"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["RiskAdmin"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(service_names, self.server)
        self.port = self.server.add_insecure_port(server_config.listen)
        if not self.port:
            raise RuntimeError(f"cannot listen on {server_config.listen}")
        await self.server.start()
        for name in ("", *service_names[:2]):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        # Start-up objects live for the whole process: keep them out of the collector's scans.
        gc.collect()
        gc.freeze()
        # A full collection stalls the loop for milliseconds, and at high utilisation the queue
        # it leaves takes tens of milliseconds to drain. The hot path makes little cyclic
        # garbage, so full collections run 100 times less often than Python's default.
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
        log.info("riskgate listening on %s (port %d), %d symbols, %d accounts", server_config.listen, self.port,
                 len(self.book.symbols), len(self.book.accounts))
        return self.port

    async def wait(self) -> None:
        assert self.server is not None
        await self.server.wait_for_termination()

    async def stop(self, grace_s: float = 1.0) -> None:
        if self.server is not None:
            await self.server.stop(grace_s)
            self.server = None
        if self.store is not None:
            await self.store.close()
            self.store = None

    def _validate_seeds(self) -> None:
        symbols = set()
        for spec in self.config.symbols:
            validate_symbol(spec)
            symbols.add(spec.symbol)
        for seed in self.config.accounts:
            snapshot, controls = _account_records(seed)
            validate_account(snapshot, symbols)
            validate_controls(controls)
        for mark in self.config.marks:
            if mark.symbol not in symbols or not mark.price > 0:
                raise ValueError(f"marks: {mark.symbol!r} needs a listed symbol and a positive price")

    async def _seed(self, store: RedisStore) -> None:
        now_ms = time.time_ns() // 1_000_000
        records: list[tuple[str, str, msgspec.Struct]] = [("symbol", s.symbol, s) for s in self.config.symbols]
        records += [("mark", m.symbol, MarkSpec(symbol=m.symbol, price=m.price, timestamp_ms=now_ms))
                    for m in self.config.marks]
        for seed in self.config.accounts:
            snapshot, controls = _account_records(seed)
            records += [("account", seed.account_id, snapshot), ("controls", seed.account_id, controls)]
        written = await store.seed(records, "config")
        log.info("seeded %d of %d records from the configuration", written, len(records))

def _account_records(seed: AccountSeed) -> tuple[AccountSnapshot, ControlsSpec]:
    snapshot = AccountSnapshot(
        account_id=seed.account_id,
        balance=seed.balance,
        positions=tuple(PositionSpec(symbol=p.symbol, quantity=p.quantity, entry_price=p.entry_price,
                                     leverage=p.leverage) for p in seed.positions),
    )
    controls = ControlsSpec(
        account_id=seed.account_id,
        restriction=Restriction[seed.restriction],
        kyc_level=seed.kyc_level,
        qualified_investor=seed.qualified_investor,
        max_leverage=seed.max_leverage,
        max_orders_per_second=seed.max_orders_per_second,
        max_gross_notional=seed.max_gross_notional,
    )
    return snapshot, controls
