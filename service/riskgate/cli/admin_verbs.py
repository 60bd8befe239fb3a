"""The operators' verbs on RiskAdmin: `symbol upsert|show|list`, `account show|fund`, `orders`
and `audit`. Registered from main.py; their channel, token and target are main.py's."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from riskgate.cli.output import (
    EXIT_USAGE,
    CliError,
    age,
    iso_utc,
    print_fields,
    print_json,
    print_table,
)
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc

TIMEOUT_S = 5.0


def add_commands(client: Callable[[str, str], argparse.ArgumentParser], count: Callable[[str], int]) -> None:
    symbol = client("symbol", "add or change symbols from a TOML fragment (admin), or show them")
    symbol.add_argument("verb", choices=["upsert", "show", "list"])
    symbol.add_argument("what", nargs="?", default="",
                        help="upsert: the TOML file ([symbol] or [[symbols]] tables, as in the configuration); "
                             "show: the symbol")
    symbol.add_argument("--expected-version", type=count, default=None,
                        help="upsert one symbol only if its stored version is still this (0: it must be new)")
    symbol.set_defaults(handler=_symbol)

    account = client("account", "show an account (balance, positions, margin, controls), or credit or debit "
                                "its balance (fund: admin)")
    account.add_argument("verb", choices=["show", "fund"])
    account.add_argument("account")
    account.add_argument("amount", nargs="?", default="",
                         help="fund: signed decimal in the quote asset, added to the balance as it is now "
                              "(-250 debits)")
    account.add_argument("--reason", default="", help="fund: why (required): a deposit's reference, a ticket")
    account.add_argument("--expected-version", type=count, default=None,
                         help="fund: only if the account's version (account show) is still this")
    account.set_defaults(handler=_account)

    orders = client("orders", "an account's open orders (ids to cancel or release), oldest first")
    orders.add_argument("--account", required=True)
    orders.add_argument("--limit", type=count, default=0, help="0 = 100, at most 1000")
    orders.set_defaults(handler=_orders)

    audit = client("audit", "the audit trail, newest first (operator or admin token)")
    audit.add_argument("--since", default="", help="ISO-8601 UTC time (2026-12-06T05:12:03Z, 2026-12-06) or a "
                                                   "duration back from now (90s, 15m, 2h, 7d)")
    audit.add_argument("--actor", default="", help="the token name that acted (exact)")
    # --target is the service's address, as for every client verb: the filter is --on.
    audit.add_argument("--on", "--audit-target", dest="audit_target", default="", metavar="TARGET",
                       help="the symbol or account acted on (the entry's target, exact)")
    audit.add_argument("--action", default="", help="the call, e.g. SetCircuitBreaker (any case)")
    audit.add_argument("--limit", type=count, default=0, help="0 = 100, at most 1000")
    audit.add_argument("--before", default="", help="page on: the id printed after the last page")
    audit.set_defaults(handler=_audit)


def _plumbing() -> Any:
    from riskgate.cli import main  # main imports this module; its helpers are needed only at run time
    return main


def _stub_call(args: argparse.Namespace, method: str, request: Any) -> Any:
    cli = _plumbing()
    with cli._channel(args) as channel:
        return getattr(admin_grpc.RiskAdminStub(channel), method)(request, metadata=cli._metadata(args),
                                                                   timeout=TIMEOUT_S)


# ---- symbols -------------------------------------------------------------------------------


class _Fragment(msgspec.Struct, forbid_unknown_fields=True):
    symbol: Any = None
    symbols: list[Any] = []


def read_symbols(path: str) -> list[Any]:
    """The symbols of a TOML fragment, checked with the configuration's own types and rules;
    CliError (exit 2) naming the file and the field otherwise."""
    from riskgate.book.specs import SymbolSpec
    from riskgate.engine.spec_rules import SpecError, validate_symbol

    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        fragment = msgspec.toml.decode(text, type=_Fragment)
        tables = ([fragment.symbol] if fragment.symbol is not None else []) + list(fragment.symbols)
        specs = [msgspec.convert(table, SymbolSpec, strict=False) for table in tables]
    except msgspec.ValidationError as exc:
        raise CliError(f"{path}: {exc}", EXIT_USAGE) from None
    except msgspec.DecodeError as exc:
        raise CliError(f"{path}: not valid TOML: {exc}", EXIT_USAGE) from None
    if not specs:
        raise CliError(f"{path}: no [symbol] or [[symbols]] table", EXIT_USAGE)
    checked = []
    for n, spec in enumerate(specs):
        where = spec.symbol or f"symbol {n + 1}"
        if spec.version:
            raise CliError(f"{path}: {where}: version is the service's to set (use --expected-version)", EXIT_USAGE)
        try:
            checked.append((spec, validate_symbol(spec)))
        except SpecError as exc:
            raise CliError(f"{path}: {where}: {exc}", EXIT_USAGE) from None
    names = [spec.symbol for spec, _ in checked]
    if len(set(names)) != len(names):
        raise CliError(f"{path}: a symbol appears twice", EXIT_USAGE)
    return checked


def _symbol(args: argparse.Namespace) -> int:
    from riskgate.api import convert

    if args.verb in ("upsert", "show") and not args.what:
        raise CliError(f"symbol {args.verb} needs the {'file' if args.verb == 'upsert' else 'symbol'}", EXIT_USAGE)
    if args.verb == "list" and args.what:
        raise CliError("symbol list takes no argument", EXIT_USAGE)
    if args.expected_version is not None and args.verb != "upsert":
        raise CliError("--expected-version goes with symbol upsert", EXIT_USAGE)
    if args.verb == "show":
        detail = _stub_call(args, "GetSymbol", admin.GetSymbolRequest(symbol=args.what))
        if args.json:
            print_json(detail)
        else:
            _print_symbol_detail(detail)
        return 0
    if args.verb == "list":
        listed = _stub_call(args, "ListSymbols", admin.ListSymbolsRequest())
        if args.json:
            print_json(listed)
        else:
            _print_symbol_rows([d.spec for d in listed.symbols], list(listed.symbols))
        return 0
    checked = read_symbols(args.what)
    if args.expected_version is not None and len(checked) != 1:
        raise CliError("--expected-version goes with a file of one symbol", EXIT_USAGE)
    stored = []
    for spec, tiers in checked:
        message = convert.symbol_message(spec, tiers)
        if args.expected_version is not None:
            message.expected_version = args.expected_version
        stored.append(_stub_call(args, "UpsertSymbol", message))
    if args.json:
        if len(stored) == 1:
            print_json(stored[0])
        else:
            print_json(admin.SymbolList(symbols=[admin.SymbolDetail(spec=s) for s in stored]))
    else:
        _print_symbol_rows(stored, None)
    return 0


def _max_leverage(spec: Any) -> str:
    return str(max((t.max_leverage for t in spec.tiers), default=0))


def _print_symbol_rows(specs: list[Any], details: list[Any] | None) -> None:
    header = ("SYMBOL", "VERSION", "TICK", "LOT", "MIN_QTY", "MAX_QTY", "BAND", "TIERS", "MAX_LEV")
    rows: list[tuple[str, ...]] = []
    for n, spec in enumerate(specs):
        row = (spec.symbol, str(spec.version), spec.tick_size, spec.lot_size, spec.min_quantity, spec.max_quantity,
               spec.price_band, str(len(spec.tiers)), _max_leverage(spec))
        if details is not None:
            detail = details[n]
            mark = detail.mark if detail.HasField("mark") else None
            row += (mark.price if mark else "-", iso_utc(mark.timestamp_ms) if mark else "-",
                    _breaker_state(detail.breaker.state))
        rows.append(row)
    if details is not None:
        header += ("MARK", "MARK TIME (UTC)", "BREAKER")
    print_table([header, *rows])


def _breaker_state(state: int) -> str:
    return admin.BreakerState.Name(state).removeprefix("BREAKER_") if state else "NORMAL"


def _print_symbol_detail(detail: Any) -> None:
    spec = detail.spec
    mark = detail.mark if detail.HasField("mark") else None
    print_fields([
        ("symbol", spec.symbol), ("version", str(spec.version)), ("tick_size", spec.tick_size),
        ("lot_size", spec.lot_size), ("min_quantity", spec.min_quantity), ("max_quantity", spec.max_quantity),
        ("min_notional", spec.min_notional), ("max_order_notional", spec.max_order_notional),
        ("price_band", spec.price_band), ("taker_fee_rate", spec.taker_fee_rate),
        ("max_position_notional", spec.max_position_notional), ("open_interest_cap", spec.open_interest_cap),
        ("min_kyc_level", str(spec.min_kyc_level)), ("max_leverage_unqualified", str(spec.max_leverage_unqualified)),
        ("qualified_only", "yes" if spec.qualified_only else "no"),
        ("default_leverage", str(spec.default_leverage)), ("max_mark_move", spec.max_mark_move),
        ("mark_price_max_age", age(spec.mark_price_max_age_ms)),
        ("mark", mark.price if mark else "-"), ("mark_time (UTC)", iso_utc(mark.timestamp_ms) if mark else "-"),
        ("breaker", _breaker_state(detail.breaker.state)
         + (f" ({detail.breaker.reason})" if detail.breaker.reason else "")),
        ("open_interest (this shard, long)", detail.open_interest),
    ])
    print()
    print_table([("TIER", "NOTIONAL_FLOOR", "NOTIONAL_CAP", "MAX_LEV", "MMR", "MAINT_AMOUNT"),
                 *((str(n + 1), t.notional_floor, t.notional_cap, str(t.max_leverage), t.maintenance_margin_rate,
                    t.maintenance_amount) for n, t in enumerate(spec.tiers))])


# ---- accounts ------------------------------------------------------------------------------


def _account(args: argparse.Namespace) -> int:
    if args.verb == "show":
        if args.amount or args.reason or args.expected_version is not None:
            raise CliError("account show takes only the account (fund changes the balance)", EXIT_USAGE)
        show_account(args, _stub_call(args, "GetAccountRisk", admin.GetAccountRiskRequest(account_id=args.account)))
        return 0
    amount = parse_decimal("amount", args.amount, signed=True)
    if not amount:
        raise CliError("account fund: the amount must not be 0 (positive credits, negative debits)", EXIT_USAGE)
    if not args.reason.strip():
        raise CliError("account fund needs --reason (a deposit's reference, a ticket)", EXIT_USAGE)
    request = admin.BalanceAdjustment(account_id=args.account, amount=args.amount, reason=args.reason)
    if args.expected_version is not None:
        request.expected_version = args.expected_version
    stored = _stub_call(args, "AdjustBalance", request)
    if args.json:
        print_json(stored)
    else:
        print_fields([("account", stored.account_id), ("balance", stored.balance), ("version", str(stored.version)),
                      ("positions", str(len(stored.positions)))])
    return 0


def show_account(args: argparse.Namespace, risk: Any) -> None:
    """GetAccountRisk's answer: a record, then its positions."""
    if args.json:
        print_json(risk)
        return
    controls = risk.controls
    print_fields([
        ("account", risk.account_id), ("version", str(risk.version)), ("balance", risk.balance),
        ("available_margin", risk.available_margin), ("reserved_order_cost", risk.reserved_order_cost),
        ("open_orders", str(risk.open_orders)),
        ("restriction", admin.Restriction.Name(controls.restriction).removeprefix("RESTRICTION_")
         if controls.restriction else "-"),
        ("kyc_level", str(controls.kyc_level)), ("qualified_investor", "yes" if controls.qualified_investor else "no"),
        ("max_leverage", str(controls.max_leverage or "-")),
        ("max_orders_per_second", str(controls.max_orders_per_second or "-")),
        ("max_gross_notional", controls.max_gross_notional or "-"),
        ("controls_version", str(controls.version)),
        ("controls_set_by", controls.set_by or "-"),
    ])
    if risk.positions:
        print()
        print_table([("SYMBOL", "QUANTITY", "ENTRY", "MARK", "UNREALIZED_PNL", "LEVERAGE", "INITIAL_MARGIN",
                      "MAINT_MARGIN", "LIQ_PRICE"),
                     *((p.symbol, p.quantity, p.entry_price, p.mark_price, p.unrealized_pnl, str(p.leverage),
                        p.initial_margin, p.maintenance_margin, p.estimated_liquidation_price)
                       for p in risk.positions)])


def parse_decimal(name: str, text: str, signed: bool = False) -> Any:
    from riskgate.values.money import DecimalFormatError, parse_non_negative, parse_signed

    if text == "":
        raise CliError(f"{name} is required", EXIT_USAGE)
    try:
        return parse_signed(text) if signed else parse_non_negative(text)
    except DecimalFormatError as exc:
        raise CliError(f"{name}: {exc}", EXIT_USAGE) from None


# ---- open orders ---------------------------------------------------------------------------


_SIDES = {1: "BUY", 2: "SELL"}


def _orders(args: argparse.Namespace) -> int:
    listed = _stub_call(args, "ListReservations",
                        admin.ListReservationsRequest(account_id=args.account, limit=args.limit))
    print_reservations(args, listed)
    return 0


def print_reservations(args: argparse.Namespace, listed: Any) -> None:
    if args.json:
        print_json(listed)
        return
    print_table([("ACCOUNT", "ORDER", "SYMBOL", "SIDE", "REMAINING", "PRICE", "LEV", "REDUCE", "RESERVED",
                  "CREATED (UTC)", "AGE"),
                 *(reservation_row(r) for r in listed.reservations)])
    if listed.total > len(listed.reservations):
        print(f"({len(listed.reservations)} of {listed.total}; --limit for more)")


def reservation_row(r: Any) -> tuple[str, ...]:
    return (r.account_id, r.order_id, r.symbol, _SIDES.get(r.side, str(r.side)), r.remaining_quantity,
            r.price or "market", str(r.leverage), "yes" if r.reduce_only else "no", r.reserved_cost,
            iso_utc(r.created_ms), age(r.age_ms))


# ---- audit ---------------------------------------------------------------------------------


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_since(text: str, now_ms: int | None = None) -> int:
    """Unix ms of an ISO-8601 time (UTC unless it says otherwise) or of a duration before now."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    match = _DURATION.fullmatch(text.strip())
    if match:
        return max(0, now_ms - int(float(match.group(1)) * _UNIT_MS[match.group(2)]))
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since: expected an ISO-8601 time (2026-12-06T05:12:03Z) or a duration (15m, 2h, 7d), "
                       f"got {text!r}", EXIT_USAGE) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(0, int(moment.timestamp() * 1000))


def _audit(args: argparse.Namespace) -> int:
    request = admin.ListAuditEventsRequest(since_ms=parse_since(args.since) if args.since else 0, actor=args.actor,
                                           target=args.audit_target, action=args.action, limit=args.limit,
                                           before_id=args.before)
    listed = _stub_call(args, "ListAuditEvents", request)
    if args.json:
        print_json(listed)
        return 0
    print_table([("TIME (UTC)", "ACTOR", "ACTION", "TARGET", "OUTCOME", "VERSION", "ID"),
                 *((iso_utc(e.time_ms), e.actor, e.action, e.target or "-", _clip(e.outcome, 70),
                    str(e.version) if e.version else "-", e.id) for e in listed.events)])
    if listed.next_before_id:
        print(f"(more may be older: --before {listed.next_before_id})")
    return 0


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."
