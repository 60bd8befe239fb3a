"""RunStressTest on the wire: the request read into scenarios (StressError naming the field
for what cannot be used) and the results written as a StressReport."""

from __future__ import annotations

from collections.abc import Container, Sequence
from decimal import Decimal

from riskgate.api.echo import echo
from riskgate.monitor.stress import (
    DEFAULT_TOP,
    MAX_TOP,
    AccountStress,
    Cover,
    Exposure,
    Scenario,
    ScenarioResult,
    StressError,
    grid,
    parse_shock,
    percent,
    uniform,
)
from riskgate.v1 import monitor_pb2 as pb
from riskgate.values.money import DecimalFormatError, fmt, parse_non_negative

SHARE_QUANTUM = Decimal("0.000001")


def read_request(request: pb.StressRequest, known: Container[str], symbols: Sequence[str]
                 ) -> tuple[list[Scenario], int]:
    """The scenarios asked and how many accounts and exposures each lists. `known`: the
    symbols the monitor knows; `symbols`: those a uniform shock applies to."""
    if request.top > MAX_TOP:
        raise StressError("top", f"at most {MAX_TOP}, not {request.top}")
    top = request.top or DEFAULT_TOP
    gridded = bool(request.grid_from or request.grid_to or request.grid_step)
    given = [name for name, present in (("shock", bool(request.shock)),
                                        ("symbol_shocks", bool(request.symbol_shocks)),
                                        ("grid_from", gridded)) if present]
    if not given:
        raise StressError("shock", "give one of shock, symbol_shocks, or grid_from/grid_to/grid_step")
    if len(given) > 1:
        raise StressError(given[1], f"only one of shock, symbol_shocks or a grid (also given: {given[0]})")
    group = _group(request.group, known)
    if request.symbol_shocks:
        if group:
            raise StressError("group", "only with shock or a grid (symbol_shocks name their symbols)")
        shocks: dict[str, Decimal] = {}
        for item in request.symbol_shocks:
            if item.symbol not in known:
                raise StressError("symbol_shocks", f"unknown symbol {echo(item.symbol)}")
            if item.symbol in shocks:
                raise StressError("symbol_shocks", f"{item.symbol} given twice")
            shocks[item.symbol] = parse_shock("symbol_shocks", item.shock)
        label = " ".join(f"{symbol} {percent(shock)}" for symbol, shock in shocks.items())
        return [Scenario(label=label, shocks=shocks)], top
    if request.shock:
        return [uniform(parse_shock("shock", request.shock), symbols, group)], top
    for name in ("grid_from", "grid_to", "grid_step"):
        if not getattr(request, name):
            raise StressError(name, "required with a grid (grid_from, grid_to and grid_step)")
    start = parse_shock("grid_from", request.grid_from)
    stop = parse_shock("grid_to", request.grid_to)
    try:
        step = parse_non_negative(request.grid_step.strip())
    except DecimalFormatError as exc:
        raise StressError("grid_step", f"a positive fraction such as '0.05': {exc}") from None
    return [uniform(shock, symbols, group) for shock in grid(start, stop, step)], top


def read_historical(request: pb.StressRequest) -> int:
    """How many accounts each historical scenario lists; StressError when the request also
    names shocks (historical scenarios are a choice of their own)."""
    if request.top > MAX_TOP:
        raise StressError("top", f"at most {MAX_TOP}, not {request.top}")
    for name in ("shock", "symbol_shocks", "grid_from", "grid_to", "grid_step", "group"):
        if getattr(request, name):
            raise StressError(name, "not with historical_lookback_days (historical scenarios name their own shocks)")
    return request.top or DEFAULT_TOP


def _group(names: Sequence[str], known: Container[str]) -> list[str]:
    group: list[str] = []
    for name in names:
        if name not in known:
            raise StressError("group", f"unknown symbol {echo(name)}")
        if name in group:
            raise StressError("group", f"{name} given twice")
        group.append(name)
    return group


def scenario_message(result: ScenarioResult) -> pb.StressScenario:
    return pb.StressScenario(
        label=result.scenario.label,
        shocks=[pb.SymbolShock(symbol=s, shock=fmt(shock)) for s, shock in result.scenario.shocks.items()],
        shocked_marks={s: fmt(mark) for s, mark in result.marks.items()},
        accounts=result.accounts, accounts_unvalued=result.unvalued, missing_marks=list(result.missing_marks),
        total_equity_approx=fmt(result.total_equity), total_maintenance_approx=fmt(result.total_maintenance),
        total_shortfall=fmt(result.total_shortfall), total_shortfall_exact=result.shortfall_exact,
        accounts_short=result.accounts_short, liquidations=result.liquidations,
        top_shortfalls=[account_message(a) for a in result.top_shortfalls],
        top_exposures=[exposure_message(e) for e in result.top_exposures],
        cover_1=cover_message(result.cover_1), cover_2=cover_message(result.cover_2))


def account_message(account: AccountStress) -> pb.StressAccount:
    return pb.StressAccount(account_id=account.account_id, balance=fmt(account.balance), equity=fmt(account.equity),
                            maintenance=fmt(account.maintenance), margin_ratio=account.ratio_shown,
                            liquidated=account.liquidated, shortfall=fmt(account.shortfall))


def exposure_message(exposure: Exposure) -> pb.StressExposure:
    return pb.StressExposure(account_id=exposure.account_id, symbol=exposure.symbol, quantity=fmt(exposure.quantity),
                             shocked_mark=fmt(exposure.shocked_mark), notional=fmt(exposure.notional),
                             share=fmt(exposure.share.quantize(SHARE_QUANTUM)))


def cover_message(cover: Cover) -> pb.StressCover:
    return pb.StressCover(amount=fmt(cover.amount), accounts=list(cover.accounts), fund=fmt(cover.fund),
                          covered=cover.covered, margin=fmt(cover.margin))
