"""OpenTelemetry plumbing shared by the gate and the monitor: one meter provider and one tracer
provider per service instance (never the global ones, so several services can live in one
process), Prometheus text at `/metrics` on a listener of their own, OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set, process metrics, cheap latency histograms, and the wrapper
that gives every operator call a span and an outcome count.

Hot-path histograms do not go through the SDK's `Histogram.record` (about 15 us per call on
this machine, with attribute hashing and a lock): `LatencyHistogram.record` is a bisect and
three list/attribute updates (well under 1 us); its cumulative buckets are handed to the
readers at collection time (`HistogramProducer`), as an OTel histogram metric like any other.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from opentelemetry import propagate, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)

SCOPE = "riskgate"
# Server-side check latency: 25 us to 10 ms (the budget is 1 ms at p99).
CHECK_BUCKETS_S: tuple[float, ...] = (0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01)
# Operator calls and monitor evaluations: milliseconds to seconds.
SLOW_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
SHUTDOWN_TIMEOUT_MS = 1000

# gRPC status of an operator call -> its `outcome` label.
OUTCOMES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.OK: "ok",
    grpc.StatusCode.UNAUTHENTICATED: "denied",
    grpc.StatusCode.PERMISSION_DENIED: "denied",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid",
    grpc.StatusCode.OUT_OF_RANGE: "invalid",
    grpc.StatusCode.NOT_FOUND: "not_found",
    grpc.StatusCode.FAILED_PRECONDITION: "refused",
    grpc.StatusCode.ALREADY_EXISTS: "refused",
    grpc.StatusCode.ABORTED: "conflict",
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "unavailable",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "unavailable",
    grpc.StatusCode.CANCELLED: "cancelled",
}


class MetricsListenError(RuntimeError):
    """The metrics address cannot be served on."""


def split_listen(address: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 in brackets) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise MetricsListenError(f"metrics listen address must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


# ---- cheap histograms ----------------------------------------------------------------


class LatencyHistogram:
    """Cumulative explicit-bucket histogram, recorded on the event loop without a lock and read
    from the metrics thread (each read copies the bucket list in one C call)."""

    __slots__ = ("bounds", "counts", "max", "min", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.min = float("inf")
        self.max = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds < self.min:
            self.min = seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


class HistogramFamily:
    """Histograms of one metric, by attribute set; `point` returns the histogram of a set
    (created on first use, so only sets that occur are exported)."""

    def __init__(self, name: str, description: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.description = description
        self.bounds = tuple(bounds)
        self.start_ns = time.time_ns()
        self.points: dict[tuple[tuple[str, str], ...], LatencyHistogram] = {}

    def point(self, **attributes: str) -> LatencyHistogram:
        key = tuple(sorted(attributes.items()))
        histogram = self.points.get(key)
        if histogram is None:
            histogram = self.points[key] = LatencyHistogram(self.bounds)
        return histogram

    def metric(self, now_ns: int) -> Metric | None:
        points = []
        for key, histogram in list(self.points.items()):
            counts = list(histogram.counts)
            count = sum(counts)
            if not count:
                continue
            points.append(HistogramDataPoint(
                attributes=dict(key), start_time_unix_nano=self.start_ns, time_unix_nano=now_ns, count=count,
                sum=histogram.sum, bucket_counts=counts, explicit_bounds=list(self.bounds),
                min=histogram.min, max=histogram.max))
        if not points:
            return None
        return Metric(name=self.name, description=self.description, unit="s",
                      data=Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE))


class HistogramProducer:
    """Adds the families' histograms to what a reader collected, under the riskgate scope."""

    def __init__(self) -> None:
        self.families: list[HistogramFamily] = []

    def family(self, name: str, description: str, bounds: Sequence[float]) -> HistogramFamily:
        family = HistogramFamily(name, description, bounds)
        self.families.append(family)
        return family

    def inject(self, data: MetricsData, resource: Resource) -> MetricsData:
        now_ns = time.time_ns()
        extra = [m for m in (f.metric(now_ns) for f in self.families) if m is not None]
        if not extra:
            return data
        resource_metrics = list(data.resource_metrics)
        for index, rm in enumerate(resource_metrics):
            scopes = list(rm.scope_metrics)
            for position, sm in enumerate(scopes):
                if sm.scope.name == SCOPE:
                    scopes[position] = ScopeMetrics(scope=sm.scope, metrics=[*sm.metrics, *extra],
                                                    schema_url=sm.schema_url)
                    break
            else:
                scopes.append(ScopeMetrics(scope=InstrumentationScope(SCOPE), metrics=extra, schema_url=""))
            resource_metrics[index] = ResourceMetrics(resource=rm.resource, scope_metrics=scopes,
                                                      schema_url=rm.schema_url)
            return MetricsData(resource_metrics=resource_metrics)
        return MetricsData(resource_metrics=[ResourceMetrics(
            resource=resource, scope_metrics=[ScopeMetrics(scope=InstrumentationScope(SCOPE), metrics=extra,
                                                           schema_url="")], schema_url="")])


class _Producing:
    """Mixin for a MetricReader: the producer's histograms join every collection."""

    producer: HistogramProducer | None = None
    resource: Resource = Resource.get_empty()

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        if self.producer is not None and metrics_data is not None:
            metrics_data = self.producer.inject(metrics_data, self.resource)
        super()._receive_metrics(metrics_data, timeout_millis=timeout_millis, **kwargs)  # type: ignore[misc]


class PrometheusReader(_Producing, PrometheusMetricReader):
    pass


class PeriodicReader(_Producing, PeriodicExportingMetricReader):
    pass


class InMemoryReader(_Producing, InMemoryMetricReader):
    """For tests: collects on demand (`get_metrics_data()`), histograms included."""


# ---- process metrics -------------------------------------------------------------------


class GcPauses:
    """Time the collector stops the process, per generation, through gc.callbacks. One per
    process (gc is): every service in the process reads the same totals."""

    _instance: GcPauses | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    @classmethod
    def shared(cls) -> GcPauses:
        with cls._lock:
            if cls._instance is None:
                cls._instance = GcPauses()
            return cls._instance

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info.get("generation", 0)
            if 0 <= generation < 3:
                self.seconds[generation] += time.perf_counter() - self._started
                self.collections[generation] += 1


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def register_process_metrics(meter: Meter) -> None:
    pauses = GcPauses.shared()

    def rss(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(resident_bytes())

    def gc_seconds(options: CallbackOptions) -> Iterable[Observation]:
        for generation, seconds in enumerate(list(pauses.seconds)):
            yield Observation(seconds, {"generation": str(generation)})

    def gc_collections(options: CallbackOptions) -> Iterable[Observation]:
        for generation, count in enumerate(list(pauses.collections)):
            yield Observation(count, {"generation": str(generation)})

    meter.create_observable_gauge("riskgate_process_resident_memory_bytes", [rss],
                                  description="Resident set size of the process")
    meter.create_observable_counter("riskgate_gc_pause_seconds", [gc_seconds],
                                    description="Time spent in garbage collections (the process stopped), "
                                                "by generation")
    meter.create_observable_counter("riskgate_gc_collections", [gc_collections],
                                    description="Garbage collections by generation")


# ---- the providers ---------------------------------------------------------------------


def _otlp_endpoint_set(signal: str) -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"))


def _otlp_exporter(signal: str, module: str, name: str) -> Any:
    """The OTLP exporter of one signal ("METRICS": metric_exporter.OTLPMetricExporter, "TRACES":
    trace_exporter.OTLPSpanExporter): over HTTP when its protocol says so and that package is
    installed, else gRPC."""
    import importlib

    protocol = (os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") or
                os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
    if protocol.startswith("http"):
        try:
            return getattr(importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{module}"), name)()
        except ImportError:
            log.warning("OTLP over %s needs opentelemetry-exporter-otlp-proto-http: using grpc", protocol)
    return getattr(importlib.import_module(f"opentelemetry.exporter.otlp.proto.grpc.{module}"), name)()


class Telemetry:
    """One service instance's meter and tracer providers and its metrics listener.

    metrics_listen: HOST:PORT for Prometheus text at /metrics ("" = none). OTLP metrics and
    spans go out when OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal variable) is set, with the
    standard OTEL_* variables honoured by the exporters. Without an exporter for spans (OTLP or
    `span_exporter`, which tests use) the tracer is a no-op."""

    def __init__(self, service_name: str, instance_id: str, attributes: dict[str, Any], metrics_listen: str,
                 span_exporter: SpanExporter | None = None, readers: Sequence[MetricReader] = ()) -> None:
        # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME are merged under ours.
        self.resource = Resource.create({"service.name": service_name, "service.instance.id": instance_id,
                                         **attributes})
        if os.environ.get("OTEL_SERVICE_NAME"):
            self.resource = self.resource.merge(Resource({"service.name": os.environ["OTEL_SERVICE_NAME"]}))
        self.instance_id = instance_id
        self.metrics_listen = metrics_listen
        self.producer = HistogramProducer()
        self.registry = CollectorRegistry(auto_describe=False)
        self.metrics_port = 0
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        metric_readers: list[MetricReader] = []
        if metrics_listen:
            split_listen(metrics_listen)  # a malformed address fails before anything starts
            reader = PrometheusReader(registry=self.registry, scope_info_enabled=False)
            metric_readers.append(reader)
        if _otlp_endpoint_set("METRICS"):
            metric_readers.append(PeriodicReader(_otlp_exporter("METRICS", "metric_exporter", "OTLPMetricExporter")))
        metric_readers += list(readers)
        for reader in metric_readers:
            if isinstance(reader, _Producing):
                reader.producer = self.producer
                reader.resource = self.resource
        self.enabled = bool(metric_readers)
        self.meter_provider = MeterProvider(metric_readers=metric_readers, resource=self.resource,
                                            exemplar_filter=AlwaysOffExemplarFilter())
        self.meter = self.meter_provider.get_meter(SCOPE)
        processors: list[Any] = []
        if span_exporter is not None:
            processors.append(SimpleSpanProcessor(span_exporter))
        if _otlp_endpoint_set("TRACES"):
            processors.append(BatchSpanProcessor(_otlp_exporter("TRACES", "trace_exporter", "OTLPSpanExporter")))
        self.tracer_provider: TracerProvider | None = None
        if processors:
            self.tracer_provider = TracerProvider(resource=self.resource)
            for processor in processors:
                self.tracer_provider.add_span_processor(processor)
            self.tracer: trace.Tracer = self.tracer_provider.get_tracer(SCOPE)
        else:
            self.tracer = trace.NoOpTracer()
        self.tracing = self.tracer_provider is not None
        self.admin_calls = self.meter.create_counter(
            "riskgate_admin_calls", description="Operator calls (RiskAdmin, RiskMonitor) by method and outcome")
        self.admin_duration = self.producer.family(
            "riskgate_admin_call_duration_seconds", "Server-side duration of operator calls, by method",
            SLOW_BUCKETS_S)
        register_process_metrics(self.meter)

    def listen(self) -> int:
        """Starts the /metrics listener (when configured); returns its port (0: none)."""
        if not self.metrics_listen or self._http is not None:
            return self.metrics_port
        host, port = split_listen(self.metrics_listen)
        try:
            self._http, self._http_thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise MetricsListenError(f"cannot serve metrics on {self.metrics_listen}: {exc}") from None
        self.metrics_port = self._http.server_port
        log.debug("metrics at http://%s:%d/metrics", host, self.metrics_port)
        return self.metrics_port

    def shutdown(self) -> None:
        """Closes the listener and flushes and ends the providers (bounded). Idempotent;
        blocking: call it from a thread (asyncio.to_thread)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(timeout=SHUTDOWN_TIMEOUT_MS / 1000)
            self._http = None
        provider, self.meter_provider = self.meter_provider, None  # type: ignore[assignment]
        if provider is not None:
            try:
                provider.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_MS)
            except Exception as exc:  # an exporter failing on the way out must not fail the stop
                log.warning("metrics shutdown: %r", exc)
        if self.tracer_provider is not None:
            try:
                self.tracer_provider.shutdown()
            except Exception as exc:
                log.warning("tracing shutdown: %r", exc)
            self.tracer_provider = None

    # ---- operator calls ------------------------------------------------------------

    def operator_calls(self, service_name: str) -> Callable[[MethodDescriptor, Handler], Handler]:
        """A `wrap` for handlers.add_servicer: every call gets a server span (parented on the
        caller's W3C `traceparent`), a count by method and outcome, and its duration."""
        tracer = self.tracer
        counter = self.admin_calls
        durations = self.admin_duration
        kind = trace.SpanKind.SERVER

        def wrap(method: MethodDescriptor, respond: Handler) -> Handler:
            name = method.name
            span_name = f"{service_name}/{name}"
            outcomes = {outcome: {"method": name, "outcome": outcome} for outcome in {*OUTCOMES.values(), "error"}}
            duration = durations.point(method=name)
            attributes = {"rpc.system": "grpc", "rpc.service": service_name, "rpc.method": name}

            async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
                started = time.perf_counter()
                parent = propagate.extract(metadata_carrier(context.invocation_metadata()))
                with tracer.start_as_current_span(span_name, context=parent, kind=kind, attributes=attributes,
                                                  record_exception=False, set_status_on_exception=False) as span:
                    status = grpc.StatusCode.OK
                    try:
                        return await respond(request, context)
                    except BaseException:
                        status = _status_of(context)
                        raise
                    finally:
                        outcome = OUTCOMES.get(status, "error")
                        counter.add(1, outcomes[outcome])
                        duration.record(time.perf_counter() - started)
                        if span.is_recording():
                            span.set_attribute("rpc.grpc.status_code", status.value[0])
                            span.set_attribute("riskgate.outcome", outcome)
                            if status != grpc.StatusCode.OK:
                                span.set_status(trace.Status(trace.StatusCode.ERROR, status.name))

            return call

        return wrap


Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _status_of(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    try:
        code = context.code()
    except Exception:
        return grpc.StatusCode.UNKNOWN
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    return grpc.StatusCode.UNKNOWN


def metadata_carrier(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """gRPC metadata as a propagation carrier (text values only: binary ones end in -bin)."""
    return {key: value for key, value in metadata or () if isinstance(value, str)}
