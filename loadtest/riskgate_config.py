"""Writes the riskgate TOML configuration for a run: the workload's symbols, accounts and marks."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

from loadtest.workload import AccountSeed, Market, Workload, text

ADMIN_TOKEN = "loadtest-admin-token"


def _value(value: object) -> str:
    if isinstance(value, Decimal):
        return json.dumps(text(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return json.dumps([str(item) for item in value])
    return json.dumps(str(value))


def _table(header: str, fields: dict[str, object]) -> list[str]:
    return [header, *(f"{key} = {_value(value)}" for key, value in fields.items() if value is not None), ""]


def _symbol(market: Market) -> list[str]:
    spec = market.spec
    lines = _table("[[symbols]]", {
        "symbol": spec.symbol, "tick_size": spec.tick_size, "lot_size": spec.lot_size,
        "min_quantity": spec.min_quantity, "max_quantity": spec.max_quantity, "min_notional": spec.min_notional,
        "max_order_notional": spec.max_order_notional, "price_band": spec.price_band,
        "taker_fee_rate": spec.taker_fee_rate, "max_position_notional": spec.max_position_notional,
        "open_interest_cap": spec.open_interest_cap, "min_kyc_level": spec.min_kyc_level,
        "max_leverage_unqualified": spec.max_leverage_unqualified, "qualified_only": spec.qualified_only,
        "mark_price_max_age_ms": spec.mark_price_max_age_ms,
    })
    for tier in spec.tiers:
        lines += _table("[[symbols.tiers]]", {"notional_cap": tier.notional_cap, "max_leverage": tier.max_leverage,
                                              "maintenance_margin_rate": tier.maintenance_margin_rate})
    return lines


def _account(account: AccountSeed) -> list[str]:
    lines = _table("[[accounts]]", {
        "account_id": account.account_id, "balance": account.balance, "kyc_level": account.kyc_level,
        "qualified_investor": account.qualified,
        "max_orders_per_second": account.max_orders_per_second or None,
    })
    for p in account.positions:
        lines += _table("[[accounts.positions]]", {"symbol": p.symbol, "quantity": p.quantity,
                                                   "entry_price": p.entry_price, "leverage": p.leverage})
    return lines


def render(workload: Workload, listen: str, data_dir: Path) -> str:
    lines = _table("[server]", {
        "listen": listen, "redis_url": "", "data_dir": str(data_dir), "key_prefix": "lt",
        "default_max_orders_per_second": workload.config.default_orders_per_second,
    })
    lines += _table("[[admin_tokens]]", {"name": "loadtest", "roles": ["admin"],
                                         "token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()})
    for market in workload.markets.values():
        lines += _symbol(market)
    for account in workload.accounts:
        lines += _account(account)
    for market in workload.markets.values():
        lines += _table("[[marks]]", {"symbol": market.symbol, "price": market.mark})
    return "\n".join(lines)


def write(path: Path, workload: Workload, listen: str, data_dir: Path) -> Path:
    path.write_text(render(workload, listen, data_dir))
    return path
