"""A gate back from a lost Redis link resumes from the change stream: it applies exactly what
changed while it was away (read from the stream after the last id it applied), without reading
the book again; a stream trimmed past that id, or another Redis (restarted: new run_id), falls
back to the full reload with its write-back. Real Redis; nothing here asserts on timing.

The gate under test is a RedisStore (shard 0 of 2) whose resubscription can be held back, so
changes are made by another writer (the store of shard 1) exactly while it is away."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from riskgate.book.specs import AccountSnapshot, BreakerSpec, ControlsSpec, MarkSpec, SymbolSpec
from riskgate.book.state import Book
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.rules import Rule
from riskgate.monitor.writes import MonitorWrites
from riskgate.store import redis_store
from riskgate.store.change_stream import ChangeStream
from riskgate.store.codec import APPLIERS, decode_stored, encode
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.store.mark_batch import MarkBatcher, PendingTick
from riskgate.store.redis_store import RedisStore
from riskgate.values.codes import BreakerState, Restriction
from tests.engine_book import btc_spec
from tests.test_bounded_load import Recorder
from tests.test_faults import own_redis  # noqa: F401

KEYS = Keys("rg")  # the global keys (any shard's Keys holds them)
GATE = "gate-under-test"
SHARDS = 2
GATE_KEYS = Keys("rg", 0, SHARDS)  # the shard under test: its accounts are under its own tag
GLOBAL_KINDS = ("symbol", "mark", "breaker", "controls")


def _owned(count: int, shard: int = 0, prefix: str = "acct-") -> list[str]:
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        account_id = f"{prefix}{n}"
        n += 1
        if zlib.crc32(account_id.encode()) % SHARDS == shard:
            ids.append(account_id)
    return ids


class Gate:
    """The store under test. `cut()` kills its connections and holds its resubscription until
    `back()`, so whatever another writer changes in between reaches it only by the catch-up."""

    def __init__(self, url: str, resume: bool = True) -> None:
        self.book = Book(default_orders_per_second=100, duplicate_window_s=60, shard_index=0, shard_count=SHARDS)
        self.client = aioredis.Redis.from_url(url, client_name=GATE)
        self.recorder = Recorder(self.client)
        self.store = RedisStore(self.client, self.book, GATE_KEYS, 1000, 1000, 5, resume=resume)
        self.resubscribe = asyncio.Event()
        self.resubscribe.set()
        self.held = asyncio.Event()
        self.applied: list[tuple[str, str, int, bool]] = []  # (kind, field, version, taken)
        make_pubsub = self.client.pubsub

        def pubsub(**options: Any) -> Any:
            subscription = make_pubsub(**options)
            subscribe = subscription.subscribe

            async def held_subscribe(*args: Any, **kwargs: Any) -> Any:
                if not self.resubscribe.is_set():
                    self.held.set()
                    await self.resubscribe.wait()
                return await subscribe(*args, **kwargs)

            subscription.subscribe = held_subscribe  # type: ignore[method-assign]
            return subscription

        self.client.pubsub = pubsub  # type: ignore[method-assign]
        apply = self.store._apply

        def recording_apply(kind: str, record: Any) -> bool:
            taken = apply(kind, record)
            self.applied.append((kind, _field(kind, record), record.version, taken))
            return taken

        self.store._apply = recording_apply  # type: ignore[method-assign]

    async def cut(self, redis: aioredis.Redis) -> None:
        self.resubscribe.clear()
        self.held.clear()
        for entry in await redis.client_list():
            if entry.get("name") == GATE:
                await redis.client_kill_filter(_id=entry["id"])
        await self.held.wait()

    async def back(self) -> None:
        """Lets it resubscribe; returns once it has caught up (or reloaded)."""
        before = self.store.resumes_done + self.store.loads_done
        self.resubscribe.set()
        for _ in range(2000):
            if self.store.resumes_done + self.store.loads_done > before and self.store._pubsub is not None:
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the gate did not come back within 10 s")

    def hscans(self, key: str) -> int:
        return sum(1 for call in self.recorder.commands("HSCAN") if _text(call[1]) == key)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(kind: str, record: Any) -> str:
    return record.account_id if kind in ("controls", "account") else record.symbol


async def _writer(url: str) -> RedisStore:
    """Another gate process (shard 1): its admin changes are published and appended to the stream."""
    book = Book(default_orders_per_second=100, duplicate_window_s=60, shard_index=1, shard_count=SHARDS)
    store = RedisStore(aioredis.Redis.from_url(url), book, Keys("rg", 1, SHARDS), 1000, 1000, 5)
    await store.start()
    return store


async def _change(writer: RedisStore, kind: str, record: msgspec.Struct) -> int:
    field = _field(kind, record)
    audit = {"actor": "test", "action": f"set_{kind}", "target": field, "outcome": "ok", "request": ""}
    stored = await writer.commit(kind, field, record, audit, lambda r: APPLIERS[kind](writer.book, r))
    return int(stored.version)


def _symbol(name: str, band: str = "0.05") -> SymbolSpec:
    return msgspec.structs.replace(btc_spec(), symbol=name, price_band=Decimal(band))


async def _redis_view(redis: aioredis.Redis, book: Book) -> dict[tuple[str, str], Any]:
    """The global records as Redis holds them (an independent read), as far as the gate applies
    them: marks and breakers of listed symbols, controls of the accounts it owns."""
    view: dict[tuple[str, str], Any] = {}
    for kind in GLOBAL_KINDS:
        for field, data in (await redis.hgetall(KEYS.hash_for(kind))).items():
            view[(kind, _text(field))] = decode_stored(kind, data)
    listed = {field for kind, field in view if kind == "symbol"}
    return {(kind, field): record for (kind, field), record in view.items()
            if kind == "symbol" or (kind in ("mark", "breaker") and (field in listed or field == ""))
            or (kind == "controls" and book.owns(field))}


def _book_view(book: Book) -> dict[tuple[str, str], Any]:
    view: dict[tuple[str, str], Any] = {}
    for name, state in book.symbols.items():
        view[("symbol", name)] = state.spec
        if state.mark is not None:
            view[("mark", name)] = state.mark
        if state.breaker.version:
            view[("breaker", name)] = state.breaker
    if book.platform_breaker.version:
        view[("breaker", "")] = book.platform_breaker
    for account_id, account in book.accounts.items():
        if account.controls.version:
            view[("controls", account_id)] = account.controls
    return view


async def _started(url: str, resume: bool = True) -> tuple[Gate, RedisStore, aioredis.Redis]:
    redis = aioredis.Redis.from_url(url)
    writer = await _writer(url)
    await _change(writer, "symbol", _symbol("BTCUSDT"))
    await _change(writer, "mark", MarkSpec(symbol="BTCUSDT", price=Decimal("50000")))
    gate = Gate(url, resume)
    await gate.store.start()
    return gate, writer, redis


async def test_reconnect_when_changes_made_while_away_then_each_applied_once_from_stream_without_reload(
        flushed_redis, caplog: pytest.LogCaptureFixture) -> None:
    gate, writer, redis = await _started(flushed_redis.url)
    try:
        owned = _owned(1)[0]
        loads = gate.store.loads_done
        account_scans = gate.hscans(GATE_KEYS.accounts)
        scans = len(gate.recorder.commands("HSCAN"))
        hscan_calls = int((await redis.info("commandstats")).get("cmdstat_hscan", {}).get("calls", 0))
        await gate.cut(redis)
        gate.applied.clear()
        made = [
            ("symbol", _symbol("ETHUSDT")),
            ("mark", MarkSpec(symbol="BTCUSDT", price=Decimal("50100"))),
            ("breaker", BreakerSpec(symbol="BTCUSDT", state=BreakerState.HALTED, reason="away", set_by="test")),
            ("controls", ControlsSpec(account_id=owned, restriction=Restriction.REDUCE_ONLY, set_by="test")),
        ]
        versions = [await _change(writer, kind, record) for kind, record in made]
        with caplog.at_level(logging.INFO):
            await gate.back()
        store, book = gate.store, gate.book
        assert store.resumes_done == 1 and store.loads_done == loads
        assert store.changes_replayed == len(made)
        # Not one HSCAN, of the accounts hash or any other: only the stream was read.
        assert gate.hscans(GATE_KEYS.accounts) == account_scans
        assert len(gate.recorder.commands("HSCAN")) == scans
        assert int((await redis.info("commandstats")).get("cmdstat_hscan", {}).get("calls", 0)) == hscan_calls
        assert book.symbols["ETHUSDT"].spec.version == versions[0]
        assert book.symbols["BTCUSDT"].mark is not None and book.symbols["BTCUSDT"].mark.price == Decimal("50100")
        assert book.symbols["BTCUSDT"].breaker.state == BreakerState.HALTED
        assert book.accounts[owned].controls.restriction == Restriction.REDUCE_ONLY
        # Exactly once: each change reached the book once (taken), and nothing else did.
        taken = [(kind, field, version) for kind, field, version, ok in gate.applied if ok]
        assert taken == [(kind, _field(kind, record), version)
                         for (kind, record), version in zip(made, versions, strict=True)]
        halted = [r for r in caplog.records if "circuit breaker BTCUSDT HALTED" in r.getMessage()]
        assert len(halted) == 1
        assert _book_view(book) == await _redis_view(redis, book)
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


async def test_reconnect_when_stream_trimmed_past_last_id_then_full_reload_and_book_correct(flushed_redis) -> None:
    gate, writer, redis = await _started(flushed_redis.url)
    try:
        loads = gate.store.loads_done
        account_scans = gate.hscans(GATE_KEYS.accounts)
        await gate.cut(redis)
        await _change(writer, "mark", MarkSpec(symbol="BTCUSDT", price=Decimal("50200")))
        await _change(writer, "breaker", BreakerSpec(symbol="", state=BreakerState.REDUCE_ONLY, reason="x",
                                                     set_by="test"))
        await redis.xtrim(KEYS.change_stream, maxlen=0, approximate=False)
        await _change(writer, "symbol", _symbol("SOLUSDT"))  # the stream goes on after the trim
        await gate.back()
        store, book = gate.store, gate.book
        assert store.loads_done == loads + 1 and store.resumes_done == 0
        assert "no longer holds" in store.resume_refused
        assert gate.hscans(GATE_KEYS.accounts) > account_scans
        assert book.platform_breaker.state == BreakerState.REDUCE_ONLY
        assert "SOLUSDT" in book.symbols
        assert _book_view(book) == await _redis_view(redis, book)
        # The reload took a new position: the next link loss resumes again.
        await gate.cut(redis)
        await _change(writer, "mark", MarkSpec(symbol="BTCUSDT", price=Decimal("50300")))
        await gate.back()
        assert store.resumes_done == 1 and store.loads_done == loads + 1
        assert _book_view(book) == await _redis_view(redis, book)
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


async def test_reconnect_when_redis_restarted_without_its_data_then_full_reload_writes_owned_state_back(
        own_redis: EmbeddedRedis, tmp_path: Path) -> None:  # noqa: F811
    gate, writer, redis = await _started(own_redis.url)
    restarted: EmbeddedRedis | None = None
    try:
        store, book = gate.store, gate.book
        owned = _owned(1)[0]
        audit = {"actor": "test", "action": "upsert_account", "target": owned, "outcome": "ok", "request": ""}
        await store.commit("account", owned, AccountSnapshot(account_id=owned, balance=Decimal("1234")), audit,
                           lambda r: APPLIERS["account"](book, r))
        await writer.close()
        await redis.aclose()
        loads = store.loads_done
        own_redis.kill()
        # Same port, no data: a new run_id, and everything the gate had written is gone.
        restarted = EmbeddedRedis(tmp_path / "empty", port=own_redis.port).start()
        redis = aioredis.Redis.from_url(restarted.url)
        for _ in range(2000):
            if store.loads_done > loads and await redis.hexists(GATE_KEYS.accounts, owned):
                break
            await asyncio.sleep(0.005)
        assert store.loads_done == loads + 1 and store.resumes_done == 0
        assert "not the one" in store.resume_refused
        written = decode_stored("account", await redis.hget(GATE_KEYS.accounts, owned))
        assert written.balance == Decimal("1234")
    finally:
        await store.close()
        await redis.aclose()
        if restarted is not None:
            restarted.stop()


async def test_reconnect_when_restarted_with_same_data_then_full_reload_not_resume(
        own_redis: EmbeddedRedis) -> None:  # noqa: F811
    gate, writer, redis = await _started(own_redis.url)
    restarted: EmbeddedRedis | None = None
    try:
        store = gate.store
        await writer.close()
        await redis.aclose()
        await asyncio.sleep(1.2)  # AOF everysec: the stream and its entries are on disk
        loads = store.loads_done
        own_redis.kill()
        restarted = EmbeddedRedis(own_redis.data_dir, port=own_redis.port).start()
        for _ in range(2000):
            if store.loads_done > loads and store._pubsub is not None:
                break
            await asyncio.sleep(0.005)
        # The entry it last applied is still in the stream, but a restart may have lost the tail
        # of what this gate wrote: only the full reload compares and writes it back.
        assert store.loads_done == loads + 1 and store.resumes_done == 0
        # Seen by the reconnect, or first by the health round's look at the node's identity.
        assert ("not the one" in store.resume_refused
                or "changed (failed over or restarted" in store.resume_refused), store.resume_refused
        redis = aioredis.Redis.from_url(restarted.url)
    finally:
        await store.close()
        await redis.aclose()
        if restarted is not None:
            restarted.stop()


async def test_catch_up_when_change_published_during_it_then_neither_lost_nor_applied_out_of_order(
        flushed_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "LOAD_SLICE_S", 0.0)  # the catch-up yields before every entry
    gate, writer, redis = await _started(flushed_redis.url)
    try:
        store = gate.store
        store.change_stream.page = 3  # many pages: changes land between them
        await gate.cut(redis)
        prices = [Decimal(50_000 + 10 * i) for i in range(1, 21)]
        for price in prices:
            await _change(writer, "mark", MarkSpec(symbol="BTCUSDT", price=price))
        gate.applied.clear()
        pause = store._yield_now
        calls = {"n": 0}
        during: list[int] = []

        async def pause_then_change() -> None:
            calls["n"] += 1
            if calls["n"] == 7:  # mid-way through the catch-up, another writer moves the mark
                during.append(await _change(writer, "mark", MarkSpec(symbol="BTCUSDT", price=Decimal("51000"))))
            await pause()

        store._yield_now = pause_then_change  # type: ignore[method-assign]
        await gate.back()
        store._yield_now = pause  # type: ignore[method-assign]
        assert during, "the change was made during the catch-up"
        # The published copy arrives on the subscription after the catch-up: wait for it.
        for _ in range(2000):
            if any(version == during[0] for _, _, version, _ in gate.applied if _ == "mark"):
                break
            await asyncio.sleep(0.005)
        mark = gate.book.symbols["BTCUSDT"].mark
        assert mark is not None and mark.price == Decimal("51000") and mark.version == during[0]
        marks = [(version, taken) for kind, _, version, taken in gate.applied if kind == "mark"]
        taken = [version for version, ok in marks if ok]
        # Every mark taken once, in version order; the one made during the catch-up is the last.
        assert taken == sorted(set(taken)) and taken[-1] == during[0]
        assert len(taken) == len(prices) + 1
        # Its second copy (stream and subscription both carry it) changed nothing.
        assert [ok for version, ok in marks if version == during[0]].count(True) == 1
        assert _book_view(gate.book) == await _redis_view(redis, gate.book)
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_reconnects_when_random_changes_and_cuts_then_book_equals_redis_after_each(
        flushed_redis, seed: int) -> None:
    rng = random.Random(seed)
    gate, writer, redis = await _started(flushed_redis.url)
    try:
        owned = _owned(3)
        symbols = ["BTCUSDT"]
        price = {"BTCUSDT": Decimal("50000")}

        async def random_change() -> None:
            roll = rng.random()
            symbol = rng.choice(symbols)
            if roll < 0.15 and len(symbols) < 5:
                name = f"S{len(symbols)}USDT"
                symbols.append(name)
                price[name] = Decimal("100")
                await _change(writer, "symbol", _symbol(name))
            elif roll < 0.55:
                price[symbol] = price[symbol] * Decimal(rng.choice(["1.01", "0.99", "1.02"]))
                await _change(writer, "mark", MarkSpec(symbol=symbol, price=price[symbol].quantize(Decimal("0.1"))))
            elif roll < 0.75:
                state = rng.choice(list(BreakerState))
                await _change(writer, "breaker", BreakerSpec(symbol=rng.choice([symbol, ""]), state=state,
                                                             reason="r", set_by="test"))
            else:
                restriction = rng.choice([Restriction.NONE, Restriction.REDUCE_ONLY])
                await _change(writer, "controls", ControlsSpec(account_id=rng.choice(owned), restriction=restriction,
                                                               max_leverage=rng.randint(0, 20), set_by="test"))

        for _ in range(6):
            for _ in range(rng.randint(0, 5)):  # while connected
                await random_change()
            await gate.cut(redis)
            for _ in range(rng.randint(0, 12)):  # while away
                await random_change()
            if rng.random() < 0.25:
                await redis.xtrim(KEYS.change_stream, maxlen=rng.randint(0, 3), approximate=False)
            await gate.back()
            assert _book_view(gate.book) == await _redis_view(redis, gate.book)
        assert gate.store.resumes_done > 0
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


async def test_change_stream_when_mark_feed_and_admin_write_then_each_change_appended_once_with_its_id(
        flushed_redis) -> None:
    gate, writer, redis = await _started(flushed_redis.url)
    try:
        class Sink:
            def __init__(self) -> None:
                self.written = asyncio.Event()

            def on_written(self, tick: PendingTick) -> None:
                self.written.set()

            def on_conflated(self, tick: PendingTick) -> None:
                pass

            def on_not_written(self, tick: PendingTick, unavailable: bool, why: str) -> None:
                raise AssertionError(why)

        before = await redis.xlen(KEYS.change_stream)
        sink = Sink()
        batcher = MarkBatcher(writer)
        batcher.add(PendingTick(MarkSpec(symbol="BTCUSDT", price=Decimal("50050"), timestamp_ms=_now_ms()), 1, sink))
        await sink.written.wait()
        await batcher.close()
        entries = await redis.xrange(KEYS.change_stream, count=1000)
        new = entries[before:]
        assert [(e[1][b"k"], int(e[1][b"v"])) for e in new] == [(b"mark", writer.book.symbols["BTCUSDT"].mark.version)]
        # The gate's subscriber took the id from the message: its position is that entry.
        for _ in range(2000):
            if gate.store._position is not None and gate.store._position.last == _text(new[-1][0]):
                break
            await asyncio.sleep(0.005)
        assert gate.store._position is not None and gate.store._position.last == _text(new[-1][0])
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_reconnect_when_monitor_trips_breaker_while_away_then_gate_replays_it(flushed_redis) -> None:
    gate, writer, redis = await _started(flushed_redis.url)
    monitor_client = aioredis.Redis.from_url(flushed_redis.url)
    try:
        monitor = MonitorWrites(monitor_client, MonitorKeys("rg"), 1000)
        monitor.lease_token = "monitor-under-test"
        assert await monitor.take_or_renew_lease(60_000)
        await gate.cut(redis)
        rule = Rule(id="move-5", metric="mark_move", threshold=Decimal("0.05"), window_ms=60_000,
                    action="symbol_halted", scope="symbol", symbol="BTCUSDT")
        now = _now_ms()
        alert = {"rule_id": rule.id, "rule_version": 0, "severity": "warning", "state": "open",
                 "metric": rule.metric, "value": "0.06", "threshold": "0.05", "window_ms": rule.window_ms,
                 "created_ms": now, "updated_ms": now, "history": [], "symbol": "BTCUSDT", "account_id": "",
                 "evidence": {}, "cleared_ms": 0}
        fired = await monitor.fire(rule, "BTCUSDT", alert, {"metric": "mark_move"}, "moved 6%", now)
        assert fired.version
        await gate.back()
        breaker = gate.book.symbols["BTCUSDT"].breaker
        assert gate.store.resumes_done == 1
        assert breaker.state == BreakerState.HALTED and breaker.version == fired.version
        assert breaker.set_by.startswith("monitor:")
    finally:
        await monitor_client.aclose()
        await gate.store.close()
        await writer.close()
        await redis.aclose()


async def test_reconnect_when_resuming_switched_off_then_full_reload_as_before(flushed_redis) -> None:
    gate, writer, redis = await _started(flushed_redis.url, resume=False)
    try:
        loads = gate.store.loads_done
        await gate.cut(redis)
        await _change(writer, "breaker", BreakerSpec(symbol="BTCUSDT", state=BreakerState.HALTED, reason="x",
                                                     set_by="test"))
        await gate.back()
        assert gate.store.loads_done == loads + 1 and gate.store.resumes_done == 0
        assert gate.store.resume_refused == "resuming is switched off"
        assert gate.book.symbols["BTCUSDT"].breaker.state == BreakerState.HALTED
    finally:
        await gate.store.close()
        await writer.close()
        await redis.aclose()


async def test_catch_up_when_stream_trimmed_between_its_pages_then_refused_not_skipped(flushed_redis) -> None:
    # A capped stream trims its head while a gate near it reads on: the entries between two
    # pages (a HALT among them) must never be skipped as if the resume had succeeded.
    client = aioredis.Redis.from_url(flushed_redis.url)
    try:
        stream = ChangeStream(client, KEYS.change_stream, page=2)
        position = await stream.position()
        for n in range(6):
            kind, record = (("breaker", BreakerSpec(symbol="", state=BreakerState.HALTED, reason="halt",
                                                    set_by="ops")) if n == 3 else
                            ("mark", MarkSpec(symbol="BTCUSDT", price=Decimal(50000 + n), timestamp_ms=1)))
            await client.xadd(KEYS.change_stream, {"k": kind, "v": n + 1, "d": encode(record)})
        applied: list[str] = []
        trimmer = redis.Redis.from_url(flushed_redis.url)

        def apply(kind: str, record: Any) -> None:
            applied.append(kind)
            if len(applied) == 2:  # the first page is done: the cap trims before the next is read
                trimmer.xtrim(KEYS.change_stream, maxlen=2, approximate=False)

        async def no_pause() -> None:
            return None

        try:
            count, why = await stream.catch_up(position, apply, no_pause)
        finally:
            trimmer.close()
        assert count == -1 and "no longer holds" in why
        assert "breaker" not in applied  # refused (the caller reloads), not reported as caught up
    finally:
        await client.aclose()
