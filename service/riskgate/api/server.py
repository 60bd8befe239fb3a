"""Assembles one riskgate process: Redis store, in-memory book, gRPC services, and their
start and stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
import msgspec
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection

from riskgate import logs
from riskgate.api import handlers, tls
from riskgate.api.admin import RiskAdminServicer
from riskgate.api.auth import Authenticator
from riskgate.api.lifecycle import Lifecycle
from riskgate.api.pretrade import PreTradeRiskServicer
from riskgate.book.specs import AccountSnapshot, ControlsSpec, MarkSpec, PositionSpec
from riskgate.book.state import Book
from riskgate.compiled import HOT_PATH, compiled_modules
from riskgate.config import AccountSeed, Config
from riskgate.engine.spec_rules import validate_account, validate_controls, validate_symbol
from riskgate.observability import MetricsListenError
from riskgate.store.connect import redis_client
from riskgate.store.keys import Keys
from riskgate.store.redis_store import DRAIN_TIMEOUT_S, RedisStore
from riskgate.telemetry import DecisionCounters, GateTelemetry, gate_telemetry
from riskgate.v1 import admin_pb2, pretrade_pb2
from riskgate.values.codes import Restriction

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

SERVICE_NAMES = (
    pretrade_pb2.DESCRIPTOR.services_by_name["PreTradeRisk"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["RiskAdmin"].full_name,
)
# RiskAdmin's reads: answered ones are logged at DEBUG (changes and refusals at INFO).
ADMIN_READS = ("ListCircuitBreakers", "GetAccountRisk", "ListReservations", "GetSymbol", "ListSymbols",
               "ListAuditEvents")

log = logging.getLogger(__name__)
REDIS_SOCKET_TIMEOUT_S = 2.0
FULL_COLLECTION_THRESHOLD = 1000
# A stop waits this long for the gRPC server beyond its grace, then reports it as unfinished.
SERVER_STOP_MARGIN_S = 2.0


class ListenError(RuntimeError):
    """The configured address cannot be served on (taken, malformed, not permitted)."""


@dataclass
class StopReport:
    unfinished: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.unfinished


class RiskgateService:
    """One process: `bind()` takes the listen address (health NOT_SERVING), `start()` loads
    the book from Redis and then serves, `stop()` ends it within bounds."""

    def __init__(self, config: Config, redis_url: str = "", span_exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.redis_url = redis_url
        server = config.server
        if not 0 <= server.shard_index < server.shard_count:
            raise ValueError("shard_index must be in [0, shard_count)")
        if server.decision_counts_retention_days <= 0:
            raise ValueError("decision_counts_retention_days must be a positive number of days (each day's "
                             f"decision counts are kept that long), got {server.decision_counts_retention_days}")
        self.book = Book(server.default_max_orders_per_second, server.duplicate_window_seconds,
                         server.shard_index, server.shard_count, server.execution_id_window_seconds)
        self.counters = DecisionCounters(self.book.symbols)
        # Metrics and traces (riskgate.telemetry); the instance id is also the writer-lease token.
        self.instance_id = uuid.uuid4().hex
        self.span_exporter = span_exporter
        self.telemetry: GateTelemetry | None = None
        self.metrics_port = 0
        self.auth = Authenticator(config.admin_tokens)
        self.lifecycle = Lifecycle()
        self.store: RedisStore | None = None
        self.server: grpc.aio.Server | None = None
        # RiskAdmin, health and reflection on a listener of their own (admin_listen), outside
        # the order port's admission limit: order traffic cannot lock operators out.
        self.admin_server: grpc.aio.Server | None = None
        self.admin_port = 0
        self.health: health.aio.HealthServicer | None = None
        # Each listener answers health for what it serves: the order port for PreTradeRisk, the
        # operators' listener for RiskAdmin ("" = the process, on both).
        self.admin_health: health.aio.HealthServicer | None = None
        self.admin: RiskAdminServicer | None = None
        self.pretrade: PreTradeRiskServicer | None = None
        self.port = 0
        self._health_updates: set[asyncio.Task[None]] = set()
        self._stopped: StopReport | None = None
        self._fail_closed_log = logs.FailClosedLog()
        self._started_at = 0.0
        self._served = False  # once serving, a stop says what it did

    async def bind(self) -> int:
        """Creates the gRPC server and binds the listen address before anything else happens,
        so a start that cannot serve writes nothing. Health says NOT_SERVING until loaded."""
        if self.server is not None:
            return self.port
        server_config = self.config.server
        max_rpcs = server_config.max_concurrent_rpcs or None
        self.pretrade = PreTradeRiskServicer(self.book, self.counters, self.lifecycle,
                                             require_execution_id=server_config.require_execution_id)
        self.pretrade.decisions = logs.DecisionSampler(server_config.log_decisions_sample)
        self.admin = RiskAdminServicer(self.book, None, self.auth, self.lifecycle)
        self.health = health.aio.HealthServicer()
        self.admin_health = health.aio.HealthServicer()
        # Read (and refused) before anything is bound: a bad file starts nothing.
        order_credentials = tls.server_credentials(server_config.tls_cert, server_config.tls_key,
                                                   server_config.client_ca)
        admin_credentials = tls.server_credentials(server_config.tls_cert, server_config.tls_key)
        self.telemetry = telemetry = gate_telemetry(self, self.span_exporter)
        telemetry.instrument(self.pretrade)
        # The order port: PreTradeRisk, health and reflection only; RiskAdmin never.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=max_rpcs)
        handlers.add_servicer(server, handlers.PRE_TRADE_RISK, self.pretrade)
        handlers.add_servicer(server, handlers.HEALTH, self.health)
        handlers.enable_reflection((SERVICE_NAMES[0], health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        admin_server = None
        try:
            port = _listen(server, server_config.listen, order_credentials)
            if server_config.admin_listen:
                admin_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
                self._add_operator_services(admin_server)
                self.admin_port = _listen(admin_server, server_config.admin_listen, admin_credentials)
            try:
                self.metrics_port = telemetry.telemetry.listen()
            except MetricsListenError as exc:
                raise ListenError(str(exc)) from None
        except ListenError:
            # Neither address stays taken by a start that failed.
            for bound in (server, admin_server):
                if bound is not None:
                    # gRPC releases a port only from a server that was started.
                    await bound.start()
                    await bound.stop(None)
            await asyncio.to_thread(telemetry.telemetry.shutdown)
            raise
        for servicer, name in self._health_names():
            await servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        self.server, self.port = server, port
        if admin_server is not None:
            await admin_server.start()
            self.admin_server = admin_server
        return port

    def _add_operator_services(self, server: grpc.aio.Server) -> None:
        assert self.admin is not None and self.admin_health is not None
        wrap = self.telemetry.telemetry.operator_calls(handlers.RISK_ADMIN.full_name) if self.telemetry else None
        handlers.add_servicer(server, handlers.RISK_ADMIN,
                              logs.AdminCallLog(self.admin, logs.identify_with(self.auth), ADMIN_READS), wrap=wrap)
        handlers.add_servicer(server, handlers.HEALTH, self.admin_health)
        handlers.enable_reflection((SERVICE_NAMES[1], health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    def _health_names(self) -> list[tuple[health.aio.HealthServicer, str]]:
        assert self.health is not None and self.admin_health is not None
        return [(self.health, ""), (self.health, SERVICE_NAMES[0]), (self.admin_health, ""),
                (self.admin_health, SERVICE_NAMES[1])]

    async def start(self, redis_url: str = "") -> int:
        """Loads the book from Redis (seeding it first) and serves; returns the port."""
        url = redis_url or self.redis_url
        if not url:
            raise ValueError("no Redis URL")
        self._validate_seeds()
        self._started_at = time.monotonic()
        try:
            await self.bind()
            server_config = self.config.server
            client = redis_client(url, socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                                             socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S)
            self.store = RedisStore(client, self.book, Keys(server_config.key_prefix),
                                    server_config.redis_stale_after_ms, server_config.audit_stream_maxlen,
                                    server_config.write_behind_ms, server_config.account_events_maxlen,
                                    on_health=self._on_link_health, flow_maxlen=server_config.order_flow_maxlen,
                                    decision_counts_retention_days=server_config.decision_counts_retention_days,
                                    lease_token=self.instance_id,
                                    change_stream_maxlen=server_config.change_stream_maxlen,
                                    resume=server_config.resume_from_change_stream)
            assert self.admin is not None and self.pretrade is not None
            self.admin.store = self.store  # refusals during the load are audited too
            self.pretrade.store = self.store
            await self._seed(self.store)
            # The first load makes millions of long-lived objects and next to no cyclic garbage:
            # the collector's full passes over a growing heap were a third of a large start-up
            # (3 s of 8.8 s at 300k accounts), and a full collection after it another 3 s at 1M.
            # So none runs while loading, and the loaded objects go straight to the permanent
            # generation, out of every later collection's scan.
            gc.disable()
            try:
                await self.store.start()
            finally:
                gc.freeze()
                gc.enable()
            # A full collection stalls the loop for milliseconds, and at high utilisation the queue
            # it leaves takes tens of milliseconds to drain. The hot path makes little cyclic
            # garbage, so full collections run 100 times less often than Python's default.
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)
            # Whatever ran since the store's start proved the link (a busy machine, the freeze of a
            # large heap) spends the freshness it proved: prove it again now, or the first calls
            # would be refused as unproven.
            await self.store.prove()
        except BaseException:
            await self.stop()
            raise
        self.lifecycle.serving = True
        self._served = True
        self._on_link_health(time.monotonic() <= self.book.fresh_until)
        load_s = time.monotonic() - self._started_at
        listeners = {"orders": f"{_host(server_config.listen)}:{self.port}"}
        if self.admin_server is not None:
            listeners["admin"] = f"{_host(server_config.admin_listen)}:{self.admin_port}"
        compiled = len(compiled_modules())
        logs.event(log, logging.INFO,
                   "riskgate serving on %s (port %d), %d symbols, %d accounts, loaded in %.3f s, "
                   "hot path compiled: %d of %d modules",
                   server_config.listen, self.port, len(self.book.symbols), len(self.book.accounts), load_s,
                   compiled, len(HOT_PATH),
                   event="started", load_s=round(load_s, 3), symbols=len(self.book.symbols),
                   accounts=len(self.book.accounts),
                   open_orders=self.store.loaded_orders, listeners=listeners,
                   tls=bool(server_config.tls_cert), mtls=bool(server_config.client_ca),
                   shard=self.book.shard_label, compiled_modules=compiled,
                   hot_path_modules=len(HOT_PATH))
        if self.admin_server is None:
            log.warning("no operators' listener (admin_listen is empty): RiskAdmin is not served")
        return self.port

    def _on_link_health(self, fresh: bool) -> None:
        """gRPC health follows the link: NOT_SERVING while failing closed."""
        if self.health is None or not self.lifecycle.serving:
            return
        self._fail_closed_log.report(fresh, self.book.unavailable_message(time.monotonic()))
        status = health_pb2.HealthCheckResponse.SERVING if fresh else health_pb2.HealthCheckResponse.NOT_SERVING
        for servicer, name in self._health_names():
            update = asyncio.get_running_loop().create_task(servicer.set(name, status))
            self._health_updates.add(update)
            update.add_done_callback(self._health_updates.discard)

    async def wait(self) -> None:
        assert self.server is not None
        await self.server.wait_for_termination()

    async def begin_stop(self) -> None:
        """The first step of a stop, at once: health NOT_SERVING on every listener (probes and
        load balancers stop sending) and new calls refused. Idempotent; stop() does it too."""
        self.lifecycle.begin_stop()
        for servicer in (self.health, self.admin_health):
            if servicer is not None:
                await servicer.enter_graceful_shutdown()

    async def stop(self, grace_s: float | None = None, drain_s: float = DRAIN_TIMEOUT_S) -> StopReport:
        """Refuses new work at once, lets calls in flight finish within grace_s (default: the
        configured shutdown_grace_s), writes what they left dirty, and ends every task; each
        step is bounded. Logs what it did. Idempotent."""
        if self._stopped is not None:
            return self._stopped
        self._stopped = report = StopReport()
        grace_s = self.config.server.shutdown_grace_s if grace_s is None else grace_s
        began = time.monotonic()
        self.lifecycle.begin_stop()
        if self.store is not None:
            # Executions waiting for their batch are answered before the grace cuts them off:
            # UNAVAILABLE, so the sender reports them again (a duplicate once the drain has
            # written them; applied by the next process if it could not).
            self.store.release_waiters()
        await self.begin_stop()
        servers = [server for server in (self.server, self.admin_server) if server is not None]
        if servers:
            loop = asyncio.get_running_loop()
            stopping = {loop.create_task(server.stop(grace_s)) for server in servers}
            _, late = await asyncio.wait(stopping, timeout=grace_s + SERVER_STOP_MARGIN_S)
            if late:
                report.unfinished.append(f"{len(late)} gRPC server(s) did not stop")
        listeners_s = time.monotonic() - began
        pending = self.store.pending_writes() if self.store is not None else False
        store_unfinished: list[str] = []
        if self.admin is not None:
            await self.admin.close_feeds()  # the mark feed's last batch, before the store closes
        if self.store is not None:
            store_unfinished = await self.store.close(drain_s)
            report.unfinished += store_unfinished
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.telemetry.shutdown)
        total_s = time.monotonic() - began
        for line in report.unfinished:
            log.error("stop: %s", line)
        if self._served:
            logs.event(log, logging.INFO if report.clean else logging.ERROR,
                       "stopped in %.3f s: listeners closed (calls in flight given %.1f s) in %.3f s, write-behind "
                       "%s, %s", total_s, grace_s, listeners_s,
                       ("had nothing pending" if not pending else "NOT flushed" if store_unfinished else "flushed"),
                       "everything ended" if report.clean else f"unfinished: {'; '.join(report.unfinished)}",
                       event="stopped", stop_s=round(total_s, 3), grace_s=grace_s,
                       listeners_s=round(listeners_s, 3), write_behind_pending=pending,
                       unfinished=report.unfinished)
        return report

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

def _host(listen: str) -> str:
    host, _, _ = listen.rpartition(":")
    return host or listen


def _listen(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None = None) -> int:
    try:
        port = tls.add_port(server, address, credentials)
    except RuntimeError as exc:
        raise ListenError(f"cannot listen on {address}: {exc}") from None
    if not port:
        raise ListenError(f"cannot listen on {address}")
    return port


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
