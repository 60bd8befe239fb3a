"""What each reason means, for people. `python -m riskgate.engine.reason_docs` prints the
README's reasons table; a test keeps the README in step with it."""

from __future__ import annotations

from riskgate.values.codes import ReasonCode as R

# code -> (check, when it fires)
REASON_DOCS: dict[R, tuple[str, str]] = {
    R.INVALID_ORDER_ID: ("1 well-formed", "order_id empty, too long or not printable"),
    R.INVALID_ACCOUNT_ID: ("1 well-formed", "account_id empty, too long or not printable"),
    R.INVALID_SYMBOL: ("1 well-formed", "symbol empty, too long or not printable"),
    R.INVALID_SIDE: ("1 well-formed", "side is not SIDE_BUY or SIDE_SELL"),
    R.INVALID_ORDER_TYPE: ("1 well-formed", "order_type is not LIMIT or MARKET"),
    R.INVALID_QUANTITY: ("1 well-formed", "quantity not a plain positive decimal (NaN, inf, sign, exponent, >18 dp)"),
    R.INVALID_PRICE: ("1 well-formed", "limit price not a plain positive decimal, or a price on a market order"),
    R.INVALID_LEVERAGE: ("1 well-formed", "leverage above 1000"),
    R.QUANTITY_NOT_ON_LOT: ("1 well-formed", "quantity not a multiple of lot_size"),
    R.PRICE_NOT_ON_TICK: ("1 well-formed", "price not a multiple of tick_size"),
    R.UNKNOWN_SYMBOL: ("1 well-formed", "symbol not listed"),
    R.UNKNOWN_ACCOUNT: ("1 well-formed", "account has no state in riskgate (fail closed)"),
    R.ACCOUNT_NOT_OWNED: ("1 well-formed", "account belongs to another shard"),
    R.DUPLICATE_ORDER_ID: ("2 duplicates", "order_id open, or closed within duplicate_window_seconds"),
    R.PLATFORM_HALTED: ("3 breakers", "platform breaker HALTED"),
    R.SYMBOL_HALTED: ("3 breakers", "symbol breaker HALTED"),
    R.PLATFORM_REDUCE_ONLY: ("3 breakers", "platform breaker REDUCE_ONLY: only the reducing part may go"),
    R.SYMBOL_REDUCE_ONLY: ("3 breakers", "symbol breaker REDUCE_ONLY: only the reducing part may go"),
    R.ACCOUNT_FROZEN: ("4 account", "account restriction FROZEN"),
    R.ACCOUNT_REDUCE_ONLY: ("4 account", "account restriction REDUCE_ONLY: only the reducing part may go"),
    R.ORDER_RATE_EXCEEDED: ("4 account", "orders per second above the account's token bucket"),
    R.KYC_LEVEL_TOO_LOW: ("5 eligibility", "account KYC level below the symbol's min_kyc_level"),
    R.QUALIFIED_INVESTOR_REQUIRED: ("5 eligibility", "qualified_only symbol, or leverage above the unqualified max"),
    R.MARK_PRICE_MISSING: ("6 reference price", "no mark price for the symbol (or for a held position)"),
    R.MARK_PRICE_STALE: ("6 reference price", "mark (of the symbol, or of a held position) older than its bound"),
    R.STATE_UNAVAILABLE: ("6 reference price",
                          "Redis unreachable, change feed silent or writes failing past redis_stale_after_ms"),
    R.PRICE_ABOVE_BAND: ("6 order size", "buy price above mark x (1 + price_band)"),
    R.PRICE_BELOW_BAND: ("6 order size", "sell price below mark x (1 - price_band)"),
    R.QUANTITY_BELOW_MIN: ("6 order size", "quantity below min_quantity"),
    R.QUANTITY_ABOVE_MAX: ("6 order size", "quantity above max_quantity"),
    R.NOTIONAL_BELOW_MIN: ("6 order size", "quantity x price below min_notional (orders that only reduce exempt)"),
    R.ORDER_NOTIONAL_ABOVE_MAX: ("6 order size", "quantity x price above max_order_notional"),
    R.LEVERAGE_ABOVE_TIER_MAX: ("7 leverage", "leverage above the max of the tier the resulting position falls in"),
    R.LEVERAGE_ABOVE_ACCOUNT_MAX: ("7 leverage", "leverage above the account's max_leverage"),
    R.POSITION_ABOVE_MAX_TIER: ("7 leverage", "resulting position (open orders included) beyond the last tier"),
    R.LEVERAGE_MISMATCH: ("7 leverage", "leverage differs from the position's (or open orders') on the symbol"),
    R.POSITION_LIMIT_EXCEEDED: ("8 limits", "resulting position notional above max_position_notional"),
    R.GROSS_NOTIONAL_EXCEEDED: ("8 limits", "gross notional over all symbols above the account's max_gross_notional"),
    R.OPEN_INTEREST_CAP_EXCEEDED: ("8 limits", "symbol open interest (open orders included) above open_interest_cap"),
    R.INSUFFICIENT_MARGIN: ("9 margin", "order cost above available margin"),
    R.NOTHING_TO_REDUCE: ("reduce-only", "reduce-only (asked or imposed) with no position left to reduce"),
    R.REDUCE_ONLY_QUANTITY_CAPPED: ("reduce-only", "reduce-only order larger than what is left to reduce"),
}


def markdown_table() -> str:
    rows = ["| code | number | check | when |", "|---|---|---|---|"]
    for code in R:
        check, when = REASON_DOCS[code]
        rows.append(f"| `REASON_{code.name}` | {code.value} | {check} | {when} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
