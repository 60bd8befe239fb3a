"""PreTradeRisk.ReportExecutions: the execution feed on one stream, acknowledged in batches.

Over the real server and a real Redis: acknowledgements in offset order, exactly-once across a
dropped stream, duplicates, refusals that do not end the stream, the account's state only when
asked, the same book as the unary ReportExecution for random sequences, Redis not confirming,
the bound on unacknowledged messages, and a stop with streams open."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc.aio import AioRpcError

from riskgate.api import execstream
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import pretrade_pb2 as pb
from tests.conftest import Services
from tests.processes import serving
from tests.support import Client, decision, eventually, test_config

INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
CALL_TIMEOUT_S = 30
EXIT_BOUND_S = 15.0


def fill(order_id: str, quantity: str, price: str = "50000", execution_id: str = "", sequence: int = 1,
         account: str = "acct-1", **fields: object) -> pb.ExecutionReport:
    return pb.ExecutionReport(order_id=order_id, account_id=account, kind=pb.EXECUTION_KIND_FILL, quantity=quantity,
                              price=price, execution_id=execution_id or f"t-{order_id}-{quantity}",
                              sequence=sequence, **fields)  # type: ignore[arg-type]


def cancel(order_id: str, account: str = "acct-1") -> pb.ExecutionReport:
    return pb.ExecutionReport(order_id=order_id, account_id=account, kind=pb.EXECUTION_KIND_CANCELED,
                              execution_id=f"c-{order_id}")


class Feed:
    """One ReportExecutions stream: writes numbered messages, reads acknowledgements."""

    def __init__(self, client: Client) -> None:
        self.call = client.pretrade.ReportExecutions(timeout=CALL_TIMEOUT_S)
        self.acks: list[pb.ExecutionFeedAck] = []

    async def send(self, offset: int, report: pb.ExecutionReport, with_state: bool = False) -> None:
        await self.call.write(pb.ExecutionFeedMessage(offset=offset, report=report, with_account_state=with_state))

    async def through(self, offset: int) -> dict[int, pb.ExecutionOutcome]:
        """Reads acknowledgements until one covers `offset`; the outcomes they listed, by offset."""
        outcomes: dict[int, pb.ExecutionOutcome] = {}
        while not self.acks or self.acks[-1].acked_through < offset:
            ack = await self.call.read()
            assert ack is not grpc.aio.EOF, "the stream ended before the acknowledgement"
            self.acks.append(ack)
            outcomes.update((o.offset, o) for o in ack.outcomes)
        return outcomes

    async def close(self) -> None:
        await self.call.done_writing()
        while await self.call.read() is not grpc.aio.EOF:
            pass
        assert await self.call.code() == grpc.StatusCode.OK


async def accept(client: Client, order_id: str, quantity: str = "1", side: str = "buy", account: str = "acct-1",
                 **fields: object) -> None:
    response = await client.check(order_id=order_id, quantity=quantity, side=side, account=account, **fields)
    assert decision(response) == "DECISION_ACCEPT", response


async def position(client: Client, account: str = "acct-1", symbol: str = "BTCUSDT") -> str:
    risk = await client.risk(account)
    return next((p.quantity for p in risk.positions if p.symbol == symbol), "0")


async def test_report_when_fills_stream_in_then_acked_in_offset_order_without_outcomes_and_applied(
        btc: Client) -> None:
    for n in range(1, 6):
        await accept(btc, f"o{n}", quantity="0.1")
    feed = Feed(btc)
    for n in range(1, 6):
        await feed.send(n * 10, fill(f"o{n}", "0.1", sequence=n))
    outcomes = await feed.through(50)
    await feed.close()
    # Plain successes are covered by acked_through alone: nothing listed, no valuation built.
    assert outcomes == {}
    through = [ack.acked_through for ack in feed.acks]
    assert through == sorted(set(through)) and through[-1] == 50
    assert all(value % 10 == 0 for value in through)
    assert await position(btc) == "0.5"
    risk = await btc.risk("acct-1")
    assert risk.open_orders == 0 and risk.reserved_order_cost == "0"


async def test_report_when_a_fill_is_sent_twice_then_the_second_is_listed_as_a_duplicate_and_not_applied(
        btc: Client) -> None:
    await accept(btc, "o1", quantity="1")
    feed = Feed(btc)
    await feed.send(1, fill("o1", "0.4", execution_id="e1", sequence=1))
    await feed.send(2, fill("o1", "0.4", execution_id="e1", sequence=1))
    await feed.send(3, fill("o1", "0.6", execution_id="e2", sequence=2))
    outcomes = await feed.through(3)
    await feed.close()
    assert list(outcomes) == [2]
    assert outcomes[2].code == 0 and outcomes[2].ack.duplicate and outcomes[2].ack.order_id == "o1"
    assert await position(btc) == "1"


async def test_report_when_a_message_mid_stream_is_invalid_then_refused_with_its_reason_and_later_ones_apply(
        btc: Client) -> None:
    await accept(btc, "o1", quantity="1")
    await accept(btc, "o2", quantity="1")
    feed = Feed(btc)
    await feed.send(1, fill("o1", "1", sequence=1))
    await feed.send(2, fill("o2", "-1", sequence=2))
    await feed.send(3, pb.ExecutionReport(order_id="o2", account_id="acct-1", kind=77))
    await feed.send(4, cancel("no-such-order"))
    await feed.send(5, fill("o2", "1", sequence=3))
    outcomes = await feed.through(5)
    await feed.close()
    assert sorted(outcomes) == [2, 3, 4]
    assert outcomes[2].code == INVALID_ARGUMENT and "fill quantity and price" in outcomes[2].message
    assert outcomes[3].code == INVALID_ARGUMENT and "kind must be" in outcomes[3].message
    assert outcomes[4].code == NOT_FOUND and not outcomes[4].HasField("ack")
    assert await position(btc) == "2"


async def test_report_when_state_is_asked_then_only_that_message_carries_the_valuation(btc: Client) -> None:
    await accept(btc, "o1", quantity="1")
    await accept(btc, "o2", quantity="1")
    feed = Feed(btc)
    await feed.send(1, fill("o1", "0.5", execution_id="e1", sequence=1))
    await feed.send(2, fill("o1", "0.5", execution_id="e2", sequence=2), with_state=True)
    await feed.send(3, fill("o2", "1", sequence=3))
    outcomes = await feed.through(3)
    await feed.close()
    assert list(outcomes) == [2]
    ack = outcomes[2].ack
    # The state as message 2 left it: o1 filled (1 BTC held), o2 still reserved (1 BTC at 10x).
    assert (ack.remaining_quantity, ack.position_quantity, ack.balance, ack.available_margin) == (
        "0", "1", "100000", "90000")
    assert await position(btc) == "2"


async def test_report_when_the_stream_drops_before_its_acks_then_resending_everything_applies_each_once(
        btc: Client) -> None:
    for n in range(1, 4):
        await accept(btc, f"o{n}", quantity="1")
    reports = [fill(f"o{n}", "1", execution_id=f"e{n}", sequence=n) for n in range(1, 4)]
    dropped = Feed(btc)
    for offset, report in enumerate(reports[:2], start=1):
        await dropped.send(offset, report)

    async def applied() -> bool:
        return await position(btc) == "2"

    # Applied as read; the sender gives up on the stream without reading an acknowledgement.
    assert await eventually(applied)
    dropped.call.cancel()
    feed = Feed(btc)
    for offset, report in enumerate(reports, start=1):
        await feed.send(offset, report)
    outcomes = await feed.through(3)
    await feed.close()
    assert sorted(outcomes) == [1, 2] and all(o.ack.duplicate for o in outcomes.values())
    assert await position(btc) == "3"
    # The unary call agrees: the same report again is a duplicate.
    again = await btc.pretrade.ReportExecution(reports[2])
    assert again.duplicate


async def test_report_when_an_offset_does_not_increase_then_earlier_ones_are_acked_and_the_stream_ends_invalid(
        btc: Client) -> None:
    await accept(btc, "o1", quantity="1")
    await accept(btc, "o2", quantity="1")
    feed = Feed(btc)
    await feed.send(5, fill("o1", "1", sequence=1))
    await feed.send(5, fill("o2", "1", sequence=2))
    acks: list[pb.ExecutionFeedAck] = []
    with pytest.raises(AioRpcError) as ended:
        async for ack in feed.call:
            acks.append(ack)
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "offset 5" in (ended.value.details() or "")
    assert [a.acked_through for a in acks] == [5] and not acks[0].outcomes
    assert await position(btc) == "1"


async def test_report_when_bytes_mid_stream_are_no_message_then_earlier_ones_acked_invalid_argument_resends_duplicates(
        btc: Client) -> None:
    await accept(btc, "o1", quantity="1")
    raw = btc.channel.stream_stream("/riskgate.v1.PreTradeRisk/ReportExecutions",
                                    response_deserializer=pb.ExecutionFeedAck.FromString)
    good = pb.ExecutionFeedMessage(offset=1, report=fill("o1", "1", execution_id="e1", sequence=1))
    call = raw(iter([good.SerializeToString(), b"\xff\xff\xff"]), timeout=CALL_TIMEOUT_S)
    acks: list[pb.ExecutionFeedAck] = []
    with pytest.raises(AioRpcError) as ended:
        async for ack in call:
            acks.append(ack)
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExecutionFeedMessage" in (ended.value.details() or "")
    # What was applied before the bad bytes is acknowledged before the stream ends.
    assert [a.acked_through for a in acks] == [1] and not acks[0].outcomes
    assert await position(btc) == "1"
    feed = Feed(btc)
    await feed.send(1, fill("o1", "1", execution_id="e1", sequence=1))
    outcomes = await feed.through(1)
    await feed.close()
    assert outcomes[1].ack.duplicate
    assert await position(btc) == "1"


async def test_report_when_id_less_fills_precede_bad_bytes_then_acked_so_resending_the_unacked_rest_applies_once(
        compat_btc: Client) -> None:
    # Compatibility mode: a fill without an id cannot be recognised when resent, so the feed
    # must learn it was applied before the stream ends.
    await accept(compat_btc, "o1", quantity="1")
    raw = compat_btc.channel.stream_stream("/riskgate.v1.PreTradeRisk/ReportExecutions",
                                           response_deserializer=pb.ExecutionFeedAck.FromString)
    no_id = pb.ExecutionReport(order_id="o1", account_id="acct-1", kind=pb.EXECUTION_KIND_FILL, quantity="0.4",
                               price="50000")
    messages = [pb.ExecutionFeedMessage(offset=offset, report=no_id).SerializeToString() for offset in (1, 2)]
    call = raw(iter([*messages, b"\xff\xff\xff"]), timeout=CALL_TIMEOUT_S)
    acked_through = 0
    with pytest.raises(AioRpcError) as ended:
        async for ack in call:
            acked_through = ack.acked_through
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert acked_through == 2
    assert await position(compat_btc) == "0.8"


async def test_report_when_messages_outrun_acks_then_no_batch_exceeds_the_unacked_bound(
        btc: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execstream, "MAX_UNACKED", 3)
    count = 30
    for n in range(count):
        await accept(btc, f"o{n}", quantity="0.01")
    feed = Feed(btc)
    for n in range(count):
        await feed.send(n + 1, fill(f"o{n}", "0.01", sequence=n + 1))
    await feed.through(count)
    await feed.close()
    through = [0] + [ack.acked_through for ack in feed.acks]
    assert max(b - a for a, b in itertools.pairwise(through)) <= 3
    assert await position(btc) == "0.3"


async def test_report_when_redis_refuses_writes_then_unavailable_outcome_and_the_resend_is_a_duplicate(
        services: Services, redis_server: EmbeddedRedis) -> None:
    _, client = await services.start(redis_stale_after_ms=200)
    await client.upsert_symbol(mark="50000")
    await client.trader()
    await accept(client, "o1", quantity="1")
    redis = aioredis.Redis.from_url(redis_server.url)
    feed = Feed(client)
    try:
        await redis.config_set("min-replicas-to-write", 1)  # answers PING, refuses writes
        await feed.send(1, fill("o1", "1", execution_id="e1", sequence=1))
        outcomes = await feed.through(1)
        assert outcomes[1].code == UNAVAILABLE and "same execution_id" in outcomes[1].message
    finally:
        await redis.config_set("min-replicas-to-write", 0)
        await redis.aclose()
    await feed.send(2, fill("o1", "1", execution_id="e1", sequence=1))
    outcomes = await feed.through(2)
    await feed.close()
    assert outcomes[2].code == 0 and outcomes[2].ack.duplicate
    assert await position(client) == "1"


async def test_stop_when_an_execution_stream_is_open_then_clean_and_every_acked_fill_survives_a_restart(
        services: Services) -> None:
    service, client = await services.start()
    await client.upsert_symbol(mark="50000")
    await client.trader(balance="1000000")
    count = 40
    for n in range(count):
        await accept(client, f"o{n}", quantity="0.01")
    reports = [fill(f"o{n}", "0.01", execution_id=f"e{n}", sequence=n + 1) for n in range(count)]
    feed = Feed(client)
    for n, report in enumerate(reports[:count // 2]):
        await feed.send(n + 1, report)
    await feed.through(1)
    stop = asyncio.get_running_loop().create_task(service.stop(grace_s=0.5))
    sent = count // 2
    # Stopping: later messages are not applied, and the stream ends (UNAVAILABLE, or cancelled at
    # the end of the grace); a write after that fails, as the RPC's error or as finished.
    with contextlib.suppress(AioRpcError, asyncio.InvalidStateError):
        for n, report in enumerate(reports[count // 2:], start=count // 2):
            await feed.send(n + 1, report)
            sent = n + 1
    with contextlib.suppress(AioRpcError):
        while (ack := await feed.call.read()) is not grpc.aio.EOF:
            feed.acks.append(ack)
    assert await feed.call.code() != grpc.StatusCode.OK
    for ack in feed.acks:
        assert all(o.code in (0, UNAVAILABLE) for o in ack.outcomes)
    acked = feed.acks[-1].acked_through
    unconfirmed = {o.offset for ack in feed.acks for o in ack.outcomes if o.code == UNAVAILABLE}
    report = await stop
    assert report.clean, report.unfinished
    await services.stop(service)
    _, restarted = await services.start()
    retry = Feed(restarted)
    for n, report_ in enumerate(reports[:sent]):
        await retry.send(n + 1, report_)
    outcomes = await retry.through(sent)
    await retry.close()
    # Everything acknowledged OK is in Redis: its resend is a duplicate.
    for offset in range(1, acked + 1):
        if offset not in unconfirmed:
            assert outcomes[offset].ack.duplicate, offset
    assert await position(restarted) == f"{sent / 100:.2f}".rstrip("0").rstrip(".")


# ---- the same book as the unary call, for random sequences -------------------------------


def _comparable(risk: admin.AccountRisk) -> admin.AccountRisk:
    risk.version = 0  # how many write-behind batches it took: not part of the state
    return risk


async def _unary_outcome(client: Client, report: pb.ExecutionReport) -> tuple[int, pb.ExecutionAck | None]:
    try:
        return 0, await client.pretrade.ReportExecution(report)
    except AioRpcError as error:
        return error.code().value[0], None


def _lean(ack: pb.ExecutionAck) -> pb.ExecutionAck:
    """The fields a lean acknowledgement keeps."""
    return pb.ExecutionAck(order_id=ack.order_id, duplicate=ack.duplicate,
                           included_in_snapshot=ack.included_in_snapshot, cancel_order_ids=ack.cancel_order_ids)


def _random_reports(rng: random.Random, orders: Sequence[tuple[str, str, str]], round_: int, sequence: list[int]
                    ) -> list[pb.ExecutionReport]:
    reports: list[pb.ExecutionReport] = []
    for account, order_id, quantity in orders:
        roll = rng.random()
        sequence[0] += 1
        if roll < 0.45:
            part = rng.choice(["0.001", "0.002", quantity])
            reports.append(fill(order_id, part, execution_id=f"e-{order_id}", sequence=sequence[0], account=account))
            if rng.random() < 0.3:
                reports.append(reports[-1])  # a retry
            if rng.random() < 0.25:
                # Also closed: whichever comes second finds no open order (NOT_FOUND).
                reports.append(cancel(order_id, account))
        elif roll < 0.65:
            reports.append(cancel(order_id, account))
        elif roll < 0.72:
            reports.append(pb.ExecutionReport(order_id=order_id, account_id=account,
                                              kind=pb.EXECUTION_KIND_NOT_SENT))
        elif roll < 0.78:
            reports.append(fill(order_id, "abc", sequence=sequence[0], account=account))  # refused
        elif roll < 0.84:
            # A fill of an order riskgate does not hold, with what it needs to move the position.
            reports.append(fill(f"gone-{round_}-{order_id}", "0.002", execution_id=f"g-{order_id}",
                                sequence=sequence[0], account=account, symbol="BTCUSDT",
                                side=rng.choice([pb.SIDE_BUY, pb.SIDE_SELL]), leverage=10))
        # else: left open
    rng.shuffle(reports)
    return reports


async def test_report_when_random_sequences_go_unary_to_one_gate_and_streamed_to_another_then_same_state(
        redis_server: EmbeddedRedis, services: Services) -> None:
    _, unary = await services.start(test_config(key_prefix="unary"))
    _, streamed = await services.start(test_config(key_prefix="streamed"))
    accounts = ["acct-1", "acct-2", "acct-3"]
    for client in (unary, streamed):
        await client.upsert_symbol(mark="50000")
        for account in accounts:
            await client.trader(account, balance="20000",
                                positions=[("BTCUSDT", "0.05", "49000", 10)] if account == "acct-3" else ())
    rng = random.Random(20261206)
    feed = Feed(streamed)
    offset = 0
    sequence = [0]
    seen: Counter[str] = Counter()
    for round_ in range(16):
        orders: list[tuple[str, str, str]] = []
        for n in range(rng.randint(2, 6)):
            account = rng.choice(accounts)
            order_id = f"r{round_}-{n}"
            request = unary.request(account=account, order_id=order_id, quantity=rng.choice(["0.002", "0.005", "0.01"]),
                                    side=rng.choice(["buy", "sell"]), price=rng.choice(["50000", None]),
                                    reduce_only=rng.random() < 0.2, leverage=10)
            answers = [await client.pretrade.CheckOrder(request) for client in (unary, streamed)]
            assert answers[0] == answers[1]
            if answers[0].allowed_quantity != "0":
                orders.append((account, order_id, answers[0].allowed_quantity))
        if round_ % 4 == 3:
            mark = rng.choice(["49000", "50500", "51000"])
            await asyncio.gather(*(client.set_mark("BTCUSDT", mark) for client in (unary, streamed)))
        reports = _random_reports(rng, orders, round_, sequence)
        expected = [await _unary_outcome(unary, report) for report in reports]
        asked = []
        for report in reports:
            offset += rng.randint(1, 3)
            asked.append((offset, rng.random() < 0.5))
            await feed.send(offset, report, with_state=asked[-1][1])
        outcomes = await feed.through(offset) if reports else {}
        for (at, with_state), (code, ack) in zip(asked, expected, strict=True):
            seen[f"code {code}"] += 1
            if ack is not None:
                seen["duplicate"] += ack.duplicate
                seen["cancel ids"] += bool(ack.cancel_order_ids)
                seen["with state"] += with_state
            got = outcomes.get(at)
            assert (got.code if got is not None else 0) == code, (at, got, code)
            if code:
                continue
            assert ack is not None
            want = ack if with_state else _lean(ack)
            if with_state or want != pb.ExecutionAck(order_id=ack.order_id):
                assert got is not None and got.ack == want, (at, got, want)
            else:
                assert got is None, got
        for account in accounts:
            assert _comparable(await unary.risk(account)) == _comparable(await streamed.risk(account)), account
    await feed.close()
    # The sequences did exercise what they are meant to.
    assert all(seen[what] for what in ("code 0", "code 3", "code 5", "duplicate", "with state")), seen
    one = await unary.admin.ListReservations(admin.ListReservationsRequest(), metadata=unary.auth())
    other = await streamed.admin.ListReservations(admin.ListReservationsRequest(), metadata=streamed.auth())
    # Oldest first: orders checked in the same millisecond may come in either order.
    key = sorted((r.account_id, r.order_id, r.remaining_quantity, r.reserved_cost) for r in one.reservations)
    assert key == sorted((r.account_id, r.order_id, r.remaining_quantity, r.reserved_cost) for r in other.reservations)


async def test_sigterm_when_serve_has_an_execution_stream_open_then_exits_in_bound_with_acked_fills_in_redis(
        redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    async with serving(redis_server.url, tmp_path / "serve.log") as (process, client):
        # The bundled sample configuration: demo-alice, BTCUSDT marked at 60,000; 100 orders/s.
        count = 80
        for n in range(count):
            await accept(client, f"s{n}", quantity="0.001", account="demo-alice", price="60000", leverage=20)
        feed = Feed(client)
        for n in range(count // 2):
            await feed.send(n + 1, fill(f"s{n}", "0.001", "60000", execution_id=f"e{n}", sequence=n + 1,
                                        account="demo-alice"))
        await feed.through(1)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        with contextlib.suppress(AioRpcError, asyncio.InvalidStateError):
            for n in range(count // 2, count):
                await feed.send(n + 1, fill(f"s{n}", "0.001", "60000", execution_id=f"e{n}", sequence=n + 1,
                                            account="demo-alice"))
            await feed.through(count)
        with contextlib.suppress(AioRpcError):
            while (ack := await feed.call.read()) is not grpc.aio.EOF:
                feed.acks.append(ack)
        code = await asyncio.to_thread(process.wait, EXIT_BOUND_S)
        assert time.monotonic() - signalled < EXIT_BOUND_S
        assert code == 0
        unconfirmed = {o.offset for ack in feed.acks for o in ack.outcomes if o.code}
        acked = {n for n in range(1, feed.acks[-1].acked_through + 1) if n not in unconfirmed}
        redis = aioredis.Redis.from_url(redis_server.url)
        try:
            stored = {field.decode().split("\x1f")[2] for field in await redis.hkeys(Keys("rg").executions)}
        finally:
            await redis.aclose()
        assert {f"e{n - 1}" for n in acked} <= stored
