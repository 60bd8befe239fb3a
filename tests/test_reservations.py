"""Reservation lifecycle: accept -> partial fill -> fill; cancels release; no double spending."""

import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.v1 import pretrade_pb2 as pb
from tests.support import Client, codes, decision


async def test_fill_when_partial_then_full_then_reservation_moves_into_position(btc: Client) -> None:
    order = await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    assert order.order_cost == "5000"
    assert (await btc.risk("acct-1")).reserved_order_cost == "5000"

    partial = await btc.fill("acct-1", "o-1", "0.4", "50000")
    assert (partial.remaining_quantity, partial.position_quantity) == ("0.6", "0.4")
    risk = await btc.risk("acct-1")
    assert risk.reserved_order_cost == "3000"
    assert risk.positions[0].quantity == "0.4"
    assert risk.available_margin == "95000"  # 100,000 - IM 2,000 - reserved 3,000

    done = await btc.fill("acct-1", "o-1", "0.6", "49990")
    assert (done.remaining_quantity, done.position_quantity) == ("0", "1")
    risk = await btc.risk("acct-1")
    assert risk.reserved_order_cost == "0"
    assert risk.open_orders == 0
    assert risk.positions[0].entry_price == "49994"  # (0.4 x 50,000 + 0.6 x 49,990) / 1


async def test_cancel_when_order_open_then_reservation_released_and_id_not_reusable(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    ack = await btc.close_order("acct-1", "o-1")
    assert ack.remaining_quantity == "0"
    assert (await btc.risk("acct-1")).reserved_order_cost == "0"
    again = await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    assert codes(again) == ["REASON_DUPLICATE_ORDER_ID"]


@pytest.mark.parametrize("kind", [pb.EXECUTION_KIND_EXPIRED, pb.EXECUTION_KIND_REJECTED])
async def test_close_when_expired_or_rejected_then_rest_of_reservation_released(btc: Client, kind: int) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill("acct-1", "o-1", "0.25", "50000")
    await btc.close_order("acct-1", "o-1", kind)
    risk = await btc.risk("acct-1")
    assert risk.reserved_order_cost == "0"
    assert risk.positions[0].quantity == "0.25"


async def test_report_execution_when_order_unknown_then_not_found(btc: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await btc.fill("acct-1", "never-sent", "1", "50000")
    assert error.value.code() == StatusCode.NOT_FOUND


@pytest.mark.parametrize(("quantity", "price"), [("0", "50000"), ("1", "-5"), ("abc", "50000"), ("1", "")])
async def test_report_fill_when_quantity_or_price_malformed_then_invalid_argument(btc: Client, quantity: str,
                                                                                  price: str) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    with pytest.raises(AioRpcError) as error:
        await btc.fill("acct-1", "o-1", quantity, price)
    assert error.value.code() == StatusCode.INVALID_ARGUMENT
    assert (await btc.risk("acct-1")).reserved_order_cost == "5000"


async def test_fill_when_position_closed_at_profit_then_realised_pnl_in_balance(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="open")
    await btc.fill("acct-1", "open", "1", "50000")
    await btc.set_mark("BTCUSDT", "51000")
    await btc.check(side="sell", quantity="1", price="51000", leverage=10, order_id="close")
    ack = await btc.fill("acct-1", "close", "1", "51000")
    assert (ack.position_quantity, ack.balance) == ("0", "101000")


async def test_check_orders_stream_when_orders_together_exceed_margin_then_only_what_fits_is_accepted(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="10000")
    requests = [client.request(quantity="0.6", price="50000", leverage=10) for _ in range(5)]  # 3,000 each
    call = client.pretrade.CheckOrders(iter(requests))
    responses = [r async for r in call]
    assert [r.order_id for r in responses] == [r.order_id for r in requests]
    assert [decision(r) for r in responses] == ["DECISION_ACCEPT"] * 3 + ["DECISION_REJECT"] * 2
    assert all(codes(r) == ["REASON_INSUFFICIENT_MARGIN"] for r in responses[3:])
    assert responses[3].reasons[0].limit == "1000"
    assert (await client.risk("acct-1")).reserved_order_cost == "9000"


async def test_fill_when_order_unknown_but_report_names_symbol_and_side_then_position_moves(btc: Client) -> None:
    # As after a crash lost the reservation: the order is live at the matching engine and fills.
    ack = await btc.fill("acct-1", "lost-in-crash", "0.5", "50000", symbol="BTCUSDT", side=pb.SIDE_BUY,
                         leverage=10)
    assert (ack.remaining_quantity, ack.position_quantity) == ("0", "0.5")
    assert (await btc.risk("acct-1")).positions[0].quantity == "0.5"


async def test_fill_when_retried_after_the_order_closed_then_not_counted_twice(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill("acct-1", "o-1", "1", "50000", execution_id="t-1")
    ack = await btc.fill("acct-1", "o-1", "1", "50000", execution_id="t-1", symbol="BTCUSDT", side=pb.SIDE_BUY,
                         leverage=10)
    assert ack.duplicate
    assert (await btc.risk("acct-1")).positions[0].quantity == "1"


async def test_fill_when_retried_after_the_order_closed_without_execution_id_then_refused(
        compat_btc: Client) -> None:
    await compat_btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await compat_btc.pretrade.ReportExecution(pb.ExecutionReport(
        order_id="o-1", account_id="acct-1", kind=pb.EXECUTION_KIND_FILL, quantity="1", price="50000"))
    with pytest.raises(AioRpcError) as error:
        await compat_btc.pretrade.ReportExecution(pb.ExecutionReport(
            order_id="o-1", account_id="acct-1", kind=pb.EXECUTION_KIND_FILL, quantity="1", price="50000",
            symbol="BTCUSDT", side=pb.SIDE_BUY, leverage=10))
    assert error.value.code() == StatusCode.NOT_FOUND
    assert (await compat_btc.risk("acct-1")).positions[0].quantity == "1"


async def test_fill_when_unknown_order_names_an_impossible_leverage_then_invalid_argument(btc: Client) -> None:
    with pytest.raises(AioRpcError) as error:
        await btc.fill("acct-1", "x", "1", "50000", symbol="BTCUSDT", side=pb.SIDE_BUY, leverage=5000)
    assert error.value.code() == StatusCode.INVALID_ARGUMENT


async def test_not_sent_when_gateway_never_got_the_answer_then_released_and_id_usable_again(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="unanswered")
    ack = await btc.close_order("acct-1", "unanswered", kind=pb.EXECUTION_KIND_NOT_SENT)
    assert (ack.remaining_quantity, ack.available_margin) == ("0", "100000")
    risk = await btc.risk("acct-1")
    assert (risk.open_orders, risk.reserved_order_cost) == (0, "0")
    # The order never existed for the matching engine: its id is not spent.
    assert decision(await btc.check(quantity="1", price="50000", leverage=10, order_id="unanswered")) == (
        "DECISION_ACCEPT")


async def test_not_sent_when_nothing_was_reserved_then_ok_and_nothing_changes(btc: Client) -> None:
    ack = await btc.close_order("acct-1", "never-checked", kind=pb.EXECUTION_KIND_NOT_SENT)
    assert ack.remaining_quantity == "0"
    assert (await btc.risk("acct-1")).reserved_order_cost == "0"


async def test_not_sent_when_order_has_fills_then_failed_precondition_and_reservation_kept(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="half")
    await btc.fill("acct-1", "half", "0.5", "50000")
    with pytest.raises(AioRpcError) as error:
        await btc.close_order("acct-1", "half", kind=pb.EXECUTION_KIND_NOT_SENT)
    assert error.value.code() == StatusCode.FAILED_PRECONDITION
    assert (await btc.risk("acct-1")).reserved_order_cost == "2500"
