"""Redis key names, in hash tags that keep every Lua script (and every MULTI) in one slot on
Redis Cluster while spreading the accounts over the nodes:

- the global tag `{<prefix>}`: records every shard reads (symbols, marks, breakers,
  controls), their version counter, the admin audit stream of global changes, the change
  channel, the probe, the writer leases' layout/generation bookkeeping, the monitor's keys;
- one tag per account shard, `{<prefix>:s<index>of<count>[.<n>]}` (see shard_tag): what that
  shard alone writes (accounts, orders, executions, account events, order flow, decision
  counts, the shard's version counter, its audit stream, its copy of the writer lease).

A shard then reads only its own hashes, and on a cluster its writes land on the node that
holds its tag, not on the one node every key shared before.
"""

from __future__ import annotations

from functools import lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# How many names shard_tag weighs per shard (the closest of them to the band's centre wins):
# 64, or 16 per shard for more than 4 shards (narrower bands), at most 4096.
_TAG_CANDIDATES = 64
_TAG_CANDIDATES_PER_SHARD = 16
_TAG_CANDIDATES_MAX = 4096


@lru_cache(maxsize=4096)
def shard_tag(prefix: str, shard_index: int, shard_count: int) -> str:
    """The hash tag of one account shard: of the names `<prefix>:s<index>of<count>` and
    `...of<count>.<n>` (n below the candidate count), the one whose slot is closest to the centre of the
    shard's 1/count band of the slot space. Shards then sit evenly spread over the slots, so a
    cluster whose masters hold equal slot ranges (what `redis-cli --cluster create` does) puts
    them on different masters when it has about as many masters as shards: shard 0 of 2 lands
    near slot 4096, shard 1 near 12288 (the first and last of three masters), where the plain
    names `s0of2` and `s1of2` both hash into the middle third. Deterministic: every process and
    release computes the same tag (crc16, as Redis does)."""
    centre = REDIS_CLUSTER_HASH_SLOTS / shard_count * (shard_index + 0.5)
    base = f"{prefix}:s{shard_index}of{shard_count}"
    candidates = min(max(_TAG_CANDIDATES, _TAG_CANDIDATES_PER_SHARD * shard_count), _TAG_CANDIDATES_MAX)
    names = [base] + [f"{base}.{n}" for n in range(1, candidates)]
    best = min(names, key=lambda name: (abs(key_slot(name.encode()) - centre), name))
    return "{" + best + "}"


class Keys:
    """The global keys, and those of one account shard (shard_index of shard_count; a
    single-shard deployment is shard 0 of 1 under the same rule)."""

    def __init__(self, prefix: str, shard_index: int = 0, shard_count: int = 1) -> None:
        tag = "{" + prefix + "}"
        self.prefix = prefix
        self.shard_index = shard_index
        self.shard_count = shard_count
        # ---- global: every shard reads these ----
        # The version counter of the global records (symbols, marks, breakers, controls).
        self.seq = f"{tag}:seq"
        self.symbols = f"{tag}:symbols"
        self.marks = f"{tag}:marks"
        self.breakers = f"{tag}:breakers"
        self.controls = f"{tag}:controls"
        # Admin changes of global records (and the monitor's entries).
        self.audit = f"{tag}:audit"
        self.changes = f"{tag}:changes"
        # Every change published on `changes`, capped: a subscriber back from a lost link
        # resumes from the last id it applied (store/change_stream.py).
        self.change_stream = f"{tag}:change_stream"
        # Written by every health round: proves Redis takes writes, and reads its clock.
        self.probe = f"{tag}:probe"
        # The shard count live writers use: processes with another count must not start.
        self.shard_layout = f"{tag}:shard_layout"
        # The token of the last process that took any writer lease afresh.
        self.writer_generation = f"{tag}:writer_generation"
        # The shard count of the last process that took a writer lease (kept, unlike
        # shard_layout, which lapses with the leases): which shard tags hold the accounts, for
        # readers that are not gates (the monitor, the daily report).
        self.account_shards = f"{tag}:account_shards"
        self._tag = tag
        # ---- this shard's own ----
        own = shard_tag(prefix, shard_index, shard_count)
        self.shard_tag = own
        # The version counter of this shard's accounts (records, reservations released).
        self.shard_seq = f"{own}:seq"
        self.accounts = f"{own}:accounts"
        self.orders = f"{own}:orders"
        # Execution ids applied (exactly-once), with the fills that moved positions.
        self.executions = f"{own}:executions"
        # Every account's state after each batch that moved it, in order: the monitor's feed.
        self.account_events = f"{own}:account_events"
        # Each account's order flow (decisions, cancels, fills) per batch: the monitor's feed.
        self.order_flow = f"{own}:order_flow"
        # Audit entries written behind (reads, refusals) and admin changes of this shard's
        # accounts and reservations: in the same MULTI as the write-behind batch.
        self.shard_audit = f"{own}:audit"
        # This shard's writer lease, in its own tag: what its scripts are fenced by (a copy of
        # the global lease writer_lease(), taken and renewed right after it).
        self.shard_lease = f"{own}:writer"

    def shard(self, shard_index: int, shard_count: int) -> Keys:
        """The keys of another shard (the global ones are the same)."""
        return Keys(self.prefix, shard_index, shard_count)

    def shards(self, shard_count: int) -> list[Keys]:
        """The keys of every shard of a layout."""
        return [self.shard(index, shard_count) for index in range(shard_count)]

    def writer_lease(self, shard_index: int, shard_count: int) -> str:
        """Held by the one process that writes the accounts of a shard (global tag: checked with
        the layout and generation in one script)."""
        return f"{self._tag}:writer:{shard_count}:{shard_index}"

    def order_flow_written(self, writer_token: str) -> str:
        """The number of the last order-flow batch a process appended (per process: its lease
        token), so that a batch sent again after a lost answer is not appended twice."""
        return f"{self.shard_tag}:order_flow_written:{writer_token}"

    def decision_counts(self, day: str) -> str:
        """This shard's decisions of one UTC day (YYYY-MM-DD), per minute, symbol, decision
        and first reason: a hash of counts (store/decision_counts.py; readers sum the shards)."""
        return f"{self.shard_tag}:decision_counts:{day}"

    def outcome(self, change_id: str) -> str:
        """What became of one admin change of a global record (its version), kept for a while."""
        return f"{self._tag}:outcome:{change_id}"

    def shard_outcome(self, change_id: str) -> str:
        """The same for a change of this shard's accounts or reservations."""
        return f"{self.shard_tag}:outcome:{change_id}"

    def hash_for(self, kind: str) -> str:
        return {
            "symbol": self.symbols,
            "mark": self.marks,
            "breaker": self.breakers,
            "controls": self.controls,
            "account": self.accounts,
        }[kind]


# Kinds of admin change whose records live in a shard's tag (the rest are global).
SHARD_KINDS = frozenset({"account", "release"})


def order_field(account_id: str, order_id: str) -> str:
    # Unit separator: cannot appear in the printable ids the API accepts.
    return f"{account_id}\x1f{order_id}"
