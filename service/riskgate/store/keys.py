"""Redis key names. One hash tag for all of them, so the versioning script and the audit
entry of a change stay in one slot on Redis Cluster."""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        tag = "{" + prefix + "}"
        self.seq = f"{tag}:seq"
        self.symbols = f"{tag}:symbols"
        self.marks = f"{tag}:marks"
        self.breakers = f"{tag}:breakers"
        self.controls = f"{tag}:controls"
        self.accounts = f"{tag}:accounts"
        self.orders = f"{tag}:orders"
        # Execution ids applied (exactly-once), with the fills that moved positions.
        self.executions = f"{tag}:executions"
        # Every account's state after each batch that moved it, in order: the monitor's feed.
        self.account_events = f"{tag}:account_events"
        # Each account's order flow (decisions, cancels, fills) per batch: the monitor's feed.
        self.order_flow = f"{tag}:order_flow"
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
        self._tag = tag

    def writer_lease(self, shard_index: int, shard_count: int) -> str:
        """Held by the one process that writes the accounts of a shard."""
        return f"{self._tag}:writer:{shard_count}:{shard_index}"

    def order_flow_written(self, writer_token: str) -> str:
        """The number of the last order-flow batch a process appended (per process: its lease
        token), so that a batch sent again after a lost answer is not appended twice."""
        return f"{self._tag}:order_flow_written:{writer_token}"

    def decision_counts(self, day: str) -> str:
        """Every gate process's decisions of one UTC day (YYYY-MM-DD), per minute, symbol,
        decision and first reason: a hash of counts (store/decision_counts.py)."""
        return f"{self._tag}:decision_counts:{day}"

    def outcome(self, change_id: str) -> str:
        """What became of one admin change (its version), kept for a while."""
        return f"{self._tag}:outcome:{change_id}"

    def hash_for(self, kind: str) -> str:
        return {
            "symbol": self.symbols,
            "mark": self.marks,
            "breaker": self.breakers,
            "controls": self.controls,
            "account": self.accounts,
        }[kind]


def order_field(account_id: str, order_id: str) -> str:
    # Unit separator: cannot appear in the printable ids the API accepts.
    return f"{account_id}\x1f{order_id}"
