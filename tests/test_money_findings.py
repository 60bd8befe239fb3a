"""Regression tests for the findings of the issue "Money correctness", through the real gRPC API.

BTCUSDT carries the Binance brackets (tests/support.py BTC_TIERS) at mark 50,000. Each test
notes the number the service gave before the fix: every one of them granted margin that did
not exist, or refused orders for margin a reduce-only order could never need.

Item 5 (marks) is covered by tests/test_mark_bound.py, the liquidation numbers of item 6 by
tests/test_liquidation_numbers.py; here item 6 is the reduce-only part.
"""

from __future__ import annotations

import pytest
from grpc import StatusCode
from grpc.aio import AioRpcError

from riskgate.v1 import pretrade_pb2 as pb
from tests.audit_trail import audit_of
from tests.conftest import Services
from tests.support import Client, codes, decision

ACCOUNT = "acct-1"


async def open_position(client: Client, side: str, quantity: str, leverage: int, order_id: str,
                        account: str = ACCOUNT) -> None:
    """Opens (or adds to) a position through a checked order and its fill at 50,000."""
    response = await client.check(account=account, side=side, quantity=quantity, price="50000",
                                  leverage=leverage, order_id=order_id)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    await client.fill(account, order_id, quantity, "50000")


def reason(response: pb.CheckOrderResponse, code: str) -> pb.Reason:
    assert code in codes(response), codes(response)
    return response.reasons[codes(response).index(code)]


# ---- 1. A position ends up at a leverage its tier forbids (order leverage changing after acceptance)


async def test_relabel_sequence_when_replayed_from_a_125x_long_then_no_10m_short_at_125x_is_possible(
        btc: Client) -> None:
    # The exact sequence of the issue. Before the fix: R was accepted whole with its flip part
    # margined at 5x, S filled, R was relabelled with X's 125x, X was canceled and R filled:
    # a 10M short recorded at 125x (IM 80,000 instead of 2,000,000).
    await btc.trader(balance="2100000")
    await open_position(btc, "buy", "0.001", 125, "long")

    # R: sell 200 at 5x. The symbol's one leverage is the position's 125x: the flip part is a
    # LEVERAGE_MISMATCH and only the reducing 0.001 may go (before: ACCEPT of all 200).
    r = await btc.check(side="sell", quantity="200", price="50000", leverage=5, order_id="R")
    assert decision(r) == "DECISION_REDUCE_ONLY"
    assert codes(r) == ["REASON_LEVERAGE_MISMATCH"]
    assert (r.reasons[0].limit, r.reasons[0].value) == ("125", "5")
    assert r.allowed_quantity == "0.001"
    assert r.order_cost == "0"  # before: 1,999,990 reserved for the flip part at 5x

    # S: sell 0.001 at leverage 0 (= 125x). R already covers the long, so S opens a short of
    # 0.001 in the worst case: tier 1, 125x allowed.
    s = await btc.check(side="sell", quantity="0.001", price="50000", leverage=0, order_id="S")
    assert decision(s) == "DECISION_ACCEPT", codes(s)
    assert s.order_cost == "0.4"
    # X: buy 0.001 at 125x, the symbol's leverage.
    x = await btc.check(side="buy", quantity="0.001", price="50000", leverage=125, order_id="X")
    assert decision(x) == "DECISION_ACCEPT", codes(x)

    await btc.fill(ACCOUNT, "S", "0.001", "50000")
    await btc.close_order(ACCOUNT, "X")
    ack = await btc.fill(ACCOUNT, "R", "0.001", "50000")  # what the gateway could send of R
    assert ack.position_quantity == "-0.001"  # before: -199.999 (a 10M short)

    risk = await btc.risk(ACCOUNT)
    assert [(p.quantity, p.leverage, p.initial_margin) for p in risk.positions] == [("-0.001", 125, "0.4")]
    assert risk.reserved_order_cost == "0"
    # Before: 2,020,000 with the 10M short margined at 125x.
    assert risk.available_margin == "2099999.6"

    # And the 10M short cannot be added at 125x nor at another leverage.
    at_bound = await btc.check(side="sell", quantity="199.999", price="50000", leverage=0)
    assert codes(at_bound) == ["REASON_LEVERAGE_ABOVE_TIER_MAX"]
    assert (at_bound.reasons[0].limit, at_bound.reasons[0].value) == ("10", "125")
    at_five = await btc.check(side="sell", quantity="199.999", price="50000", leverage=5)
    assert codes(at_five) == ["REASON_LEVERAGE_MISMATCH"]


async def test_relabel_sequence_when_flip_accepted_at_5x_then_125x_order_refused_and_eth_order_refused(
        btc: Client) -> None:
    # The same sequence from a long at 5x, so that R's 10M flip is legitimately margined at
    # 5x (2,000,000). Before the fix X at 125x was accepted and relabelled R, which then filled
    # as a 10M short at 125x (IM 80,000): ~1.9M of phantom margin let a 1.5M-margin ETHUSDT
    # order through.
    await btc.upsert_symbol(symbol="ETHUSDT", mark="3000", tick_size="0.01")
    await btc.trader(balance="2100000")
    await open_position(btc, "buy", "0.001", 5, "long")

    r = await btc.check(side="sell", quantity="200", price="50000", leverage=5, order_id="R")
    assert decision(r) == "DECISION_ACCEPT", codes(r)
    assert r.order_cost == "1999990"  # 199.999 x 50,000 / 5
    s = await btc.check(side="sell", quantity="0.001", price="50000", leverage=0, order_id="S")
    assert decision(s) == "DECISION_ACCEPT", codes(s)

    x = await btc.check(side="buy", quantity="0.001", price="50000", leverage=125, order_id="X")
    assert decision(x) == "DECISION_REJECT"  # before: ACCEPT at 125x, and R relabelled with it
    assert codes(x) == ["REASON_LEVERAGE_MISMATCH"]
    assert (x.reasons[0].limit, x.reasons[0].value) == ("5", "125")
    x0 = await btc.check(side="buy", quantity="0.001", price="50000", leverage=0, order_id="X0")
    assert decision(x0) == "DECISION_ACCEPT", codes(x0)

    await btc.fill(ACCOUNT, "S", "0.001", "50000")
    await btc.close_order(ACCOUNT, "X0")
    ack = await btc.fill(ACCOUNT, "R", "200", "50000")
    assert ack.position_quantity == "-200"

    risk = await btc.risk(ACCOUNT)
    # Before: leverage 125, IM 80,000, available 2,020,000.
    assert [(p.quantity, p.leverage, p.initial_margin) for p in risk.positions] == [("-200", 5, "2000000")]
    assert risk.available_margin == "100000"

    eth = await btc.check(symbol="ETHUSDT", side="buy", quantity="1000", price="3000", leverage=2)
    assert decision(eth) == "DECISION_REJECT"  # before: ACCEPT on phantom margin
    margin = reason(eth, "REASON_INSUFFICIENT_MARGIN")
    assert (margin.limit, margin.value) == ("100000", "1500000")


async def test_check_order_when_flip_order_open_at_125x_then_orders_at_another_leverage_are_mismatched(
        btc: Client) -> None:
    # Second path of the issue. Before the fix one side could hold orders at two leverages: a
    # flip order at 125x and an order at 20x (the per-symbol leverage another, since-canceled
    # order had set); whichever filled first set the position's leverage and the other added
    # to it at that leverage.
    await open_position(btc, "buy", "0.001", 125, "long")
    flip = await btc.check(side="sell", quantity="0.002", price="50000", leverage=125, order_id="flip")
    assert decision(flip) == "DECISION_ACCEPT", codes(flip)

    for side in ("sell", "buy"):
        other = await btc.check(side=side, quantity="0.001", price="50000", leverage=20)
        assert decision(other) == "DECISION_REJECT", side  # before: ACCEPT at 20x
        assert codes(other) == ["REASON_LEVERAGE_MISMATCH"]
        assert (other.reasons[0].limit, other.reasons[0].value) == ("125", "20")

    # Another order closes the long: only the flip order is left, and it still binds 125x.
    closer = await btc.check(side="sell", quantity="0.001", price="50000", leverage=0, order_id="closer")
    assert decision(closer) == "DECISION_ACCEPT", codes(closer)
    assert (await btc.fill(ACCOUNT, "closer", "0.001", "50000")).position_quantity == "0"
    for side in ("sell", "buy"):
        other = await btc.check(side=side, quantity="0.001", price="50000", leverage=20)
        assert codes(other) == ["REASON_LEVERAGE_MISMATCH"], side
        assert other.reasons[0].limit == "125"
    same = await btc.check(side="sell", quantity="0.001", price="50000", leverage=0, order_id="same")
    assert decision(same) == "DECISION_ACCEPT", codes(same)

    await btc.fill(ACCOUNT, "flip", "0.002", "50000")
    await btc.fill(ACCOUNT, "same", "0.001", "50000")
    risk = await btc.risk(ACCOUNT)
    assert [(p.quantity, p.leverage, p.initial_margin) for p in risk.positions] == [("-0.003", 125, "1.2")]


# ---- 2. The same outcome through inputs


async def test_upsert_account_when_position_leverage_above_tier_max_then_clamped_and_margined_at_it(
        btc: Client, redis_server) -> None:
    # 100 BTC at mark 50,000 = 5,000,000: tier 4, 20x at most. Before the fix the snapshot was
    # stored at 125x: IM 40,000, available 960,000.
    stored = await btc.upsert_account("whale", "1000000", positions=(("BTCUSDT", "100", "50000", 125),))
    assert list(stored.clamped) == ["BTCUSDT leverage 125 -> 20 (tier max or account cap)"]
    assert stored.positions[0].leverage == 20
    await btc.set_controls("whale")

    risk = await btc.risk("whale")
    assert [(p.leverage, p.initial_margin) for p in risk.positions] == [(20, "250000")]
    assert risk.available_margin == "750000"
    # An order that only the phantom 210,000 could fund is refused (before: ACCEPT).
    await btc.upsert_symbol(symbol="ETHUSDT", mark="3000", tick_size="0.01")
    more = await btc.check(account="whale", symbol="ETHUSDT", quantity="800", price="3000", leverage=3)
    assert decision(more) == "DECISION_REJECT"
    assert codes(more) == ["REASON_INSUFFICIENT_MARGIN"]
    assert (more.reasons[0].limit, more.reasons[0].value) == ("750000", "800000")

    entries = await audit_of(redis_server.url, "UpsertAccount", 2)  # acct-1 of the fixture, then this
    whale = [e for e in entries if e["target"] == "whale"]
    assert whale and whale[-1]["clamped"] == "BTCUSDT leverage 125 -> 20 (tier max or account cap)"


async def test_upsert_account_when_position_leverage_above_account_cap_then_clamped_to_the_cap(
        btc: Client) -> None:
    # Before the fix only 1..1000 was checked: 50x stored beside an account cap of 10x.
    await btc.set_controls(ACCOUNT, max_leverage=10)
    stored = await btc.upsert_account(ACCOUNT, "100000", positions=(("BTCUSDT", "1", "50000", 50),))
    assert list(stored.clamped) == ["BTCUSDT leverage 50 -> 10 (tier max or account cap)"]
    risk = await btc.risk(ACCOUNT)
    assert [(p.leverage, p.initial_margin) for p in risk.positions] == [(10, "5000")]  # before: 1,000
    assert risk.available_margin == "95000"


async def test_fill_when_order_unknown_and_report_says_125x_on_a_big_quantity_then_leverage_clamped_to_tier(
        btc: Client, redis_server) -> None:
    # A fill of an order riskgate does not know opened the position at the report's leverage
    # with no tier check: 100 BTC at 125x, IM 40,000, available 60,000 before the fix.
    ack = await btc.fill(ACCOUNT, "ghost", "100", "50000", symbol="BTCUSDT", side=pb.SIDE_BUY, leverage=125)
    assert ack.position_quantity == "100"
    assert ack.available_margin == "-150000"  # 100,000 - 5,000,000 / 20

    risk = await btc.risk(ACCOUNT)
    assert [(p.quantity, p.leverage, p.initial_margin) for p in risk.positions] == [("100", 20, "250000")]
    refused = await btc.check(quantity="0.1", price="50000", leverage=0)
    assert codes(refused) == ["REASON_INSUFFICIENT_MARGIN"]

    entries = await audit_of(redis_server.url, "clamp_leverage")
    assert "BTCUSDT leverage 125 -> 20" in entries[-1]["outcome"]
    assert "ghost" in entries[-1]["outcome"]


async def test_fill_when_order_unknown_and_open_orders_bind_a_leverage_then_the_fill_takes_it(
        btc: Client) -> None:
    # No position, one open order at 10x. Before the fix the unknown order's fill opened the
    # position at the report's 50x beside it (IM 100, available 99,400).
    await btc.check(quantity="0.1", price="50000", leverage=10, order_id="resting")
    await btc.fill(ACCOUNT, "ghost", "0.1", "50000", symbol="BTCUSDT", side=pb.SIDE_BUY, leverage=50)
    risk = await btc.risk(ACCOUNT)
    assert [(p.quantity, p.leverage, p.initial_margin) for p in risk.positions] == [("0.1", 10, "500")]
    assert risk.available_margin == "99000"  # IM 500 + "resting" 500


# ---- 3. A clearing snapshot cut before a fill but applied after it


async def test_snapshot_when_cut_before_a_fill_already_applied_then_the_fill_is_reapplied_on_top(
        btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill(ACCOUNT, "o-1", "1", "50000", execution_id="trade-5", sequence=5)

    # Clearing's snapshot cut at 4: flat, with 100 of funding paid. Before the fix it erased
    # the fill: no position, available 99,900.
    await btc.upsert_account(ACCOUNT, "99900", cutoff_sequence=4)
    risk = await btc.risk(ACCOUNT)
    assert risk.balance == "99900"
    assert [(p.quantity, p.entry_price, p.leverage, p.initial_margin) for p in risk.positions] == [
        ("1", "50000", 10, "5000")]
    assert risk.available_margin == "94900"


async def test_snapshot_when_cut_after_a_fill_already_applied_then_the_fill_is_not_counted_twice(
        btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill(ACCOUNT, "o-1", "1", "50000", execution_id="trade-5", sequence=5)
    # Clearing's snapshot cut at 5 already has the fill.
    await btc.upsert_account(ACCOUNT, "100000", positions=(("BTCUSDT", "1", "50000", 10),), cutoff_sequence=5)
    risk = await btc.risk(ACCOUNT)
    assert [p.quantity for p in risk.positions] == ["1"]
    assert risk.available_margin == "95000"


async def test_fill_when_snapshot_cut_at_its_sequence_arrived_first_then_only_the_reservation_moves(
        btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    # Clearing's snapshot cut at 5 already holds the fill of sequence 5, whose report is late.
    await btc.upsert_account(ACCOUNT, "100000", positions=(("BTCUSDT", "1", "50000", 10),), cutoff_sequence=5)
    assert (await btc.risk(ACCOUNT)).available_margin == "90000"  # IM 5,000 + o-1 still reserving 5,000

    ack = await btc.fill(ACCOUNT, "o-1", "1", "50000", execution_id="trade-5", sequence=5)
    assert ack.included_in_snapshot
    # Before the fix the fill moved the position again: 2 BTC, available 90,000.
    assert (ack.position_quantity, ack.remaining_quantity) == ("1", "0")
    risk = await btc.risk(ACCOUNT)
    assert [p.quantity for p in risk.positions] == ["1"]
    assert risk.reserved_order_cost == "0"
    assert risk.available_margin == "95000"

    # A fill after the cut-off moves the position as usual.
    await btc.check(quantity="0.5", price="50000", leverage=10, order_id="o-2")
    later = await btc.fill(ACCOUNT, "o-2", "0.5", "50000", execution_id="trade-6", sequence=6)
    assert not later.included_in_snapshot
    assert later.position_quantity == "1.5"


async def test_snapshot_when_cut_before_the_one_held_then_refused_and_state_kept(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill(ACCOUNT, "o-1", "1", "50000", execution_id="trade-5", sequence=5)
    await btc.upsert_account(ACCOUNT, "100000", positions=(("BTCUSDT", "1", "50000", 10),), cutoff_sequence=6)

    # An older snapshot (cut at 4, flat) arriving late. Before the fix it was applied: flat.
    with pytest.raises(AioRpcError) as error:
        await btc.upsert_account(ACCOUNT, "100000", cutoff_sequence=4)
    assert error.value.code() == StatusCode.FAILED_PRECONDITION
    risk = await btc.risk(ACCOUNT)
    assert [p.quantity for p in risk.positions] == ["1"]
    assert risk.available_margin == "95000"


async def test_snapshot_when_no_cutoff_and_not_all_fills_while_fills_since_last_snapshot_then_refused(
        btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    await btc.fill(ACCOUNT, "o-1", "1", "50000", execution_id="trade-5", sequence=5)
    # Before the fix a snapshot with no cut-off replaced the book: the fill was erased.
    with pytest.raises(AioRpcError) as error:
        await btc.upsert_account(ACCOUNT, "100000", includes_all_fills=False)
    assert error.value.code() == StatusCode.FAILED_PRECONDITION
    risk = await btc.risk(ACCOUNT)
    assert [p.quantity for p in risk.positions] == ["1"]
    assert risk.available_margin == "95000"


# ---- 4. A retried partial-fill report applied twice


async def test_fill_when_partial_fill_reported_twice_with_same_execution_id_then_applied_once(
        btc: Client) -> None:
    await btc.trader(positions=(("BTCUSDT", "1", "50000", 10),))
    await btc.check(side="sell", quantity="1", price="50000", leverage=0, order_id="sell")
    first = await btc.fill(ACCOUNT, "sell", "0.5", "50000", execution_id="trade-77", sequence=77)
    assert not first.duplicate
    assert (first.position_quantity, first.remaining_quantity) == ("0.5", "0.5")

    retry = await btc.fill(ACCOUNT, "sell", "0.5", "50000", execution_id="trade-77", sequence=77)
    assert retry.duplicate
    # Before the fix: flat, the order closed, all margin free (available 100,000).
    assert (retry.position_quantity, retry.remaining_quantity) == ("0.5", "0.5")
    risk = await btc.risk(ACCOUNT)
    assert [(p.quantity, p.initial_margin) for p in risk.positions] == [("0.5", "2500")]
    assert risk.available_margin == "97500"
    assert risk.open_orders == 1

    # A new execution of the same order is applied.
    rest = await btc.fill(ACCOUNT, "sell", "0.5", "50000", execution_id="trade-78", sequence=78)
    assert not rest.duplicate
    assert (rest.position_quantity, rest.remaining_quantity) == ("0", "0")


async def test_fill_when_retried_after_a_restart_then_still_a_duplicate(services: Services) -> None:
    first, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(positions=(("BTCUSDT", "1", "50000", 10),))
    await client.check(side="sell", quantity="1", price="50000", leverage=0, order_id="sell")
    await client.fill(ACCOUNT, "sell", "0.5", "50000", execution_id="trade-77", sequence=77)
    await services.stop(first)

    _, restarted = await services.start()
    retry = await restarted.fill(ACCOUNT, "sell", "0.5", "50000", execution_id="trade-77", sequence=77)
    assert retry.duplicate  # before the fix: applied again, flat
    assert (retry.position_quantity, retry.remaining_quantity) == ("0.5", "0.5")
    risk = await restarted.risk(ACCOUNT)
    assert [(p.quantity, p.initial_margin) for p in risk.positions] == [("0.5", "2500")]
    assert risk.available_margin == "97500"


async def test_fill_when_no_execution_id_then_invalid_argument_and_nothing_applied(btc: Client) -> None:
    await btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    for execution_id, sequence in (("", 9), ("trade-9", 0)):
        with pytest.raises(AioRpcError) as error:
            await btc.pretrade.ReportExecution(pb.ExecutionReport(
                order_id="o-1", account_id=ACCOUNT, kind=pb.EXECUTION_KIND_FILL, quantity="1", price="50000",
                execution_id=execution_id, sequence=sequence))
        assert error.value.code() == StatusCode.INVALID_ARGUMENT
    risk = await btc.risk(ACCOUNT)
    assert list(risk.positions) == []
    assert risk.reserved_order_cost == "5000"


async def test_fill_when_no_execution_id_in_compatibility_mode_then_applied(compat_btc: Client) -> None:
    await compat_btc.check(quantity="1", price="50000", leverage=10, order_id="o-1")
    ack = await compat_btc.pretrade.ReportExecution(pb.ExecutionReport(
        order_id="o-1", account_id=ACCOUNT, kind=pb.EXECUTION_KIND_FILL, quantity="0.5", price="50000"))
    assert (ack.position_quantity, ack.remaining_quantity) == ("0.5", "0.5")


# ---- 6. Reduce-only orders re-margined as risk-increasing after the position closes


async def test_fill_when_another_order_closes_the_position_then_reduce_only_order_holds_nothing(
        btc: Client) -> None:
    await open_position(btc, "buy", "1", 10, "long")
    ro = await btc.check(side="sell", quantity="1", price="50000", leverage=0, reduce_only=True, order_id="ro")
    assert decision(ro) == "DECISION_ACCEPT", codes(ro)
    assert ro.order_cost == "0"

    closer = await btc.check(side="sell", quantity="1", price="50000", leverage=0, order_id="closer")
    assert decision(closer) == "DECISION_ACCEPT", codes(closer)
    ack = await btc.fill(ACCOUNT, "closer", "1", "50000")
    assert ack.position_quantity == "0"
    assert list(ack.cancel_order_ids) == ["ro"]

    # Before the fix "ro" was re-margined as a 1 BTC short at 10x: 5,000 reserved.
    risk = await btc.risk(ACCOUNT)
    assert (risk.reserved_order_cost, risk.available_margin, risk.open_orders) == ("0", "100000", 1)

    # "ro" binds no leverage: a new one may be chosen (before: LEVERAGE_MISMATCH).
    fresh = await btc.check(side="buy", quantity="0.1", price="50000", leverage=20, order_id="fresh")
    assert decision(fresh) == "DECISION_ACCEPT", codes(fresh)
    assert fresh.order_cost == "250"
    risk = await btc.risk(ACCOUNT)
    assert risk.reserved_order_cost == "250"  # only what the non-reduce-only order holds
    assert risk.available_margin == "99750"

    # Every execution ack of the symbol keeps telling the gateway to cancel it.
    canceled = await btc.close_order(ACCOUNT, "fresh")
    assert list(canceled.cancel_order_ids) == ["ro"]
    assert (await btc.risk(ACCOUNT)).reserved_order_cost == "0"


async def test_snapshot_when_position_gone_then_reduce_only_order_holds_nothing_and_binds_no_leverage(
        btc: Client) -> None:
    await open_position(btc, "buy", "1", 10, "long")
    await btc.check(side="sell", quantity="1", price="50000", leverage=0, reduce_only=True, order_id="ro")
    # Clearing (as of now) says the account is flat.
    await btc.upsert_account(ACCOUNT, "100000")
    risk = await btc.risk(ACCOUNT)
    # Before the fix: 5,000 reserved for "ro" as a 1 BTC short at 10x.
    assert (risk.reserved_order_cost, risk.available_margin) == ("0", "100000")
    fresh = await btc.check(side="sell", quantity="1", price="50000", leverage=25)
    assert decision(fresh) == "DECISION_ACCEPT", codes(fresh)
    assert fresh.order_cost == "2000"
    assert fresh.available_margin == "98000"


# ---- Found by the adversarial review of the fix


async def test_snapshot_when_it_relabels_a_large_open_order_then_the_order_keeps_its_tier(btc: Client) -> None:
    # Long 0.1 at 20x; buy 100 at 20x reserves 250,000 (worst case 100.1 BTC = 5.005M, tier max
    # 20x). Clearing's snapshot says 125x, legal for 0.1 BTC: the order takes 125x but its margin
    # stays that of its side's tier (the first fix re-costed it at tier 1: 40,000, and an
    # ETHUSDT order needing 250,000 was then accepted).
    await btc.upsert_symbol(symbol="ETHUSDT", mark="3000", tick_size="0.01")
    await btc.trader(balance="300000")
    await open_position(btc, "buy", "0.1", 20, "long")
    big = await btc.check(side="buy", quantity="100", price="50000", leverage=0, order_id="big")
    assert (decision(big), big.order_cost) == ("DECISION_ACCEPT", "250000")
    await btc.upsert_account(ACCOUNT, "300000", [("BTCUSDT", "0.1", "50000", 125)], cutoff_sequence=10**12)
    risk = await btc.risk(ACCOUNT)
    assert risk.reserved_order_cost == "250000"
    eth = await btc.check(symbol="ETHUSDT", side="buy", quantity="100", price="3000", leverage=1)
    assert codes(eth) == ["REASON_INSUFFICIENT_MARGIN"]


async def test_snapshot_when_includes_all_fills_and_an_older_fill_arrives_after_it_then_that_fill_moves_it(
        btc: Client) -> None:
    # Fills arrive out of sequence: B (sequence 8) before A (sequence 7). An operator's "as of
    # now" snapshot reflects B, not A. A must then move the position (the first fix turned
    # "as of now" into "cut at 8", so A counted as included: position 0.1 instead of -9.9).
    await btc.check(side="sell", quantity="10", price="50000", leverage=10, order_id="A")
    await btc.check(side="buy", quantity="0.1", price="50000", leverage=10, order_id="B")
    await btc.fill(ACCOUNT, "B", "0.1", "50000", sequence=8)
    await btc.upsert_account(ACCOUNT, "110000", [("BTCUSDT", "0.1", "50000", 10)], includes_all_fills=True)
    ack = await btc.fill(ACCOUNT, "A", "10", "50000", sequence=7)
    assert not ack.included_in_snapshot
    assert ack.position_quantity == "-9.9"
    assert (await btc.risk(ACCOUNT)).available_margin == "60500"  # 110,000 - 9.9 x 50,000 / 10


async def test_snapshot_when_no_cutoff_after_one_with_a_cutoff_then_refused(btc: Client) -> None:
    # The first fix refused a cut-off-less snapshot only while fills were pending; right after
    # a snapshot that included them all, one with no cut-off erased the short it included.
    await btc.check(side="sell", quantity="1", price="50000", leverage=10, order_id="s")
    await btc.fill(ACCOUNT, "s", "1", "50000", sequence=5)
    await btc.upsert_account(ACCOUNT, "100000", [("BTCUSDT", "-1", "50000", 10)], cutoff_sequence=5)
    with pytest.raises(AioRpcError) as error:
        await btc.upsert_account(ACCOUNT, "100000", [], includes_all_fills=False)
    assert error.value.code() == StatusCode.FAILED_PRECONDITION
    assert (await btc.risk(ACCOUNT)).positions[0].quantity == "-1"


async def test_mark_move_when_it_carries_open_orders_into_a_higher_tier_then_their_margin_follows(
        btc: Client) -> None:
    # Sell 140 at 20x: 7.0M, 350,000 reserved. The mark up 9% makes the worst case 7.63M, in a
    # tier of 10x: the order needs 700,000, and available margin says so (before: 350,000
    # of margin that did not exist).
    await btc.trader(balance="1000000")
    order = await btc.check(side="sell", quantity="140", price="50000", leverage=20, order_id="S")
    assert (decision(order), order.order_cost) == ("DECISION_ACCEPT", "350000")
    assert (await btc.risk(ACCOUNT)).available_margin == "650000"
    await btc.set_mark("BTCUSDT", "54500")
    assert (await btc.risk(ACCOUNT)).available_margin == "300000"


async def test_account_cap_when_lowered_below_open_orders_leverage_then_their_margin_follows(btc: Client) -> None:
    await btc.trader(balance="1000000")
    await btc.check(side="sell", quantity="140", price="50000", leverage=20, order_id="S")
    await btc.set_controls(ACCOUNT, max_leverage=5)
    assert (await btc.risk(ACCOUNT)).available_margin == "-400000"  # 7M / 5 = 1.4M needed


async def test_fill_when_a_reduce_only_order_opens_a_position_late_then_it_takes_the_symbols_leverage(
        btc: Client) -> None:
    # Long 1 at 10x; reduce-only sell B and sell A. A's fill (sequence 2) arrives first: flat.
    # Buy D at 20x binds 20x. B's fill (sequence 1) then opens a short: at 20x, the symbol's
    # leverage (before: at B's stale 10x beside D's 20x, and the report failed).
    await open_position(btc, "buy", "1", 10, "long")
    await btc.check(side="sell", quantity="1", price="50000", leverage=0, reduce_only=True, order_id="B")
    await btc.check(side="sell", quantity="1", price="50000", leverage=0, order_id="A")
    await btc.fill(ACCOUNT, "A", "1", "50000")
    d = await btc.check(side="buy", quantity="0.1", price="50000", leverage=20, order_id="D")
    assert decision(d) == "DECISION_ACCEPT", codes(d)
    ack = await btc.fill(ACCOUNT, "B", "1", "50000")
    assert ack.position_quantity == "-1"
    position = (await btc.risk(ACCOUNT)).positions[0]
    assert (position.quantity, position.leverage) == ("-1", 20)
