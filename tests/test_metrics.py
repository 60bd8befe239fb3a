"""Prometheus /metrics of the gate and the monitor after scripted sessions over real gRPC, and the
spans of operator calls (W3C trace context from gRPC metadata)."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from riskgate.api.server import ListenError, RiskgateService
from riskgate.observability import CHECK_BUCKETS_S
from riskgate.store.embedded import EmbeddedRedis
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import monitor_pb2 as mpb
from tests.conftest import Services
from tests.monitor_support import MonitorClient, monitor_config, until, vol_rule
from tests.support import ADMIN_TOKEN, VIEWER_TOKEN, Client, test_config

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of `name` whose labels include `labels`."""
    found = [v for got, v in samples.get(name, []) if all(got.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found} in {samples.get(name)}"
    return found[0]


def by(samples: Samples, name: str, *keys: str, where: Callable[[dict[str, str]], bool] = lambda _: True
       ) -> dict[tuple[str, ...], float]:
    return {tuple(labels[k] for k in keys): v for labels, v in samples.get(name, []) if where(labels)}


async def scripted_gate_session(client: Client) -> None:
    """4 checks (2 ACCEPT, 1 REJECT PRICE_ABOVE_BAND, 1 REJECT INVALID_QUANTITY on an unknown
    symbol), a breaker set, an account restricted, a denied admin call."""
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await client.trader("acct-frozen", restriction=admin.RESTRICTION_FROZEN)
    await client.check(quantity="0.1", price="50000")
    await client.check(quantity="0.1", price="50000", reduce_only=False)
    await client.check(quantity="0.1", price="99999")
    await client.check(quantity="-1", price="50000", symbol="NOPE")
    await client.set_breaker(admin.BREAKER_REDUCE_ONLY, symbol="BTCUSDT")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_HALTED, reason="x"),
                                             metadata=client.auth(VIEWER_TOKEN))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_metrics_when_scripted_session_then_every_gate_metric_has_its_labels_and_values(
        services: Services) -> None:
    service, client = await services.start(metrics_listen="127.0.0.1:0")
    assert service.metrics_port > 0
    await scripted_gate_session(client)
    samples = await asyncio.to_thread(scrape, service.metrics_port)

    info = value(samples, "target_info")
    assert info == 1
    (resource, _), = samples["target_info"]
    assert resource["service_name"] == "riskgate"
    assert resource["service_instance_id"] == service.instance_id == service.store.lease_token  # type: ignore[union-attr]
    assert resource["riskgate_shard_index"] == "0" and resource["riskgate_shard_count"] == "1"

    decisions = by(samples, "riskgate_decisions_total", "decision", "reason", "symbol")
    assert decisions == {("ACCEPT", "", "BTCUSDT"): 2, ("REJECT", "PRICE_ABOVE_BAND", "BTCUSDT"): 1,
                         ("REJECT", "INVALID_QUANTITY", ""): 1}

    counts = by(samples, "riskgate_check_duration_seconds_count", "method", "decision")
    assert counts == {("CheckOrder", "ACCEPT"): 2, ("CheckOrder", "REJECT"): 2}
    buckets = by(samples, "riskgate_check_duration_seconds_bucket", "le",
                 where=lambda labels: labels["decision"] == "ACCEPT")
    assert sorted(float(le) for (le,) in buckets) == sorted([*CHECK_BUCKETS_S, float("inf")])
    assert buckets[("+Inf",)] == 2
    assert value(samples, "riskgate_check_duration_seconds_sum", method="CheckOrder", decision="ACCEPT") > 0

    calls = by(samples, "riskgate_admin_calls_total", "method", "outcome")
    assert calls == {("UpsertSymbol", "ok"): 1, ("SetMarkPrice", "ok"): 1, ("UpsertAccount", "ok"): 2,
                     ("SetAccountControls", "ok"): 2, ("SetCircuitBreaker", "ok"): 1,
                     ("SetCircuitBreaker", "denied"): 1}
    assert value(samples, "riskgate_admin_call_duration_seconds_count", method="SetCircuitBreaker") == 2

    assert by(samples, "riskgate_breaker_state", "scope") == {("platform",): 1, ("BTCUSDT",): 2}
    assert by(samples, "riskgate_account_restrictions", "kind") == {("REDUCE_ONLY",): 0, ("FROZEN",): 1}

    assert value(samples, "riskgate_redis_link_up") == 1
    assert value(samples, "riskgate_serving") == 1
    assert 0 <= value(samples, "riskgate_redis_last_pong_age_seconds") < 60
    assert value(samples, "riskgate_write_behind_queue_depth") >= 0
    assert value(samples, "riskgate_write_behind_oldest_age_seconds") >= 0
    assert value(samples, "riskgate_redis_flush_failures_total") == 0
    assert value(samples, "riskgate_redis_version_repairs_total") == 0
    assert value(samples, "riskgate_state_loads_total") == 1
    assert value(samples, "riskgate_state_load_failures_total") == 0
    assert value(samples, "riskgate_state_resumes_total") == 0

    assert value(samples, "riskgate_book_accounts") == 2
    assert value(samples, "riskgate_book_symbols") == 1
    assert value(samples, "riskgate_book_open_orders") == 2
    assert value(samples, "riskgate_book_reservations") == 2
    assert value(samples, "riskgate_reservation_oldest_age_seconds") >= 0

    assert value(samples, "riskgate_process_resident_memory_bytes") > 10_000_000
    assert set(by(samples, "riskgate_gc_pause_seconds_total", "generation")) == {("0",), ("1",), ("2",)}
    assert set(by(samples, "riskgate_gc_collections_total", "generation")) == {("0",), ("1",), ("2",)}


async def test_metrics_when_checks_stream_then_histogram_counts_each_message_under_check_orders(
        services: Services) -> None:
    service, client = await services.start(metrics_listen="127.0.0.1:0")
    await client.upsert_symbol(mark="50000")
    await client.trader()
    requests = [client.request(quantity="0.01", price="50000") for _ in range(5)]
    answers = [answer async for answer in client.pretrade.CheckOrders(iter(requests))]
    assert len(answers) == 5
    samples = await asyncio.to_thread(scrape, service.metrics_port)
    assert by(samples, "riskgate_check_duration_seconds_count", "method", "decision") == {
        ("CheckOrders", "ACCEPT"): 5}


async def test_metrics_when_redis_killed_then_link_down_and_flush_failures_counted(tmp_path) -> None:
    redis_server = EmbeddedRedis(tmp_path / "redis").start()
    services = Services(redis_server.url)
    try:
        service, client = await services.start(metrics_listen="127.0.0.1:0", redis_stale_after_ms=200)
        await client.upsert_symbol(mark="50000")
        await client.trader()
        redis_server.kill()
        await client.check(quantity="0.01", price="50000")  # its reservation waits for a batch that fails

        async def link_state() -> tuple[float, float, float]:
            samples = await asyncio.to_thread(scrape, service.metrics_port)
            return (value(samples, "riskgate_redis_link_up"), value(samples, "riskgate_redis_flush_failures_total"),
                    value(samples, "riskgate_write_behind_queue_depth"))

        # Down, batches failing, and the check's reservation still waiting for Redis.
        await until(link_state, lambda s: s[0] == 0 and s[1] >= 1 and s[2] >= 1)
    finally:
        await services.stop_all()
        redis_server.stop()


async def test_metrics_when_listen_is_empty_then_nothing_served_and_hot_path_records_nothing(
        services: Services) -> None:
    service, client = await services.start(metrics_listen="")
    await client.upsert_symbol(mark="50000")
    assert service.metrics_port == 0
    assert service.pretrade is not None and service.pretrade.latency is None


async def test_metrics_when_port_taken_then_start_fails_with_listen_error(services: Services) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = RiskgateService(test_config(metrics_listen=f"127.0.0.1:{port}"), services.redis_url)
        with pytest.raises(ListenError, match="metrics"):
            await service.start()
        await service.stop()


async def test_metrics_when_two_services_in_one_process_then_each_serves_its_own(services: Services) -> None:
    first, first_client = await services.start(metrics_listen="127.0.0.1:0", key_prefix="one")
    second, _ = await services.start(metrics_listen="127.0.0.1:0", key_prefix="two")
    await first_client.upsert_symbol(mark="50000")
    await first_client.trader()
    await first_client.check(quantity="0.01", price="50000")
    one, two = await asyncio.gather(asyncio.to_thread(scrape, first.metrics_port),
                                    asyncio.to_thread(scrape, second.metrics_port))
    assert by(one, "riskgate_decisions_total", "decision") == {("ACCEPT",): 1}
    assert "riskgate_decisions_total" not in two
    assert one["target_info"][0][0]["service_instance_id"] != two["target_info"][0][0]["service_instance_id"]


async def test_metrics_listener_when_service_stops_then_port_closed(services: Services) -> None:
    service, _ = await services.start(metrics_listen="127.0.0.1:0")
    port = service.metrics_port
    await services.stop(service)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        await asyncio.to_thread(scrape, port)


async def test_admin_call_when_traceparent_given_then_one_server_span_in_that_trace(services: Services) -> None:
    exporter = InMemorySpanExporter()
    service = RiskgateService(test_config(), services.redis_url, span_exporter=exporter)
    port = await service.start()
    client = Client(port, service.admin_port)
    try:
        metadata = [*client.auth(), ("traceparent", TRACEPARENT)]
        await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_NORMAL, reason="t"),
                                             metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await client.admin.SetCircuitBreaker(admin.CircuitBreaker(state=admin.BREAKER_NORMAL),
                                                 metadata=[*client.auth(VIEWER_TOKEN), ("traceparent", TRACEPARENT)])
        await client.check(quantity="0.01")  # checks are not traced at the default ratio 0
    finally:
        await client.close()
        await service.stop()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["riskgate.v1.RiskAdmin/SetCircuitBreaker"] * 2
    for span in spans:
        assert format(span.context.trace_id, "032x") == TRACE_ID
        assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
        assert span.resource.attributes["service.name"] == "riskgate"
    assert [s.attributes["riskgate.outcome"] for s in spans] == ["ok", "denied"]
    assert [s.attributes["rpc.grpc.status_code"] for s in spans] == [0, grpc.StatusCode.PERMISSION_DENIED.value[0]]


async def test_check_when_sample_ratio_is_one_then_each_check_has_a_span_with_its_decision(
        services: Services) -> None:
    exporter = InMemorySpanExporter()
    service = RiskgateService(test_config(trace_check_sample_ratio=1.0), services.redis_url, span_exporter=exporter)
    port = await service.start()
    client = Client(port, service.admin_port)
    try:
        await client.upsert_symbol(mark="50000")
        await client.trader()
        await client.pretrade.CheckOrder(client.request(quantity="0.01"), metadata=[("traceparent", TRACEPARENT)])
        await client.check(quantity="0.1", price="99999")
    finally:
        await client.close()
        await service.stop()
    checks = [s for s in exporter.get_finished_spans() if s.name == "riskgate.v1.PreTradeRisk/CheckOrder"]
    assert [s.attributes["riskgate.decision"] for s in checks] == ["ACCEPT", "REJECT"]
    assert format(checks[0].context.trace_id, "032x") == TRACE_ID
    assert checks[1].parent is None and checks[1].attributes["riskgate.reason"] == "PRICE_ABOVE_BAND"


async def test_monitor_metrics_when_rule_fires_then_feed_role_alerts_actions_and_calls_exported(
        services: Services) -> None:
    from riskgate.monitor.service import MonitorService

    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    exporter = InMemorySpanExporter()
    config = monitor_config([vol_rule()], metrics_listen="127.0.0.1:0")
    monitor = MonitorService(config, services.redis_url, span_exporter=exporter)
    await monitor.start()
    client = MonitorClient(monitor.port)
    try:
        assert monitor.metrics_port > 0
        await until(client.status, lambda s: s.role == "actor" and s.symbols == 1)
        await gate.set_mark("BTCUSDT", "53000", confirmed=True)  # +6%: the 5% rule trips the breaker

        async def raised() -> Samples:
            return await asyncio.to_thread(scrape, monitor.metrics_port)

        samples = await until(raised, lambda s: bool(s.get("riskgate_monitor_actions_total")))
        with pytest.raises(grpc.aio.AioRpcError):
            await client.stub.UpsertRule(mpb.Rule(id="x"), metadata=client.auth())  # an operator: denied
        await client.alerts(token=ADMIN_TOKEN)
        samples = await asyncio.to_thread(scrape, monitor.metrics_port)
    finally:
        await client.close()
        await monitor.stop()
    (resource, _), = samples["target_info"]
    assert resource["service_name"] == "riskgate-monitor" and resource["service_instance_id"] == monitor.lease_token
    assert value(samples, "riskgate_monitor_feed_live") == 1
    assert value(samples, "riskgate_monitor_actor") == 1
    assert value(samples, "riskgate_monitor_account_events_lag_seconds") >= 0
    assert by(samples, "riskgate_monitor_alerts_raised_total", "rule") == {("vol-test",): 1}
    assert by(samples, "riskgate_monitor_actions_total", "action") == {("symbol_reduce_only",): 1}
    assert value(samples, "riskgate_monitor_open_episodes") == 1
    assert value(samples, "riskgate_monitor_rules") == 1
    assert value(samples, "riskgate_monitor_evaluation_duration_seconds_count", trigger="tick") >= 1
    calls = by(samples, "riskgate_admin_calls_total", "method", "outcome")
    assert calls[("UpsertRule", "denied")] == 1 and calls[("ListAlerts", "ok")] == 1
    assert value(samples, "riskgate_process_resident_memory_bytes") > 0
    names = [s.name for s in exporter.get_finished_spans()]
    assert "riskgate.v1.RiskMonitor/UpsertRule" in names and "riskgate.v1.RiskMonitor/ListAlerts" in names
