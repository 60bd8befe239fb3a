"""One `riskgate monitor` process: its gRPC listener (RiskMonitor, health, reflection), the
feed it follows, the lease that makes one monitor the actor, the rules' evaluation, and
their start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import grpc
import msgspec
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection
from redis.exceptions import RedisError

from riskgate import logs
from riskgate.api import handlers, tls
from riskgate.api.auth import Authenticator
from riskgate.api.server import ListenError, StopReport
from riskgate.config import Config
from riskgate.monitor.account_feed import AccountFeed
from riskgate.monitor.account_watch import AccountWatcher
from riskgate.monitor.api import RiskMonitorServicer
from riskgate.monitor.columns import AccountColumns, Indices
from riskgate.monitor.feed import Feed, MarketView
from riskgate.monitor.flow_feed import FlowFeed
from riskgate.monitor.flow_watch import FlowWatcher
from riskgate.monitor.funding import FundingWatcher
from riskgate.monitor.history import MarkBars, MarkRecorder
from riskgate.monitor.inputs import InputWatcher
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.rules import Rule, validate_rule
from riskgate.monitor.telemetry import MonitorTelemetry
from riskgate.monitor.watch import Watcher
from riskgate.monitor.writes import MonitorWrites, now_ms
from riskgate.observability import MetricsListenError
from riskgate.store.connect import redis_client
from riskgate.v1 import monitor_pb2

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

RISK_MONITOR = monitor_pb2.DESCRIPTOR.services_by_name["RiskMonitor"]
SERVICE_NAME = RISK_MONITOR.full_name
# A health "service" that is SERVING only on the monitor that acts (holds the lease).
ACTOR_HEALTH_NAME = f"{SERVICE_NAME}/actor"
# RiskMonitor's reads: answered ones are logged at DEBUG (changes and refusals at INFO).
MONITOR_READS = tuple(m.name for m in RISK_MONITOR.methods
                      if m.name.startswith(("List", "Get")) or m.name in ("RunStressTest", "BacktestVaR"))
REDIS_SOCKET_TIMEOUT_S = 2.0
LOAD_TIMEOUT_S = 120.0
# A standby looks for a lapsed lease this often, so it takes over soon after it lapses.
STANDBY_POLL_S = 0.1
STOP_TIMEOUT_S = 2.0
# The monitor's own inputs (mark ages, stream lag) are checked this often.
INPUT_CHECK_S = 0.5


class MonitorService:
    """`bind()` takes the listen address (health NOT_SERVING), `start()` seeds the rules,
    loads what it follows and serves, `stop()` ends it within bounds (and hands the lease on)."""

    def __init__(self, config: Config, redis_url: str = "", listen: str | None = None,
                 span_exporter: SpanExporter | None = None) -> None:
        self.config = config
        self.redis_url = redis_url or config.server.redis_url
        self.listen = listen or config.monitor.listen
        for rule in config.monitor.rules:
            validate_rule(rule)
        # The configured shard count names the shards' keys until a gate has recorded the
        # layout the accounts are stored under (Keys.account_shards: the feeds read that).
        self.keys = MonitorKeys(config.server.key_prefix, 0, config.server.shard_count)
        self.auth = Authenticator(config.admin_tokens)
        self.view = MarketView()
        self.columns = AccountColumns()
        self.accounts: AccountWatcher | None = None
        self.inputs: InputWatcher | None = None
        self.flows: FlowWatcher | None = None
        self.flow_feed: FlowFeed | None = None
        self.funding: FundingWatcher | None = None
        self.account_feed: AccountFeed | None = None
        self.bars: MarkBars | None = None
        self.recorder: MarkRecorder | None = None
        self.client: aioredis.Redis | None = None
        self.writes: MonitorWrites | None = None
        self.watcher: Watcher | None = None
        self.feed: Feed | None = None
        self.server: grpc.aio.Server | None = None
        self.health: health.aio.HealthServicer | None = None
        self.port = 0
        self.lease_token = uuid.uuid4().hex
        self.span_exporter = span_exporter
        self.telemetry: MonitorTelemetry | None = None
        self.metrics_port = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._health_updates: set[asyncio.Task[None]] = set()
        self._serving = False
        self._acting = False
        self._stopping = False
        self._stopped: StopReport | None = None

    @property
    def is_actor(self) -> bool:
        return self._acting

    async def bind(self) -> int:
        if self.server is not None:
            return self.port
        self.health = health.aio.HealthServicer()
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.client = redis_client(self.redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT_S,
                                              socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S)
        self.writes = MonitorWrites(self.client, self.keys, self.config.server.audit_stream_maxlen,
                                    self.config.server.change_stream_maxlen)
        self.writes.lease_token = self.lease_token
        monitor = self.config.monitor
        self.bars = MarkBars(self.client, self.keys, monitor.mark_bar_retention_minutes,
                             monitor.mark_daily_retention_days)
        self.recorder = MarkRecorder(self.bars)
        servicer = RiskMonitorServicer(self.auth, self.writes, self.view, self._status, lambda: self._serving,
                                       on_funding=self._on_funding, columns=self.columns, bars=self.bars,
                                       config=self.config)
        self.telemetry = MonitorTelemetry(self, self.span_exporter)
        handlers.add_servicer(server, RISK_MONITOR,
                              logs.AdminCallLog(servicer, logs.identify_with(self.auth), MONITOR_READS),
                              wrap=self.telemetry.telemetry.operator_calls(SERVICE_NAME))
        handlers.add_servicer(server, handlers.HEALTH, self.health)
        handlers.enable_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        # The monitor's own certificate, or the gate's (the demo runs both in one process).
        credentials = tls.server_credentials(monitor.tls_cert or self.config.server.tls_cert,
                                             monitor.tls_key or self.config.server.tls_key)
        try:
            port = tls.add_port(server, self.listen, credentials)
        except RuntimeError as exc:
            port = 0
            error = str(exc)
        else:
            error = ""
        problem = "" if port else f"cannot listen on {self.listen}" + (f": {error}" if error else "")
        if port:
            try:
                self.metrics_port = self.telemetry.telemetry.listen()
            except MetricsListenError as exc:
                problem = str(exc)
        if problem:
            await server.start()  # gRPC releases a port only from a server that was started
            await server.stop(None)
            await asyncio.to_thread(self.telemetry.telemetry.shutdown)
            raise ListenError(problem)
        for name in ("", SERVICE_NAME, ACTOR_HEALTH_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.start()
        self.server, self.port = server, port
        return port

    async def start(self) -> int:
        if not self.redis_url:
            raise ValueError("no Redis URL")
        began = time.monotonic()
        try:
            await self.bind()
            assert self.client is not None and self.writes is not None
            async with asyncio.timeout(REDIS_SOCKET_TIMEOUT_S * 2):
                await self.client.ping()
            await self._seed_rules()
            self.watcher = Watcher(self.view, self.writes)
            self.accounts = AccountWatcher(self.view, self.columns, self.writes)
            self.inputs = InputWatcher(self.view, self.columns, self.writes, self._lag_ms, INPUT_CHECK_S)
            self.flows = FlowWatcher(self.view, self.writes)
            self.flow_feed = FlowFeed(self.client, self.keys, self.flows.window_ms, self.flows.on_batches)
            self.funding = FundingWatcher(self.view, self.columns, self.writes)
            self.feed = Feed(self.client, self.keys, self.view, self._on_mark, self._on_feed_live,
                             on_funding=self._on_funding, on_symbol=self._on_symbol)
            self.account_feed = AccountFeed(self.client, self.keys, self.columns, self._on_accounts,
                                            self._on_feed_live)
            self._tasks = [asyncio.create_task(self.feed.run(), name="monitor-feed"),
                           asyncio.create_task(self.watcher.run(), name="monitor-actions"),
                           asyncio.create_task(self.accounts.run(), name="monitor-account-actions"),
                           asyncio.create_task(self.funding.run(), name="monitor-funding-actions")]
            try:
                async with asyncio.timeout(LOAD_TIMEOUT_S):
                    await self.feed.loaded.wait()
                    # Every held symbol valued at its mark before the accounts come in.
                    for symbol in list(self.view.marks):
                        self.accounts.on_tick(symbol)
                    self._tasks.append(asyncio.create_task(self.account_feed.run(), name="monitor-account-feed"))
                    await self.account_feed.loaded.wait()
            except TimeoutError:
                raise RuntimeError(f"monitor state not loaded from Redis within {LOAD_TIMEOUT_S:.0f} s") from None
            # Rules are loaded: the order flow is read from (now - the longest flow window) on.
            self._tasks += [asyncio.create_task(self.flow_feed.run(), name="monitor-flow-feed"),
                            asyncio.create_task(self.flows.run(), name="monitor-flow-actions"),
                            asyncio.create_task(self.inputs.run(), name="monitor-inputs"),
                            asyncio.create_task(self._lease(), name="monitor-lease"),
                            asyncio.create_task(self._timer(), name="monitor-timer"),
                            asyncio.create_task(self._record_bars(), name="monitor-mark-bars")]
        except BaseException:
            await self.stop()
            raise
        self._serving = True
        await self._report_health()
        load_s = time.monotonic() - began
        logs.event(log, logging.INFO, "riskgate monitor serving on %s (port %d): %d symbols, %d rules, %d accounts, "
                   "loaded in %.3f s", self.listen, self.port, len(self.view.symbols), len(self.view.rules),
                   len(self.columns), load_s, event="started", load_s=round(load_s, 3),
                   symbols=len(self.view.symbols), rules=len(self.view.rules), accounts=len(self.columns),
                   listeners={"monitor": f"{self.listen.rpartition(':')[0]}:{self.port}"},
                   tls=bool(self.config.monitor.tls_cert or self.config.server.tls_cert))
        return self.port

    async def _seed_rules(self) -> None:
        assert self.writes is not None
        written = 0
        for rule in self.config.monitor.rules:
            audit = {"actor": "config", "action": "seed_rule", "target": rule.id, "outcome": "ok"}
            seeded = rule if rule.updated_by else _stamped(rule)
            written += bool(await self.writes.put_rule(seeded, audit, seed=True))
        log.info("seeded %d of %d rules from the configuration", written, len(self.config.monitor.rules))

    def _on_mark(self, symbol: str) -> None:
        started = time.perf_counter()
        self._evaluate_mark(symbol)
        if self.telemetry is not None:
            self.telemetry.evaluation["tick"].record(time.perf_counter() - started)

    def _evaluate_mark(self, symbol: str) -> None:
        history = self.view.marks.get(symbol)
        latest = history.latest if history is not None else None
        if self.recorder is not None and latest is not None:
            self.recorder.record(symbol, *latest)
        if self.writes is not None:
            self.writes.floor = self.view.max_version
        if self.watcher is not None:
            self.watcher.on_mark(symbol)
        if self.accounts is not None:
            self.accounts.on_tick(symbol)
        if self.funding is not None:
            self.funding.on_tick(symbol)

    def _on_symbol(self, symbol: str) -> None:
        if self.accounts is not None and self.account_feed is not None and self.account_feed.loaded.is_set():
            self.accounts.on_tick(symbol)  # the holders valued again at the new tiers

    def _on_accounts(self, accounts: Indices) -> None:
        if self.accounts is not None:
            self.accounts.on_accounts(accounts)
        if self.funding is not None:
            self.funding.on_accounts(accounts)

    def _on_funding(self, symbol: str) -> None:
        if self.writes is not None:
            self.writes.floor = self.view.max_version
        if self.funding is not None:
            self.funding.on_funding(symbol)

    def _lag_ms(self) -> int:
        return self.account_feed.lag_ms(now_ms()) if self.account_feed is not None else 0

    @property
    def inputs_live(self) -> bool:
        return (self.feed is not None and self.feed.live and self.account_feed is not None
                and self.account_feed.live)

    def _on_feed_live(self, live: bool) -> None:
        if self.watcher is not None:
            self.watcher.inputs_live = self.feed is not None and self.feed.live
        if self.accounts is not None:
            self.accounts.inputs_live = self.inputs_live
            if self.inputs_live:
                self.accounts.reconsider()
        if self.inputs is not None:
            self.inputs.inputs_live = self.inputs_live
        if self.flows is not None:
            self.flows.inputs_live = self.inputs_live
            if self.inputs_live:
                self.flows.reconsider()
        if self.funding is not None:
            self.funding.inputs_live = self.inputs_live
            if self.inputs_live:
                self.funding.reconsider()
        if self.writes is not None:
            self.writes.floor = self.view.max_version
        if self._serving:
            task = asyncio.get_running_loop().create_task(self._report_health())
            self._health_updates.add(task)
            task.add_done_callback(self._health_updates.discard)

    @property
    def _watchers(self) -> list[Any]:
        """Every part that acts, in the order they take over."""
        return [w for w in (self.watcher, self.accounts, self.inputs, self.flows, self.funding) if w is not None]

    async def _lease(self) -> None:
        """Takes the lease when it is free and renews it while held; a monitor that cannot
        renew in time stops acting before its lease can lapse (its writes are fenced anyway).
        The monitor acts as one: every part takes over together (each re-reading its open
        episodes) or none does, and a write refused for want of the lease steps all of them
        down; a lease taken afresh (it lapsed, or Redis lost it) is a new takeover."""
        assert self.writes is not None
        monitor = self.config.monitor
        held_until = 0.0
        while not self._stopping:
            sent = time.monotonic()
            try:
                async with asyncio.timeout(monitor.renew_ms / 1000):
                    held = await self.writes.take_or_renew_lease(monitor.lease_ms)
            except (RedisError, OSError, TimeoutError) as exc:
                # Still within the lease this monitor holds: keep acting (renewed, not taken).
                held = 1 if self._acting and time.monotonic() < held_until else 0
                log.debug("monitor lease round failed: %s", exc)
            else:
                if held:
                    # Stop acting a little before Redis lets the lease lapse.
                    held_until = sent + monitor.lease_ms / 1000 * 0.8
            fenced, self.writes.fenced = self.writes.fenced, False
            if held and (held == 2 or fenced or not self._acting) and not self._stopping:
                await self._take_over()
            elif not held and self._acting:
                log.warning("monitor is a standby now (another monitor holds the lease)")
                self._step_down()
                await self._report_health()
            await asyncio.sleep(monitor.renew_ms / 1000 if self._acting else STANDBY_POLL_S)

    async def _take_over(self) -> None:
        self._step_down()
        try:
            for part in self._watchers:
                await part.become_actor()
        except (RedisError, OSError) as exc:
            log.warning("could not read the open episodes to take over (next round tries again): %s", exc)
            self._step_down()
        else:
            self._acting = True
            log.info("monitor is the actor")
        await self._report_health()

    def _step_down(self) -> None:
        self._acting = False
        for part in self._watchers:
            part.become_standby()

    async def _timer(self) -> None:
        assert self.watcher is not None
        while not self._stopping:
            await asyncio.sleep(self.config.monitor.evaluate_ms / 1000)
            started = time.perf_counter()
            try:
                self.watcher.on_timer()
                if self.accounts is not None:
                    self.accounts.on_timer()
                if self.flows is not None:
                    self.flows.on_timer()
                if self.funding is not None:
                    self.funding.on_timer()
            except Exception:  # one bad evaluation must not stop the clock
                log.exception("monitor evaluation failed")
            if self.telemetry is not None:
                self.telemetry.evaluation["timer"].record(time.perf_counter() - started)

    async def _record_bars(self) -> None:
        """Writes the bars of the marks followed (every monitor: the writes merge, so a standby
        taking over leaves no gap); what Redis did not take waits for the next round."""
        assert self.recorder is not None
        while not self._stopping:
            await asyncio.sleep(self.config.monitor.mark_bar_flush_ms / 1000)
            try:
                async with asyncio.timeout(REDIS_SOCKET_TIMEOUT_S):
                    await self.recorder.flush(now_ms())
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("mark bars not written (kept for the next round): %s", exc)

    async def _report_health(self) -> None:
        if self.health is None or self._stopping:
            return
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        live = self.inputs_live
        for name in ("", SERVICE_NAME):
            await self.health.set(name, serving if live else not_serving)
        await self.health.set(ACTOR_HEALTH_NAME, serving if live and self.is_actor else not_serving)

    def _status(self) -> monitor_pb2.MonitorStatus:
        return monitor_pb2.MonitorStatus(
            role="actor" if self.is_actor else "standby", feed_live=self.inputs_live,
            symbols=len(self.view.symbols), rules=len(self.view.rules),
            open_episodes=(len(self.watcher.episodes) if self.watcher is not None else 0)
            + (self.accounts.open_episodes if self.accounts is not None else 0)
            + (self.funding.open_episodes if self.funding is not None else 0),
            accounts=len(self.columns),
            account_events=self.account_feed.events if self.account_feed is not None else 0,
            account_cursor=(self.account_feed.cursor or "") if self.account_feed is not None else "",
            lag_ms=self._lag_ms())

    async def wait(self) -> None:
        assert self.server is not None
        await self.server.wait_for_termination()

    async def stop(self, grace_s: float = 1.0) -> StopReport:
        """Refuses new calls, ends the tasks and hands the lease on at once (a standby takes
        over without waiting for it to lapse). Every wait is bounded. Idempotent."""
        if self._stopped is not None:
            return self._stopped
        self._stopped = report = StopReport()
        began = time.monotonic()
        served = self._serving
        self._stopping = True
        self._serving = False
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        if self.feed is not None:
            self.feed.close()
        if self.account_feed is not None:
            self.account_feed.close()
        if self.flow_feed is not None:
            self.flow_feed.close()
        self._step_down()
        for task in self._tasks:
            task.cancel()
        if self.recorder is not None and self.recorder.pending:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.recorder.flush(now_ms())
            except (RedisError, OSError, TimeoutError) as exc:
                report.unfinished.append(f"{self.recorder.pending} mark bars not written: {exc}")
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            report.unfinished += [f"task {task.get_name()} did not end" for task in late]
        if self.server is not None:
            try:
                async with asyncio.timeout(grace_s + STOP_TIMEOUT_S):
                    await self.server.stop(grace_s)
            except TimeoutError:
                report.unfinished.append("gRPC server did not stop")
        if self.client is not None and self.writes is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.writes.release_lease()
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self.client.aclose()
        if self.telemetry is not None:
            await asyncio.to_thread(self.telemetry.telemetry.shutdown)
        for line in report.unfinished:
            log.error("monitor stop: %s", line)
        if served:
            stop_s = time.monotonic() - began
            logs.event(log, logging.INFO if report.clean else logging.ERROR, "monitor stopped in %.3f s%s", stop_s,
                       "" if report.clean else f"; unfinished: {'; '.join(report.unfinished)}",
                       event="stopped", stop_s=round(stop_s, 3), unfinished=report.unfinished)
        return report


def _stamped(rule: Rule) -> Rule:
    return msgspec.structs.replace(rule, updated_by="config", updated_ms=now_ms())
