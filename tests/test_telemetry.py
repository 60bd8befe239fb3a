"""Decision counts reach OpenTelemetry metrics."""

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from riskgate.telemetry import setup_metrics
from tests.conftest import Services


async def test_order_checks_when_accepted_and_rejected_then_counted_by_decision_and_reason(
        services: Services) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="0.1", price="50000")
    await client.check(quantity="0.1", price="99999")
    await client.check(quantity="-1", price="50000")
    reader = InMemoryMetricReader()
    setup_metrics(service.counters, [reader])
    data = reader.get_metrics_data()
    points = {
        (p.attributes["decision"], p.attributes["reason"]): p.value
        for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        if m.name == "riskgate.order_checks" for p in m.data.data_points
    }
    assert points == {("ACCEPT", "NONE"): 1, ("REJECT", "PRICE_ABOVE_BAND"): 1, ("REJECT", "INVALID_QUANTITY"): 1}


async def test_reservation_gauges_when_orders_open_then_count_and_oldest_age_reported(services: Services) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.check(quantity="0.1", price="50000")
    await client.check(quantity="0.1", price="50000")
    reader = InMemoryMetricReader()
    setup_metrics(service.counters, [reader], book=service.book)
    values = {m.name: [p.value for p in m.data.data_points]
              for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert values["riskgate.reservations.open"] == [2]
    assert values["riskgate.reservations.oldest_age"][0] >= 0
