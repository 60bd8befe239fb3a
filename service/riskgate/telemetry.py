"""Decision counters exported through OpenTelemetry metrics.

The hot path only bumps a dict entry; OpenTelemetry reads the counts when it collects
(an observable counter), so telemetry adds no per-order allocation or lock.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader

from riskgate.book.state import Book
from riskgate.values.codes import Decision, ReasonCode


class DecisionCounters:
    def __init__(self) -> None:
        self.counts: Counter[tuple[int, int]] = Counter()

    def count(self, decision: int, reason: int) -> None:
        self.counts[(decision, reason)] += 1

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        for (decision, reason), value in list(self.counts.items()):
            attributes = {"decision": Decision(decision).name,
                          "reason": ReasonCode(reason).name if reason else "NONE"}
            yield Observation(value, attributes)


class ReservationGauges:
    """Open reservations: how many, and the age of the oldest. An order whose closing report
    was lost holds margin until someone sees it; this is how they see it (then
    ListReservations / ReleaseReservation)."""

    def __init__(self, book: Book) -> None:
        self.book = book

    def _oldest_created_ms(self) -> int | None:
        created = [r.created_ms for a in self.book.accounts.values() for r in a.orders.values()]
        return min(created) if created else None

    def observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sum(len(a.orders) for a in self.book.accounts.values()))

    def observe_oldest_age(self, options: CallbackOptions) -> Iterable[Observation]:
        oldest = self._oldest_created_ms()
        yield Observation(0.0 if oldest is None else max(0.0, (time.time_ns() // 1_000_000 - oldest) / 1000))


def setup_metrics(counters: DecisionCounters, readers: list[MetricReader] | None = None,
                  book: Book | None = None) -> MeterProvider:
    """Registers the decision counter. RISKGATE_OTEL_CONSOLE_S=N prints metrics every N seconds."""
    readers = list(readers or [])
    interval = os.environ.get("RISKGATE_OTEL_CONSOLE_S")
    if interval:
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                                     export_interval_millis=float(interval) * 1000))
    provider = MeterProvider(metric_readers=readers)
    meter = provider.get_meter("riskgate")
    meter.create_observable_counter("riskgate.order_checks", callbacks=[counters.observe],
                                    description="Order checks by decision and first reason")
    if book is not None:
        gauges = ReservationGauges(book)
        meter.create_observable_gauge("riskgate.reservations.open", callbacks=[gauges.observe_count],
                                      description="Open reservations (accepted orders not yet closed)")
        meter.create_observable_gauge("riskgate.reservations.oldest_age", callbacks=[gauges.observe_oldest_age],
                                      unit="s", description="Age of the oldest open reservation")
    return provider
