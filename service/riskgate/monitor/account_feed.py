"""What the monitor follows of the accounts: balances and positions, from Redis only.

At start it notes the account-event stream's last id, reads every stored account record
(HSCAN, in pages), then follows the stream from that id: an event older than the record
already held is skipped by its version, so the overlap is harmless and nothing in between is
missed. If the stream was trimmed past the point it has read (it fell behind by more than
the stream's length), it reads the records again rather than miss a change.

Each account shard has its own records and stream (in its hash tag, store/keys.py): the feed
reads every shard's, of the layout the accounts are stored under (Keys.account_shards, else
the configured shard count), and follows each shard's stream from its own id, concurrently
(a blocking read cannot span the slots of a cluster).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec
import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from riskgate.book.specs import AccountEvent, AccountSnapshot
from riskgate.monitor.columns import AccountColumns, Indices
from riskgate.monitor.shard_streams import follow_each
from riskgate.store.codec import Stored
from riskgate.store.decision_counts import account_shard_count
from riskgate.store.keys import Keys

log = logging.getLogger(__name__)

SCAN_PAGE = 2000
READ_COUNT = 1000
BLOCK_MS = 1000
RETRY_BACKOFF_S = 0.05
MAX_RETRY_BACKOFF_S = 1.0
_stored = msgspec.json.Decoder(Stored)
_snapshot = msgspec.json.Decoder(AccountSnapshot)
_event = msgspec.json.Decoder(AccountEvent)


def _id(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class AccountFeed:
    def __init__(self, client: aioredis.Redis, keys: Keys, columns: AccountColumns,
                 on_accounts: Callable[[Indices], None], on_live: Callable[[bool], None]) -> None:
        self.client = client
        self.keys = keys
        self.columns = columns
        self.on_accounts = on_accounts
        self.on_live = on_live
        self.live = False
        self.loaded = asyncio.Event()
        # The last stream id applied, per shard; None = the records must be read (again).
        self.cursors: dict[int, str] | None = None
        self.shard_keys: list[Keys] = []
        self.events = 0
        self.reloads = 0
        # The gate's time of the last event applied (how far behind the monitor is).
        self.last_event_ms = 0
        # Per shard: the last read filled its batch, more events are waiting.
        self._behind: dict[int, bool] = {}
        self._closing = False

    def close(self) -> None:
        self._closing = True

    @property
    def cursor(self) -> str | None:
        """The last stream id applied (one per shard, comma-separated); None before a load."""
        cursors = self.cursors
        return None if cursors is None else ",".join(cursors[index] for index in sorted(cursors))

    @property
    def behind(self) -> bool:
        return any(self._behind.values())

    async def run(self) -> None:
        backoff = RETRY_BACKOFF_S
        while not self._closing:
            try:
                if self.cursor is None:
                    await self._load()
                self._set_live(True)
                backoff = RETRY_BACKOFF_S
                await self._follow()
            except Exception as exc:
                self._set_live(False)
                if isinstance(exc, (RedisError, OSError)):
                    log.warning("monitor account feed lost (%s); resuming from %s", exc, self.cursor)
                else:
                    log.exception("monitor account feed failed; resuming from %s", self.cursor)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
        self._set_live(False)

    def lag_ms(self, now_ms: int) -> int:
        """How far behind the newest event the monitor is: 0 when it has read all there was."""
        if not self.behind or not self.last_event_ms:
            return 0
        return max(now_ms - self.last_event_ms, 0)

    def _set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self.on_live(live)

    async def _load(self) -> None:
        self.shard_keys = self.keys.shards(await account_shard_count(self.client, self.keys))
        cursors: dict[int, str] = {}
        count = 0
        for index, shard in enumerate(self.shard_keys):
            last = await self.client.xrevrange(shard.account_events, "+", "-", count=1)
            cursors[index] = last[0][0].decode() if last else "0-0"
            scan = 0
            while True:
                scan, rows = await self.client.hscan(shard.accounts, scan, count=SCAN_PAGE)
                for field, data in rows.items():
                    try:
                        stored = _stored.decode(data)
                        record = _snapshot.decode(stored.d)
                        self.columns.put(record.account_id, stored.v, record.balance, record.positions)
                        count += 1
                    except Exception as exc:  # one bad record must not stop the load
                        log.error("ignoring unreadable account record %r in Redis: %r", field[:100], exc)
                if not scan:
                    break
        self.cursors = cursors
        self._behind = {}
        if self.loaded.is_set():
            self.reloads += 1
        log.info("monitor loaded %d account records of %d shard(s) (following the account events from %s)", count,
                 len(self.shard_keys), self.cursor)
        self.loaded.set()
        self.on_accounts(np.arange(len(self.columns), dtype=np.int64))

    async def _follow(self) -> None:
        await follow_each(len(self.shard_keys), self._follow_shard)

    async def _follow_shard(self, index: int) -> None:
        stream = self.shard_keys[index].account_events
        while not self._closing and self.cursors is not None:
            cursor = self.cursors[index]
            # The trim check and the read in one transaction: no trim can fall between them.
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xrange(stream, "-", "+", count=1)
                pipe.xread({stream: cursor}, count=READ_COUNT)
                oldest, response = await pipe.execute()
            if self.cursors is None:  # another shard's stream was trimmed: all are read again
                return
            if cursor != "0-0" and oldest and _id(oldest[0][0]) > _id(cursor):
                log.warning("account events before %s were trimmed unread: reading the records again", oldest[0][0])
                self.cursors = None
                return
            if not response:
                # Nothing new: wait for the next event (what this read returns is read again above).
                await self.client.xread({stream: cursor}, count=1, block=BLOCK_MS)
                continue
            changed: list[int] = []
            self._behind[index] = any(len(entries) >= READ_COUNT for _, entries in response or ())
            for _, entries in response or ():
                for entry_id, fields in entries:
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self.cursors[index] = cursor
                    try:
                        event = _event.decode(fields[b"d"])
                        put = self.columns.put(event.account_id, int(fields[b"v"]), event.balance,
                                               event.positions)
                        self.last_event_ms = event.at_ms
                    except Exception as exc:  # one bad entry must not stop the feed
                        log.error("ignoring unreadable account event %s: %r", cursor, exc)
                        continue
                    self.events += 1
                    if put is not None:
                        changed.append(put)
            if changed:
                self.on_accounts(np.unique(np.array(changed, dtype=np.int64)))
