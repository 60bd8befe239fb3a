"""The gate's metrics and traces (names `riskgate_*`; the README (Operate, Metrics) lists them).

The hot path only bumps a dict entry (decisions by symbol, decision and reason) and records
its latency in a `LatencyHistogram` (a bisect); OpenTelemetry reads both when it collects
(observable counters, and the producer's histograms), so telemetry adds no lock and no
allocation per order. Everything else (breakers, restrictions, the Redis link, the book) is
read at collection time, on the metrics thread: those callbacks copy containers with one C
call (`list(...)`) before walking them, as the event loop may change them meanwhile.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Container, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from riskgate.book.state import Book
from riskgate.observability import CHECK_BUCKETS_S, LatencyHistogram, Telemetry, metadata_carrier
from riskgate.values.codes import Decision, ReasonCode, Restriction

if TYPE_CHECKING:
    from riskgate.api.lifecycle import Lifecycle
    from riskgate.store.redis_store import RedisStore
    from riskgate.v1 import pretrade_pb2 as pb

_DECISION_NAMES = {d.value: d.name for d in Decision}
_REASON_NAMES = {0: "", **{r.value: r.name for r in ReasonCode}}
CHECK_METHODS = ("CheckOrder", "CheckOrders")


class DecisionCounters:
    """Checks answered, by (symbol, decision, first reason code or 0). A symbol the book does
    not know is counted as "" so callers cannot grow the label space."""

    __slots__ = ("counts", "symbols")

    def __init__(self, symbols: Container[str] = frozenset()) -> None:
        self.counts: dict[tuple[str, int, int], int] = {}
        self.symbols = symbols

    def count(self, symbol: str, decision: int, reason: int) -> None:
        key = (symbol if symbol in self.symbols else "", decision, reason)
        counts = self.counts
        n = counts.get(key)
        counts[key] = 1 if n is None else n + 1

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for (symbol, decision, reason), value in list(self.counts.items()):
            yield Observation(value, {"symbol": symbol, "decision": _DECISION_NAMES.get(decision, str(decision)),
                                      "reason": _REASON_NAMES.get(reason, str(reason))})


class CheckLatency:
    """Per method, histograms indexed by the decision's number (0: the call did not answer a
    decision, e.g. refused as UNAVAILABLE)."""

    def __init__(self, telemetry: Telemetry) -> None:
        family = telemetry.producer.family(
            "riskgate_check_duration_seconds",
            "Server-side time to answer a check, from the call (or the stream's message) to its answer, "
            "by method and decision", CHECK_BUCKETS_S)
        self.by_method: dict[str, list[LatencyHistogram]] = {
            method: [family.point(method=method, decision="NONE"),
                     *(family.point(method=method, decision=_DECISION_NAMES[d]) for d in (1, 2, 3))]
            for method in CHECK_METHODS}


class CheckTracer:
    """Spans for a sampled share of checks (trace_check_sample_ratio), parented on the caller's
    W3C trace context (gRPC metadata `traceparent`)."""

    def __init__(self, tracer: trace.Tracer, ratio: float) -> None:
        self.tracer = tracer
        self.ratio = ratio

    def sampled(self) -> bool:
        return random.random() < self.ratio

    def record(self, method: str, context: grpc.aio.ServicerContext, request: pb.CheckOrderRequest,
               response: pb.CheckOrderResponse, start_ns: int) -> None:
        parent = propagate.extract(metadata_carrier(context.invocation_metadata()))
        span = self.tracer.start_span(f"riskgate.v1.PreTradeRisk/{method}", context=parent,
                                      kind=trace.SpanKind.SERVER, start_time=start_ns)
        if span.is_recording():
            reasons = response.reasons
            span.set_attributes({
                "rpc.system": "grpc", "rpc.service": "riskgate.v1.PreTradeRisk", "rpc.method": method,
                "riskgate.order_id": request.order_id[:64], "riskgate.account_id": request.account_id[:64],
                "riskgate.symbol": request.symbol[:32],
                "riskgate.decision": _DECISION_NAMES.get(response.decision, str(response.decision)),
                "riskgate.reason": _REASON_NAMES.get(reasons[0].code, "") if reasons else ""})
        span.end()


class GateTelemetry:
    """The gate's metrics: what `RiskgateService` reads at collection time. `store` is a
    callable: the store exists only once the service starts."""

    def __init__(self, telemetry: Telemetry, book: Book, counters: DecisionCounters, lifecycle: Lifecycle,
                 store: Callable[[], RedisStore | None], trace_check_sample_ratio: float = 0.0) -> None:
        self.telemetry = telemetry
        self.book = book
        self.lifecycle = lifecycle
        self.store = store
        # Nothing exported: the hot path records nothing either.
        self.latency: CheckLatency | None = CheckLatency(telemetry) if telemetry.enabled else None
        self.check_tracer: CheckTracer | None = (
            CheckTracer(telemetry.tracer, trace_check_sample_ratio)
            if telemetry.tracing and trace_check_sample_ratio > 0 else None)
        register_gate_metrics(telemetry.meter, counters, book, lifecycle, store)

    def instrument(self, pretrade: Any) -> None:
        """Hands the hot path its histograms and check tracer (PreTradeRiskServicer)."""
        pretrade.latency = self.latency.by_method if self.latency is not None else None
        pretrade.check_tracer = self.check_tracer


def gate_telemetry(service: Any, span_exporter: SpanExporter | None = None,
                   readers: tuple[MetricReader, ...] = ()) -> GateTelemetry:
    """The telemetry of one RiskgateService (its config, book, counters, lifecycle, store)."""
    server = service.config.server
    telemetry = Telemetry("riskgate", service.instance_id,
                          {"riskgate.shard_index": server.shard_index, "riskgate.shard_count": server.shard_count},
                          server.metrics_listen, span_exporter=span_exporter, readers=readers)
    return GateTelemetry(telemetry, service.book, service.counters, service.lifecycle, lambda: service.store,
                         server.trace_check_sample_ratio)


# ---- what is read at collection time ------------------------------------------------------

# The per-account figures of one pass serve every gauge of the same collection (and of any
# other reader collecting within this many seconds).
BOOK_PASS_REUSE_S = 1.0


def register_gate_metrics(meter: Meter, counters: DecisionCounters, book: Book, lifecycle: Lifecycle | None,
                          store: Callable[[], RedisStore | None]) -> None:
    def gauge(name: str, description: str, read: Callable[[], Iterable[Observation]], unit: str = "") -> None:
        meter.create_observable_gauge(name, [lambda options: read()], unit=unit, description=description)

    def counter(name: str, description: str, read: Callable[[], Iterable[Observation]]) -> None:
        meter.create_observable_counter(name, [lambda options: read()], description=description)

    meter.create_observable_counter("riskgate_decisions", [counters.observe],
                                    description="Checks answered by decision, first reason and symbol "
                                                "(\"\" for a symbol the gate does not list)")

    def accounts() -> list[Any]:
        return list(book.accounts.values())

    def breakers() -> Iterable[Observation]:
        yield Observation(int(book.platform_breaker.state), {"scope": "platform"})
        for symbol, state in list(book.symbols.items()):
            yield Observation(int(state.breaker.state), {"scope": symbol})

    # One pass over the book per collection for every per-account figure, not one per gauge: at a
    # million accounts each pass holds the interpreter for a tenth of a second or more.
    book_pass: dict[str, Any] = {"at": -1.0}

    def book_figures() -> dict[str, Any]:
        now = time.monotonic()
        if now - book_pass["at"] < BOOK_PASS_REUSE_S:
            return book_pass
        restricted = dict.fromkeys((r for r in Restriction if r != Restriction.NONE), 0)
        orders = holding = 0
        oldest: int | None = None
        for account in accounts():
            restriction = account.controls.restriction
            if restriction in restricted:
                restricted[restriction] += 1
            if account.orders:
                for reservation in list(account.orders.values()):
                    orders += 1
                    holding += not reservation.reduce_only
                    if oldest is None or reservation.created_ms < oldest:
                        oldest = reservation.created_ms
        book_pass.update(at=now, restricted=restricted, orders=orders, holding=holding, oldest=oldest)
        return book_pass

    def restrictions() -> Iterable[Observation]:
        for restriction, count in book_figures()["restricted"].items():
            yield Observation(count, {"kind": restriction.name})

    def open_orders() -> Iterable[Observation]:
        yield Observation(book_figures()["orders"])

    def reservations() -> Iterable[Observation]:
        yield Observation(book_figures()["holding"])

    def oldest_reservation() -> Iterable[Observation]:
        oldest = book_figures()["oldest"]
        age = max(0.0, (time.time_ns() // 1_000_000 - oldest) / 1000) if oldest is not None else 0.0
        yield Observation(age)

    def link_up() -> Iterable[Observation]:
        yield Observation(1 if time.monotonic() <= book.fresh_until else 0)

    def serving() -> Iterable[Observation]:
        yield Observation(1 if lifecycle is not None and lifecycle.serving else 0)

    def pong_age() -> Iterable[Observation]:
        current = store()
        if current is not None and current.last_proven_at:
            yield Observation(max(0.0, time.monotonic() - current.last_proven_at))

    def queue_depth() -> Iterable[Observation]:
        current = store()
        yield Observation(current.write_behind_depth() if current is not None else 0)

    def queue_age() -> Iterable[Observation]:
        current = store()
        yield Observation(current.write_behind_age_s() if current is not None else 0.0)

    def flush_failures() -> Iterable[Observation]:
        current = store()
        yield Observation(current.flush_failures if current is not None else 0)

    def version_repairs() -> Iterable[Observation]:
        current = store()
        yield Observation(current.version_repairs if current is not None else 0)

    def store_count(attribute: str) -> Callable[[], Iterable[Observation]]:
        def read() -> Iterable[Observation]:
            current = store()
            yield Observation(getattr(current, attribute) if current is not None else 0)
        return read

    gauge("riskgate_breaker_state", "Circuit breaker per scope (a symbol, or \"platform\"): "
          "1 NORMAL, 2 REDUCE_ONLY, 3 HALTED", breakers)
    gauge("riskgate_account_restrictions", "Accounts restricted, by kind (REDUCE_ONLY, FROZEN)", restrictions)
    gauge("riskgate_book_accounts", "Accounts in this shard's book",
          lambda: [Observation(len(book.accounts))])
    gauge("riskgate_book_symbols", "Symbols the gate lists", lambda: [Observation(len(book.symbols))])
    gauge("riskgate_book_open_orders", "Accepted orders not yet closed (filled, canceled, expired)", open_orders)
    gauge("riskgate_book_reservations", "Open orders holding margin (reduce-only orders hold none)", reservations)
    gauge("riskgate_reservation_oldest_age_seconds", "Age of the oldest open order's reservation "
          "(a lost closing report holds margin until released)", oldest_reservation)
    gauge("riskgate_redis_link_up", "1 while the state is proven fresh against Redis; 0 = failing closed "
          "(risk-increasing orders refused)", link_up)
    gauge("riskgate_serving", "1 while the gate answers checks (loaded, not stopping)", serving)
    gauge("riskgate_redis_last_pong_age_seconds", "Seconds since Redis last answered a health round "
          "(its probe write and the change feed's ping)", pong_age)
    gauge("riskgate_write_behind_queue_depth", "Changes acknowledged but not yet confirmed by Redis "
          "(accounts, orders, executions, admin changes, audit entries)", queue_depth)
    gauge("riskgate_write_behind_oldest_age_seconds", "Age bound of the oldest of them: time since the last "
          "batch Redis confirmed was taken (0 when nothing waits)", queue_age)
    counter("riskgate_redis_flush_failures", "Write-behind batches Redis did not confirm (retried)", flush_failures)
    counter("riskgate_redis_version_repairs", "Times Redis's version counter was found behind and raised "
            "(Redis lost its tail)", version_repairs)
    counter("riskgate_state_loads", "Full loads of the book from Redis (the first, and reloads after a lost "
            "link that could not resume)", store_count("loads_done"))
    counter("riskgate_state_load_failures", "Loads of the book that failed (logged, retried)",
            store_count("load_failures"))
    counter("riskgate_state_resumes", "Reconnects that caught up from the change stream instead of reloading",
            store_count("resumes_done"))
    counter("riskgate_state_changes_replayed", "Changes applied from the change stream by those catch-ups",
            store_count("changes_replayed"))
