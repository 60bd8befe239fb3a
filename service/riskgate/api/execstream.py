"""PreTradeRisk.ReportExecutions: the matching engine's execution feed on one stream.

Each message is applied the moment it is read, in stream order, by the same code as the
unary ReportExecution (`PreTradeRiskServicer.execute`), so a sequence of reports leaves the
book in the same state whichever way it came. What changes is the acknowledgement:

- Durability, amortised. The unary call answers once Redis holds its report (it waits for
  the write-behind batch that carries it: `store.barrier()`). Here each applied message asks
  for a barrier too (a future, no I/O), and one task sends the acknowledgements: it waits for
  the oldest unacknowledged message's barrier only, then acknowledges, in one message, every
  message whose barrier has resolved (a write-behind batch resolves all of its barriers at
  once). Barriers resolve in the order they were asked for (a failed batch puts its barriers
  back in front). So each message is acknowledged as soon as the batch carrying it is in Redis,
  as a unary call would be, with one acknowledgement per write-behind batch, and the reader
  never waits for Redis.
- The same meaning as the unary OK. `acked_through = N` says every message up to offset N
  was handled; those not listed in `outcomes` are applied and in Redis. When Redis does not
  confirm in time (the staleness bound, or 90% of the stream's remaining deadline) or a stop
  releases the wait, a message with an execution_id (or a duplicate) is listed as UNAVAILABLE
  (send it again: acknowledged as a duplicate once Redis has it), one without (compatibility
  mode) is acknowledged anyway, as the unary call does.
- Lean. A plain success is covered by `acked_through` and costs no protobuf message at all;
  only refusals, duplicates, fills included in a snapshot, reduce-only orders to cancel, and
  messages that asked `with_account_state` (the only ones that get a valuation) are listed.
- Bounded. At most MAX_UNACKED messages per stream are applied and not yet acknowledged;
  past that the reader stops reading until an acknowledgement goes out, and HTTP/2 flow
  control pushes back on the sender. One acknowledgement lists at most that many outcomes.
- A refused report (malformed, unknown order, ...) is answered in outcomes with the status
  the unary call would have ended with, and the stream goes on. The stream itself ends with
  INVALID_ARGUMENT only on a protocol error (an offset not above the previous one: nothing
  of that message is applied, everything before it is acknowledged first), and with
  UNAVAILABLE when a stop begins (messages read after that are not applied). Bytes that are
  not an ExecutionFeedMessage end it with INVALID_ARGUMENT (riskgate.api.handlers), after
  everything applied before them is acknowledged, as for a protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from riskgate.api.handlers import UndecodableRequest
from riskgate.store.redis_store import RedisStore
from riskgate.v1 import pretrade_pb2 as pb

if TYPE_CHECKING:
    from riskgate.api.pretrade import PreTradeRiskServicer

log = logging.getLogger(__name__)

# Messages applied and not yet acknowledged, per stream (also the most outcomes one
# acknowledgement carries: each is under ~1.2 KB, so an acknowledgement stays far below gRPC's
# 4 MB default message limit).
MAX_UNACKED = 1000
NOT_CONFIRMED = ("applied, but Redis has not confirmed it yet: report it again with the same execution_id (it is "
                 "acknowledged once Redis has it, never applied twice)")
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


class Executed:
    """One report after `execute`: refused (a status and why, nothing applied), or applied (or
    recognised as a duplicate) with its acknowledgement (None: nothing to say but OK)."""

    __slots__ = ("ack", "exactly_once", "message", "refused")

    def __init__(self, ack: pb.ExecutionAck | None, exactly_once: bool,
                 refused: grpc.StatusCode | None = None, message: str = "") -> None:
        self.ack = ack
        # True: acknowledged only once Redis has it (a retry would be recognised); False: a
        # report without an execution id, acknowledged even when Redis has not confirmed it.
        self.exactly_once = exactly_once
        self.refused = refused
        self.message = message

    @staticmethod
    def refuse(code: grpc.StatusCode, message: str) -> Executed:
        return Executed(None, False, code, message)


class _Entry:
    __slots__ = ("barrier", "executed", "offset")

    def __init__(self, offset: int, executed: Executed, barrier: asyncio.Future[bool] | None) -> None:
        self.offset = offset
        self.executed = executed
        self.barrier = barrier


class _Acknowledger:
    """The answer side of one stream: batches what the reader applied, waits for Redis once per
    batch, writes one ExecutionFeedAck per batch."""

    def __init__(self, store: RedisStore | None, context: grpc.aio.ServicerContext) -> None:
        self.store = store
        self.context = context
        self.pending: list[_Entry] = []
        self.unacked = 0
        self.reading_done = False
        self.more = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()

    def add(self, entry: _Entry) -> None:
        self.pending.append(entry)
        self.unacked += 1
        self.more.set()
        if self.unacked >= MAX_UNACKED:
            self.room.clear()

    def finish(self) -> None:
        self.reading_done = True
        self.more.set()

    async def run(self) -> None:
        try:
            while True:
                if not self.pending:
                    if self.reading_done:
                        return
                    self.more.clear()
                    await self.more.wait()
                    continue
                head = self.pending[0].barrier
                timed_out = False
                if head is not None and not head.done():
                    timed_out = not await self._wait(head)
                batch = self._take(everything=timed_out)
                await self.context.write(_acknowledgement(batch))
                self.unacked -= len(batch)
                if self.unacked < MAX_UNACKED:
                    self.room.set()
        finally:
            # Never leave the reader waiting for room that will not come.
            self.room.set()

    async def _wait(self, barrier: asyncio.Future[bool]) -> bool:
        """Until the oldest unacknowledged message's batch is in Redis (or a stop releases it);
        False past the bound the unary call has (the staleness bound, or 90% of the time left)."""
        assert self.store is not None  # a barrier comes from the store
        remaining = self.context.time_remaining()
        stale_after_s = self.store.stale_after_s
        bound = stale_after_s if remaining is None else min(stale_after_s, remaining * 0.9)
        try:
            async with asyncio.timeout(max(bound, 0.0)):
                await barrier
        except TimeoutError:
            return False
        return True

    def _take(self, everything: bool) -> list[tuple[_Entry, bool]]:
        """The messages to acknowledge now, each with whether Redis has it. Normally the oldest
        ones whose barriers have resolved (one write-behind batch resolves all of its barriers at
        once: one acknowledgement each): each is acknowledged as soon as its batch is in Redis,
        as a unary call would be, never held for later messages. After a timeout, everything
        pending: barriers resolve in order, so none behind the one that timed out can be
        confirmed sooner, and each would otherwise wait out the bound in turn."""
        pending = self.pending
        taken = 0
        for entry in pending:
            if entry.barrier is not None and not entry.barrier.done() and not everything:
                break
            taken += 1
        batch = [(entry, entry.barrier is None or _confirmed(entry.barrier)) for entry in pending[:taken]]
        del pending[:taken]
        if any(not durable and entry.executed.refused is None and not entry.executed.exactly_once
               for entry, durable in batch):
            log.warning("executions without an execution_id acknowledged before Redis confirmed them")
        return batch


def _confirmed(barrier: asyncio.Future[bool]) -> bool:
    """A barrier resolved True: Redis holds what was dirty when it was asked for."""
    return barrier.done() and not barrier.cancelled() and barrier.exception() is None and barrier.result()


def _acknowledgement(batch: list[tuple[_Entry, bool]]) -> pb.ExecutionFeedAck:
    outcomes = []
    for entry, durable in batch:
        executed = entry.executed
        if executed.refused is not None:
            outcomes.append(pb.ExecutionOutcome(offset=entry.offset, code=executed.refused.value[0],
                                                message=executed.message))
        elif not durable and executed.exactly_once:
            outcomes.append(pb.ExecutionOutcome(offset=entry.offset, code=_UNAVAILABLE, message=NOT_CONFIRMED))
        elif executed.ack is not None:
            outcomes.append(pb.ExecutionOutcome(offset=entry.offset, ack=executed.ack))
    return pb.ExecutionFeedAck(acked_through=batch[-1][0].offset, outcomes=outcomes)


async def serve(servicer: PreTradeRiskServicer, requests: AsyncIterator[pb.ExecutionFeedMessage],
                context: grpc.aio.ServicerContext) -> None:
    """The whole stream (PreTradeRiskServicer.ReportExecutions)."""
    lifecycle = servicer.lifecycle
    if not lifecycle.serving:
        await context.abort(grpc.StatusCode.UNAVAILABLE, lifecycle.why_not)
    store = servicer.store
    acks = _Acknowledger(store, context)
    sender = asyncio.get_running_loop().create_task(acks.run(), name="riskgate-execution-acks")
    end: tuple[grpc.StatusCode, str] | None = None
    undecodable: UndecodableRequest | None = None
    try:
        last = 0
        try:
            async for message in requests:
                offset = message.offset
                if not lifecycle.serving:
                    end = (grpc.StatusCode.UNAVAILABLE,
                           f"{lifecycle.why_not}: offset {offset} and what follows it not applied; send them to "
                           "another instance")
                    break
                if offset <= last:
                    end = (grpc.StatusCode.INVALID_ARGUMENT,
                           f"offset {offset} is not above the previous message's ({last}): not applied, and the "
                           "stream ends; everything before it is acknowledged")
                    break
                last = offset
                executed = servicer.execute(message.report, message.with_account_state)
                # Every report the unary call would answer OK waits for Redis there; here it only
                # marks the point in the write-behind order its acknowledgement waits for.
                barrier = store.barrier() if executed.refused is None and store is not None else None
                acks.add(_Entry(offset, executed, barrier))
                if not acks.room.is_set():
                    await acks.room.wait()
                    if sender.done():
                        break
        except UndecodableRequest as bad:
            # Refused below like any undecodable request, but only once what was applied
            # before it is acknowledged: a report without an id, resent, would apply twice.
            undecodable = bad
        acks.finish()
        # Everything applied is acknowledged (or its sender is gone) before the stream ends.
        await sender
        if undecodable is not None:
            await undecodable.refuse(context)
        if end is not None:
            await context.abort(*end)
    finally:
        if not sender.done():
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
