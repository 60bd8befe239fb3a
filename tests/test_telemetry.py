"""Decision counts and book gauges reach OpenTelemetry metrics (any reader, not only Prometheus)."""

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from riskgate.observability import LatencyHistogram
from riskgate.telemetry import register_gate_metrics
from tests.conftest import Services


def _collect(service) -> dict[str, list]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    register_gate_metrics(provider.get_meter("riskgate"), service.counters, service.book, service.lifecycle,
                          lambda: service.store)
    data = reader.get_metrics_data()
    provider.shutdown()
    return {m.name: list(m.data.data_points)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


async def test_order_checks_when_accepted_and_rejected_then_counted_by_decision_reason_and_symbol(
        services: Services) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="0.1", price="50000")
    await client.check(quantity="0.1", price="99999")
    await client.check(quantity="-1", price="50000", symbol="MADE-UP")
    points = {(p.attributes["decision"], p.attributes["reason"], p.attributes["symbol"]): p.value
              for p in _collect(service)["riskgate_decisions"]}
    assert points == {("ACCEPT", "", "BTCUSDT"): 1, ("REJECT", "PRICE_ABOVE_BAND", "BTCUSDT"): 1,
                      ("REJECT", "INVALID_QUANTITY", ""): 1}


async def test_reservation_gauges_when_orders_open_then_count_and_oldest_age_reported(services: Services) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="0.1", price="50000")
    await client.check(quantity="0.1", price="50000")
    values = {name: [p.value for p in points] for name, points in _collect(service).items()}
    assert values["riskgate_book_open_orders"] == [2]
    assert values["riskgate_book_reservations"] == [2]
    assert values["riskgate_reservation_oldest_age_seconds"][0] >= 0


def test_latency_histogram_when_recorded_then_values_land_in_inclusive_upper_buckets() -> None:
    histogram = LatencyHistogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        histogram.record(seconds)
    assert histogram.counts == [2, 1, 1]
    assert histogram.count == 4 and histogram.min == 0.0005 and histogram.max == 0.5
