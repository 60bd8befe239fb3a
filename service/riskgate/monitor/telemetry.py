"""The monitor's metrics (names `riskgate_monitor_*`, plus the operator-call and process metrics
every riskgate process has): read at collection time from the running `MonitorService`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from riskgate.observability import SLOW_BUCKETS_S, LatencyHistogram, Telemetry

EVALUATION_BUCKETS_S = (0.0001, 0.00025, *SLOW_BUCKETS_S)


class MonitorTelemetry:
    def __init__(self, service: Any, span_exporter: SpanExporter | None = None,
                 readers: tuple[MetricReader, ...] = ()) -> None:
        self.telemetry = telemetry = Telemetry(
            "riskgate-monitor", service.lease_token, {"riskgate.key_prefix": service.config.server.key_prefix},
            service.config.monitor.metrics_listen, span_exporter=span_exporter, readers=readers)
        family = telemetry.producer.family(
            "riskgate_monitor_evaluation_duration_seconds",
            "Time to evaluate the rules, on a mark tick or on the evaluation timer", EVALUATION_BUCKETS_S)
        self.evaluation: dict[str, LatencyHistogram] = {
            trigger: family.point(trigger=trigger) for trigger in ("tick", "timer")}
        meter = telemetry.meter

        def gauge(name: str, description: str, read: Callable[[], Iterable[Observation]]) -> None:
            meter.create_observable_gauge(name, [lambda options: read()], description=description)

        def by_key(values: Callable[[], dict[str, int] | None], label: str
                   ) -> Callable[[CallbackOptions], Iterable[Observation]]:
            def observe(options: CallbackOptions) -> Iterable[Observation]:
                for key, value in list((values() or {}).items()):
                    yield Observation(value, {label: key})
            return observe

        def writes() -> Any:
            return service.writes

        def feed_live() -> Iterable[Observation]:
            yield Observation(1 if service.inputs_live else 0)

        def lag() -> Iterable[Observation]:
            yield Observation(service._lag_ms() / 1000 if service.account_feed is not None else 0.0)

        def actor() -> Iterable[Observation]:
            yield Observation(1 if service.is_actor else 0)

        def open_episodes() -> Iterable[Observation]:
            yield Observation(service._status().open_episodes)

        gauge("riskgate_monitor_feed_live", "1 while the mark and account feeds are live (0: the monitor "
              "holds its actions)", feed_live)
        gauge("riskgate_monitor_account_events_lag_seconds", "How far the account-event feed is behind", lag)
        gauge("riskgate_monitor_actor", "1 on the monitor that acts (holds the lease), 0 on a standby", actor)
        gauge("riskgate_monitor_open_episodes", "Rule episodes open (alerts whose condition still holds)",
              open_episodes)
        gauge("riskgate_monitor_rules", "Rules loaded", lambda: [Observation(len(service.view.rules))])
        gauge("riskgate_monitor_symbols", "Symbols followed", lambda: [Observation(len(service.view.symbols))])
        gauge("riskgate_monitor_accounts", "Accounts followed", lambda: [Observation(len(service.columns))])
        meter.create_observable_counter(
            "riskgate_monitor_alerts_raised", [by_key(lambda: writes().raised if writes() else None, "rule")],
            description="Alerts this monitor raised (episodes opened), by rule id")
        meter.create_observable_counter(
            "riskgate_monitor_actions", [by_key(lambda: writes().actions if writes() else None, "action")],
            description="Actions this monitor took (breaker tripped, account close-only, liquidation "
                        "candidate), by rule action")
