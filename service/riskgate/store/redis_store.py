"""Keeps the book and Redis in step.

- Start: subscribe to the change channel *before* loading the snapshot, so no change made
  in between is missed; versions make re-applying harmless.
- Admin changes: one Lua script stores the record under the next version, publishes it and
  appends its audit entry, or does nothing at all when the caller's deadline has passed by
  Redis's clock. Only then is the change applied to the book, by the writer task itself, so
  nothing it writes later can carry older state.
- Reservations, fill-moved accounts and audit entries of reads and refusals: queued on the
  hot path and written behind it in batches (one MULTI each, all or nothing) by the same
  writer task, in order.
- Freshness: every answered round trip (ping, change-feed pong, write) moves the book's
  `fresh_until` forward from the moment it was *sent*; checks compare it with their own
  clock, so the bound holds for a dead, hung or slow Redis alike.
- Stop: the background tasks end by themselves once told to (they do not depend on a
  cancellation arriving: Python 3.11's `asyncio.wait_for`, used inside redis-py, can drop
  one); the writer drains what is dirty first. Every wait is bounded, and what did not
  finish is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from riskgate import logs
from riskgate.book.flow import FlowBatch
from riskgate.book.specs import ExecutionSpec, ReservationSpec
from riskgate.book.state import Book, Reservation, ensure_account
from riskgate.engine.ledger import (
    align_leverage,
    apply_account_record,
    execution_spec,
    expire_executions,
    journal_from,
    rebalance,
    restore,
    verify,
)
from riskgate.engine.spec_rules import MAX_LEVERAGE
from riskgate.store.change_stream import (
    CHANGE_STREAM_MAXLEN,
    PUBLISH_CHANGE_LUA,
    ChangeStream,
    StreamPosition,
    redis_identity,
)
from riskgate.store.codec import APPLIERS, decode_change_with_id, decode_stored, encode
from riskgate.store.decision_counts import batch_fields, day_of
from riskgate.store.keys import SHARD_KINDS, Keys, order_field
from riskgate.values.codes import Side

log = logging.getLogger(__name__)

# Every versioned write first lifts the counter to the highest version the writer has seen
# (its floor): a Redis that lost its tail (AOF everysec, failover to a lagging replica) can
# then never hand out a version older than one already applied.
_LIFT_SEQ = """
local floor = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[1]) or '0') < floor then redis.call('SET', KEYS[1], floor) end
"""

# One writer per account: each process holds its shard's writer lease, and every script that
# writes state first checks it still does, so a process that lost it (paused past its lease,
# or started beside another on the same shard) can never write over the one that holds it.
LEASE_LOST = "RGLEASE"


def _fenced(lease_key: str, token_arg: str) -> str:
    return (f"if redis.call('GET', {lease_key}) ~= {token_arg} then return redis.error_reply("
            f"'{LEASE_LOST} this process no longer holds its shard writer lease') end\n")


# Admin changes (_PUT_SCRIPT, _RELEASE_SCRIPT) share one layout.
# KEYS: seq, record hash, audit stream, outcome key, writer lease, change stream: all of one
# hash tag, the global one for global records, the shard's (its counter, audit, outcome, lease
# copy) for its accounts and reservations (RedisStore._change_keys). Only global records go to
# the change stream (its maxlen '0' for the others: published without an entry).
# ARGV: 1 version floor, 2 field, 3 record, 4 channel, 5 kind, 6 'nx' or '', 7 deadline (ms
# since epoch by Redis's clock, 0 = none), 8 audit maxlen, 9 outcome expiry ms (0 = keep no
# outcome), 10 lease token, 11 expected version ('' = any; 0 = no record yet: compare-and-set,
# _PUT_SCRIPT only), 12 change stream maxlen, 13... audit field/value pairs.
# A published change is appended to the change stream in the same call (store/change_stream.py).
# Returns the new version; 0 when 'nx' found a record; -1 when the deadline had passed;
# {-2, stored version} when the stored record's version is not the expected one (nothing
# written; the caller audits the refusal). The
# outcome key holds the version for a while, so a change whose answer was lost can be told
# applied or not once the deadline has passed (after it, Redis refuses the change).
_DEADLINE_GUARD = """
local deadline = tonumber(ARGV[7])
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return -1 end
end
local v = redis.call('INCR', KEYS[1])
"""
_AUDIT_AND_OUTCOME = """
local entry = {}
for i = 13, #ARGV do entry[#entry + 1] = ARGV[i] end
entry[#entry + 1] = 'version'
entry[#entry + 1] = tostring(v)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(entry))
if tonumber(ARGV[9]) > 0 then redis.call('SET', KEYS[4], v, 'PX', ARGV[9]) end
return v
"""
_PUT_SCRIPT = _fenced("KEYS[5]", "ARGV[10]") + _LIFT_SEQ + PUBLISH_CHANGE_LUA + """
if ARGV[6] == 'nx' and redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end
if ARGV[11] ~= '' then
  local stored = redis.call('HGET', KEYS[2], ARGV[2])
  local current = 0
  if stored then current = tonumber(string.match(stored, '^{"v":(%d+),') or '-1') end
  if current ~= tonumber(ARGV[11]) then return {-2, current} end
end
""" + _DEADLINE_GUARD + """
redis.call('HSET', KEYS[2], ARGV[2], '{"v":' .. v .. ',"d":' .. ARGV[3] .. '}')
if ARGV[4] ~= '' then
  publish_change(KEYS[6], ARGV[12], ARGV[4], ARGV[5], v, ARGV[3])
end
""" + _AUDIT_AND_OUTCOME
# An operator's release of a reservation (record hash: the orders hash).
_RELEASE_SCRIPT = _fenced("KEYS[5]", "ARGV[10]") + _LIFT_SEQ + _DEADLINE_GUARD + """
redis.call('HDEL', KEYS[2], ARGV[2])
""" + _AUDIT_AND_OUTCOME
RELEASE = "release"
EXPIRED = -1
CONFLICT = -2
OUTCOME_EXPIRY_MS = 3_600_000

# KEYS: probe key, writer lease, shard layout, writer generation. ARGV: value, expiry ms,
# lease token, lease ms, shard count, the generation this process last saw while it held the
# lease. A write (so a Redis refusing writes fails it) that renews the writer lease and returns
# Redis's clock (against which admin deadlines are set), whether the lease held, and the
# generation. A lease that lapsed (Redis away, this process paused) is taken back only if no
# process took any lease afresh meanwhile (the generation, the token of the last one that did,
# is unchanged, or was lost with Redis's data together with every lease) and no live process
# uses another shard count.
_PROBE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local held = 0
local holder = redis.call('GET', KEYS[2])
local layout = redis.call('GET', KEYS[3])
local generation = redis.call('GET', KEYS[4])
if holder == ARGV[3] then
  held = 1
elseif not holder and (not layout or layout == ARGV[5]) and (not generation or generation == ARGV[6]) then
  if not generation then redis.call('SET', KEYS[4], ARGV[6]) end
  held = 1
end
if held == 1 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[4])
  generation = redis.call('GET', KEYS[4])
end
local t = redis.call('TIME')
return {t[1], t[2], held, generation or ''}
"""
# KEYS: writer lease, shard layout, writer generation, account shards (the layout the accounts
# are stored under, kept). ARGV: token, lease ms, shard count.
# Returns {1, generation} when held (taken afresh: the generation becomes this token), {0} when
# another process holds it, {-1} when processes with another shard count are live.
_ACQUIRE_SCRIPT = """
local layout = redis.call('GET', KEYS[2])
if layout and layout ~= ARGV[3] then return {-1, ''} end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return {0, ''} end
if not holder then redis.call('SET', KEYS[3], ARGV[1]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[3]) end
return {1, redis.call('GET', KEYS[3])}
"""
# The shard-tagged copy of the writer lease (KEYS: it. ARGV: token, lease ms, 'take' or ''),
# what the shard's own scripts are fenced by (on Redis Cluster they cannot read the global
# lease: another slot). Set only by a process that has just taken or renewed the global lease:
# 'take' (it took the global lease) overwrites whoever held the copy (that process has lost the
# global lease already, and this one loads only after the overwrite, so whatever the other
# wrote before it is read); a renewal sets it only when it still holds it or nobody does, so a
# renewal that arrives late, after a successor took over, can never take it back.
_SHARD_LEASE_SCRIPT = """
local holder = redis.call('GET', KEYS[1])
if ARGV[3] == 'take' or not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""
# How often a start looks again for a lease another process holds, and how much longer than
# two lease periods it waits before giving up.
LEASE_RETRY_S = 0.1
LEASE_WAIT_EXTRA_S = 1.0

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
# the next version), reservation upserts and deletes, the batch's order flow and decision
# counts. Per-command overhead in the client, not Redis, is what write-behind costs the event loop.
# KEYS (all in the shard's hash tag): the shard's version counter, accounts, orders,
# executions, the shard's copy of the writer lease, account-event stream, order-flow stream,
# order-flow number of this process, the decision-count hash of the batch's UTC day.
# ARGV: 1 version floor, 2 lease token, 3 event stream max length, 4 order-flow batch number
# (0 = none in this call), 5 its stream entry ('' = none: the batch counted only decisions),
# 6 flow stream max length, 7 how long the flow number is kept (ms), 8 how long the day's
# decision counts are kept (ms), then: n decision counts (field, count); n accounts and their
# (id, record, event) triples; n reservation upserts (field, record); n reservation deletes;
# n execution upserts (key, record); n execution deletes.
# The stream entry and the decision counts land together, only when the batch number is new
# (HINCRBY one field at a time: no unpack, however many fields).
# Returns {versions of the accounts, flow}: flow 1 = appended, 0 = that batch number was
# appended before (an earlier answer was lost: not appended again), -1 = none in this call.
_FLUSH_SCRIPT = _fenced("KEYS[5]", "ARGV[2]") + _LIFT_SEQ + """
local flow = -1
local number = tonumber(ARGV[4])
local decisions = tonumber(ARGV[9])
if number > 0 then
  flow = 0
  if tonumber(redis.call('GET', KEYS[8]) or '0') < number then
    if ARGV[5] ~= '' then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[6], '*', 'd', ARGV[5])
    end
    for k = 10, 9 + 2 * decisions, 2 do
      redis.call('HINCRBY', KEYS[9], ARGV[k], ARGV[k + 1])
    end
    if decisions > 0 then redis.call('PEXPIRE', KEYS[9], ARGV[8]) end
    redis.call('SET', KEYS[8], number, 'PX', ARGV[7])
    flow = 1
  end
end
local i = 10 + 2 * decisions
local versions = {}
local accounts = tonumber(ARGV[i]); i = i + 1
for k = 1, accounts do
  local v = redis.call('INCR', KEYS[1])
  redis.call('HSET', KEYS[2], ARGV[i], '{"v":' .. v .. ',"d":' .. ARGV[i + 1] .. '}')
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[3], '*', 'a', ARGV[i], 'v', v, 'd', ARGV[i + 2])
  versions[k] = v
  i = i + 3
end
local function pairs_into(key)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then redis.call('HSET', key, unpack(ARGV, i, i + 2 * n - 1)) end
  i = i + 2 * n
end
local function fields_out_of(key)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then redis.call('HDEL', key, unpack(ARGV, i, i + n - 1)) end
  i = i + n
end
pairs_into(KEYS[3])
fields_out_of(KEYS[3])
pairs_into(KEYS[4])
fields_out_of(KEYS[4])
return {versions, flow}
"""
# Keeps each script call's unpack() far below Lua's C-stack limit.
FLUSH_CHUNK = 1000

_reservation_encoder = msgspec.json.Encoder(decimal_format="string")
_reservation_decoder = msgspec.json.Decoder(ReservationSpec)
_execution_encoder = msgspec.json.Encoder(decimal_format="string")
_execution_decoder = msgspec.json.Decoder(ExecutionSpec)
_flow_encoder = msgspec.json.Encoder(decimal_format="string")
# How long Redis keeps the number of the last order-flow batch a process appended: far longer
# than any retry of a batch (or a late run of one queued in a hung Redis) can come.
FLOW_NUMBER_EXPIRY_MS = 24 * 3_600_000
RETRY_BACKOFF_S = 0.05
MAX_RETRY_BACKOFF_S = 1.0
SEED_BATCH = 500
# Loading the state: HSCAN pages of about this many fields (no reply proportional to the book),
# decoding at most this long (s) before the event loop answers calls again, a progress line
# every this many records, and the longest wait between two attempts after a failed load.
LOAD_SCAN_COUNT = 2000
# A reload runs while orders are answered, and an answer takes several turns of the event loop
# (each waiting out one slice), so its slice is short: 4 ms slices queued answers for ~100 ms at
# 100k accounts. A first load answers nothing but health and refusals: longer slices load faster.
LOAD_SLICE_S = 0.0005
# How often the subscriber, waiting for a change, looks whether a reload was asked for.
RELOAD_POLL_S = 0.1
FIRST_LOAD_SLICE_S = 0.02
LOAD_PROGRESS_EVERY = 200_000
MAX_LOAD_BACKOFF_S = 2.0
# How long start() waits for the first snapshot before giving up.
LOAD_TIMEOUT_S = 120.0
PROBE_EXPIRY_MS = 60_000
# How long past a lost change's deadline before its outcome is read: Redis refuses it by then.
RESOLVE_MARGIN_MS = 100
# Audit entries of reads and refusals wait in memory while Redis is away; past this many the
# oldest are dropped and counted (the count is itself audited once Redis is back).
AUDIT_BACKLOG_MAX = 100_000
AUDIT_BACKLOG_MAX_BYTES = 64 * 1024 * 1024
AUDIT_BATCH = 500
# How long a stop waits for the writer to drain, and then for any task to end once cancelled.
DRAIN_TIMEOUT_S = 5.0
CANCEL_TIMEOUT_S = 1.0


# Reads of the audit stream (ListAuditEvents): chunks of this many entries, at most this many
# entries per call, and how far before `since` the stream is read (write-behind lag).
AUDIT_SCAN_CHUNK = 500
AUDIT_SCAN_MAX = 10_000
AUDIT_SINCE_SLACK_MS = 300_000


class _LoadStopped(Exception):
    """A stop began while the state was being loaded: the load ends where it is."""


class _ReloadRequested(Exception):
    """The health round found the shard's node replaced: the subscriber reloads in full."""


class StoreUnavailable(RuntimeError):
    """Redis did not confirm the change; it was not applied anywhere."""


class StoreExpired(StoreUnavailable):
    """The caller's deadline passed before Redis took the change; it was not applied."""


class VersionConflict(RuntimeError):
    """Compare-and-set refused: the stored record's version is not the one the caller read.
    Nothing was written; the refusal is audited."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected version {expected}, but the stored record is at version {current}"
                         if current else f"expected version {expected}, but there is no stored record")
        self.expected = expected
        self.current = current


class StoreUnconfirmed(StoreUnavailable):
    """Redis's answer was lost: the store finds out once the deadline has passed and audits
    "resolved: applied" or "resolved: not applied" (and applies it to the book if it was)."""


class _AdminChange:
    __slots__ = ("apply", "audit", "change_id", "deadline_ms", "expected_version", "field", "future", "kind",
                 "record")

    def __init__(self, kind: str, field: str, record: msgspec.Struct | None, audit: dict[str, str],
                 apply: Callable[[Any], bool], deadline_ms: int, expected_version: int | None = None) -> None:
        self.expected_version = expected_version
        self.kind = kind
        self.field = field
        self.record = record
        self.audit = audit
        self.apply = apply
        self.deadline_ms = deadline_ms
        self.change_id = uuid.uuid4().hex
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class RedisStore:
    def __init__(self, client: aioredis.Redis, book: Book, keys: Keys, stale_after_ms: int,
                 audit_maxlen: int, write_behind_ms: float = 0.0, events_maxlen: int = 1_000_000,
                 on_health: Callable[[bool], None] | None = None, flow_maxlen: int = 1_000_000,
                 decision_counts_retention_days: int = 35, lease_token: str | None = None,
                 change_stream_maxlen: int = CHANGE_STREAM_MAXLEN, resume: bool = True) -> None:
        self.client = client
        self.book = book
        self.keys = keys
        self.stale_after_s = stale_after_ms / 1000
        self.audit_maxlen = audit_maxlen
        self.events_maxlen = events_maxlen
        self.flow_maxlen = flow_maxlen
        self.decision_counts_retention_ms = decision_counts_retention_days * 86_400_000
        self.write_behind_s = write_behind_ms / 1000
        self.on_health = on_health
        self.change_stream_maxlen = change_stream_maxlen
        # False: every reconnect reloads the whole book (e.g. while processes that do not append
        # to the change stream still write: a rolling upgrade from an older version).
        self.resume = resume
        self.change_stream = ChangeStream(client, keys.change_stream, change_stream_maxlen)
        # Where the book stands in the change stream (None: unknown, the next reconnect reloads
        # in full); a reconnect to the same Redis resumes from it instead of reloading.
        self._position: StreamPosition | None = None
        self._put = client.register_script(_PUT_SCRIPT)
        self._flush = client.register_script(_FLUSH_SCRIPT)
        self._raise_seq = client.register_script(_RAISE_SEQ_SCRIPT)
        self._probe = client.register_script(_PROBE_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._acquire = client.register_script(_ACQUIRE_SCRIPT)
        self._release_lease = client.register_script(_RELEASE_LEASE_SCRIPT)
        self._shard_lease = client.register_script(_SHARD_LEASE_SCRIPT)
        # Loaded into every master's script cache (redis-py sends SCRIPT LOAD to every primary
        # of a cluster) before any pipeline uses them: a cluster pipeline,
        # unlike a plain one, does not load them itself, and an EVALSHA that finds no script
        # inside a MULTI fails alone while the rest of the MULTI runs. Loaded again after a
        # NOSCRIPT (a node restarted without its cache).
        self._scripts_loaded = False
        # The global keys, and this process's shard's own (its hash tag).
        keys = keys.shard(book.shard_index, book.shard_count)
        self.keys = keys
        # The global writer lease (global records: symbols, marks, breakers, controls) and its
        # shard-tagged copy (this shard's accounts, reservations, executions, streams).
        self.lease_key = keys.writer_lease(book.shard_index, book.shard_count)
        self.shard_lease_key = keys.shard_lease
        self.lease_token = lease_token or uuid.uuid4().hex
        self._flow_written_key = keys.order_flow_written(self.lease_token)
        # Order flow: the number of the last batch taken, and the flow of one not yet confirmed
        # by Redis (sent again as it is, under its number, until it is).
        self._flow_number = 0
        self._flow_unsent: _UnsentFlow | None = None
        # Longer than the staleness bound: while this process counts its state fresh its lease
        # is still live, so a successor only takes over once this one already fails closed.
        self.lease_ms = max(2 * stale_after_ms, 1000)
        # The token of the last process that took any writer lease afresh, as this process saw
        # it while holding its own: a takeover while it was away changes it.
        self.lease_generation = ""
        self._lease_renewed_at = 0.0
        self.lease_lost = False
        self._audit_backlog_bytes = 0
        # Set when a stop begins: executions waiting for their batch are answered at once (the
        # stop's drain writes them), since a stop cuts off calls still waiting.
        self._waiters_released = False
        self._batch_barriers: list[asyncio.Future[bool]] = []  # those of the batch in flight
        # Redis's clock minus ours (ms), and how unsure that is (half the probe's round trip).
        self._clock_offset_ms = 0
        self._clock_uncertainty_ms = 0
        self._admin_queue: deque[_AdminChange] = deque()
        self._audit_backlog: deque[dict[str, str]] = deque()
        self.audit_dropped = 0
        # Refused calls over their audit rate: counted, and the count is audited.
        self.audit_suppressed = 0
        self._barriers: list[asyncio.Future[bool]] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pubsub: PubSub | None = None
        # Send times of change-feed pings not yet answered, oldest first.
        self._pubsub_pings: deque[float] = deque()
        self._pubsub_proven = 0.0
        self._pong = asyncio.Event()
        self._write_failing_since: float | None = None
        # Admin changes whose answer was lost: resolved from their outcome keys.
        self._unresolved: list[_AdminChange] = []
        # Send time of the batch now awaiting Redis's answer: nothing after it is proven.
        self._inflight_since: float | None = None
        self._drain_deadline = float("inf")
        # The highest versions seen: of global records (the global counter) and of this shard's
        # accounts (its own counter). Every versioned write lifts its counter to its floor.
        self._max_version = 0
        self._max_shard_version = 0
        self._repairs: set[asyncio.Task[None]] = set()
        self._loaded_once = asyncio.Event()
        # The snapshot load in progress: what it reads now, records read, when it began, when
        # the last progress line was written, when it last let the event loop run.
        self._loading = False
        self._load_where = ""
        self._load_read = 0
        self._load_logged = 0
        self._load_began = 0.0
        self._slice_began = 0.0
        self._slice_s = FIRST_LOAD_SLICE_S
        self.load_failures = 0
        self.loads_done = 0  # full (snapshot) loads
        # Open orders the last load found in Redis for this shard (the start-up log line's count:
        # summing over a million accounts there would stall the loop once serving).
        self.loaded_orders = 0
        # Reconnects that caught up from the change stream, the entries they applied, and the
        # last reason one could not (and reloaded in full instead).
        self.resumes_done = 0
        self.changes_replayed = 0
        self.resume_refused = ""
        # The identity (run_id/master_replid) of the Redis node that holds this shard's keys, as
        # the last full load read it. On a cluster that node is usually not the one holding the
        # change stream and the subscription: its failover to a replica that missed the last
        # batches, or its restart from an AOF that lost its tail, breaks neither, so the health
        # round compares it and asks for a reload (with its write-back) when it changed.
        self._shard_identity = ""
        self._reload_requested = ""
        self._closing = False
        self._serving_reported: bool | None = None
        # For metrics (riskgate.telemetry): batches Redis did not confirm, version-counter
        # repairs, when Redis last answered a health round, and when the last batch Redis
        # confirmed was taken (whatever waits now was queued after it).
        self.flush_failures = 0
        self.version_repairs = 0
        self.last_proven_at = 0.0
        self._confirmed_taken_at = time.monotonic()
        book.on_dirty = self._wake.set

    # ---- lifecycle -------------------------------------------------------------------

    async def _load_scripts(self) -> None:
        if self._scripts_loaded:
            return
        for script in (self._put, self._flush, self._raise_seq, self._probe, self._release, self._acquire,
                       self._release_lease, self._shard_lease):
            await self.client.script_load(script.script)
        self._scripts_loaded = True

    async def start(self) -> None:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S * 2):
            await self.client.ping()
            await self._load_scripts()
        await self._acquire_lease()
        self._tasks = [
            asyncio.create_task(self._subscriber(), name="riskgate-subscriber"),
            asyncio.create_task(self._writer(), name="riskgate-writer"),
            asyncio.create_task(self._health(), name="riskgate-health"),
        ]
        loaded = asyncio.ensure_future(self._loaded_once.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            # A stop during the first load ends it (the subscriber returns): start gives up at once.
            await asyncio.wait({loaded, stopping}, timeout=LOAD_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loaded.cancel()
            stopping.cancel()
        if not self._loaded_once.is_set():
            if self._stopping.is_set():
                raise StoreUnavailable("stopped before the state was loaded from Redis")
            raise StoreUnavailable(f"state not loaded from Redis within {LOAD_TIMEOUT_S:.0f} s")
        # Orders are answered the moment start returns: prove the link once now, rather than
        # refusing risk until the health task's first round.
        await self.prove()

    async def prove(self) -> None:
        """Proves the link now, bounded: the state counts fresh for the staleness bound from
        this moment. For a caller that stalled the event loop after start (past the bound, that
        proof is spent) and is about to answer calls."""
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S * 2):
            await self._prove_link()

    async def _acquire_lease(self) -> None:
        """Becomes the one writer of this process's shard, waiting (bounded) while another
        process holds it: a predecessor stopping, or the lease of one that died lapsing."""
        book = self.book
        await self._refuse_stale_layout()
        deadline = time.monotonic() + self.lease_ms / 1000 * 2 + LEASE_WAIT_EXTRA_S
        while True:
            sent = time.monotonic()
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S * 2):
                outcome, generation = await self._acquire(
                    keys=[self.lease_key, self.keys.shard_layout, self.keys.writer_generation,
                          self.keys.account_shards],
                    args=[self.lease_token, self.lease_ms, book.shard_count])
                held = int(outcome)
                if held == 1:
                    # The shard's copy, before anything of the shard is read: a predecessor's
                    # writes are refused from here on.
                    await self._shard_lease(keys=[self.shard_lease_key], args=[self.lease_token, self.lease_ms, "take"])
            if held == 1:
                self.lease_generation = _text(generation)
                self._lease_renewed_at = sent
                return
            if held == -1:
                layout = await self.client.get(self.keys.shard_layout)
                raise StoreUnavailable(f"riskgate processes with shard_count {layout!r} write to this Redis: every "
                                       f"process must use the same shard_count (this one: {book.shard_count})")
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"{book.shard_label} is written by another riskgate process (its writer lease "
                                       f"{self.lease_key} is held): stop it first, or give this process another "
                                       "shard_index")
            await asyncio.sleep(LEASE_RETRY_S)

    async def _refuse_stale_layout(self) -> None:
        """Accounts live under their layout's shard tags. When the last gates used another
        shard_count, this shard's own keys, if they hold anything, are what an earlier use of
        this shard_count left there, older than what the other layout wrote since: loading them
        would grant margin on stale balances. Refused (fail closed) until they are migrated or
        deleted. Empty keys are fine: the accounts of the other layout are simply not here
        (changing shard_count moves no data: README "Redis Cluster and per-shard keys")."""
        keys = self.keys
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S * 2):
            stored = await self.client.get(keys.account_shards)
            if stored is None or _text(stored) == str(self.book.shard_count):
                return
            held = [key for key in (keys.accounts, keys.orders, keys.executions) if await self.client.exists(key)]
        if held:
            raise StoreUnavailable(
                f"the accounts were last written by gates with shard_count {_text(stored)}, but this shard's keys "
                f"({', '.join(held)}) hold state from an earlier use of shard_count {self.book.shard_count}, older "
                "than theirs: migrate or delete it before starting with this shard_count")

    def _lose_lease(self, why: str) -> None:
        if not self.lease_lost:
            log.critical("%s: lost its writer lease, %s; failing closed and writing nothing more",
                         self.book.shard_label, why)
        self.lease_lost = True
        self.book.fresh_until = 0.0
        self.book.unavailable_cause = "another process holds this shard's writer lease"

    def pending_writes(self) -> bool:
        """Whether anything acknowledged is not yet in Redis (the batch in flight included)."""
        book = self.book
        return bool(book.dirty_accounts or book.dirty_orders or book.dirty_executions or book.expired_executions
                    or book.flow.pending() or self._flow_unsent is not None
                    or self._admin_queue or self._audit_backlog
                    or self.audit_dropped or self.audit_suppressed or self._inflight_since is not None)

    async def close(self, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> list[str]:
        """Drains write-behind, then ends the background tasks; never waits longer than the
        bounds. Returns what did not finish (empty when everything was written and stopped)."""
        self._drain_deadline = time.monotonic() + drain_timeout_s
        self._closing = True
        self._stopping.set()
        self._wake.set()
        unfinished: list[str] = []
        writer = self._tasks[1] if len(self._tasks) > 1 else None
        if writer is not None:
            # The writer bounds its own attempts by the drain deadline and then ends.
            await asyncio.wait({writer}, timeout=drain_timeout_s + CANCEL_TIMEOUT_S)
        pending = {task for task in self._tasks if not task.done()}
        for task in pending:
            task.cancel()
        if pending:
            _, still = await asyncio.wait(pending, timeout=CANCEL_TIMEOUT_S)
            # A task still running here absorbed its cancellation; it sees _closing and ends
            # at its next step. It is reported, never awaited without a bound.
            unfinished += [f"task {task.get_name()} did not end" for task in still]
        # Judged only now: a batch the cancellation interrupted has been put back by then.
        if self.pending_writes():
            book = self.book
            unfinished.append(f"write-behind not drained: {len(book.dirty_accounts)} accounts, "
                              f"{len(book.dirty_orders)} orders, {len(self._admin_queue)} admin changes, "
                              f"{len(self._audit_backlog)} audit entries, order flow of "
                              f"{len(book.flow.counts)} accounts, {len(book.flow.decisions)} decision counts"
                              + (", an order-flow entry unconfirmed" if self._flow_unsent is not None else "")
                              + (", a batch still in flight" if self._inflight_since is not None else ""))
        for change in self._admin_queue:
            _settle(change.future, StoreUnavailable("riskgate is stopping"))
        if self._unresolved:
            unfinished.append(f"{len(self._unresolved)} admin changes whose answer was lost are unresolved: "
                              "their outcome keys (and audit 'ok' entries) in Redis say whether they were applied")
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                unfinished.append(f"task {task.get_name()} failed: {task.exception()!r}")
        if self.lease_lost:
            unfinished.append("the writer lease was lost: what was not written is the successor's to recover")
        else:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(CANCEL_TIMEOUT_S):
                    # A successor need not wait for the lease to lapse.
                    await self._release_lease(keys=[self.lease_key], args=[self.lease_token])
                    await self._release_lease(keys=[self.shard_lease_key], args=[self.lease_token])
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await self.client.aclose()
        return unfinished

    async def _pause(self, seconds: float) -> None:
        """Sleeps, but wakes at once when the store is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # ---- writes ----------------------------------------------------------------------

    async def seed(self, records: list[tuple[str, str, msgspec.Struct]], actor: str) -> int:
        """Writes each (kind, field, record) only where Redis has none under field, and audits
        what it wrote. Each write is atomic on its own, so a crash mid-way leaves whole records.
        Returns how many were written."""
        await self._acquire_lease()  # every write is fenced by it, seeds included
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S * 2):
            await self._load_scripts()
        written = 0
        for start in range(0, len(records), SEED_BATCH):
            batch = records[start:start + SEED_BATCH]
            now_ms = str(time.time_ns() // 1_000_000)
            async with self.client.pipeline(transaction=False) as pipe:
                for kind, field, record in batch:
                    if kind in SHARD_KINDS and not self.book.owns(field):
                        continue  # its shard's process seeds it, under its shard's tag and lease
                    payload = encode(record)
                    audit = {"ts_ms": now_ms, "actor": actor, "action": f"seed_{kind}", "target": field,
                             "outcome": "ok", "request": payload.decode()}
                    await self._put(keys=self._change_keys(kind, self.keys.hash_for(kind), "seed"),
                                    args=[self._floor_of(kind), field, payload, self.keys.changes, kind, "nx", 0,
                                          self.audit_maxlen, 0, self.lease_token, "", self._stream_maxlen(kind),
                                          *_pairs(audit)],
                                    client=pipe)
                versions = await pipe.execute() if len(pipe) else []
            written += sum(1 for version in versions if int(version) > 0)
        return written

    async def commit(self, kind: str, field: str, record: msgspec.Struct | None, audit: dict[str, str],
                     apply: Callable[[Any], bool], deadline_ms: int = 0, expected_version: int | None = None
                     ) -> Any:
        """Stores, publishes and audits one admin change; applies it once Redis has it.

        deadline_ms (wall clock, 0 = none): Redis refuses the change past it, so a caller that
        has given up never finds it applied later. Returns the record with its new version.
        Raises StoreUnavailable (StoreExpired past the deadline) when Redis did not take it:
        then nothing changed anywhere. expected_version (None = any): compare-and-set on the
        stored record's version (0 = no record yet), checked by Redis in the same script that
        writes; VersionConflict when it differs (nothing written, the refusal audited).
        """
        if self._closing:
            raise StoreUnavailable("riskgate is stopping")
        if time.monotonic() > self.book.fresh_until:
            # Queueing behind a write that is already failing would only make the caller wait.
            raise StoreUnavailable(self.book.unavailable_message(time.monotonic()))
        change = _AdminChange(kind, field, record, audit, apply, deadline_ms, expected_version)
        self._admin_queue.append(change)
        self._wake.set()
        return await change.future

    def enqueue_audit(self, entry: dict[str, str]) -> None:
        """Queues an audit entry for the next batch: callers never wait on Redis for it. The
        backlog is bounded in entries and in bytes; past either, the oldest are dropped and
        counted."""
        entry = {"ts_ms": str(time.time_ns() // 1_000_000), **entry}
        self._audit_backlog.append(entry)
        self._audit_backlog_bytes += _entry_size(entry)
        while (len(self._audit_backlog) > AUDIT_BACKLOG_MAX
               or self._audit_backlog_bytes > AUDIT_BACKLOG_MAX_BYTES) and len(self._audit_backlog) > 1:
            self._audit_backlog_bytes -= _entry_size(self._audit_backlog.popleft())
            self.audit_dropped += 1
        self._wake.set()

    def wake(self) -> None:
        """Something new to write: the writer takes it with its next batch."""
        self._wake.set()

    def barrier(self) -> asyncio.Future[bool]:
        """Resolves True once everything dirty now has reached Redis (the next successful
        batch), or False when a stop releases its waiter first (not known to be in Redis)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters_released:
            future.set_result(False)
            return future
        self._barriers.append(future)
        self._wake.set()
        return future

    def release_waiters(self) -> None:
        """A stop has begun: callers waiting for their batch are answered now (False: not known
        to be in Redis), since the stop cuts off calls that are still waiting; the drain then
        writes what they were waiting for, if it can."""
        self._waiters_released = True
        for barrier in (*self._barriers, *self._batch_barriers):
            _settle(barrier, False)
        self._barriers.clear()

    async def _writer(self) -> None:
        while True:
            if self._closing and (not self.pending_writes() or time.monotonic() >= self._drain_deadline):
                return
            if self.lease_lost:
                # Nothing it holds may be written any more; its successor owns the accounts.
                if self._closing:
                    return
                await self._pause(1.0)
                continue
            if not self._closing:
                await self._wake.wait()
                if self.write_behind_s and not self._admin_queue and not self._closing:
                    # Gather the orders of the next few milliseconds into one round trip: one
                    # pipeline per order costs the hot path more event-loop time than the check.
                    await self._pause(self.write_behind_s)
            self._wake.clear()
            try:
                # While stopping, no attempt may outlast the drain deadline.
                async with asyncio.timeout(self._drain_deadline - time.monotonic() if self._closing else None):
                    flushed = await self._flush_once()
            except TimeoutError:
                log.error("write-behind batch not confirmed by Redis before the stop's drain deadline")
                flushed = False
                self._note_write_failure()
            except Exception:  # a dead writer would stop persistence while health stayed green
                log.exception("write-behind batch failed unexpectedly; retrying")
                flushed = False
                self._note_write_failure()
            if not flushed:
                if self._closing:  # _pause would not wait: the stop is what set its event
                    await asyncio.sleep(RETRY_BACKOFF_S)
                else:
                    await self._pause(RETRY_BACKOFF_S)
            if self.pending_writes() or self._barriers:
                # What arrived during the round trip waits for the next batch window rather
                # than going out at once in a batch of one or two.
                self._wake.set()

    def write_behind_depth(self) -> int:
        """Changes waiting for a write-behind batch (read by the metrics thread)."""
        book = self.book
        return (len(book.dirty_accounts) + len(book.dirty_orders) + len(book.dirty_executions)
                + len(book.expired_executions) + len(self._admin_queue) + len(self._audit_backlog)
                + (self._flow_unsent is not None or book.flow.pending()) + (self._inflight_since is not None))

    def write_behind_age_s(self) -> float:
        """At least the age of the oldest change not yet in Redis: the time since the last
        batch Redis confirmed was taken; 0 when nothing waits."""
        return max(0.0, time.monotonic() - self._confirmed_taken_at) if self.pending_writes() else 0.0

    def _note_write_failure(self) -> None:
        self.flush_failures += 1
        now = time.monotonic()
        if self._write_failing_since is None:
            self._write_failing_since = now
        book = self.book
        book.fresh_until = min(book.fresh_until, self._write_failing_since + self.stale_after_s)
        book.unavailable_cause = "Redis not taking writes"

    def _take_admin_change(self) -> _AdminChange | None:
        """The next change whose caller is still waiting and whose deadline has not passed."""
        now_ms = time.time_ns() // 1_000_000
        while self._admin_queue:
            change = self._admin_queue.popleft()
            if change.future.done():  # the caller gave up: never send it
                self.enqueue_audit({**change.audit, "outcome": "abandoned: caller gave up before Redis was asked"})
                continue
            if change.deadline_ms and now_ms > change.deadline_ms:
                self.enqueue_audit({**change.audit, "outcome": "expired: deadline passed before Redis was asked"})
                _settle(change.future, StoreExpired("deadline passed before Redis was asked: not applied"))
                continue
            return change
        return None

    async def _flush_once(self) -> bool:
        # A global record's change goes in a round trip of its own (_put_global), right after
        # the shard's batch of what was written before it: the order one MULTI kept, and a
        # steady flow of orders never holds a breaker change back more than one batch.
        global_next = bool(self._admin_queue) and self._admin_queue[0].kind not in SHARD_KINDS
        if not global_next:
            return await self._flush_batch(global_next=False)
        if self._shard_batch_waiting() and not await self._flush_batch(global_next=True):
            return False
        change = self._take_admin_change()
        if change is None:
            return True
        if change.kind in SHARD_KINDS:  # those before it were abandoned or expired
            self._admin_queue.appendleft(change)
            return True
        return await self._put_global(change)

    async def _flush_batch(self, global_next: bool) -> bool:
        """One write-behind batch (one MULTI in the shard's tag) and, unless a global change is
        next in the queue, the admin change of the shard's accounts at its head."""
        batch_taken_at = time.monotonic()
        book = self.book
        expire_executions(book, time.time_ns() // 1_000_000)
        accounts, book.dirty_accounts = book.dirty_accounts, set()
        orders, book.dirty_orders = book.dirty_orders, set()
        executions, book.dirty_executions = book.dirty_executions, {}
        forgotten, book.expired_executions = book.expired_executions, set()
        audits = [self._audit_backlog.popleft() for _ in range(min(AUDIT_BATCH, len(self._audit_backlog)))]
        self._audit_backlog_bytes -= sum(_entry_size(entry) for entry in audits)
        dropped, self.audit_dropped = self.audit_dropped, 0
        suppressed, self.audit_suppressed = self.audit_suppressed, 0
        barriers, self._barriers = self._barriers, []
        self._batch_barriers = barriers
        # At most one admin change per batch, last: everything serialised before it predates it.
        change = None if global_next else self._take_admin_change()
        if change is not None and change.kind not in SHARD_KINDS:
            # A global record's change goes alone (next batch): one MULTI stays in one slot.
            self._admin_queue.appendleft(change)
            change = None
        # Every version this batch takes lies above this one: the scripts lift the counter first.
        floor = self._max_shard_version
        # Order flow (the stream entry and the decision counts alike): what a failed batch left
        # unconfirmed goes again as it was, under its number (Redis appends a number once, so a
        # batch whose answer was lost after Redis ran it is not counted twice); new flow is taken
        # only once it is confirmed. Flow is never merged back: a batch may have landed even
        # though its answer did not come.
        flow = self._flow_unsent
        # Fills reported before this batch whose flow it does not carry: their acknowledgements
        # wait for the next batch, so an acknowledged fill is in the stream.
        flow_left_behind = False
        if flow is None:
            taken = book.flow.take()
            if taken is not None:
                self._flow_number += 1
                account_counts, fills, decisions = taken
                at_ms = time.time_ns() // 1_000_000
                day, decision_fields = batch_fields(at_ms, decisions)
                # A batch that only counted decisions (of accounts this process does not hold,
                # say) adds no entry to the stream: the monitor's readers see what they did.
                entry = (_flow_encoder.encode(FlowBatch.of(at_ms, book.shard_index, account_counts, fills))
                         if account_counts or fills else b"")
                flow = self._flow_unsent = _UnsentFlow(self._flow_number, entry,
                                                       self.keys.decision_counts(day), decision_fields)
        else:
            flow_left_behind = bool(book.flow.fills)
        counts = 0  # entries for what was counted, not audited one by one: last in `audits`
        if dropped:
            counts += 1
            audits.append({"ts_ms": str(time.time_ns() // 1_000_000), "actor": "riskgate",
                           "action": "audit_backlog_overflow", "target": "", "outcome": "dropped",
                           "request": f"{dropped} audit entries dropped while Redis was away"})
        if suppressed:
            counts += 1
            audits.append({"ts_ms": str(time.time_ns() // 1_000_000), "actor": "riskgate",
                           "action": "audit_rate_limited", "target": "", "outcome": "suppressed",
                           "request": f"{suppressed} refused calls over the audit rate not audited one by one"})
        answered = False
        try:
            snapshots: list[tuple[str, bytes, bytes]] = []
            now_ms = time.time_ns() // 1_000_000
            # An account whose open orders moved is written too: its event carries them.
            for account_id in accounts | {account_id for account_id, _ in orders}:
                account = book.accounts.get(account_id)
                if account is not None:
                    snapshots.append((account_id, encode(account.snapshot()), encode(account.event(now_ms))))
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
            await self._load_scripts()
            execution_rows = [(key, _execution_encoder.encode(spec)) for key, spec in executions.items()]
            forgotten_keys = list(forgotten)
            longest = max(len(snapshots), len(upserts), len(deletes), len(execution_rows), len(forgotten_keys),
                          1 if flow is not None else 0)
            flushes: list[tuple[list[str], list[Any]]] = []
            for start in range(0, longest, FLUSH_CHUNK):
                chunk = slice(start, start + FLUSH_CHUNK)
                # The flow entry and the decision counts ride with the first call (the one
                # that checks the batch number).
                first = flow if flow is not None and not start else None
                flushes.append(([self.keys.shard_seq, self.keys.accounts, self.keys.orders, self.keys.executions,
                                 self.shard_lease_key, self.keys.account_events, self.keys.order_flow,
                                 self._flow_written_key, first.day_key if first is not None else self._today_key()],
                                [floor, self.lease_token, self.events_maxlen, first.number if first is not None else 0,
                                 first.entry if first is not None else b"", self.flow_maxlen, FLOW_NUMBER_EXPIRY_MS,
                                 self.decision_counts_retention_ms,
                                 *_decision_args(first.decisions if first is not None else ()),
                                 *_flush_args(snapshots[chunk], upserts[chunk], deletes[chunk],
                                              execution_rows[chunk], forgotten_keys[chunk])]))
            calls = len(flushes)
            round_trip = bool(calls or audits or change is not None)
            sent = time.monotonic()
            if calls == 1 and not audits and change is None:
                # The usual batch under load: one script call, atomic by itself. Sent without
                # a MULTI around it, it costs the client half as much and skips the SCRIPT EXISTS
                # round trip a pipeline makes before every transaction with a script in it.
                keys, args = flushes[0]
                self._inflight_since = sent
                try:
                    try:
                        results = [await self.client.evalsha(self._flush.sha, len(keys), *keys, *args)]
                    except NoScriptError:
                        # Redis lost its scripts (a restart, a failover, SCRIPT FLUSH): all of them,
                        # so all are loaded again, for the MULTI batches too (a cluster pipeline
                        # does not load them). The script did not run: sending it again is safe.
                        self._scripts_loaded = False
                        await self._load_scripts()
                        results = [await self.client.evalsha(self._flush.sha, len(keys), *keys, *args)]
                finally:
                    self._inflight_since = None
            else:
                # One MULTI: a batch lands whole or not at all, so a crash can never keep a
                # reservation whose fill (in the same batch) was lost, nor the reverse.
                async with self.client.pipeline(transaction=True) as pipe:
                    for keys, args in flushes:
                        await self._flush(keys=keys, args=args, client=pipe)
                    for entry in audits:
                        pipe.xadd(self.keys.shard_audit, entry, maxlen=self.audit_maxlen, approximate=True)  # type: ignore[arg-type]
                    if change is not None:
                        script = self._release if change.kind == RELEASE else self._put
                        record_hash = self.keys.orders if change.kind == RELEASE else self.keys.hash_for(change.kind)
                        payload = encode(change.record) if change.record is not None else b""
                        audit = {"ts_ms": str(time.time_ns() // 1_000_000), **change.audit}
                        await script(keys=self._change_keys(change.kind, record_hash, change.change_id),
                                     args=[floor, change.field, payload, self.keys.changes, change.kind, "",
                                           self._redis_deadline(change.deadline_ms), self.audit_maxlen,
                                           OUTCOME_EXPIRY_MS, self.lease_token,
                                           "" if change.expected_version is None else str(change.expected_version),
                                           self._stream_maxlen(change.kind), *_pairs(audit)], client=pipe)
                    if round_trip:
                        self._inflight_since = sent
                        try:
                            results = await pipe.execute()
                        finally:
                            self._inflight_since = None
                    else:
                        results = []
            answered = True
        except BaseException as exc:
            # Whatever stops this batch (a Redis error, a cancellation mid-flight, a record
            # that will not serialise) puts it back: each batch is serialised afresh from the
            # book, so writing it again is harmless.
            if not answered:
                book.dirty_accounts |= accounts
                book.dirty_orders |= orders
                book.dirty_executions = {**executions, **book.dirty_executions}
                book.expired_executions |= forgotten - set(book.executions)
                restored = audits[:len(audits) - counts]
                self._audit_backlog.extendleft(reversed(restored))
                self._audit_backlog_bytes += sum(_entry_size(entry) for entry in restored)
                self.audit_dropped += dropped
                self.audit_suppressed += suppressed
                if self._waiters_released:
                    for barrier in barriers:
                        _settle(barrier, False)
                else:
                    self._barriers[:0] = barriers
                if change is not None:
                    self._unconfirmed(change, exc)
            if not isinstance(exc, (RedisError, OSError)):
                raise
            if "NOSCRIPT" in str(exc) or "No matching script" in str(exc):
                self._scripts_loaded = False
            if LEASE_LOST in str(exc):
                # Lapsed while Redis was away, or taken: the next health round tells which.
                log.warning("write refused: the writer lease is not held at the moment")
            log.warning("write to Redis failed (%s); will retry", exc)
            self._note_write_failure()
            return False
        if round_trip:
            self._write_failing_since = None
            self._proven(sent)
        versions: list[int] = []
        for chunk_versions, flow_outcome in results[:calls]:
            versions.extend(int(v) for v in chunk_versions)
            if int(flow_outcome) == 0:
                log.warning("order-flow batch %d was already in Redis (the answer to an earlier send was lost): "
                            "not appended again", flow.number if flow is not None else 0)
        if flow is not None:
            self._flow_unsent = None
        for (account_id, _, _), version in zip(snapshots, versions, strict=True):
            account = book.accounts.get(account_id)
            if account is not None:
                account.snapshot_version = max(account.snapshot_version, version)
        if versions:
            self._max_shard_version = max(self._max_shard_version, *versions)
        if flow_left_behind and not self._waiters_released:
            self._barriers[:0] = barriers
        else:
            for barrier in barriers:
                _settle(barrier, True)
        if change is not None:
            self._finish_change(change, results[-1])
        self._confirmed_taken_at = batch_taken_at
        return True

    def _shard_batch_waiting(self) -> bool:
        """Whether anything but admin changes waits for the shard's write-behind batch."""
        book = self.book
        return bool(book.dirty_accounts or book.dirty_orders or book.dirty_executions or book.expired_executions
                    or book.flow.pending() or self._flow_unsent is not None or self._audit_backlog
                    or self.audit_dropped or self.audit_suppressed or self._barriers)

    def _unconfirmed(self, change: _AdminChange, exc: BaseException) -> None:
        """The call carrying the change may or may not have run. Once its deadline has passed
        Redis will never run it, and its outcome key says whether it did: resolved then."""
        self._unresolved.append(change)
        self.enqueue_audit({**change.audit, "outcome": f"unconfirmed: {exc!r}; riskgate resolves "
                            "it once Redis answers and the deadline has passed"})
        _settle(change.future, StoreUnconfirmed(
            f"Redis did not confirm the change ({exc!r}): riskgate finds out once Redis answers and "
            "audits 'resolved: applied' or 'resolved: not applied'; read the state back before "
            "retrying"))

    def _change_keys(self, kind: str, record_hash: str, change_id: str) -> list[str]:
        """KEYS of _PUT_SCRIPT/_RELEASE_SCRIPT: an account's or reservation's change in the
        shard's tag (its counter, audit stream, outcome key and lease copy), any other in the
        global tag. Either way one slot."""
        keys = self.keys
        if kind in SHARD_KINDS:
            # Not appended to the (global) change stream: only the owning process holds these
            # records, and it applies its own changes itself. The sixth key is never written
            # (its maxlen is 0) but must be of the same slot.
            return [keys.shard_seq, record_hash, keys.shard_audit, keys.shard_outcome(change_id),
                    self.shard_lease_key, record_hash]
        return [keys.seq, record_hash, keys.audit, keys.outcome(change_id), self.lease_key, keys.change_stream]

    def _stream_maxlen(self, kind: str) -> int:
        """The change stream's cap for a change of `kind`; 0: published without an entry."""
        return 0 if kind in SHARD_KINDS else self.change_stream_maxlen

    def _floor_of(self, kind: str) -> int:
        return self._max_shard_version if kind in SHARD_KINDS else self._max_version

    async def _put_global(self, change: _AdminChange) -> bool:
        """A change of a global record (symbol, mark, breaker, controls), in a round trip of its
        own: its keys are in the global tag and a write-behind batch's in the shard's, and one
        MULTI cannot span two slots on Redis Cluster. Nothing else rides with it: a global
        record shares no atomicity with an account's batch."""
        payload = encode(change.record) if change.record is not None else b""
        audit = {"ts_ms": str(time.time_ns() // 1_000_000), **change.audit}
        sent = time.monotonic()
        self._inflight_since = sent
        try:
            result = await self._put(
                keys=self._change_keys(change.kind, self.keys.hash_for(change.kind), change.change_id),
                args=[self._max_version, change.field, payload, self.keys.changes, change.kind, "",
                      self._redis_deadline(change.deadline_ms), self.audit_maxlen, OUTCOME_EXPIRY_MS,
                      self.lease_token, "" if change.expected_version is None else str(change.expected_version),
                      self._stream_maxlen(change.kind), *_pairs(audit)])
        except BaseException as exc:
            self._inflight_since = None
            self._unconfirmed(change, exc)
            if not isinstance(exc, (RedisError, OSError)):
                raise
            if LEASE_LOST in str(exc):
                log.warning("write refused: the writer lease is not held at the moment")
            log.warning("write to Redis failed (%s); will retry", exc)
            self._note_write_failure()
            return False
        self._inflight_since = None
        # Proves the global tag's node; a failing shard node keeps its own bound
        # (_write_failing_since is left to the next shard batch).
        self._proven(sent)
        self._finish_change(change, result)
        return True

    def _today_key(self) -> str:
        """A decision-count key for calls that carry no counts: the script does not touch it, but
        every key a script may write is passed in KEYS (Redis Cluster routes by them)."""
        return self.keys.decision_counts(day_of(time.time_ns() // 1_000_000))

    def _redis_deadline(self, local_deadline_ms: int) -> int:
        """A deadline on our wall clock, on Redis's clock, erring early by the offset's
        uncertainty: clocks that disagree must not let a change land after its caller left."""
        if not local_deadline_ms:
            return 0
        return local_deadline_ms + self._clock_offset_ms - self._clock_uncertainty_ms - 1

    def _finish_change(self, change: _AdminChange, result: Any) -> None:
        if isinstance(result, list | tuple) and int(result[0]) == CONFLICT:
            conflict = VersionConflict(change.expected_version or 0, int(result[1]))
            self.enqueue_audit({**change.audit, "outcome": f"aborted: {conflict}: not applied"})
            _settle(change.future, conflict)
            return
        version = int(result)
        if version == EXPIRED:
            self.enqueue_audit({**change.audit, "outcome": "expired: Redis refused it past its deadline"})
            _settle(change.future, StoreExpired("deadline passed before Redis took the change: not applied"))
            return
        try:
            _settle(change.future, self._apply_change(change, version)[0])
        except Exception as exc:  # e.g. the order released closed while the release was on its way
            if change.kind != RELEASE:
                log.exception("applying %s %r failed", change.kind, change.field)
            _settle(change.future, exc)

    def _apply_change(self, change: _AdminChange, version: int) -> tuple[Any, bool]:
        """Applies a change Redis took (under `version`) to the book; returns what its caller
        is answered, and whether the book took it (False: it already held something newer)."""
        if change.kind in SHARD_KINDS:
            self._max_shard_version = max(self._max_shard_version, version)
        else:
            self._max_version = max(self._max_version, version)
        if change.kind == RELEASE:
            return change.apply(None), True
        stored = msgspec.structs.replace(change.record, version=version)  # type: ignore[type-var]
        # False is fine for a live answer: the subscriber may have applied the published copy
        # first, or the record concerns accounts another shard owns.
        return stored, bool(change.apply(stored))

    def unresolved(self, kind: str, field: str) -> bool:
        """A change of this record whose answer was lost is still to be resolved."""
        return any(c.kind == kind and c.field == field for c in self._unresolved)

    async def _resolve_unconfirmed(self) -> None:
        """Finds out what became of changes whose answer was lost, once Redis can no longer
        run them (their deadline has passed), applies those it did, and audits either way."""
        now_ms = time.time_ns() // 1_000_000
        for change in [c for c in self._unresolved
                       if now_ms > c.deadline_ms + self._clock_uncertainty_ms + RESOLVE_MARGIN_MS]:
            outcome = await self.client.get(self.keys.shard_outcome(change.change_id) if change.kind in SHARD_KINDS
                                            else self.keys.outcome(change.change_id))
            self._unresolved.remove(change)
            if outcome is None:
                self.enqueue_audit({**change.audit, "outcome": "resolved: not applied"})
                continue
            version = int(outcome)
            taken = False
            try:
                _, taken = self._apply_change(change, version)
            except Exception as exc:  # e.g. a released order that closed meanwhile
                log.error("applying %s %r resolved as applied failed: %r", change.kind, change.field, exc)
            account = self.book.accounts.get(change.field) if change.kind == "account" else None
            if taken or change.kind != "account" or (account is not None and account.record_version >= version):
                # Not taken for another kind: a newer change of the same record already holds.
                # Not taken for an account the book already holds it in (the change feed brought
                # it, and this process has written the account since), or a later change of it.
                self.enqueue_audit({**change.audit, "outcome": f"resolved: applied (version {version})"})
            else:
                # This process wrote the account's later state (fills) over it meanwhile, on a
                # base without it: Redis no longer holds it, nor does the book.
                self.enqueue_audit({**change.audit, "outcome": f"resolved: applied (version {version}) but "
                                    "superseded by this process's later state of the account: send it again"})
            log.warning("admin change %s %r whose answer was lost was applied by Redis (version %d): "
                        "applied here too", change.kind, change.field[:100], version)

    # ---- the mark feed's batches (riskgate.store.mark_batch) ------------------------------

    def not_writable(self) -> str | None:
        """Why this process may not write now (stopping, state unproven, lease lost), or None."""
        if self._closing:
            return "riskgate is stopping"
        now = time.monotonic()
        return self.book.unavailable_message(now) if now > self.book.fresh_until else None

    @property
    def version_floor(self) -> int:
        """The highest version this process has seen: every versioned write lifts the counter to it."""
        return self._max_version

    def redis_deadline(self, local_deadline_ms: int) -> int:
        return self._redis_deadline(local_deadline_ms)

    def apply_written(self, kind: str, record: Any) -> bool:
        """A record this process wrote (under the version Redis gave it), applied to the book."""
        return self._apply(kind, record)

    # ---- reads -----------------------------------------------------------------------

    async def read_audit(self, match: Callable[[dict[str, str]], bool], limit: int, since_ms: int = 0,
                         before_id: str = "", max_scan: int = AUDIT_SCAN_MAX
                         ) -> tuple[list[tuple[str, dict[str, str]]], int, str]:
        """The audit entries `match` takes, newest first: at most `limit` of them, reading the
        stream backwards in chunks of AUDIT_SCAN_CHUNK and at most `max_scan` entries in all.
        since_ms bounds the entries' own time (ts_ms); the stream is read from a little before
        it, as an entry reaches Redis (its id's time) after it was made. Returns (entries, how
        many were read, the id to page on from: "" when the range was read to its end)."""
        low = f"{max(0, since_ms - AUDIT_SINCE_SLACK_MS)}-0" if since_ms else "-"
        # The global stream (admin changes of global records) and every shard's (what each
        # shard wrote behind, and changes of its accounts), merged newest first by entry id:
        # ids are Redis's clock at the append, as in one stream.
        streams = [self.keys.audit, *(keys.shard_audit for keys in self.keys.shards(self.book.shard_count))]
        highs = dict.fromkeys(streams, f"({before_id}" if before_id else "+")
        buffers: dict[str, deque[Any]] = {key: deque() for key in streams}
        exhausted: set[str] = set()
        found: list[tuple[str, dict[str, str]]] = []
        scanned = 0
        while True:
            for key in streams:
                if buffers[key] or key in exhausted:
                    continue
                asked = max(1, min(AUDIT_SCAN_CHUNK, max_scan - scanned))
                rows = await self.client.xrevrange(key, max=highs[key], min=low, count=asked)
                buffers[key].extend(rows)
                if len(rows) < asked:
                    exhausted.add(key)
                else:
                    highs[key] = f"({_text(rows[-1][0])}"
            live = [key for key in streams if buffers[key]]
            if not live:
                return found, scanned, ""
            newest = max(live, key=lambda key: _id_order(_text(buffers[key][0][0])))
            raw_id, raw_fields = buffers[newest].popleft()
            scanned += 1
            entry_id = _text(raw_id)
            fields = {_text(k): _text(v) for k, v in raw_fields.items()}
            if not (since_ms and _int(fields.get("ts_ms"), _id_ms(entry_id)) < since_ms) and match(fields):
                found.append((entry_id, fields))
                if len(found) >= limit:
                    return found, scanned, entry_id
            if scanned >= max_scan:
                more = any(buffers[key] for key in streams) or len(exhausted) < len(streams)
                return found, scanned, entry_id if more else ""


    async def _scan(self, key: str, owned_only: bool) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every field of one hash (with its value), LOAD_SCAN_COUNT at a time by HSCAN: no reply
        is proportional to the book, and the event loop serves calls between pages. owned_only:
        fields named after an account (accounts, `account\\x1f...` for orders and executions)
        of another shard are dropped here, by name, before anything decodes them. HSCAN may
        return a field twice (a rehash between calls): callers are idempotent per field."""
        book = self.book
        check = owned_only and book.shard_count > 1
        cursor: int = 0
        while True:
            if self._closing:
                raise _LoadStopped
            self._load_where = key
            # Values too (HSCAN NOVALUES needs Redis 7.4): a page is bounded either way.
            cursor, page = await self.client.hscan(key, cursor=cursor, count=LOAD_SCAN_COUNT)
            rows: list[tuple[str, bytes]] = []
            for field, data in page.items():
                name = field.decode(errors="replace") if isinstance(field, bytes) else field
                if check and not book.owns(name.partition("\x1f")[0]):
                    continue
                rows.append((name, data))
            self._load_read += len(rows)
            if self._load_read >= self._load_logged + LOAD_PROGRESS_EVERY:
                self._load_logged = self._load_read
                log.info("%s: loading state from Redis: %d records read so far (%s), %.1f s", book.shard_label,
                         self._load_read, key, time.monotonic() - self._load_began)
            yield rows
            if not int(cursor):
                return

    async def _yield_now(self) -> None:
        """Lets the event loop answer calls when this load has held it for its slice; ends the
        load when a stop has begun (a cancellation alone may be absorbed inside redis-py, and a
        reload that went on would mark records dirty after the writer has drained)."""
        if self._closing:
            raise _LoadStopped
        if time.perf_counter() - self._slice_began >= self._slice_s:
            await asyncio.sleep(0)
            self._slice_began = time.perf_counter()

    async def _load_snapshot(self, first: bool) -> None:
        """Loads every record. The first load also restores this process's reservations; a
        reload after a lost link keeps memory for the accounts this process owns (it is their
        only writer, fills included) and writes back whatever Redis has lost meanwhile (a
        Redis that lost its AOF tail, or a failover to a lagging replica).

        Every hash is read by HSCAN in pages and decoded a slice at a time, yielding the event
        loop in between: a reload never stalls answers for the whole book, and the records of
        accounts another shard owns are skipped by their field name, never decoded. What a
        page read at one moment and the next at another may disagree on is harmless: records
        are versioned (a change published meanwhile reaches the subscription, which is open
        before the load), and for accounts this process owns only this process writes."""
        book = self.book
        self._load_began = time.monotonic()
        self._slice_began = time.perf_counter()
        self._slice_s = FIRST_LOAD_SLICE_S if first else LOAD_SLICE_S
        self._load_read = self._load_logged = 0
        # Until this load completes, a reconnect must load in full again (a write-back after a
        # Redis that lost data has to finish).
        self._position = None
        self._load_where = self.keys.change_stream
        # Read before the scan (the subscription is already confirmed): every change after it
        # reaches the subscription, or is replayed from the stream by a later catch-up.
        position = await self.change_stream.position()
        shard_identity = await redis_identity(self.client, self.keys.accounts)
        self._reload_requested = ""
        stored_versions: dict[str, int] = {}
        executions = await self._load_executions() if first else {}
        for kind in ("symbol", "mark", "breaker", "controls", "account"):
            async for rows in self._scan(self.keys.hash_for(kind), owned_only=kind == "account"):
                for field, data in rows:
                    await self._yield_now()
                    try:
                        record = decode_stored(kind, data)
                        if kind == "account" and not first and book.owns(record.account_id):
                            # Memory is the newer truth for the accounts this process owns (it is
                            # their only writer, fills included; its own admin changes whose answer
                            # was lost are resolved from their outcome keys).
                            stored_versions[record.account_id] = record.version
                            continue
                        if kind == "account" and first:
                            # The shard's counter must hand out versions above every stored one
                            # (_repair_version_counter lifts it when Redis lost its tail).
                            self._max_shard_version = max(self._max_shard_version, record.version)
                            # The fills after clearing's cut-off that the record does not reflect
                            # yet (written in the same batch as it, or after a clearing snapshot)
                            # are applied on top.
                            specs = executions.get(record.account_id, [])
                            if apply_account_record(book, record, journal_from(specs)):
                                account = book.accounts[record.account_id]
                                account.ordinal = max([account.ordinal, *(spec.ordinal for spec in specs)])
                            continue
                        self._apply(kind, record)
                    except Exception as exc:  # one bad record must not stop the load
                        log.error("ignoring unreadable %s record %r in Redis: %r", kind, field[:100], exc)
        in_redis: dict[tuple[str, str], bytes] = {}
        async for rows in self._scan(self.keys.orders, owned_only=True):
            for field, data in rows:
                await self._yield_now()
                try:
                    spec = _reservation_decoder.decode(data)
                    if not book.owns(spec.account_id):
                        continue
                    problem = _reservation_problem(spec)
                    if problem is not None:
                        log.error("ignoring inconsistent reservation %r in Redis: %s", field[:100], problem)
                        continue
                    in_redis[(spec.account_id, spec.order_id)] = data
                    if first:
                        account = ensure_account(book, spec.account_id)
                        if spec.order_id not in account.orders:
                            restore(book, account, Reservation.from_spec(spec))
                    elif spec.order_id not in (book.accounts[spec.account_id].orders
                                               if spec.account_id in book.accounts else ()):
                        # Closed here while the link was down, or its delete lost: delete it.
                        book.mark_order_dirty(spec.account_id, spec.order_id)
                except Exception as exc:  # one bad record must not stop the load
                    log.error("ignoring unreadable reservation %r in Redis: %r", field[:100], exc)
        self._load_where = "the book (after reading)"
        self.loaded_orders = len(in_redis)
        if first:
            for account in list(book.accounts.values()):
                for symbol in {r.symbol for r in account.orders.values()}:
                    try:
                        # The stored record may be a snapshot whose re-reservation of these
                        # orders at its leverage did not reach Redis before a crash.
                        align_leverage(book, account, symbol)
                        rebalance(book, account, symbol)
                        verify(book, account, symbol)
                    except Exception as exc:  # one account must not stop the load of all
                        log.error("could not rebalance %r on %s after the load: %r", account.account_id[:100],
                                  symbol, exc)
                await self._yield_now()
        else:
            await self._write_back_executions()
            # A list: orders answered between slices may add accounts meanwhile.
            for account_id in list(book.accounts):
                await self._yield_now()
                account = book.accounts.get(account_id)
                if account is None or not book.owns(account_id):
                    continue
                if stored_versions.get(account_id, 0) < account.snapshot_version:
                    book.mark_account_dirty(account_id)
                for order_id, reservation in account.orders.items():
                    # Missing, or as it was before fills Redis lost: written again.
                    stored = in_redis.get((account_id, order_id))
                    if stored != _reservation_encoder.encode(reservation.to_spec(account_id)):
                        book.mark_order_dirty(account_id, order_id)
        if self._load_read >= LOAD_PROGRESS_EVERY:
            log.info("%s: state loaded from Redis: %d records in %.1f s", book.shard_label, self._load_read,
                     time.monotonic() - self._load_began)
        await self._repair_version_counter()
        self._position = position
        self._shard_identity = shard_identity

    async def _load_executions(self) -> dict[str, list[ExecutionSpec]]:
        """The execution ids this process's accounts have applied (exactly-once survives a
        restart), oldest first; returns them by account for the journals."""
        book = self.book
        by_account: dict[str, list[ExecutionSpec]] = {}
        # By field: HSCAN may return one twice.
        found: dict[str, ExecutionSpec] = {}
        async for rows in self._scan(self.keys.executions, owned_only=True):
            for field, data in rows:
                await self._yield_now()
                try:
                    spec = _execution_decoder.decode(data)
                except _BAD_RECORD as exc:
                    log.error("ignoring unreadable execution %r in Redis: %r", field[:100], exc)
                    continue
                if book.owns(spec.account_id):
                    found[field] = spec
        specs = sorted(found.items(), key=lambda item: item[1].at_ms)
        for key, spec in specs:
            book.executions[key] = (spec.at_ms, spec.sequence, spec.ordinal)
            book.execution_queue.append((spec.at_ms, key, spec.account_id, spec.sequence))
            by_account.setdefault(spec.account_id, []).append(spec)
        return by_account

    async def _write_back_executions(self) -> None:
        """After a lost link: execution ids (and journal fills) this process applied that Redis
        no longer has (it lost its tail, or failed over to a lagging replica) are written again,
        so a restart still knows them: a retry is then a duplicate, a snapshot still merges."""
        book = self.book
        stored: set[str] = set()
        async for rows in self._scan(self.keys.executions, owned_only=True):
            stored.update(field for field, _ in rows)
        for key, entry in list(book.executions.items()):
            await self._yield_now()
            if key in stored or key in book.dirty_executions or key not in book.executions:
                continue
            at_ms, sequence, ordinal = entry
            account = book.accounts.get(key.split("\x1f", 1)[0])
            if account is None:
                continue
            fill = next((f for f in account.journal if f.ordinal == ordinal), None)
            book.dirty_executions[key] = execution_spec(key, at_ms, sequence, ordinal, fill)
        if book.dirty_executions:
            book.on_dirty()

    async def _repair_version_counter(self) -> None:
        """Redis that lost its tail (AOF everysec, failover to a lagging replica) may hand out
        versions this process has already seen; every process would then ignore new changes."""
        for counter, floor in ((self.keys.seq, self._max_version), (self.keys.shard_seq, self._max_shard_version)):
            if await self._raise_seq(keys=[counter], args=[floor]):
                self.version_repairs += 1
                log.error("Redis version counter %s was behind version %d: raised it", counter, floor)

    def _apply(self, kind: str, record: Any) -> bool:
        if kind != "account":
            self._max_version = max(self._max_version, record.version)
        elif self.book.owns(record.account_id):
            # Another shard's account is versioned by its shard's counter, not this one's.
            self._max_shard_version = max(self._max_shard_version, record.version)
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
                subscribed_at = time.monotonic()
                self._loading = True
                # Back from a lost link to the same Redis: only what changed while away is
                # read (the stream, from the last id applied); otherwise the whole book.
                if first or not await self._resume():
                    await self._load_snapshot(first)
                    self.loads_done += 1
                self._loading = False
                first = False
                self._pubsub_pings.clear()
                # The feed is proven from the moment Redis confirmed it, not from before.
                self._pubsub_proven = subscribed_at
                self._pubsub = pubsub
                self._loaded_once.set()
                backoff = RETRY_BACKOFF_S
                self._slice_began = time.perf_counter()
                self._slice_s = LOAD_SLICE_S  # serving from here on
                while not self._closing:
                    message = await pubsub.get_message(timeout=RELOAD_POLL_S)
                    if self._reload_requested:
                        raise _ReloadRequested(self._reload_requested)
                    if message is not None:
                        self._on_message(message)
                    # A backlog (what queued during a load or a catch-up) is read from the
                    # socket's buffer without suspending: let calls run between slices of it.
                    await self._yield_now()
            except Exception as exc:
                if isinstance(exc, _LoadStopped):
                    return
                if isinstance(exc, _ReloadRequested):
                    log.error("%s: %s: reloading the whole book and writing back what Redis lost",
                              self.book.shard_label, exc)
                    self._pubsub = None
                    continue
                if self._loading:
                    # Never silent: a load that keeps failing would otherwise leave the gate
                    # NOT_SERVING (or its state unproven) with nothing in the log.
                    self._loading = False
                    self.load_failures += 1
                    backoff = min(max(backoff, RETRY_BACKOFF_S) * 2, MAX_LOAD_BACKOFF_S)
                    log.error("%s: %s state from Redis failed while reading %s after %d records (%.1f s): %r; "
                              "retrying in %.2f s", self.book.shard_label, "loading" if first else "reloading",
                              self._load_where or "the change subscription", self._load_read,
                              time.monotonic() - self._load_began, exc, backoff,
                              exc_info=not isinstance(exc, (RedisError, OSError)))
                    self._pubsub = None
                    await self._pause(backoff)
                    continue
                if isinstance(exc, (RedisError, OSError)):
                    if self._pubsub is not None:
                        log.warning("change subscription lost (%s); resubscribing and catching up", exc)
                else:  # not the link: a defect, but the feed must come back rather than stay dead
                    log.exception("change subscription failed; resubscribing and catching up")
                self._pubsub = None
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF_S)
            finally:
                self._pubsub = None
                self._pong.set()  # a round waiting for this feed's answer stops waiting
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(CANCEL_TIMEOUT_S):
                        await pubsub.aclose()

    async def _check_shard_node(self) -> None:
        """Asks for a full reload when the node holding this shard's keys is no longer the one
        the book was loaded from (failed over, restarted): what it lost of this process's
        writes is only written back by a reload."""
        if not self._shard_identity or self._reload_requested or self._loading:
            return
        identity = await redis_identity(self.client, self.keys.accounts)
        if identity and identity != self._shard_identity:
            self._position = None  # no resume: the reload must compare and write back
            self._reload_requested = ("the Redis node holding this shard's keys changed (failed over or restarted: "
                                      f"{self._shard_identity} -> {identity})")

    def _on_message(self, message: dict[str, Any]) -> None:
        kind_of_message = message.get("type")
        if kind_of_message == "pong":
            if self._pubsub_pings:
                self._pubsub_proven = self._pubsub_pings.popleft()
                self._pong.set()
            return
        if kind_of_message != "message":
            return
        try:
            kind, record, entry_id = decode_change_with_id(message["data"])
            self._apply_change_seen(kind, record)
            position = self._position
            if entry_id and position is not None:
                position.advance(entry_id)
            elif not entry_id and position is not None and kind not in SHARD_KINDS:
                # A writer that does not append to the change stream (an older version during a
                # rolling deploy): what it changes while this process is away would not be
                # replayed, so the next reconnect reloads in full.
                log.warning("change message without a change stream id (%s from an older writer?): the next "
                            "reconnect reloads the whole book", kind)
                self._position = None
        except Exception as exc:  # one bad message must not end the feed
            log.error("ignoring malformed change message: %r", exc)

    def _apply_change_seen(self, kind: str, record: Any) -> None:
        """A change from the feed or the change stream, applied as it came (versions decide)."""
        self._apply(kind, record)
        if kind in ("breaker", "controls"):
            logs.change_seen(kind, record)

    async def _resume(self) -> bool:
        """After a lost link (the new subscription confirmed): applies, in order and a slice at a
        time, the changes made while away, read from the change stream from the last id applied.
        False (nothing harmful done) when it cannot: no position (a load never completed, or a
        writer bypassed the stream), another Redis (restarted, failed over), or the stream no
        longer holds that id; the caller then reloads in full, with its write-back. With the
        same Redis nothing was lost, so the owned accounts' write-back has nothing to do."""
        position = self._position
        if position is None or not self.resume:
            self.resume_refused = ("resuming is switched off" if not self.resume else
                                   self._reload_requested or "no change stream position")
            log.info("%s: reloading the whole book after the lost link: %s", self.book.shard_label,
                     self.resume_refused)
            return False
        self._load_began = time.monotonic()
        self._slice_began = time.perf_counter()
        self._slice_s = LOAD_SLICE_S
        self._load_read = 0
        self._load_where = self.keys.change_stream
        if self._shard_identity and await redis_identity(self.client, self.keys.accounts) != self._shard_identity:
            applied, refused = -1, "the Redis node holding this shard's keys is not the one the book was loaded from"
        else:
            applied, refused = await self.change_stream.catch_up(position, self._apply_change_seen, self._yield_now)
        if applied < 0:
            self.resume_refused = refused
            log.warning("%s: cannot resume from the change stream (%s): reloading the whole book",
                        self.book.shard_label, refused)
            return False
        self.resumes_done += 1
        self.changes_replayed += applied
        log.info("%s: resumed from the change stream after the lost link: %d changes applied in %.3f s",
                 self.book.shard_label, applied, time.monotonic() - self._load_began)
        return True

    # ---- health ----------------------------------------------------------------------

    def _proven(self, sent: float) -> None:
        """Redis answered a round trip sent at `sent`: state is proven up to then, but no
        later than the change feed's last answer, a batch still awaiting its answer, or the
        first of a run of failed writes."""
        book = self.book
        if self.lease_lost or self._reload_requested:
            return
        limit = min(sent, self._pubsub_proven if self._pubsub is not None else 0.0)
        if self._inflight_since is not None:
            limit = min(limit, self._inflight_since)
        if self._write_failing_since is not None:
            limit = min(limit, self._write_failing_since)
        if any(task.done() for task in self._tasks):  # a dead writer or feed proves nothing
            limit = 0.0
        # Never past the moment the writer lease may lapse: a successor may own the accounts then.
        fresh_until = min(limit + self.stale_after_s, self._lease_renewed_at + self.lease_ms / 1000) if limit else 0.0
        if fresh_until > book.fresh_until:
            if time.monotonic() > book.fresh_until and book.fresh_until:
                # The one line operators see is the service's (riskgate.link), on the health report.
                log.debug("Redis link restored: accepting risk-increasing orders again")
            book.fresh_until = fresh_until

    async def _prove_link(self) -> None:
        """One round trip on each connection; callers bound it with a timeout. The probe is a
        write, so a Redis that answers but refuses writes proves nothing."""
        sent = time.monotonic()
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        if pubsub is not None and not (pubsub.subscribed and connection is not None and connection.is_connected):
            # Going down: redis-py would reconnect it (or check its health) by reading from
            # the connection the subscriber task reads, which two tasks must never do.
            pubsub = None
        if pubsub is not None:
            self._pubsub_pings.append(sent)
            await pubsub.ping()
        sent_ns = time.time_ns()
        seconds, micros, held, generation = await self._probe(
            keys=[self.keys.probe, self.lease_key, self.keys.shard_layout, self.keys.writer_generation],
            args=[sent_ns, PROBE_EXPIRY_MS, self.lease_token, self.lease_ms, self.book.shard_count,
                  self.lease_generation])
        if not int(held):
            self._lose_lease("another process took a writer lease while this one's had lapsed (it was paused or "
                             "cut off too long)")
            return
        # The shard's copy (what its scripts are fenced by), renewed only while held or unheld.
        if not int(await self._shard_lease(keys=[self.shard_lease_key], args=[self.lease_token, self.lease_ms, ""])):
            self._lose_lease("a successor holds this shard's writer lease")
            return
        self.lease_generation = _text(generation)
        self._lease_renewed_at = sent
        received_ns = time.time_ns()
        redis_ms = int(seconds) * 1000 + int(micros) // 1000
        self._clock_offset_ms = redis_ms - (sent_ns + received_ns) // 2_000_000
        self._clock_uncertainty_ms = (received_ns - sent_ns) // 2_000_000 + 1
        if not self.pending_writes():
            # Writes are taken again, and no batch is waiting to prove it itself.
            self._write_failing_since = None
        # The change feed's answer is read by the subscriber task: wait for it to arrive.
        while pubsub is not None and pubsub is self._pubsub and self._pubsub_proven < sent:
            self._pong.clear()
            await self._pong.wait()
        if pubsub is not None and self._pubsub_proven >= sent:  # both connections answered
            self.last_proven_at = time.monotonic()
        self._proven(sent)

    async def _health(self) -> None:
        """Healthy means: Redis answers and takes a write, the change subscription answers its
        own pings (a half-open link would otherwise go unnoticed), and write-behind is not
        failing or stuck."""
        interval = max(0.02, self.stale_after_s / 5)
        await self._loaded_once.wait()
        while not self._closing:
            book = self.book
            now = time.monotonic()
            # A hung Redis costs this round at most what is left of the bound.
            remaining = book.fresh_until - now
            budget = max(0.05, min(self.stale_after_s, remaining)) if remaining > 0 else self.stale_after_s
            try:
                async with asyncio.timeout(budget):
                    # First: a replaced shard node proves nothing until the reload has written
                    # back what it lost.
                    await self._check_shard_node()
                    await self._prove_link()
                    if self._unresolved:
                        await self._resolve_unconfirmed()
            except (RedisError, OSError) as exc:
                book.unavailable_cause = f"Redis unreachable or refusing writes ({type(exc).__name__})"
            except Exception as exc:
                # Not the link itself (e.g. redis-py reconnecting the change feed's connection
                # while the subscriber closes it): this round proves nothing, and the task
                # must live on, or nothing would ever prove the link again.
                log.warning("health round failed: %r", exc)
                book.unavailable_cause = f"health round failed ({type(exc).__name__})"
            now = time.monotonic()
            fresh = now <= book.fresh_until
            if not fresh and self._serving_reported is not False:
                (log.debug if self.on_health is not None else log.error)("%s", book.unavailable_message(now))
            book.expire_closed(now)
            self._report(fresh)
            await self._pause(interval)

    def _report(self, serving: bool) -> None:
        if serving != self._serving_reported:
            self._serving_reported = serving
            if self.on_health is not None:
                self.on_health(serving)


def _reservation_problem(spec: ReservationSpec) -> str | None:
    """Why a stored reservation cannot be right, or None."""
    if spec.side not in (Side.BUY, Side.SELL):
        return f"side {spec.side}"
    if not 1 <= spec.leverage <= MAX_LEVERAGE:
        return f"leverage {spec.leverage}"
    if min(spec.reducing_left, spec.increasing_left, spec.cost_left) < 0 or spec.remaining <= 0:
        return "negative or empty quantities"
    if spec.reduce_only:
        # It holds only what it can still reduce, which may be less than what is open.
        if spec.increasing_left or spec.cost_left or spec.reducing_left > spec.remaining:
            return "a reduce-only order holding risk"
    elif spec.remaining != spec.reducing_left + spec.increasing_left:
        return "remaining is not reducing + increasing"
    return None


def _entry_size(entry: dict[str, str]) -> int:
    return sum(len(key) + len(value) for key, value in entry.items())


def _pairs(entry: dict[str, str]) -> Iterable[str]:
    for key, value in entry.items():
        yield key
        yield value


class _UnsentFlow:
    """A batch's order flow until Redis confirms it: its number, its stream entry (b"" = none),
    the key of its day's decision counts and their (field, count) pairs."""

    __slots__ = ("day_key", "decisions", "entry", "number")

    def __init__(self, number: int, entry: bytes, day_key: str, decisions: list[tuple[str, int]]) -> None:
        self.number = number
        self.entry = entry
        self.day_key = day_key
        self.decisions = decisions


def _decision_args(decisions: Sequence[tuple[str, int]]) -> list[str | int]:
    args: list[str | int] = [len(decisions)]
    for field, count in decisions:
        args += (field, count)
    return args


def _flush_args(snapshots: Sequence[tuple[str, bytes, bytes]], upserts: Sequence[tuple[str, bytes]],
                deletes: Sequence[str], executions: Sequence[tuple[str, bytes]],
                forgotten: Sequence[str]) -> list[str | bytes | int]:
    args: list[str | bytes | int] = [len(snapshots)]
    for account_id, record, event in snapshots:
        args += (account_id, record, event)
    for rows in (upserts,):
        args.append(len(rows))
        for field, payload in rows:
            args += (field, payload)
    args.append(len(deletes))
    args += deletes
    args.append(len(executions))
    for field, payload in executions:
        args += (field, payload)
    args.append(len(forgotten))
    args += forgotten
    return args


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return _int(ms, 0), _int(seq, 0)


def _id_ms(entry_id: str) -> int:
    return _int(entry_id.partition("-")[0], 0)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    """Resolves an admin change's future unless its caller gave up (deadline, cancellation)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
