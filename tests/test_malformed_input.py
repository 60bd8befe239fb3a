"""Malformed input: every CheckOrderRequest field gets a typed REJECT (never a gRPC error), and every
SymbolSpec field a refusal with INVALID_ARGUMENT that names the field (never a half-applied spec)."""

from __future__ import annotations

import grpc
import pytest

from riskgate.v1 import pretrade_pb2 as pb
from tests.support import BTC_TIERS, Client, codes, decision, symbol_spec

HUGE = "1" + "0" * 30
NINETEEN_DECIMALS = "1." + "0" * 18 + "1"
FULLWIDTH_ONE = "\uff11"
ARABIC_INDIC_TWELVE = "\u0661\u0662"

# Not a plain decimal string, whichever decimal field of the order carries it.
NOT_A_DECIMAL = {
    "nan": "NaN",
    "snan": "sNaN",
    "inf": "inf",
    "infinity": "Infinity",
    "minus_inf": "-Infinity",
    "negative": "-1",
    "explicit_plus": "+1",
    "too_many_decimals": NINETEEN_DECIMALS,
    "abc": "abc",
    "huge": HUGE,
    "exponent": "1e3",
    "exponent_upper": "1E3",
    "leading_space": " 1",
    "trailing_space": "1 ",
    "tab": "\t1",
    "trailing_newline": "1\n",
    "inner_space": "1 000",
    "underscore": "1_000",
    "comma": "1,5",
    "two_points": "1.2.3",
    "bare_point": ".",
    "leading_point": ".5",
    "trailing_point": "1.",
    "hex": "0x10",
    "fullwidth_digit": FULLWIDTH_ONE,
    "arabic_indic_digits": ARABIC_INDIC_TWELVE,
}

# (field, value, expected reason) for malformed values of every CheckOrderRequest field.
CASES: list[tuple[str, object, str]] = [
    ("order_id", "", "REASON_INVALID_ORDER_ID"),
    ("order_id", " ord-1", "REASON_INVALID_ORDER_ID"),
    ("order_id", "ord-1 ", "REASON_INVALID_ORDER_ID"),
    ("order_id", "ord\x00-1", "REASON_INVALID_ORDER_ID"),
    ("order_id", "ord\n1", "REASON_INVALID_ORDER_ID"),
    ("order_id", "o" * 65, "REASON_INVALID_ORDER_ID"),
    ("account_id", "", "REASON_INVALID_ACCOUNT_ID"),
    ("account_id", " acct-1", "REASON_INVALID_ACCOUNT_ID"),
    ("account_id", "acct-1\t", "REASON_INVALID_ACCOUNT_ID"),
    ("account_id", "a" * 65, "REASON_INVALID_ACCOUNT_ID"),
    ("symbol", "", "REASON_INVALID_SYMBOL"),
    ("symbol", "BTCUSDT ", "REASON_INVALID_SYMBOL"),
    ("symbol", "BTC\x7fUSDT", "REASON_INVALID_SYMBOL"),
    ("symbol", "S" * 33, "REASON_INVALID_SYMBOL"),
    ("side", 0, "REASON_INVALID_SIDE"),
    ("side", 3, "REASON_INVALID_SIDE"),
    ("side", 7, "REASON_INVALID_SIDE"),
    ("side", 2**31 - 1, "REASON_INVALID_SIDE"),
    ("side", -1, "REASON_INVALID_SIDE"),
    ("order_type", 0, "REASON_INVALID_ORDER_TYPE"),
    ("order_type", 3, "REASON_INVALID_ORDER_TYPE"),
    ("order_type", 9, "REASON_INVALID_ORDER_TYPE"),
    ("quantity", "", "REASON_INVALID_QUANTITY"),
    ("quantity", "0", "REASON_INVALID_QUANTITY"),
    ("quantity", "0.000", "REASON_INVALID_QUANTITY"),
    *(("quantity", text, "REASON_INVALID_QUANTITY") for text in NOT_A_DECIMAL.values()),
    ("quantity", "0.0001", "REASON_QUANTITY_NOT_ON_LOT"),
    ("quantity", "1.000000000000000001", "REASON_QUANTITY_NOT_ON_LOT"),
    ("price", "", "REASON_INVALID_PRICE"),
    ("price", "0", "REASON_INVALID_PRICE"),
    ("price", "0.0", "REASON_INVALID_PRICE"),
    *(("price", text, "REASON_INVALID_PRICE") for text in NOT_A_DECIMAL.values()),
    ("price", "50000.01", "REASON_PRICE_NOT_ON_TICK"),
    ("price", "50000.000000000000000001", "REASON_PRICE_NOT_ON_TICK"),
    ("leverage", 1001, "REASON_INVALID_LEVERAGE"),
    ("leverage", 2**32 - 1, "REASON_INVALID_LEVERAGE"),
]


def case_id(case: tuple[str, object, str]) -> str:
    field, value, _ = case
    return f"{field}={value!r}"[:60]


def malformed(client: Client, field: str, value: object) -> pb.CheckOrderRequest:
    request = client.request(quantity="1", price="50000", leverage=10)
    setattr(request, field, value)
    return request


@pytest.mark.parametrize(("field", "value", "code"), CASES, ids=[case_id(c) for c in CASES])
async def test_check_order_when_field_is_malformed_then_rejects_with_typed_reason(btc: Client, field: str,
                                                                                  value: object, code: str) -> None:
    request = malformed(btc, field, value)
    response = await btc.pretrade.CheckOrder(request)
    assert decision(response) == "DECISION_REJECT", codes(response)
    assert codes(response) == [code]
    assert response.order_id == request.order_id
    assert response.allowed_quantity == "0"
    assert response.reasons[0].message
    risk = await btc.risk("acct-1")
    assert risk.open_orders == 0
    assert risk.reserved_order_cost == "0"


async def test_check_order_when_market_order_carries_a_price_then_rejects_invalid_price(btc: Client) -> None:
    request = btc.request(price=None)
    request.price = "50000"
    response = await btc.pretrade.CheckOrder(request)
    assert codes(response) == ["REASON_INVALID_PRICE"]
    assert decision(response) == "DECISION_REJECT"


async def test_check_order_when_limit_order_has_no_price_then_rejects_invalid_price(btc: Client) -> None:
    request = btc.request(order_type=pb.ORDER_TYPE_LIMIT, price=None)
    response = await btc.pretrade.CheckOrder(request)
    assert codes(response) == ["REASON_INVALID_PRICE"]
    assert response.reasons[0].message


async def test_check_order_when_quantity_is_zero_then_reason_names_limit_and_value(btc: Client) -> None:
    response = await btc.check(quantity="0")
    assert codes(response) == ["REASON_INVALID_QUANTITY"]
    assert (response.reasons[0].limit, response.reasons[0].value) == ("0", "0")


async def test_check_order_when_leverage_beyond_1000_then_reason_names_the_ceiling(btc: Client) -> None:
    response = await btc.check(leverage=1001)
    assert codes(response) == ["REASON_INVALID_LEVERAGE"]
    assert (response.reasons[0].limit, response.reasons[0].value) == ("1000", "1001")


async def test_check_order_when_side_is_unknown_enum_value_then_reason_shows_the_value(btc: Client) -> None:
    request = malformed(btc, "side", 7)
    response = await btc.pretrade.CheckOrder(request)
    assert codes(response) == ["REASON_INVALID_SIDE"]
    assert response.reasons[0].value == "7"


async def test_check_order_when_huge_quantity_then_reason_value_is_shortened(btc: Client) -> None:
    text = "9" * 200
    response = await btc.check(quantity=text)
    assert codes(response) == ["REASON_INVALID_QUANTITY"]
    assert 0 < len(response.reasons[0].value) <= 40
    assert len(response.reasons[0].message) < 300


async def test_check_order_when_quantity_has_18_integer_digits_then_rejects_above_max_not_an_error(
        btc: Client) -> None:
    response = await btc.check(quantity="999999999999999999")
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_QUANTITY_ABOVE_MAX"]


async def test_check_order_when_sell_price_has_18_integer_digits_then_rejects_notional_not_an_error(
        btc: Client) -> None:
    response = await btc.check(side="sell", quantity="1", price="999999999999999999.9")
    assert decision(response) == "DECISION_REJECT"
    assert codes(response) == ["REASON_ORDER_NOTIONAL_ABOVE_MAX"]


async def test_check_order_when_decimals_use_all_18_fraction_digits_on_the_grid_then_accepts(btc: Client) -> None:
    response = await btc.check(quantity="0.100000000000000000", price="50000.000000000000000000")
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.allowed_quantity == "0.1"


async def test_check_order_when_identifiers_are_at_their_maximum_length_then_accepts(btc: Client) -> None:
    await btc.trader("a" * 64)
    response = await btc.check(account="a" * 64, order_id="o" * 64)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.order_id == "o" * 64


async def test_check_order_when_leverage_is_1000_then_it_is_well_formed_and_judged_by_the_tier(btc: Client) -> None:
    response = await btc.check(leverage=1000)
    assert codes(response) == ["REASON_LEVERAGE_ABOVE_TIER_MAX"]
    assert (response.reasons[0].limit, response.reasons[0].value) == ("125", "1000")


async def test_check_orders_stream_when_every_request_is_malformed_then_answers_each_in_order(btc: Client) -> None:
    cases = [c for c in CASES if not isinstance(c[1], str) or c[1].isascii()]
    requests = [malformed(btc, field, value) for field, value, _ in cases]
    responses = [r async for r in btc.pretrade.CheckOrders(iter(requests))]
    assert len(responses) == len(cases)
    for request, response, (_, _, code) in zip(requests, responses, cases, strict=True):
        assert response.order_id == request.order_id
        assert decision(response) == "DECISION_REJECT"
        assert codes(response) == [code]
    assert (await btc.risk("acct-1")).open_orders == 0


async def test_check_order_when_malformed_orders_came_first_then_a_good_order_is_still_accepted(btc: Client) -> None:
    await btc.set_controls("acct-1", max_orders_per_second=2)
    for text in ("NaN", "abc", "-1", HUGE, "1e3"):
        assert codes(await btc.check(quantity=text)) == ["REASON_INVALID_QUANTITY"]
    response = await btc.check(quantity="1")
    assert decision(response) == "DECISION_ACCEPT", codes(response)


# SymbolSpec via UpsertSymbol

DECIMAL_SPEC_FIELDS = ("tick_size", "lot_size", "min_quantity", "max_quantity", "min_notional",
                       "max_order_notional", "price_band", "taker_fee_rate")
BAD_DECIMALS = ("NaN", "inf", "-1", "abc", "", HUGE, "1e3", " 0.1", "0.1 ", "0.1\n", NINETEEN_DECIMALS)
OPTIONAL_DECIMAL_FIELDS = ("max_position_notional", "open_interest_cap")


def tiers_with(index: int, cap: str | None = None, leverage: int | None = None, mmr: str | None = None
               ) -> tuple[tuple[str, int, str], ...]:
    """The BTCUSDT brackets with one tier changed."""
    tiers = list(BTC_TIERS)
    old_cap, old_leverage, old_mmr = tiers[index]
    tiers[index] = (old_cap if cap is None else cap, old_leverage if leverage is None else leverage,
                    old_mmr if mmr is None else mmr)
    return tuple(tiers)


SPEC_CASES: list[tuple[str, dict[str, object], str]] = [
    ("symbol_empty", {"symbol": ""}, "symbol"),
    ("symbol_padded", {"symbol": " BTCUSDT"}, "symbol"),
    ("symbol_too_long", {"symbol": "S" * 33}, "symbol"),
    ("symbol_unprintable", {"symbol": "BTC\nUSDT"}, "symbol"),
    *((f"{field}_{bad!r}", {field: bad}, field) for field in DECIMAL_SPEC_FIELDS for bad in BAD_DECIMALS),
    *((f"{field}_zero", {field: "0"}, field)
      for field in ("tick_size", "lot_size", "min_quantity", "max_quantity", "max_order_notional", "price_band")),
    ("min_quantity_off_lot", {"min_quantity": "0.0015"}, "min_quantity"),
    ("max_quantity_off_lot", {"max_quantity": "1000.0005"}, "max_quantity"),
    ("max_below_min_quantity", {"min_quantity": "2", "max_quantity": "1"}, "max_quantity"),
    ("price_band_one", {"price_band": "1"}, "price_band"),
    ("price_band_above_one", {"price_band": "1.5"}, "price_band"),
    ("taker_fee_rate_one", {"taker_fee_rate": "1"}, "taker_fee_rate"),
    ("taker_fee_rate_above_one", {"taker_fee_rate": "2"}, "taker_fee_rate"),
    ("tick_size_fullwidth_digit", {"tick_size": FULLWIDTH_ONE}, "tick_size"),
    ("lot_size_arabic_indic_digits", {"lot_size": ARABIC_INDIC_TWELVE}, "lot_size"),
    ("mark_age_zero", {"mark_price_max_age_ms": 0}, "mark_price_max_age_ms"),
    *((f"{field}_{bad!r}", {field: bad}, field)
      for field in OPTIONAL_DECIMAL_FIELDS for bad in ("0", "0.0", "NaN", "-5", "abc", "1e6", HUGE)),
    ("max_leverage_unqualified_above_tier_one", {"max_leverage_unqualified": 126}, "max_leverage_unqualified"),
    ("default_leverage_above_tier_one", {"default_leverage": 126}, "default_leverage"),
    ("tiers_empty", {"tiers": ()}, "tiers"),
    ("tiers_unsorted", {"tiers": (("250000", 100, "0.005"), ("50000", 125, "0.004"))}, "tiers[1].notional_cap"),
    ("tiers_equal_caps", {"tiers": (("50000", 125, "0.004"), ("50000", 100, "0.005"))}, "tiers[1].notional_cap"),
    ("tier_cap_zero", {"tiers": tiers_with(0, cap="0")}, "tiers[0].notional_cap"),
    ("tier_cap_negative", {"tiers": tiers_with(0, cap="-50000")}, "tiers[0].notional_cap"),
    ("tier_cap_nan", {"tiers": tiers_with(2, cap="NaN")}, "tiers[2].notional_cap"),
    ("tier_cap_exponent", {"tiers": tiers_with(2, cap="1e6")}, "tiers[2].notional_cap"),
    ("tier_cap_huge", {"tiers": tiers_with(9, cap=HUGE)}, "tiers[9].notional_cap"),
    ("tier_leverage_zero", {"tiers": tiers_with(0, leverage=0)}, "tiers[0].max_leverage"),
    ("tier_leverage_zero_last", {"tiers": tiers_with(9, leverage=0)}, "tiers[9].max_leverage"),
    ("tier_leverage_above_1000", {"tiers": (("50000", 1001, "0.0005"),)}, "tiers[0].max_leverage"),
    ("tier_leverage_increasing", {"tiers": tiers_with(1, leverage=150)}, "tiers[1].max_leverage"),
    ("tier_mmr_one", {"tiers": (("50000", 1, "1"),)}, "tiers[0].maintenance_margin_rate"),
    ("tier_mmr_above_one", {"tiers": tiers_with(9, mmr="1.5")}, "tiers[9].maintenance_margin_rate"),
    ("tier_mmr_negative", {"tiers": tiers_with(0, mmr="-0.004")}, "tiers[0].maintenance_margin_rate"),
    ("tier_mmr_nan", {"tiers": tiers_with(0, mmr="NaN")}, "tiers[0].maintenance_margin_rate"),
    ("tier_mmr_empty", {"tiers": tiers_with(0, mmr="")}, "tiers[0].maintenance_margin_rate"),
    ("tier_mmr_decreasing", {"tiers": tiers_with(1, mmr="0.003")}, "tiers[1].maintenance_margin_rate"),
    ("tier_mmr_not_below_inverse_leverage", {"tiers": tiers_with(0, mmr="0.008")},
     "tiers[0].maintenance_margin_rate"),
]


@pytest.mark.parametrize(("fields", "field"), [c[1:] for c in SPEC_CASES], ids=[c[0][:60] for c in SPEC_CASES])
async def test_upsert_symbol_when_field_is_invalid_then_refuses_naming_the_field(client: Client,
                                                                                 fields: dict[str, object],
                                                                                 field: str) -> None:
    values = {"symbol": "NEWUSDT", **fields}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.upsert_symbol(symbol_spec(**values))  # type: ignore[arg-type]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(f"{field}:"), refused.value.details()
    # Nothing of the refused spec reached the book: the symbol is still unknown to it.
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.set_mark(str(values["symbol"]), "50000")
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown symbol" in missing.value.details()


async def test_upsert_symbol_when_tiers_are_unsorted_then_refused_and_orders_see_unknown_symbol(
        client: Client) -> None:
    await client.upsert_symbol(mark="50000")
    await client.trader()
    spec = symbol_spec("ETHUSDT", tiers=(("250000", 100, "0.005"), ("50000", 125, "0.004")))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.upsert_symbol(spec)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tiers[1].notional_cap" in refused.value.details()
    response = await client.check(symbol="ETHUSDT", price="2500")
    assert codes(response) == ["REASON_UNKNOWN_SYMBOL"]


async def test_upsert_symbol_when_update_is_invalid_then_previous_spec_stays_in_force(btc: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await btc.upsert_symbol(symbol_spec(tick_size="0"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tick_size" in refused.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await btc.upsert_symbol(symbol_spec(tiers=()))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = await btc.check(quantity="1", price="50000.1", leverage=125)
    assert decision(response) == "DECISION_ACCEPT", codes(response)
    assert response.max_leverage == 125


async def test_upsert_symbol_when_every_field_is_valid_then_returns_derived_tiers(client: Client) -> None:
    stored = await client.upsert_symbol(symbol_spec())
    assert [t.notional_floor for t in stored.tiers[:3]] == ["0", "50000", "250000"]
    assert [t.maintenance_amount for t in stored.tiers[:3]] == ["0", "50", "1300"]
    assert stored.version > 0
