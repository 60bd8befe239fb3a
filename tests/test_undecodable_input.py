"""Input the service cannot use as sent: bytes that are not the method's request message (every
method of every service the server exposes answers INVALID_ARGUMENT, logs no traceback, and
keeps serving), and client strings long enough to burst the status trailer if echoed whole."""

from __future__ import annotations

import logging

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from riskgate.api import handlers
from riskgate.api.echo import DETAILS_LIMIT, details, echo
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from tests.support import Client, decision

UNDECODABLE_BYTES = b"\xff\xff\xff"  # a tag varint that never ends: no message type parses it
HUGE_ID = "x" * 100_000
CALL_TIMEOUT_S = 30

EXPOSED = (handlers.PRE_TRADE_RISK, handlers.RISK_ADMIN, handlers.HEALTH, handlers.REFLECTION)
METHODS = [(service, method) for service in EXPOSED for method in service.methods]


async def call_raw(channel: grpc.aio.Channel, service: ServiceDescriptor, method: MethodDescriptor,
                   payloads: list[bytes], metadata: list[tuple[str, str]] | None = None) -> list[bytes]:
    """Sends the payloads as they are (no serializer) and returns the raw responses."""
    path = f"/{service.full_name}/{method.name}"
    if not method.client_streaming:
        assert len(payloads) == 1
        if not method.server_streaming:
            return [await channel.unary_unary(path)(payloads[0], timeout=CALL_TIMEOUT_S, metadata=metadata)]
        call = channel.unary_stream(path)(payloads[0], timeout=CALL_TIMEOUT_S, metadata=metadata)
        return [response async for response in call]
    if not method.server_streaming:
        return [await channel.stream_unary(path)(iter(payloads), timeout=CALL_TIMEOUT_S, metadata=metadata)]
    call = channel.stream_stream(path)(iter(payloads), timeout=CALL_TIMEOUT_S, metadata=metadata)
    return [response async for response in call]


def channel_of(client: Client, service: ServiceDescriptor) -> grpc.aio.Channel:
    """RiskAdmin is on the operators' listener, everything else on the order port."""
    return client.admin_channel if service is handlers.RISK_ADMIN else client.channel


async def assert_good_order_accepted(client: Client) -> None:
    response = await client.check(quantity="0.01")
    assert decision(response) == "DECISION_ACCEPT", response


@pytest.mark.parametrize(("service", "method"), METHODS, ids=[f"{s.name}.{m.name}" for s, m in METHODS])
async def test_call_when_request_bytes_are_not_a_valid_message_then_invalid_argument_and_still_serving(
        btc: Client, service: ServiceDescriptor, method: MethodDescriptor) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_raw(channel_of(btc, service), service, method, [UNDECODABLE_BYTES])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
    assert refused.value.details() == f"request is not a valid {method.input_type.full_name}"
    await assert_good_order_accepted(btc)


async def test_admin_call_when_bytes_undecodable_and_token_valid_then_invalid_argument(btc: Client) -> None:
    method = handlers.RISK_ADMIN.methods_by_name["SetCircuitBreaker"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_raw(btc.admin_channel, handlers.RISK_ADMIN, method, [UNDECODABLE_BYTES], metadata=btc.auth())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    breakers = await btc.admin.ListCircuitBreakers(admin.ListCircuitBreakersRequest(), metadata=btc.auth())
    assert [b.state for b in breakers.breakers] == [admin.BREAKER_NORMAL]


async def test_check_orders_when_undecodable_request_follows_good_ones_then_answers_them_and_ends_invalid_argument(
        btc: Client) -> None:
    good = [btc.request(quantity="0.01"), btc.request(quantity="0.02")]
    method = handlers.PRE_TRADE_RISK.methods_by_name["CheckOrders"]
    path = f"/{handlers.PRE_TRADE_RISK.full_name}/{method.name}"
    call = btc.channel.stream_stream(path, response_deserializer=pb.CheckOrderResponse.FromString)(
        iter([*(r.SerializeToString() for r in good), UNDECODABLE_BYTES, good[0].SerializeToString()]),
        timeout=CALL_TIMEOUT_S)
    responses = []
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for response in call:
            responses.append(response)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "request is not a valid riskgate.v1.CheckOrderRequest"
    assert [r.order_id for r in responses] == [r.order_id for r in good]
    assert [decision(r) for r in responses] == ["DECISION_ACCEPT", "DECISION_ACCEPT"]
    await assert_good_order_accepted(btc)


async def test_calls_when_many_requests_are_undecodable_then_no_traceback_and_one_summary_line(
        btc: Client, caplog: pytest.LogCaptureFixture) -> None:
    refused_before = handlers.REFUSALS.total
    burst = 25
    with caplog.at_level(logging.INFO):
        for i in range(burst):
            service, method = METHODS[i % len(METHODS)]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call_raw(channel_of(btc, service), service, method, [UNDECODABLE_BYTES])
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await assert_good_order_accepted(btc)
    assert handlers.REFUSALS.total - refused_before == burst
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    summaries = [r for r in caplog.records if r.name == handlers.__name__]
    # One line per REPORT_INTERVAL_S at most: the burst is far shorter than that.
    assert len(summaries) <= 1
    assert all(r.levelno == logging.WARNING and "undecodable" in r.getMessage() for r in summaries)


def test_refusal_log_when_refusals_come_within_the_interval_then_one_line_then_a_summary_of_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    refusals = handlers.RefusalLog(interval_s=10.0, clock=lambda: now[0])

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == handlers.__name__]

    with caplog.at_level(logging.WARNING, logger=handlers.__name__):
        refusals.refused("/a.S/M", "ipv4:127.0.0.1:1")
        assert len(lines()) == 1
        assert "refused 1 undecodable request with INVALID_ARGUMENT" in lines()[0]
        for step in range(30):
            now[0] += 0.3  # 9 s in all: still within the interval
            refusals.refused("/a.S/M" if step % 3 else "/a.S/N", "ipv4:127.0.0.1:2")
        assert len(lines()) == 1
        now[0] += 1.5
        refusals.refused("/a.S/M", "ipv4:127.0.0.1:3")
    assert len(lines()) == 2
    assert "refused 31 undecodable requests" in lines()[1]
    assert "/a.S/M x21, /a.S/N x10" in lines()[1]
    assert "ipv4:127.0.0.1:3" in lines()[1]
    assert refusals.total == 32


async def test_health_and_reflection_when_requests_are_valid_then_answered_through_the_same_handlers(
        btc: Client) -> None:
    check = btc.channel.unary_unary(f"/{handlers.HEALTH.full_name}/Check",
                                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                    response_deserializer=health_pb2.HealthCheckResponse.FromString)
    answer = await check(health_pb2.HealthCheckRequest(service=handlers.PRE_TRADE_RISK.full_name),
                         timeout=CALL_TIMEOUT_S)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    listed = {}
    for port, channel in (("orders", btc.channel), ("admin", btc.admin_channel)):
        reflect = channel.stream_stream(f"/{handlers.REFLECTION.full_name}/ServerReflectionInfo",
                                        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        responses = [r async for r in reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=CALL_TIMEOUT_S)]
        listed[port] = {s.name for s in responses[0].list_services_response.service}
    # The order port lists what it serves: PreTradeRisk, health and reflection, never RiskAdmin.
    assert listed["orders"] == {handlers.PRE_TRADE_RISK.full_name, handlers.HEALTH.full_name,
                                handlers.REFLECTION.full_name}
    assert listed["admin"] == {handlers.RISK_ADMIN.full_name, handlers.HEALTH.full_name,
                               handlers.REFLECTION.full_name}


async def test_health_list_when_request_is_valid_then_unimplemented_without_traceback(
        btc: Client, caplog: pytest.LogCaptureFixture) -> None:
    method = handlers.HEALTH.methods_by_name["List"]
    with caplog.at_level(logging.INFO), pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_raw(btc.channel, handlers.HEALTH, method, [health_pb2.HealthListRequest().SerializeToString()])
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


# Long client strings echoed in error details


def assert_short(error: grpc.aio.AioRpcError) -> None:
    assert len(error.details().encode()) <= DETAILS_LIMIT, len(error.details())


@pytest.mark.parametrize("kind", [pb.EXECUTION_KIND_CANCELED, pb.EXECUTION_KIND_FILL])
@pytest.mark.parametrize("huge", ["order_id", "account_id", "both"])
async def test_report_execution_when_ids_are_100_kb_then_not_found_with_a_short_message(
        btc: Client, kind: int, huge: str) -> None:
    order_id = HUGE_ID if huge in ("order_id", "both") else "ord-unknown"
    account_id = HUGE_ID if huge in ("account_id", "both") else "acct-1"
    report = pb.ExecutionReport(order_id=order_id, account_id=account_id, kind=kind)
    if kind == pb.EXECUTION_KIND_FILL:
        report.quantity, report.price, report.execution_id, report.sequence = "0.01", "50000", "exec-1", 1
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await btc.pretrade.ReportExecution(report)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()[:200]
    assert_short(error.value)
    await assert_good_order_accepted(btc)


async def test_report_execution_when_fill_names_a_100_kb_symbol_then_not_found_with_a_short_message(
        btc: Client) -> None:
    report = pb.ExecutionReport(order_id=HUGE_ID, account_id=HUGE_ID, kind=pb.EXECUTION_KIND_FILL, quantity="0.01",
                                price="50000", symbol=HUGE_ID, side=pb.SIDE_BUY, leverage=10, execution_id="exec-1",
                                sequence=1)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await btc.pretrade.ReportExecution(report)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()[:200]
    assert_short(error.value)


async def test_get_account_risk_when_account_id_is_100_kb_then_not_found_with_a_short_message(btc: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await btc.admin.GetAccountRisk(admin.GetAccountRiskRequest(account_id=HUGE_ID), metadata=btc.auth())
    assert error.value.code() == grpc.StatusCode.NOT_FOUND, error.value.details()[:200]
    assert_short(error.value)
    assert "(100000 chars)" in error.value.details()


@pytest.mark.parametrize("rpc", ["SetMarkPrice", "SetCircuitBreaker"])
async def test_admin_change_when_symbol_is_100_kb_then_invalid_argument_with_a_short_message(btc: Client,
                                                                                            rpc: str) -> None:
    request = (admin.MarkPrice(symbol=HUGE_ID, price="50000") if rpc == "SetMarkPrice"
               else admin.CircuitBreaker(symbol=HUGE_ID, state=admin.BREAKER_HALTED, reason="test"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await getattr(btc.admin, rpc)(request, metadata=btc.auth())
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()[:200]
    assert_short(error.value)
    assert error.value.details().startswith("symbol: unknown symbol 'xxx")


async def test_upsert_account_when_account_id_is_100_kb_then_invalid_argument_with_a_short_message(
        btc: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await btc.upsert_account(HUGE_ID, "1000")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()[:200]
    assert_short(error.value)


def test_echo_when_value_is_longer_than_the_limit_then_repr_of_the_head_and_the_full_length() -> None:
    assert echo("acct-1") == "'acct-1'"
    assert echo("a\nb") == "'a\\nb'"
    assert echo("x" * 64) == repr("x" * 64)
    assert echo("x" * 100_000) == f"{'x' * 64!r}... (100000 chars)"
    assert echo("\x00" * 1000, limit=4) == "'\\x00\\x00\\x00\\x00'... (1000 chars)"


def test_details_when_text_is_longer_than_the_limit_then_cut_to_the_limit_in_utf8_bytes() -> None:
    assert details("unknown account 'acct-1'") == "unknown account 'acct-1'"
    cut = details("y" * 5000)
    assert len(cut.encode()) <= DETAILS_LIMIT and cut.endswith("... (5000 chars)")
    wide = details("\U0001f600" * 1000)  # 4 bytes each
    assert len(wide.encode()) <= DETAILS_LIMIT and wide.endswith("... (1000 chars)")
    assert details("\u00e9" * 10) == "\u00e9" * 10


async def test_publish_marks_when_bytes_undecodable_then_the_admin_log_line_says_invalid_argument(
        btc: Client, caplog: pytest.LogCaptureFixture) -> None:
    # The refusal happens inside the call's log, metrics and span wrappers: they see the
    # INVALID_ARGUMENT, not an error of the server.
    caplog.set_level(logging.INFO)
    method = handlers.RISK_ADMIN.methods_by_name["PublishMarks"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call_raw(btc.admin_channel, handlers.RISK_ADMIN, method, [UNDECODABLE_BYTES], metadata=btc.auth())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    lines = [r for r in caplog.records if getattr(r, "event", None) == "admin_action"
             and getattr(r, "action", None) == "PublishMarks"]
    assert lines and all(str(getattr(r, "outcome", "")).startswith("INVALID_ARGUMENT") for r in lines), \
        [getattr(r, "outcome", None) for r in lines]
