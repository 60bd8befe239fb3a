"""Loading the state scales with the book: every hash is read by HSCAN in bounded pages (never
one reply proportional to the book), a shard decodes only its own accounts' records, a failed
load is logged and retried, and a reload after a lost link lets the event loop serve calls
between slices. Real Redis; nothing here asserts on timing."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from riskgate.book.specs import AccountSnapshot, ExecutionSpec, ReservationSpec
from riskgate.book.state import Book
from riskgate.store import redis_store
from riskgate.store.codec import encode
from riskgate.store.keys import Keys, order_field
from riskgate.store.redis_store import RedisStore

KEYS = Keys("rg")
BOOK_HASHES = {KEYS.symbols, KEYS.marks, KEYS.breakers, KEYS.controls, KEYS.accounts, KEYS.orders, KEYS.executions}
_json = msgspec.json.Encoder(decimal_format="string")


def _stored(version: int, record: msgspec.Struct) -> bytes:
    return b'{"v":%d,"d":%s}' % (version, encode(record))


def _ids(count: int, shard: int | None = None, shards: int = 2, prefix: str = "acct-") -> list[str]:
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        account_id = f"{prefix}{n}"
        n += 1
        if shard is None or zlib.crc32(account_id.encode()) % shards == shard:
            ids.append(account_id)
    return ids


async def _plant_accounts(redis: aioredis.Redis, ids: list[str], first_version: int = 1) -> None:
    mapping = {account_id: _stored(first_version + i, AccountSnapshot(account_id=account_id, balance=Decimal("1000")))
               for i, account_id in enumerate(ids)}
    for start in range(0, len(ids), 1000):
        chunk = dict(list(mapping.items())[start:start + 1000])
        await redis.hset(KEYS.accounts, mapping=chunk)  # type: ignore[arg-type]
    await redis.set(KEYS.seq, first_version + len(ids))


class Recorder:
    """Wraps a client's execute_command: records every command, optionally fails one."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.replies: list[tuple[str, int]] = []  # (hash, fields in the page) of every HSCAN
        self.fail: Callable[[tuple[Any, ...]], bool] | None = None
        inner: Callable[..., Awaitable[Any]] = client.execute_command

        async def execute_command(*args: Any, **options: Any) -> Any:
            self.calls.append(args)
            if self.fail is not None and self.fail(args):
                self.fail = None
                raise RedisConnectionError("injected: connection lost mid-load")
            reply = await inner(*args, **options)
            if args[0] == "HSCAN":
                self.replies.append((_text(args[1]), len(reply[1])))
            return reply

        client.execute_command = execute_command  # type: ignore[method-assign]

    def commands(self, name: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if str(call[0]).upper() == name]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _store(url: str, shard_index: int = 0, shard_count: int = 1) -> tuple[RedisStore, Book, Recorder]:
    book = Book(default_orders_per_second=100, duplicate_window_s=60, shard_index=shard_index,
                shard_count=shard_count)
    client = aioredis.Redis.from_url(url)
    recorder = Recorder(client)
    return RedisStore(client, book, KEYS, 1000, 1000, 5), book, recorder


async def test_load_when_book_is_large_then_every_hash_read_by_hscan_pages_never_hgetall(
        flushed_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "LOAD_SCAN_COUNT", 200)
    redis = aioredis.Redis.from_url(flushed_redis.url)
    ids = _ids(3000)
    await _plant_accounts(redis, ids)
    store, book, recorder = _store(flushed_redis.url)
    await store.start()
    try:
        assert set(book.accounts) == set(ids)
        assert not recorder.commands("HGETALL")
        assert not recorder.commands("HKEYS")
        assert not recorder.commands("HVALS")
        scans = recorder.commands("HSCAN")
        assert {_text(call[1]) for call in scans} == BOOK_HASHES
        # Every page asked for with a COUNT, and the accounts came in many pages, none near the whole book.
        assert all("COUNT" in [_text(a).upper() for a in call] and 200 in call for call in scans)
        account_pages = [fields for key, fields in recorder.replies if key == KEYS.accounts]
        assert len(account_pages) >= 3000 // (2 * 200)
        assert max(account_pages) <= 2 * 200
    finally:
        await store.close()
        await redis.aclose()


async def test_load_when_other_shard_records_malformed_then_never_decoded_and_own_records_load(
        flushed_redis, caplog: pytest.LogCaptureFixture) -> None:
    redis = aioredis.Redis.from_url(flushed_redis.url)
    own, other = _ids(40, shard=0), _ids(40, shard=1)
    await _plant_accounts(redis, own)
    spec = ReservationSpec(order_id="o-1", account_id=own[0], symbol="BTCUSDT", side=1, price=Decimal("100"),
                           leverage=10, remaining=Decimal("1"), reducing_left=Decimal("0"),
                           increasing_left=Decimal("1"), cost_left=Decimal("10"), created_ms=1)
    # The other shard's records are garbage: decoding any of them would log it as unreadable.
    await redis.hset(KEYS.accounts, mapping={account_id: b"not json" for account_id in other})
    await redis.hset(KEYS.orders, mapping={order_field(account_id, "o-9"): b"not json" for account_id in other})
    await redis.hset(KEYS.executions, mapping={f"{account_id}\x1fo-9\x1fx-9": b"not json" for account_id in other})
    # One of this shard's own records is garbage too: proves unreadable records are still reported.
    broken_own = _ids(1, shard=0, prefix="own-broken-")[0]
    await redis.hset(KEYS.accounts, broken_own, b"not json")
    await redis.hset(KEYS.orders, order_field(own[0], "o-1"), _json.encode(spec))
    execution = ExecutionSpec(account_id=own[1], order_id="o-2", execution_id="x-2", at_ms=1)
    await redis.hset(KEYS.executions, f"{own[1]}\x1fo-2\x1fx-2", _json.encode(execution))
    store, book, _ = _store(flushed_redis.url, shard_index=0, shard_count=2)
    with caplog.at_level(logging.ERROR, logger="riskgate.store.redis_store"):
        await store.start()
    try:
        assert set(book.accounts) == set(own)
        assert "o-1" in book.accounts[own[0]].orders
        assert f"{own[1]}\x1fo-2\x1fx-2" in book.executions
        unreadable = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
        assert any(broken_own in message for message in unreadable)
        assert not any(account_id in message for message in unreadable for account_id in other)
    finally:
        await store.close()
        await redis.aclose()


async def test_load_when_redis_read_fails_midway_then_error_logged_and_load_retried(
        flushed_redis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "LOAD_SCAN_COUNT", 100)
    redis = aioredis.Redis.from_url(flushed_redis.url)
    ids = _ids(1000)
    await _plant_accounts(redis, ids)
    store, book, recorder = _store(flushed_redis.url)
    pages = {"accounts": 0}

    def third_accounts_page(args: tuple[Any, ...]) -> bool:
        if args[0] == "HSCAN" and _text(args[1]) == KEYS.accounts:
            pages["accounts"] += 1
            return pages["accounts"] == 3
        return False

    recorder.fail = third_accounts_page
    with caplog.at_level(logging.ERROR, logger="riskgate.store.redis_store"):
        await store.start()
    try:
        assert set(book.accounts) == set(ids)
        assert store.load_failures == 1
        failed = [r for r in caplog.records if r.levelno == logging.ERROR and "failed while reading" in r.getMessage()]
        assert len(failed) == 1
        assert KEYS.accounts in failed[0].getMessage() and "retrying" in failed[0].getMessage()
    finally:
        await store.close()
        await redis.aclose()


async def test_reload_when_change_feed_link_lost_then_loop_serves_between_slices_and_owned_state_kept(
        flushed_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "LOAD_SCAN_COUNT", 100)
    monkeypatch.setattr(redis_store, "LOAD_SLICE_S", 0.0)  # yield after every record
    redis = aioredis.Redis.from_url(flushed_redis.url)
    ids = _ids(500)
    await _plant_accounts(redis, ids)
    store, book, recorder = _store(flushed_redis.url)
    await store.start()
    try:
        # Memory is the newer truth for owned accounts: a change only held here survives the reload.
        book.accounts[ids[0]].balance = Decimal("4242")
        loads = store.loads_done
        scans_before = len(recorder.commands("HSCAN"))
        ticks: list[int] = []
        running = True

        async def other_calls() -> None:
            while running:
                ticks.append(len(recorder.commands("HSCAN")))
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_calls())
        await redis.client_kill_filter(_type="pubsub")
        for _ in range(1000):
            if store.loads_done > loads:
                break
            await asyncio.sleep(0.01)
        running = False
        await ticker
        assert store.loads_done == loads + 1
        assert set(book.accounts) == set(ids)
        assert book.accounts[ids[0]].balance == Decimal("4242")
        assert not recorder.commands("HGETALL") and not recorder.commands("HKEYS")
        # The other task ran while the reload read its pages, not only before or after it.
        during = {count for count in ticks if count > scans_before}
        scans_after = len(recorder.commands("HSCAN"))
        assert len([count for count in during if count < scans_after]) >= 2
    finally:
        await store.close()
        await redis.aclose()


async def test_stop_when_reload_in_progress_then_load_ends_and_nothing_left_dirty(
        flushed_redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "LOAD_SCAN_COUNT", 10)
    monkeypatch.setattr(redis_store, "LOAD_SLICE_S", 0.0)
    redis = aioredis.Redis.from_url(flushed_redis.url)
    ids = _ids(500)
    await _plant_accounts(redis, ids)
    store, book, recorder = _store(flushed_redis.url)
    await store.start()
    try:
        scans_before = len(recorder.commands("HSCAN"))
        await redis.client_kill_filter(_type="pubsub")
        for _ in range(1000):  # until the reload has read a few pages of accounts
            if len(recorder.commands("HSCAN")) > scans_before + 3:
                break
            await asyncio.sleep(0.005)
        assert store.loads_done == 1  # still reloading
        for account_id in ids[:200]:  # the stop's drain takes a round trip, the reload meanwhile goes on
            book.mark_account_dirty(account_id)
        sent_while_stopping: list[tuple[Any, ...]] = []
        recorder.fail = lambda args: store._closing and args[0] == "HSCAN" and bool(sent_while_stopping.append(args))
        unfinished = await store.close()
        await asyncio.sleep(0.05)
        # The reload ended where it was, without waiting for its cancellation (which redis-py
        # may absorb): no page read once the stop began, no task outlived it, nothing dirty.
        assert sent_while_stopping == []
        assert unfinished == []
        assert all(task.done() for task in store._tasks)
        assert not book.dirty_accounts and not book.dirty_orders
        assert store.loads_done == 1
    finally:
        await redis.aclose()
