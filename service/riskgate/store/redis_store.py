"""Keeps the book and Redis in step.

- Start: subscribe to the change channel *before* loading the snapshot, so no change made
  in between is missed; versions make re-applying harmless.
- Admin changes: written to Redis (record, version, publish and audit entry in one MULTI)
  and only then applied to the book, by the writer task itself so that nothing it writes
  later can carry older state.
- Reservations and fill-moved accounts: marked dirty on the hot path and written behind it
  in batches by the same writer task.
- Link loss: when Redis has not answered for longer than the bound, the book is flagged
  and risk-increasing orders are refused; on reconnection the snapshot is reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from riskgate.book.apply import ensure_account
from riskgate.book.specs import ReservationSpec
from riskgate.book.state import Book, Reservation
from riskgate.engine.reservations import rebalance_reducing, restore
from riskgate.store.codec import APPLIERS, decode_change, decode_stored, encode
from riskgate.store.keys import Keys, order_field

log = logging.getLogger(__name__)

_PUT_SCRIPT = """
if ARGV[5] == 'nx' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], '{"v":' .. v .. ',"d":' .. ARGV[2] .. '}')
if ARGV[3] ~= '' then
  redis.call('PUBLISH', ARGV[3], '{"k":"' .. ARGV[4] .. '","v":' .. v .. ',"d":' .. ARGV[2] .. '}')
end
return v
"""

_RAISE_SEQ_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
SUBSCRIBE_TIMEOUT_S = 2.0
_BAD_RECORD = (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError)

# One round trip, one command, for a whole write-behind batch: account snapshots (each with
# the next version), reservation upserts and deletes. Per-command overhead in the client,
# not Redis, is what write-behind costs the event loop.
_FLUSH_SCRIPT = """
local i = 1
local versions = {}
local accounts = tonumber(ARGV[i]); i = i + 1
for k = 1, accounts do
  local v = redis.call('INCR', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[i], '{"v":' .. v .. ',"d":' .. ARGV[i + 1] .. '}')
  versions[k] = v
  i = i + 2
end
local upserts = tonumber(ARGV[i]); i = i + 1
if upserts > 0 then
  redis.call('HSET', KEYS[3], unpack(ARGV, i, i + 2 * upserts - 1))
  i = i + 2 * upserts
end
if i <= #ARGV then
  redis.call('HDEL', KEYS[3], unpack(ARGV, i, #ARGV))
end
return versions
"""
# Keeps each script call's unpack() far below Lua's C-stack limit.
FLUSH_CHUNK = 1000

_reservation_encoder = msgspec.json.Encoder(decimal_format="string")
_reservation_decoder = msgspec.json.Decoder(ReservationSpec)
RETRY_BACKOFF_S = 0.05
MAX_RETRY_BACKOFF_S = 1.0
SEED_BATCH = 500


class StoreUnavailable(RuntimeError):
    """Redis did not confirm the change; this process did not apply it."""


class StoreConflict(RuntimeError):
    """Redis took the change under a version older than one already applied."""


class _AdminChange:
    __slots__ = ("apply", "audit", "field", "future", "kind", "record")

    def __init__(self, kind: str, field: str, record: msgspec.Struct, audit: dict[str, str],
                 apply: Callable[[Any], bool]) -> None:
        self.kind = kind
        self.field = field
        self.record = record
        self.audit = audit
        self.apply = apply
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class RedisStore:
    def __init__(self, client: aioredis.Redis, book: Book, keys: Keys, stale_after_ms: int,
                 audit_maxlen: int, write_behind_ms: float = 0.0) -> None:
        self.client = client
        self.book = book
        self.keys = keys
        self.stale_after_s = stale_after_ms / 1000
        self.audit_maxlen = audit_maxlen
        self.write_behind_s = write_behind_ms / 1000
        self._put = client.register_script(_PUT_SCRIPT)
        self._flush = client.register_script(_FLUSH_SCRIPT)
        self._admin_queue: deque[_AdminChange] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: PubSub | None = None
        self._last_pong = 0.0
        self._write_failing_since: float | None = None
        self._max_version = 0
        self._repairs: set[asyncio.Task[None]] = set()
        self._raise_seq = client.register_script(_RAISE_SEQ_SCRIPT)
        self._loaded_once = asyncio.Event()
        self._last_ok = time.monotonic()
        self._closing = False
        book.on_dirty = self._wake.set

    # ---- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.client.ping()
        self._tasks = [
            asyncio.create_task(self._subscriber(), name="riskgate-subscriber"),
            asyncio.create_task(self._writer(), name="riskgate-writer"),
            asyncio.create_task(self._health(), name="riskgate-health"),
        ]
        await self._loaded_once.wait()

    async def close(self) -> None:
        """Writes what is still dirty, then stops the background tasks."""
        self._closing = True
        with contextlib.suppress(RedisError, OSError):
            while self.book.dirty_accounts or self.book.dirty_orders or self._admin_queue:
                if not await self._flush_once():
                    break
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await task
        await self.client.aclose()

    # ---- writes ----------------------------------------------------------------------

    async def seed(self, records: list[tuple[str, str, msgspec.Struct]], actor: str) -> int:
        """Writes each (kind, field, record) only where Redis has none under field, and audits
        what it wrote. Each write is atomic on its own, so a crash mid-way leaves whole records.
        Returns how many were written."""
        written = 0
        for start in range(0, len(records), SEED_BATCH):
            batch = records[start:start + SEED_BATCH]
            payloads = [encode(record) for _, _, record in batch]
            async with self.client.pipeline(transaction=False) as pipe:
                for (kind, field, _), payload in zip(batch, payloads, strict=True):
                    await self._put(keys=[self.keys.seq, self.keys.hash_for(kind)],
                                    args=[field, payload, self.keys.changes, kind, "nx"], client=pipe)
                versions = await pipe.execute()
            now_ms = str(time.time_ns() // 1_000_000)
            async with self.client.pipeline(transaction=False) as pipe:
                for (kind, field, _), payload, version in zip(batch, payloads, versions, strict=True):
                    if int(version):
                        written += 1
                        pipe.xadd(self.keys.audit, {"ts_ms": now_ms, "actor": actor, "action": f"seed_{kind}",
                                                    "target": field, "outcome": "ok", "version": str(version),
                                                    "request": payload.decode()},
                                  maxlen=self.audit_maxlen, approximate=True)
                await pipe.execute()
        return written

    async def commit(self, kind: str, field: str, record: msgspec.Struct, audit: dict[str, str],
                     apply: Callable[[Any], bool]) -> Any:
        """Stores, publishes and audits one admin change; applies it once Redis has it.

        Returns the record with its new version. Raises StoreUnavailable when Redis did not
        take it, in which case nothing changed anywhere.
        """
        change = _AdminChange(kind, field, record, audit, apply)
        self._admin_queue.append(change)
        self._wake.set()
        return await change.future

    async def audit(self, entry: dict[str, str]) -> None:
        entry = {"ts_ms": str(time.time_ns() // 1_000_000), **entry}
        await self.client.xadd(self.keys.audit, entry, maxlen=self.audit_maxlen, approximate=True)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if self.write_behind_s and not self._admin_queue:
                # Gather the orders of the next few milliseconds into one round trip: one
                # pipeline per order costs the hot path more event-loop time than the check.
                await asyncio.sleep(self.write_behind_s)
            self._wake.clear()
            try:
                flushed = await self._flush_once()
            except Exception:  # a dead writer would stop persistence while health stayed green
                log.exception("write-behind batch failed unexpectedly; retrying")
                flushed = False
                if self._write_failing_since is None:
                    self._write_failing_since = time.monotonic()
            if not flushed:
                await asyncio.sleep(RETRY_BACKOFF_S)
            if self.book.dirty_accounts or self.book.dirty_orders or self._admin_queue:
                # What arrived during the round trip waits for the next batch window rather
                # than going out at once in a batch of one or two.
                self._wake.set()

    async def _flush_once(self) -> bool:
        book = self.book
        accounts, book.dirty_accounts = book.dirty_accounts, set()
        orders, book.dirty_orders = book.dirty_orders, set()
        # At most one admin change per batch, last: everything serialised before it predates it.
        change = self._admin_queue.popleft() if self._admin_queue else None
        # A new version at or below one already seen means Redis's counter went backwards.
        seen_before = self._max_version
        snapshots: list[tuple[str, bytes]] = []
        for account_id in accounts:
            account = book.accounts.get(account_id)
            if account is not None:
                snapshots.append((account_id, encode(account.snapshot())))
        upserts: list[tuple[str, bytes]] = []
        deletes: list[str] = []
        for account_id, order_id in orders:
            account = book.accounts.get(account_id)
            reservation = account.orders.get(order_id) if account is not None else None
            if reservation is None:
                deletes.append(order_field(account_id, order_id))
            else:
                # Set before the write is sent: a close racing with it then deletes it again.
                reservation.persisted = True
                upserts.append((order_field(account_id, order_id),
                                _reservation_encoder.encode(reservation.to_spec(account_id))))
        versions: list[int] = []
        try:
            async with self.client.pipeline(transaction=change is not None) as pipe:
                calls = 0
                for start in range(0, max(len(snapshots), len(upserts), len(deletes)), FLUSH_CHUNK):
                    await self._flush(keys=[self.keys.seq, self.keys.accounts, self.keys.orders],
                                      args=_flush_args(snapshots[start:start + FLUSH_CHUNK],
                                                       upserts[start:start + FLUSH_CHUNK],
                                                       deletes[start:start + FLUSH_CHUNK]), client=pipe)
                    calls += 1
                if change is not None:
                    await self._put(keys=[self.keys.seq, self.keys.hash_for(change.kind)],
                                    args=[change.field, encode(change.record), self.keys.changes, change.kind, ""],
                                    client=pipe)
                    pipe.xadd(self.keys.audit, {"ts_ms": str(time.time_ns() // 1_000_000), **change.audit},
                              maxlen=self.audit_maxlen, approximate=True)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            book.dirty_accounts |= accounts
            book.dirty_orders |= orders
            if change is not None:
                _settle(change.future, StoreUnavailable(f"Redis did not take the change: {exc}"))
            log.warning("write to Redis failed (%s); will retry", exc)
            if self._write_failing_since is None:
                self._write_failing_since = time.monotonic()
            return False
        self._write_failing_since = None
        for chunk_versions in results[:calls]:
            versions.extend(int(v) for v in chunk_versions)
        for (account_id, _), version in zip(snapshots, versions, strict=True):
            account = book.accounts.get(account_id)
            if account is not None:
                account.snapshot_version = max(account.snapshot_version, version)
        if versions:
            self._max_version = max(self._max_version, *versions)
        if change is not None:
            version = int(results[calls])
            stored = msgspec.structs.replace(change.record, version=version)  # type: ignore[type-var]
            if version > seen_before:
                try:
                    # False is fine here: the subscriber may have applied the published copy
                    # first, or the record concerns accounts another shard owns.
                    change.apply(stored)
                except Exception as exc:  # the writer task must outlive one bad change
                    log.exception("applying %s %r failed", change.kind, change.field)
                    _settle(change.future, exc)
                    return True
                self._max_version = max(self._max_version, version)
                _settle(change.future, stored)
            else:
                _settle(change.future, StoreConflict(
                    f"Redis stored version {version}, but this process already holds a newer one: "
                    "the version counter went backwards and is being repaired; retry"))
                repair = asyncio.get_running_loop().create_task(self._repair_version_counter())
                self._repairs.add(repair)  # a reference, so the task is not collected mid-way
                repair.add_done_callback(self._repairs.discard)
        return True

    # ---- reads -----------------------------------------------------------------------

    async def _load_snapshot(self, with_orders: bool) -> None:
        book = self.book
        for kind in ("symbol", "mark", "breaker", "controls", "account"):
            rows = await self.client.hgetall(self.keys.hash_for(kind))
            for field, data in rows.items():
                if kind == "account" and not with_orders and book.owns(field.decode()):
                    # After a reconnect this process's memory is the newer truth for the
                    # accounts it owns: it is their only writer, fills included.
                    continue
                try:
                    record = decode_stored(kind, data)
                except _BAD_RECORD as exc:
                    log.error("ignoring unreadable %s record %r in Redis: %s", kind, field, exc)
                    continue
                self._apply(kind, record)
        if with_orders:
            rows = await self.client.hgetall(self.keys.orders)
            for field, data in rows.items():
                try:
                    spec = _reservation_decoder.decode(data)
                    reservation = Reservation.from_spec(spec)
                    account_id = spec.account_id
                except _BAD_RECORD as exc:
                    log.error("ignoring unreadable reservation %r in Redis: %s", field, exc)
                    continue
                if not book.owns(account_id):
                    continue
                account = ensure_account(book, account_id)
                if reservation.order_id not in account.orders:
                    restore(book, account, reservation)
            for account in book.accounts.values():
                for symbol in {r.symbol for r in account.orders.values()}:
                    rebalance_reducing(book, account, symbol)
        await self._repair_version_counter()

    async def _repair_version_counter(self) -> None:
        """Redis that lost its tail (AOF everysec, failover to a lagging replica) may hand out
        versions this process has already seen; every process would then ignore new changes."""
        if await self._raise_seq(keys=[self.keys.seq], args=[self._max_version]):
            log.error("Redis version counter was behind version %d: raised it", self._max_version)

    def _apply(self, kind: str, record: Any) -> bool:
        self._max_version = max(self._max_version, record.version)
        try:
            return APPLIERS[kind](self.book, record)
        except ValueError as exc:
            log.error("ignoring invalid %s record from Redis: %s", kind, exc)
            return False

    async def _subscriber(self) -> None:
        first = True
        backoff = RETRY_BACKOFF_S
        while not self._closing:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.keys.changes)
                # Load only once Redis confirms the subscription: nothing published after the
                # snapshot is read can then be missed.
                confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                if confirmation is None or confirmation.get("type") != "subscribe":
                    raise RedisConnectionError("no subscribe confirmation from Redis")
                await self._load_snapshot(with_orders=first)
                first = False
                self._pubsub = pubsub
                self._last_pong = time.monotonic()
                self._loaded_once.set()
                backoff = RETRY_BACKOFF_S
                async for message in pubsub.listen():
                    kind_of_message = message.get("type")
                    if kind_of_message == "pong":
                        self._last_pong = time.monotonic()
                        continue
                    if kind_of_message != "message":
                        continue
                    try:
                        kind, record = decode_change(message["data"])
                    except _BAD_RECORD as exc:
                        log.error("ignoring malformed change message: %s", exc)
                        continue
                    self._apply(kind, record)
            except (RedisError, OSError) as exc:
                if self._pubsub is not None:
                    log.warning("change subscription lost (%s); resubscribing and reloading", exc)
                self._pubsub = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def _health(self) -> None:
        """Healthy means: Redis answers, the change subscription answers its own pings (a
        half-open link would otherwise go unnoticed), and write-behind is not failing."""
        interval = max(0.02, self.stale_after_s / 5)
        while True:
            now = time.monotonic()
            pubsub = self._pubsub
            try:
                await asyncio.wait_for(self.client.ping(), timeout=max(interval, 0.1))
                if pubsub is not None:
                    await pubsub.ping()
                pending = self.book.dirty_accounts or self.book.dirty_orders or self._admin_queue
                if not pending:
                    # Nothing left to retry: a failure in the past no longer holds anything back.
                    self._write_failing_since = None
                writer = self._tasks[1] if len(self._tasks) > 1 else None
                healthy = (pubsub is not None and pubsub is self._pubsub
                           and now - self._last_pong <= self.stale_after_s
                           and (writer is None or not writer.done())
                           and (self._write_failing_since is None
                                or now - self._write_failing_since <= self.stale_after_s))
            except (RedisError, OSError, TimeoutError):
                healthy = False
            if healthy:
                self._last_ok = now
                if self.book.state_unavailable_reason is not None:
                    log.warning("Redis link restored: accepting risk-increasing orders again")
                    self.book.state_unavailable_reason = None
            elif now - self._last_ok > self.stale_after_s and self.book.state_unavailable_reason is None:
                self.book.state_unavailable_reason = (
                    f"Redis unreachable or not taking writes for more than {int(self.stale_after_s * 1000)} ms:"
                    " failing closed"
                )
                log.error(self.book.state_unavailable_reason)
            await asyncio.sleep(interval)

def _flush_args(snapshots: list[tuple[str, bytes]], upserts: list[tuple[str, bytes]],
                deletes: list[str]) -> list[str | bytes | int]:
    args: list[str | bytes | int] = [len(snapshots)]
    for account_id, payload in snapshots:
        args += (account_id, payload)
    args.append(len(upserts))
    for field, payload in upserts:
        args += (field, payload)
    args += deletes
    return args


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Resolves an admin change's future unless its caller gave up (deadline, cancellation)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
