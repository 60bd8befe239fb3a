"""Decision counters exported through OpenTelemetry metrics.

The hot path only bumps a dict entry; OpenTelemetry reads the counts when it collects
(an observable counter), so telemetry adds no per-order allocation or lock.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader

from riskgate.engine.codes import Decision, ReasonCode


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


def setup_metrics(counters: DecisionCounters, readers: list[MetricReader] | None = None) -> MeterProvider:
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
    return provider
