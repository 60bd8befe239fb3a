"""Mark history, value at risk, its backtest and the historical stress scenarios end to end: a
real gate, a real monitor, one real Redis. Every figure is computed by hand in the comments."""

from __future__ import annotations

import time
from decimal import Decimal

import grpc
import pytest

from riskgate.monitor.history import DAY_MS
from riskgate.v1 import monitor_pb2 as mpb
from tests.audit_trail import audit_entries
from tests.conftest import Services
from tests.monitor_support import MonitorClient, running_monitor, three_accounts, three_accounts_loaded, until
from tests.support import ADMIN_TOKEN, VIEWER_TOKEN

D = Decimal

# The 3-account book of test_monitor_stress.py at mark 50,000: acct-a long 10 (500,000),
# acct-b short 2 (-100,000), acct-c long 3 (150,000); the platform's net: 11 (550,000).

# Eleven daily closes (the last is yesterday's): ten scenario days whose changes are
#   0, -0.1, +1/9, 0, +0.1, 0, -0.05, 0, 0, 0.
TEN_DAYS = ["1000", "1000", "900", "1000", "1000", "1100", "1100", "1045", "1045", "1045", "1045"]


def _today() -> int:
    return time.time_ns() // 1_000_000 // DAY_MS


def daily_bars(closes: list[str], symbol: str = "BTCUSDT") -> list[mpb.MarkBar]:
    """One close per day at noon UTC, the last one yesterday's."""
    first = _today() - len(closes)
    return [mpb.MarkBar(symbol=symbol, time_ms=(first + i) * DAY_MS + DAY_MS // 2, close=close)
            for i, close in enumerate(closes)]


async def import_bars(client: MonitorClient, bars: list[mpb.MarkBar], token: str = ADMIN_TOKEN
                      ) -> mpb.MarkHistoryImportResult:
    return await client.stub.ImportMarkHistory(mpb.MarkHistoryImport(bars=bars), metadata=client.auth(token))


async def history(client: MonitorClient, **fields: object) -> mpb.MarkHistory:
    return await client.stub.GetMarkHistory(mpb.MarkHistoryRequest(symbol="BTCUSDT", **fields),
                                            metadata=client.auth(VIEWER_TOKEN))


async def value_at_risk(client: MonitorClient, **fields: object) -> mpb.VarReport:
    return await client.stub.GetValueAtRisk(mpb.VarRequest(**fields), metadata=client.auth(VIEWER_TOKEN))


def figures(subject: mpb.VarSubject) -> list[tuple[str, str, str]]:
    return [(f.confidence, f.var, f.expected_shortfall) for f in subject.figures]


async def test_var_when_ten_known_days_then_platform_and_accounts_as_computed_by_hand(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        imported = await import_bars(client, daily_bars(TEN_DAYS))
        assert imported.bars == 11 and list(imported.symbols) == ["BTCUSDT"]
        report = await value_at_risk(client, lookback_days=10, confidences=["0.8", "0.99"])
        assert report.scenarios == 10 and report.horizon_days == 1 and not report.missing_history
        assert dict(report.net_exposure) == {"BTCUSDT": "550000"}
        # N = 10. At 0.8 the tail is k = floor(10 x 0.2) = 2 losses; at 0.99, k = max(1, 0) = 1.
        # Platform (550,000 long): losses -550,000 x change; worst 55,000 (-10%), then 27,500 (-5%):
        # VaR80 = 27,500, ES80 = (55,000 + 27,500) / 2 = 41,250; VaR99 = ES99 = 55,000.
        assert report.platform.subject == "platform"
        assert figures(report.platform) == [("0.8", "27500", "41250"), ("0.99", "55000", "55000")]
        # acct-a (500,000): 50,000 and 25,000. acct-c (150,000): 15,000 and 7,500. acct-b (short,
        # -100,000) loses when the mark rises: 100,000 / 9 = 11,111.11.. (rounded up: 11,111.12) and
        # 10,000; ES80 = 10,555.55.. rounded up to 10,555.56. Ranked by VaR at the first confidence.
        assert [(a.subject, *figures(a)[0]) for a in report.accounts] == [
            ("acct-a", "0.8", "25000", "37500"), ("acct-b", "0.8", "10000", "10555.56"),
            ("acct-c", "0.8", "7500", "11250")]
        assert figures(report.accounts[1])[1] == ("0.99", "11111.12", "11111.12")
        assert report.accounts_valued == 3 and report.accounts_left_out == 0
        one = await value_at_risk(client, lookback_days=10, confidences=["0.8"], account_id="acct-c")
        assert [(a.subject, *figures(a)[0]) for a in one.accounts] == [("acct-c", "0.8", "7500", "11250")]


async def test_var_when_no_history_then_failed_with_a_clear_invalid_argument(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await value_at_risk(client, lookback_days=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "riskgate marks import" in (caught.value.details() or "")
        for bad, field in (({"confidences": ["1.2"]}, "confidences[0]"),
                           ({"confidences": ["0.99", "0.5000001"]}, "confidences[1]"),
                           ({"lookback_days": 5000}, "lookback_days"),
                           ({"account_id": "nobody"}, "account_id")):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await value_at_risk(client, **bad)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith(field)


# Thirty-one closes, thirty scenario days (t = 1..30), flat but for four falls:
#   t=3 -1% (1000 -> 990), t=15 -2% (-> 970.2), t=22 -1% (-> 960.498), t=27 -3% (-> 931.68306).
# Backtest of the long platform, 20 days tested (t = 11..30), each against the VaR of the 10 days
# before it; at 0.9 the tail is 1 loss, so VaR = the largest loss of the 10 days (floored at 0):
#   t=15: window 5..14 all flat, VaR 0 < the 2% loss: exception;
#   t=22: window 12..21 holds t=15's 2% loss > 1%: none;
#   t=27: window 17..26 holds at most 1% (t=22) < 3%: exception. x = 2 of T = 20 at p = 0.1:
# x / T = p, so Kupiec's LR = 0 (not rejected); P(X <= 2) = 0.677: green.
def _backtest_closes() -> list[str]:
    closes = [D(1000)]
    falls = {3: D("0.01"), 15: D("0.02"), 22: D("0.01"), 27: D("0.03")}
    for t in range(1, 31):
        closes.append(closes[-1] * (1 - falls.get(t, D(0))))
    return [str(c) for c in closes]


async def test_backtest_when_two_exceptions_in_twenty_days_then_kupiec_zero_and_green(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        bars = daily_bars(_backtest_closes())
        await import_bars(client, bars)
        report = await client.stub.BacktestVaR(mpb.BacktestRequest(confidence="0.9", days=20, lookback_days=10),
                                               metadata=client.auth(VIEWER_TOKEN))
        assert (report.subject, report.days, report.lookback_days, report.exceptions) == ("platform", 20, 10, 2)
        first = _today() - 31
        day = lambda t: time.strftime("%Y-%m-%d", time.gmtime((first + t) * DAY_MS / 1000))  # noqa: E731
        assert list(report.exception_days) == [day(15), day(27)]
        assert (report.first_day, report.last_day) == (day(11), day(30))
        assert (report.kupiec_lr, report.rejected, report.zone) == ("0.000000", False, "green")
        # acct-b is short: it lost on no day (every move was a fall): no exception.
        short = await client.stub.BacktestVaR(mpb.BacktestRequest(account_id="acct-b", confidence="0.9", days=20,
                                                                  lookback_days=10), metadata=client.auth(VIEWER_TOKEN))
        assert (short.subject, short.exceptions, short.zone) == ("acct-b", 0, "green")
        # More days than the history holds: FAILED_PRECONDITION saying how many it has.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.BacktestVaR(mpb.BacktestRequest(days=20, lookback_days=40),
                                          metadata=client.auth(VIEWER_TOKEN))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_stress_when_historical_lookback_then_worst_moves_of_the_history(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        await import_bars(client, daily_bars(TEN_DAYS))
        report = await client.stub.RunStressTest(mpb.StressRequest(historical_lookback_days=10),
                                                 metadata=client.auth(VIEWER_TOKEN))
        labels = [s.label for s in report.scenarios]
        assert labels[:2] == ["historical worst fall per symbol (10d)", "historical worst rise per symbol (10d)"]
        fall, rise, down, up = report.scenarios
        # Worst fall -10% (45,000): acct-a 10,000 + 10 x (-5,000) = -40,000, short 40,000; acct-c
        # 20,000 - 15,000 = 5,000 (maintenance 135,000 x 0.5% - 50 = 625: not liquidated).
        assert [(s.symbol, s.shock) for s in fall.shocks] == [("BTCUSDT", "-0.1")]
        assert fall.total_shortfall == "40000" and fall.liquidations == 1
        # Worst rise +1/9 to 8 places (mark 55,555.5555): acct-b 5,000 - 2 x 5,555.5555 = -6,111.111.
        assert [(s.symbol, s.shock) for s in rise.shocks] == [("BTCUSDT", "0.11111111")]
        assert rise.total_shortfall == "6111.111"
        # One symbol: its worst day down and up are the same moves, named by their date.
        first = _today() - 11
        day2 = time.strftime("%Y-%m-%d", time.gmtime((first + 2) * DAY_MS / 1000))
        assert down.label == f"historical worst day down {day2}" and down.total_shortfall == "40000"
        assert up.label.startswith("historical worst day up ")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.RunStressTest(mpb.StressRequest(historical_lookback_days=10, shock="-0.1"),
                                            metadata=client.auth(VIEWER_TOKEN))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_import_when_bars_overlap_then_merged_open_high_low_close(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        minute = (time.time_ns() // 1_000_000 // 60_000 - 5) * 60_000
        await import_bars(client, [mpb.MarkBar(symbol="BTCUSDT", time_ms=minute + 10_000, open="100", high="120",
                                               low="95", close="110")])
        # Later in the same minute: a lower low and a later close; the earlier open stays.
        await import_bars(client, [mpb.MarkBar(symbol="BTCUSDT", time_ms=minute + 50_000, open="108", high="111",
                                               low="90.5", close="105.25")])
        # Sent again (a retry): nothing changes.
        await import_bars(client, [mpb.MarkBar(symbol="BTCUSDT", time_ms=minute + 50_000, open="108", high="111",
                                               low="90.5", close="105.25")])
        bars = (await history(client, interval="minute", from_ms=minute, to_ms=minute + 59_999)).bars
        assert [(b.open, b.high, b.low, b.close, b.time_ms) for b in bars] == [
            ("100", "120", "90.5", "105.25", minute + 50_000)]
        days = (await history(client, from_ms=minute, to_ms=minute + 59_999)).bars
        assert [b.close for b in days] == ["105.25"]


async def test_import_when_one_bar_invalid_then_nothing_imported_and_the_bar_named(services: Services) -> None:
    await three_accounts(services)
    async with running_monitor(services.redis_url, []) as (_, client):
        await three_accounts_loaded(client)
        good = daily_bars(["100", "101"])
        for bad, why in ((mpb.MarkBar(symbol="BTCUSDT", time_ms=good[0].time_ms, close="-1"), "close"),
                         (mpb.MarkBar(symbol="NOPE", time_ms=good[0].time_ms, close="1"), "unknown symbol"),
                         (mpb.MarkBar(symbol="BTCUSDT", time_ms=good[0].time_ms, close="10", high="9"), "low <="),
                         (mpb.MarkBar(symbol="BTCUSDT", time_ms=4_000_000_000_000, close="10"), "future")):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await import_bars(client, [*good, bad])
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (caught.value.details() or "").startswith("bars[2]") and why in (caught.value.details() or "")
        assert not (await history(client)).bars
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await import_bars(client, good, token=VIEWER_TOKEN)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await import_bars(client, good)
        entries = await audit_entries(services.redis_url, lambda e: e.get("action") == "ImportMarkHistory",
                                      lambda found: bool(found))
        assert entries and entries[-1]["outcome"] == "ok: 2 bars" and entries[-1]["actor"] == "test-admin"


async def test_marks_when_the_gate_sets_them_then_the_monitor_records_minute_bars(services: Services) -> None:
    gate = await three_accounts(services)
    async with running_monitor(services.redis_url, [], mark_bar_flush_ms=50) as (_, client):
        await three_accounts_loaded(client)
        await gate.set_mark("BTCUSDT", "50100")
        await gate.set_mark("BTCUSDT", "49900")
        now = time.time_ns() // 1_000_000
        bars = await until(lambda: history(client, interval="minute", from_ms=now - 120_000),
                           lambda h: any(b.close == "49900" for b in h.bars))
        last = bars.bars[-1]
        assert last.close == "49900" and D(last.low) <= D("49900") and D(last.high) >= D("50100")
