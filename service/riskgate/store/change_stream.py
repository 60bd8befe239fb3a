"""The change stream: every change published on the change channel is also appended, in the
same Lua call, to a capped stream (`{rg}:change_stream`), and the published message carries
the entry's id. A subscriber that lost its link resumes from the id of the last change it
applied instead of reading the whole book again.

Why the id rides in the message: the script appends and publishes atomically, and scripts run
one at a time, so messages arrive in stream-id order. After applying a message with id i, every
entry up to i has been applied (or was in the snapshot). Whatever the subscriber misses while
its link is down has an id above the last one it applied: reading the stream from there
(`XRANGE (last +`) gives exactly what it missed. Re-applying an entry is harmless (records are
versioned), so the pub/sub backlog that overlaps the catch-up costs nothing but time.

A resume is allowed only when the data the state was loaded from is still there:

- the same Redis: `run_id` and `master_replid` unchanged (a restart, even from AOF, may have lost
  its tail; a failover replaced the data; either way the write-back of what Redis lost needs the
  full reload's comparison of owned records), and
- the entry with the last applied id is still in the stream: the stream was not trimmed past
  it, nor deleted (FLUSHALL) and started again.

Otherwise the caller falls back to the full (sliced) reload. An empty stream gets an `anchor`
entry at load (never applied), so there is always an entry to find again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from riskgate.store.codec import KIND_TYPES, decode_record

log = logging.getLogger(__name__)

# Entries kept (approximately): five minutes of mark ticks at 1,000 a second, the busiest
# change source. A link lost longer than what the cap holds falls back to a full reload.
CHANGE_STREAM_MAXLEN = 300_000
# Entries read per XRANGE of a catch-up: a reply is bounded whatever was missed.
CATCH_UP_PAGE = 1000
ANCHOR = b"anchor"

# Lua: appends a change to the stream and publishes it with the entry's id, in one call (the
# caller's script); with maxlen '0' (an account shard's own records, never replayed by others)
# it only publishes, without an id. Used by every script that publishes on the change channel: the gate's admin
# changes, the mark feed's batches and the monitor's actions.
PUBLISH_CHANGE_LUA = """
local function publish_change(stream, maxlen, channel, kind, v, record)
  if maxlen == '0' then
    redis.call('PUBLISH', channel, '{"k":"' .. kind .. '","v":' .. v .. ',"d":' .. record .. '}')
    return
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'k', kind, 'v', v, 'd', record)
  redis.call('PUBLISH', channel, '{"k":"' .. kind .. '","v":' .. v .. ',"i":"' .. id .. '","d":' .. record .. '}')
end
"""

# KEYS: the change stream. ARGV: maxlen. The id of its last entry; an empty (or missing) stream
# first gets an anchor entry, so the id read now can be found again on reconnect.
_POSITION_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then return last[1][1] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'k', 'anchor')
"""


def parse_id(entry_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamPosition:
    """Where a subscriber's state stands: the Redis it was loaded from (identity) and the id of
    the last change stream entry applied (every entry up to it is in the book)."""

    __slots__ = ("identity", "last", "last_key")

    def __init__(self, identity: str, last: str) -> None:
        self.identity = identity
        self.last = last
        self.last_key = parse_id(last)

    def advance(self, entry_id: str) -> None:
        """A change with this id was applied; ids below the last one (the pub/sub backlog that
        overlaps a snapshot or a catch-up) leave it where it is."""
        key = parse_id(entry_id)
        if key > self.last_key:
            self.last_key = key
            self.last = entry_id


async def redis_identity(client: aioredis.Redis, key: str) -> str:
    """run_id and master_replid of the node that holds `key` (the change stream): both change
    when the data may have been replaced (a restart, a failover, a node that became another's
    replica). "" when INFO is not allowed: no resume."""
    try:
        if isinstance(client, RedisCluster):
            # INFO has no key: a cluster client must be told which node; the stream's is the one.
            await client.initialize()  # the slot map (a no-op once known)
            node = client.get_node_from_key(key)
            server = await client.info("server", target_nodes=node)
            replication = await client.info("replication", target_nodes=node)
        else:
            async with client.pipeline(transaction=False) as pipe:
                pipe.info("server")
                pipe.info("replication")
                server, replication = await pipe.execute()
    except ResponseError as exc:
        log.warning("INFO not allowed by Redis (%s): every reconnect reloads the whole book", exc)
        return ""
    run_id = server.get("run_id", "")
    return f"{run_id}/{replication.get('master_replid', '')}" if run_id else ""


class ChangeStream:
    def __init__(self, client: aioredis.Redis, key: str, maxlen: int = CHANGE_STREAM_MAXLEN,
                 page: int = CATCH_UP_PAGE) -> None:
        self.client = client
        self.key = key
        self.maxlen = maxlen
        self.page = page
        self._position = client.register_script(_POSITION_SCRIPT)

    async def position(self) -> StreamPosition:
        """Read before a snapshot load starts (after the subscription is confirmed): every entry
        after it is either delivered on the subscription or replayed by a later catch-up."""
        identity = await redis_identity(self.client, self.key)
        last = await self._position(keys=[self.key], args=[self.maxlen])
        return StreamPosition(identity, _text(last))

    async def catch_up(self, position: StreamPosition, apply: Callable[[str, Any], None],
                       pause: Callable[[], Awaitable[None]]) -> tuple[int, str]:
        """Applies, in order, every entry after `position.last`, advancing it entry by entry (a
        catch-up cut short resumes from where it stopped). Returns (entries applied, "") or
        (-1, why the stream cannot be resumed from: reload instead). `pause` lets the event loop
        run (called before every entry; it yields only once a slice is used up)."""
        if not position.identity:
            return -1, "Redis's identity is unknown (INFO not allowed)"
        identity = await redis_identity(self.client, self.key)
        if identity != position.identity:
            return -1, "Redis is not the one the state was loaded from (restarted, failed over or replaced)"
        applied = 0
        while True:
            # Every page starts at the entry last applied, which must still be there: nothing
            # after it was trimmed or lost, before this catch-up or between two of its pages (a
            # busy stream trims its head while a gate near it reads on).
            rows = await self.client.xrange(self.key, min=position.last, max="+", count=self.page + 1)
            if not rows or _text(rows[0][0]) != position.last:
                return -1, f"the change stream no longer holds entry {position.last} (trimmed or lost)"
            rows = rows[1:]
            if not rows:
                break
            for raw_id, fields in rows:
                await pause()
                entry_id = _text(raw_id)
                kind = _text(fields.get(b"k", b""))
                if kind in KIND_TYPES:
                    try:
                        apply(kind, decode_record(kind, fields[b"d"], int(fields[b"v"])))
                    except Exception as exc:  # one bad entry must not stop the catch-up
                        log.error("ignoring unreadable change stream entry %s: %r", entry_id, exc)
                elif kind != _text(ANCHOR):
                    log.error("ignoring change stream entry %s of unknown kind %r", entry_id, kind[:50])
                position.advance(entry_id)
                applied += 1
            if len(rows) < self.page:
                break
        return applied, ""
