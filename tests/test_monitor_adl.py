"""ADL ranking and liquidation risk: the quantile lights and the exact figures (units, no
Redis), and GetAdlRanking / GetLiquidationRisk end to end (a real gate, a real monitor, one
real Redis) against figures computed by hand, with validation, auth, audit and the CLI."""

from __future__ import annotations

import asyncio
import json
import random
from decimal import Decimal
from fractions import Fraction

import grpc
import pytest

from riskgate.api.auth import PERMISSIONS
from riskgate.api.convert import symbol_spec as spec_from_message
from riskgate.book.specs import PositionSpec
from riskgate.cli.main import main
from riskgate.engine.spec_rules import validate_symbol
from riskgate.monitor.adl import adl_figures, adl_ranking, lights, liquidation_risk, shown
from riskgate.monitor.columns import AccountColumns
from riskgate.monitor.exact import Market
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.values.tiers import TierTable
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import MonitorClient, running_monitor, until
from tests.support import ADMIN_TOKEN, OPERATOR_TOKEN, VIEWER_TOKEN, Client, symbol_spec

D = Decimal

# ---- units -------------------------------------------------------------------------------


def test_lights_when_5_10_7_2_and_1_positions_then_20_percent_steps_of_those_ranked_ahead() -> None:
    # lights = 5 - floor(5 x (rank - 1) / N): the share ranked ahead in [0,20%) 5, [20,40%) 4, ...
    assert [lights(r, 5) for r in range(1, 6)] == [5, 4, 3, 2, 1]
    assert [lights(r, 10) for r in range(1, 11)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    # N = 7: ahead 0/7, 1/7 (14.3%) -> 5; 2/7 (28.6%) -> 4; 3/7 (42.9%), 4/7 (57.1%) -> 3;
    # 5/7 (71.4%) -> 2; 6/7 (85.7%) -> 1.
    assert [lights(r, 7) for r in range(1, 8)] == [5, 5, 4, 3, 3, 2, 1]
    assert [lights(r, 2) for r in (1, 2)] == [5, 3]  # 1/2 ahead: [40%, 60%)
    assert lights(1, 1) == 5  # the first in the queue always shows 5
    for rank, population in ((0, 5), (6, 5), (1, 0)):
        with pytest.raises(ValueError):
            lights(rank, population)


def test_adl_figures_when_gain_loss_flat_or_unbacked_then_score_by_the_published_formula() -> None:
    # Long 1 from 40,000 at 50,000, margin balance 20,000: PnL% 10,000 / 40,000 = 0.25,
    # leverage 50,000 / 20,000 = 2.5, score 0.25 x 2.5 = 0.625.
    gain = adl_figures(D(1), D(40000), D(50000), D(20000))
    assert (gain.pnl_fraction, gain.effective_leverage, gain.score) == (Fraction(1, 4), Fraction(5, 2),
                                                                       Fraction(5, 8))
    # Short 2 from 40,000 at 50,000, margin balance 20,000: PnL% -20,000 / 80,000 = -0.25,
    # leverage 100,000 / 20,000 = 5, score -0.25 / 5 = -0.05.
    loss = adl_figures(D(-2), D(40000), D(50000), D(20000))
    assert (loss.pnl_fraction, loss.effective_leverage, loss.score) == (Fraction(-1, 4), Fraction(5),
                                                                       Fraction(-1, 20))
    assert adl_figures(D(1), D(50000), D(50000), D(5000)).score == 0
    # Nothing backs it (margin balance at or below zero): leverage infinite; a gain ranks first
    # (infinite score), a loss divided by an infinite leverage is 0.
    unbacked_gain = adl_figures(D(1), D(40000), D(50000), D(0))
    assert unbacked_gain.effective_leverage is None and unbacked_gain.score is None
    assert unbacked_gain.key > gain.key
    assert adl_figures(D(-1), D(40000), D(50000), D(-5)).score == 0
    assert shown(None) == "inf" and shown(Fraction(1, 3)) == "0.333333333333" and shown(Fraction(5, 8)) == "0.625"


def _market(mark: str, symbol_tiers: TierTable) -> Market:
    return Market(tiers=symbol_tiers, tick=D("0.1"), lot=D("0.001"), mark=D(mark), mark_ms=0, max_age_ms=10**12)


def _tiers() -> TierTable:
    return validate_symbol(spec_from_message(symbol_spec()))


def test_adl_ranking_when_many_holders_then_float_screen_lists_the_exact_top_with_ties_by_account() -> None:
    tiers = _tiers()
    market = _market("50000", tiers)
    columns = AccountColumns()
    columns.set_tiers("BTCUSDT", tiers)
    columns.tick("BTCUSDT", 50000.0)
    rng = random.Random(7)
    for n in range(300):
        entry = D(rng.randrange(30000, 70000))
        quantity = D(rng.randrange(1, 2000)) / 1000 * (1 if n % 3 else -1)
        balance = D(rng.randrange(0, 200000))
        columns.put(f"acct-{n:03d}", 1, balance, (PositionSpec("BTCUSDT", quantity, entry, 10),))
    # Two positions with exactly the same score: the account id decides.
    for name in ("tie-b", "tie-a"):
        columns.put(name, 1, D(10000), (PositionSpec("BTCUSDT", D(1), D(25000), 10),))
    for side in ("long", "short"):
        ranking = adl_ranking(columns, lambda s: market if s == "BTCUSDT" else None, "BTCUSDT", side, 20, 0)
        # The whole side computed exactly, sorted by the fraction and the account id.
        every = []
        for index, (balance, positions) in enumerate(columns.records):
            position = positions[0]
            if (position.quantity > 0) != (side == "long"):
                continue
            margin_balance = balance + position.quantity * (D(50000) - position.entry_price)
            every.append((adl_figures(position.quantity, position.entry_price, D(50000), margin_balance).key,
                          columns.ids[index]))
        every.sort(key=lambda e: (-e[0][0], -e[0][1], e[1]))
        assert ranking.population == len(every)
        assert [e.account_id for e in ranking.entries] == [account for _, account in every[:20]]
        assert [e.rank for e in ranking.entries] == list(range(1, 21))
        assert all(e.lights == lights(e.rank, len(every)) for e in ranking.entries)
    longs = adl_ranking(columns, lambda s: market, "BTCUSDT", "long", 1000, 0).entries
    ties = [e.account_id for e in longs if e.account_id.startswith("tie-")]
    assert ties == ["tie-a", "tie-b"]


def test_liquidation_risk_when_screened_in_floats_then_the_same_as_every_position_computed_exactly() -> None:
    tiers = _tiers()
    market = _market("50000", tiers)
    columns = AccountColumns()
    columns.set_tiers("BTCUSDT", tiers)
    columns.tick("BTCUSDT", 50000.0)
    rng = random.Random(11)
    for n in range(400):
        quantity = D(rng.randrange(1, 30000)) / 1000 * (1 if n % 2 else -1)
        columns.put(f"acct-{n:03d}", 1, D(rng.randrange(0, 300000)),
                    (PositionSpec("BTCUSDT", quantity, D(rng.randrange(40000, 60000)), 10),))
    listed = liquidation_risk(columns, lambda s: market, ["BTCUSDT"], 10, 0)
    every = liquidation_risk(columns, lambda s: market, ["BTCUSDT"], 1000, 0)
    assert len(listed) == 10 and listed == every[:10]
    assert [e.key for e in every] == sorted(e.key for e in every)


# ---- end to end --------------------------------------------------------------------------

ETH = "ETHUSDT"


async def _adl_book(services: Services) -> Client:
    """BTCUSDT at 50,000, ETHUSDT at 2,500. Longs (margin balance = balance + unrealised PnL):

    acct-a  1 from 40,000, balance 10,000: uPnL 10,000, MB 20,000; PnL% 0.25, lev 2.5, score 0.625
    acct-b  2 from 25,000, balance 50,000: uPnL 50,000, MB 100,000; PnL% 1, lev 1, score 1
    acct-c  1 from 50,000, balance 10,000, and 10 ETH from 3,000 (uPnL -5,000): MB 5,000 (cross);
            PnL% 0, lev 50,000 / 5,000 = 10, score 0
    acct-d  1 from 62,500, balance 25,000: uPnL -12,500, MB 12,500; PnL% -0.2, lev 4, score -0.05
    acct-e  0.5 from 40,000, balance 5,000: uPnL 5,000, MB 10,000; PnL% 0.25, lev 2.5, score 0.625

    Shorts:
    acct-s1 -1 from 62,500, balance 12,500: uPnL 12,500, MB 25,000; PnL% 0.2, lev 2, score 0.4
    acct-s2 -2 from 40,000, balance 40,000: uPnL -20,000, MB 20,000; PnL% -0.25, lev 5, score -0.05
    acct-s3 -1 from 40,000, balance 60,000: uPnL -10,000, MB 50,000; PnL% -0.25, lev 1, score -0.25
    """
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.upsert_symbol(symbol_spec(ETH), mark="2500")
    book = {"acct-a": ("10000", [("BTCUSDT", "1", "40000", 10)]),
            "acct-b": ("50000", [("BTCUSDT", "2", "25000", 10)]),
            "acct-c": ("10000", [("BTCUSDT", "1", "50000", 10), (ETH, "10", "3000", 10)]),
            "acct-d": ("25000", [("BTCUSDT", "1", "62500", 10)]),
            "acct-e": ("5000", [("BTCUSDT", "0.5", "40000", 10)]),
            "acct-s1": ("12500", [("BTCUSDT", "-1", "62500", 10)]),
            "acct-s2": ("40000", [("BTCUSDT", "-2", "40000", 10)]),
            "acct-s3": ("60000", [("BTCUSDT", "-1", "40000", 10)])}
    for account, (balance, positions) in book.items():
        await gate.trader(account, balance, positions)
    return gate


async def _loaded(client: MonitorClient, accounts: int) -> None:
    await until(client.status, lambda s: s.feed_live and s.accounts == accounts and s.symbols == 2)


async def _ranking(client: MonitorClient, side: str, limit: int = 0, token: str = VIEWER_TOKEN) -> mpb.AdlRanking:
    return await client.stub.GetAdlRanking(mpb.AdlRequest(symbol="BTCUSDT", side=side, limit=limit),
                                           metadata=client.auth(token))


async def test_adl_ranking_when_longs_and_shorts_held_then_hand_computed_scores_order_and_lights(
        services: Services) -> None:
    await _adl_book(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await _loaded(client, 8)
        longs = await _ranking(client, "long")
        assert (longs.symbol, longs.side, longs.mark, longs.population) == ("BTCUSDT", "long", "50000", 5)
        rows = [(e.rank, e.lights, e.account_id, e.quantity, e.entry_price, e.mark, e.pnl_fraction,
                 e.effective_leverage, e.score, e.margin_balance) for e in longs.entries]
        # b 1 > a 0.625 = e 0.625 (tie: account id) > c 0 > d -0.05; N = 5: lights 5, 4, 3, 2, 1.
        assert rows == [
            (1, 5, "acct-b", "2", "25000", "50000", "1", "1", "1", "100000"),
            (2, 4, "acct-a", "1", "40000", "50000", "0.25", "2.5", "0.625", "20000"),
            (3, 3, "acct-e", "0.5", "40000", "50000", "0.25", "2.5", "0.625", "10000"),
            (4, 2, "acct-c", "1", "50000", "50000", "0", "10", "0", "5000"),
            (5, 1, "acct-d", "1", "62500", "50000", "-0.2", "4", "-0.05", "12500")]
        # Bankruptcy: EP - backing / Q. acct-a 40,000 - 10,000 = 30,000, and 1 x (50,000 - 30,000)
        # = 20,000 = its margin balance (the identity the leverage rests on); acct-b 25,000 -
        # 50,000 / 2 = 0: backed even at zero, none. acct-c: backing 10,000 - 5,000 -> 45,000.
        by_account = {e.account_id: e.bankruptcy_price for e in longs.entries}
        assert by_account == {"acct-b": "", "acct-a": "30000", "acct-e": "30000", "acct-c": "45000",
                              "acct-d": "37500"}  # e: 40,000 - 5,000 / 0.5; d: 62,500 - 25,000

        shorts = await _ranking(client, "short", token=OPERATOR_TOKEN)
        # s1 0.4 > s2 -0.05 > s3 -0.25; N = 3: ahead 0, 1/3, 2/3 -> lights 5, 4, 2.
        assert shorts.population == 3
        assert [(e.account_id, e.quantity, e.pnl_fraction, e.effective_leverage, e.score, e.lights)
                for e in shorts.entries] == [("acct-s1", "-1", "0.2", "2", "0.4", 5),
                                             ("acct-s2", "-2", "-0.25", "5", "-0.05", 4),
                                             ("acct-s3", "-1", "-0.25", "1", "-0.25", 2)]
        # s1: 62,500 + 12,500 / 1 = 75,000 (a short's bankruptcy is above).
        assert shorts.entries[0].bankruptcy_price == "75000"

        first_two = await _ranking(client, "long", limit=2, token=ADMIN_TOKEN)
        assert [(e.account_id, e.rank, e.lights) for e in first_two.entries] == [("acct-b", 1, 5), ("acct-a", 2, 4)]
        assert first_two.population == 5
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "GetAdlRanking",
                                      lambda rows: len(rows) == 3)
        assert [e["actor"] for e in entries] == ["test-viewer", "test-operator", "test-admin"]
        assert all(e["outcome"] == "ok" and e["target"] == "BTCUSDT" for e in entries)


async def _risk_book(services: Services) -> None:
    """BTCUSDT at 50,000, ETHUSDT at 2,500; tier 1 (cap 50,000, MMR 0.004, cum 0) throughout.
    Binance cross LP = (WB - side x |Q| x EP) / (|Q| x MMR - side x |Q|), tick 0.1 against the trader.

    r1  long 1 from 50,000, balance 2,000: -48,000 / -0.996 = 48,192.771.. -> 48,192.8;
        distance 1,807.2 / 50,000 = 0.036144; ratio 200 / 2,000 = 0.1
    r2  long 1 from 50,000, balance 5,000: 45,000 / 0.996 = 45,180.722.. -> 45,180.8;
        distance 4,819.2 / 50,000 = 0.096384; ratio 200 / 5,000 = 0.04
    r3  short 0.5 from 50,000, balance 1,000: (1,000 + 25,000) / 0.502 = 51,792.828.. -> 51,792.8
        (down for a short); distance 1,792.8 / 50,000 = 0.035856; ratio 100 / 1,000 = 0.1
    r4  long 0.5 from 40,000, balance 100,000: backed even at zero: no liquidation price, left out
    r5  long 10 ETH from 2,500, balance 1,000: 24,000 / 9.96 = 2,409.638.. -> 2,409.7;
        distance 90.3 / 2,500 = 0.03612; ratio 100 / 1,000 = 0.1
    Nearest first: r3 0.035856, r5 0.03612, r1 0.036144, r2 0.096384.
    """
    _, gate = await services.start()
    await gate.upsert_symbol(mark="50000")
    await gate.upsert_symbol(symbol_spec(ETH), mark="2500")
    for account, balance, positions in (
            ("r1", "2000", [("BTCUSDT", "1", "50000", 10)]), ("r2", "5000", [("BTCUSDT", "1", "50000", 10)]),
            ("r3", "1000", [("BTCUSDT", "-0.5", "50000", 10)]), ("r4", "100000", [("BTCUSDT", "0.5", "40000", 10)]),
            ("r5", "1000", [(ETH, "10", "2500", 10)])):
        await gate.trader(account, balance, positions)


async def test_liquidation_risk_when_positions_near_liquidation_then_nearest_first_with_exact_distances(
        services: Services) -> None:
    await _risk_book(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await _loaded(client, 5)
        answer = await client.stub.GetLiquidationRisk(mpb.LiquidationRiskRequest(), metadata=client.auth(VIEWER_TOKEN))
        assert [(e.account_id, e.symbol, e.quantity, e.mark, e.liquidation_price, e.distance, e.margin_ratio)
                for e in answer.entries] == [
            ("r3", "BTCUSDT", "-0.5", "50000", "51792.8", "0.035856", "0.1"),
            ("r5", ETH, "10", "2500", "2409.7", "0.03612", "0.1"),
            ("r1", "BTCUSDT", "1", "50000", "48192.8", "0.036144", "0.1"),
            ("r2", "BTCUSDT", "1", "50000", "45180.8", "0.096384", "0.04")]
        only_btc = await client.stub.GetLiquidationRisk(mpb.LiquidationRiskRequest(symbol="BTCUSDT", limit=2),
                                                        metadata=client.auth(OPERATOR_TOKEN))
        assert [e.account_id for e in only_btc.entries] == ["r3", "r1"]
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == "GetLiquidationRisk",
                                      lambda rows: len(rows) == 2)
        assert [e["outcome"] for e in entries] == ["ok", "ok"]


@pytest.mark.parametrize(("method", "request_fields", "named"), [
    ("GetAdlRanking", {"symbol": "NOPE", "side": "long"}, "symbol"),
    ("GetAdlRanking", {"symbol": "BTCUSDT", "side": "up"}, "side"),
    ("GetAdlRanking", {"symbol": "BTCUSDT", "side": ""}, "side"),
    ("GetAdlRanking", {"symbol": "BTCUSDT", "side": "long", "limit": 1001}, "limit"),
    ("GetLiquidationRisk", {"symbol": "NOPE"}, "symbol"),
    ("GetLiquidationRisk", {"limit": 1001}, "limit"),
])
async def test_adl_and_liquidation_risk_when_a_field_is_invalid_then_invalid_argument_naming_it_and_audited(
        services: Services, method: str, request_fields: dict[str, object], named: str) -> None:
    await _adl_book(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await _loaded(client, 8)
        message = mpb.AdlRequest if method == "GetAdlRanking" else mpb.LiquidationRiskRequest
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(client.stub, method)(message(**request_fields), metadata=client.auth(VIEWER_TOKEN))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(f"{named}:")
        entries = await audit_entries(services.redis_url, lambda e: e["action"] == method,
                                      lambda rows: len(rows) == 1)
        assert entries[0]["actor"] == "test-viewer" and entries[0]["outcome"].startswith(f"invalid: {named}:")


async def test_adl_and_liquidation_risk_when_no_or_unknown_token_then_unauthenticated_and_every_reader_role_may(
        services: Services) -> None:
    for method in ("GetAdlRanking", "GetLiquidationRisk"):
        assert PERMISSIONS[method] == frozenset({"admin", "operator", "viewer"})
    await _adl_book(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await _loaded(client, 8)
        for metadata in ((), client.auth("not-a-token")):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.stub.GetAdlRanking(mpb.AdlRequest(symbol="BTCUSDT", side="long"), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await client.stub.GetLiquidationRisk(mpb.LiquidationRiskRequest(), metadata=metadata)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        for token in (VIEWER_TOKEN, OPERATOR_TOKEN, ADMIN_TOKEN):
            assert (await _ranking(client, "short", token=token)).population == 3
        denied = await audit_entries(services.redis_url, lambda e: e["outcome"].startswith("denied: "),
                                     lambda rows: len(rows) == 4)
        assert sorted({e["action"] for e in denied}) == ["GetAdlRanking", "GetLiquidationRisk"]


async def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    # The CLI uses a blocking channel; the monitor shares this event loop, so run it in a thread.
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_adl_and_liquidation_risk_commands_when_run_then_table_json_and_errors(
        services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    await _adl_book(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await _loaded(client, 8)
        target = ("--target", client.target, "--token", VIEWER_TOKEN)
        code, out, _ = await _run(capsys, "adl", "BTCUSDT", "--side", "short", *target)
        assert code == 0
        title, header, *rows = out.splitlines()
        assert title == "BTCUSDT shorts at mark 50000: 3 position(s), first to be deleveraged first"
        assert header.split() == ["RANK", "LIGHTS", "ACCOUNT", "QUANTITY", "ENTRY", "MARK", "PNL%", "EFF_LEVERAGE",
                                  "SCORE"]
        assert [row.split() for row in rows] == [["1", "5", "acct-s1", "-1", "62500", "50000", "0.2", "2", "0.4"],
                                                 ["2", "4", "acct-s2", "-2", "40000", "50000", "-0.25", "5", "-0.05"],
                                                 ["3", "2", "acct-s3", "-1", "40000", "50000", "-0.25", "1", "-0.25"]]
        code, out, _ = await _run(capsys, "adl", "BTCUSDT", "--side", "long", "--limit", "1", "--json", *target)
        answer = json.loads(out)
        assert code == 0 and answer["population"] == 5
        assert [(e["account_id"], e["score"], e["lights"]) for e in answer["entries"]] == [("acct-b", "1", 5)]
        code, _, err = await _run(capsys, "adl", "NOPE", "--side", "long", *target)
        assert code == 1 and err.startswith("riskgate: INVALID_ARGUMENT: symbol:")

        code, out, _ = await _run(capsys, "liquidation-risk", "--symbol", "BTCUSDT", *target)
        header, *rows = out.splitlines()
        assert code == 0 and header.split() == ["ACCOUNT", "SYMBOL", "QUANTITY", "MARK", "LIQ_PRICE", "DISTANCE",
                                                "MARGIN_RATIO"]
        # LP = (WB - other MM + other uPnL + cum - side x |Q| x EP) / (|Q| x MMR - side x |Q|):
        # acct-c 1 BTC from 50,000 (10 ETH from 3,000 at 2,500: MM 100, uPnL -5,000) on 10,000:
        #   (10,000 - 100 - 5,000 - 50,000) / (0.004 - 1) = 45,281.124.. -> 45,281.2; 4,718.8 / 50,000 = 0.094376
        # acct-s2 -2 from 40,000 on 40,000 (tier 2: MMR 0.005, cum 50): (40,000 + 80,000 + 50) / 2.01
        #   = 59,726.368.. -> 59,726.3 (down); 9,726.3 / 50,000 = 0.194526
        # acct-d 1 from 62,500 on 25,000: 37,500 / 0.996 = 37,650.602.. -> 37,650.7; 0.246986
        # acct-a 1 from 40,000 on 10,000: 30,000 / 0.996 = 30,120.481.. -> 30,120.5; 0.39759
        # acct-e 0.5 from 40,000 on 5,000: 15,000 / 0.498 = 30,120.481.. -> 30,120.5; 0.39759 (tie: a first)
        # acct-s1 -1 from 62,500 on 12,500 (tier 2): 75,050 / 1.005 = 74,676.616.. -> 74,676.6; 0.493532
        # acct-s3 -1 from 40,000 on 60,000: tier 1 gives 99,601.59 (notional beyond its cap), tier 2
        #   100,050 / 1.005 = 99,552.238.. -> 99,552.2; 0.991044
        # acct-b 2 from 25,000 on 50,000: 50,000 - 50,000 >= 0, backed even at zero: left out.
        assert [row.split() for row in rows] == [
            ["acct-c", "BTCUSDT", "1", "50000", "45281.2", "0.094376", "0.06"],  # ratio: 300 / 5,000
            ["acct-s2", "BTCUSDT", "-2", "50000", "59726.3", "0.194526", "0.0225"],  # (100,000 x 0.005 - 50) / 20,000
            ["acct-d", "BTCUSDT", "1", "50000", "37650.7", "0.246986", "0.016"],  # 200 / 12,500
            ["acct-a", "BTCUSDT", "1", "50000", "30120.5", "0.39759", "0.01"],  # 200 / 20,000
            ["acct-e", "BTCUSDT", "0.5", "50000", "30120.5", "0.39759", "0.01"],  # 100 / 10,000
            ["acct-s1", "BTCUSDT", "-1", "50000", "74676.6", "0.493532", "0.008"],  # 200 / 25,000 (tier 1)
            ["acct-s3", "BTCUSDT", "-1", "50000", "99552.2", "0.991044", "0.004"]]  # 200 / 50,000
        # Every symbol: acct-c's ETH position next (10,000 - 200 - 30,000) / (10 x 0.004 - 10)
        # = 2,028.112.. -> 2,028.2; 471.8 / 2,500 = 0.18872.
        code, out, _ = await _run(capsys, "liquidation-risk", "--limit", "2", "--json", *target)
        assert code == 0 and [(e["account_id"], e["symbol"], e["distance"]) for e in json.loads(out)["entries"]] == [
            ("acct-c", "BTCUSDT", "0.094376"), ("acct-c", ETH, "0.18872")]
        code, _, err = await _run(capsys, "liquidation-risk", "--limit", "1001", *target)
        assert code == 1 and err.startswith("riskgate: INVALID_ARGUMENT: limit:")
