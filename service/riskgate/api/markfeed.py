"""RiskAdmin.PublishMarks: the market-data path for marks.

A feed opens one stream and sends ticks (MarkTicks, one or more each) for as long as it runs.
The stream is authenticated and authorised once, as RiskAdmin's unary calls are each time
(market_data or admin role). Its first message is read before the credentials are checked (so
bytes that are no MarkTicks are INVALID_ARGUMENT, as on every method); nothing in it is used
before the check: a feed that has no tick yet opens with an empty MarkTicks (a heartbeat).

Each tick is validated as SetMarkPrice validates a mark (riskgate.api.marks: the same code,
the same max_mark_move bound and confirmed_move), measured from the newest mark accepted, then
handed to the mark batcher (riskgate.store.mark_batch), which writes the ticks of a few
milliseconds in one Lua call, the last per symbol winning. A refused tick gets its rejection
on the answer stream and the stream goes on.

Audit, as a feed rather than per tick: one entry when the stream opens (who, from where), one
when it closes (first and last tick, counts, rejections by reason, sequence gaps, the longest
silence, how it ended), and per rejection reason at most one entry per REJECTION_AUDIT_INTERVAL_S
(the first at once), counting those in between. All go through the write-behind audit queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc

from riskgate.api.echo import clip
from riskgate.api.handlers import UndecodableRequest
from riskgate.api.marks import MarkMoveRefused, UnknownSymbol, check_mark
from riskgate.engine.spec_rules import SpecError
from riskgate.store.mark_batch import MarkBatcher, PendingTick
from riskgate.store.redis_store import RedisStore
from riskgate.v1 import admin_pb2 as admin

METHOD = "PublishMarks"
REJECTION_AUDIT_INTERVAL_S = 10.0
PROGRESS_INTERVAL_S = 1.0
# Answers waiting to be sent to a feed that does not read them: past this many, rejections are
# only counted (the final answer and the close entry still have them all).
MAX_QUEUED_ACKS = 1000
# How long the end of a stream waits for its last ticks' batch, and for its last answers to go.
DRAIN_TIMEOUT_S = 2.0

INVALID = admin.MARK_REJECT_INVALID
UNKNOWN_SYMBOL = admin.MARK_REJECT_UNKNOWN_SYMBOL
BEYOND_BOUND = admin.MARK_REJECT_BEYOND_BOUND
OUT_OF_ORDER = admin.MARK_REJECT_OUT_OF_ORDER
UNAVAILABLE = admin.MARK_REJECT_UNAVAILABLE
NOT_CONFIRMED = admin.MARK_REJECT_NOT_CONFIRMED


def reason_name(reason: int) -> str:
    return admin.MarkRejectReason.Name(reason).removeprefix("MARK_REJECT_").lower()  # type: ignore[arg-type]


def _ms() -> int:
    return time.time_ns() // 1_000_000


class FeedSession:
    """One stream: its counts, its answers and its audit entries."""

    def __init__(self, actor: str, peer: str, store: RedisStore) -> None:
        self.actor = actor
        self.peer = peer
        self.store = store
        self.opened_ms = _ms()
        self.received = 0
        self.accepted = 0
        self.written = 0
        self.conflated = 0
        self.rejected: Counter[int] = Counter()
        self.written_through = 0
        self.first_tick_ms = 0
        self.last_tick_ms = 0
        self.last_sequence = 0
        self.gaps = 0
        self.missing = 0
        self.longest_silence_s = 0.0
        self.acks_dropped = 0
        self._last_message_at = 0.0
        self._last_progress_at = time.monotonic()
        # Per reason: when its last entry was audited, and the rejections since.
        self._audited: dict[int, tuple[float, int]] = {}
        self._outstanding = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.acks: asyncio.Queue[admin.MarkFeedAck] = asyncio.Queue()

    # ---- ticks in --------------------------------------------------------------------

    def take(self, message: admin.MarkTicks, batcher: MarkBatcher) -> None:
        now = time.monotonic()
        if self._last_message_at:
            self.longest_silence_s = max(self.longest_silence_s, now - self._last_message_at)
        self._last_message_at = now
        if not message.ticks:
            return
        received_ms = _ms()
        if not self.first_tick_ms:
            self.first_tick_ms = received_ms
        self.last_tick_ms = received_ms
        book = batcher.store.book
        why = self.store.not_writable()
        rejections: list[admin.MarkRejection] = []
        for tick in message.ticks:
            self.received += 1
            sequence = tick.sequence
            if sequence:
                if sequence <= self.last_sequence:
                    why_not = f"sequence {sequence} is not above the last one seen in this stream, {self.last_sequence}"
                    rejections.append(self._reject(OUT_OF_ORDER, tick, why_not))
                    continue
                if self.last_sequence and sequence > self.last_sequence + 1:
                    self.gaps += 1
                    self.missing += sequence - self.last_sequence - 1
                self.last_sequence = sequence
            if why is not None:
                rejections.append(self._reject(UNAVAILABLE, tick, f"not written: {why}"))
                continue
            try:
                if not tick.symbol:
                    raise SpecError("symbol", "required")
                mark = check_mark(book, tick.symbol, tick.price, tick.confirmed_move, batcher.last_price(tick.symbol),
                                  received_ms)
            except UnknownSymbol as exc:
                rejections.append(self._reject(UNKNOWN_SYMBOL, tick, str(exc)))
                continue
            except SpecError as exc:
                rejections.append(self._reject(INVALID, tick, str(exc)))
                continue
            except MarkMoveRefused as exc:
                rejections.append(self._reject(BEYOND_BOUND, tick, str(exc)))
                continue
            self.accepted += 1
            self._outstanding += 1
            self._settled.clear()
            batcher.add(PendingTick(mark, sequence, self))
        if rejections:
            self._answer(rejections)

    # ---- what became of them (called by the batcher) ---------------------------------

    def on_written(self, tick: PendingTick) -> None:
        self.written += 1
        self.written_through = max(self.written_through, tick.sequence)
        self._settle()
        now = time.monotonic()
        if now - self._last_progress_at >= PROGRESS_INTERVAL_S:
            self._last_progress_at = now
            self._answer([])

    def on_conflated(self, tick: PendingTick) -> None:
        self.conflated += 1
        self._settle()

    def on_not_written(self, tick: PendingTick, unavailable: bool, why: str) -> None:
        self._settle()
        self._answer([self._reject(UNAVAILABLE if unavailable else NOT_CONFIRMED, tick.mark.symbol, why,
                                   tick.sequence)])

    def _settle(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._settled.set()

    async def settled(self, timeout_s: float) -> None:
        """Until every tick this stream handed over has been written, conflated or refused (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._settled.wait()

    # ---- rejections, answers, audit --------------------------------------------------

    def _reject(self, reason: int, tick: admin.MarkTick | str, message: str, sequence: int = 0
                ) -> admin.MarkRejection:
        symbol = tick if isinstance(tick, str) else tick.symbol
        if not isinstance(tick, str):
            sequence = tick.sequence
        self.rejected[reason] += 1
        now = time.monotonic()
        last, since = self._audited.get(reason, (float("-inf"), 0))
        if now - last >= REJECTION_AUDIT_INTERVAL_S:
            self._audited[reason] = (now, 0)
            entry = self._entry(f"rejected: {reason_name(reason)}: {message}", clip(symbol))
            entry["rejected_since_last_entry"] = str(since + 1)
            self.store.enqueue_audit(entry)
        else:
            self._audited[reason] = (last, since + 1)
        return admin.MarkRejection(sequence=sequence, symbol=clip(symbol, 64), reason=reason,  # type: ignore[arg-type]
                                   message=message[:1000])

    def ack(self, rejections: list[admin.MarkRejection], final: bool = False) -> admin.MarkFeedAck:
        return admin.MarkFeedAck(rejections=rejections, received=self.received, written=self.written,
                                 conflated=self.conflated, rejected=sum(self.rejected.values()),
                                 written_through=self.written_through, final=final)

    def _answer(self, rejections: list[admin.MarkRejection]) -> None:
        if self.acks.qsize() >= MAX_QUEUED_ACKS:
            self.acks_dropped += 1
            return
        self.acks.put_nowait(self.ack(rejections))

    def _entry(self, outcome: str, target: str = "") -> dict[str, str]:
        return {"actor": self.actor[:200], "action": METHOD, "target": target, "outcome": outcome[:1000],
                "peer": self.peer[:200]}

    def audit_open(self) -> None:
        self.store.enqueue_audit(self._entry("opened"))

    def audit_close(self, how: str) -> None:
        entry = self._entry(f"closed: {how}")
        entry.update({
            "opened_ms": str(self.opened_ms), "duration_ms": str(_ms() - self.opened_ms),
            "first_tick_ms": str(self.first_tick_ms), "last_tick_ms": str(self.last_tick_ms),
            "ticks": str(self.received), "accepted": str(self.accepted), "written": str(self.written),
            "conflated": str(self.conflated), "rejected": str(sum(self.rejected.values())),
            "rejected_by_reason": json.dumps({reason_name(r): n for r, n in sorted(self.rejected.items())}),
            "not_settled": str(max(self._outstanding, 0)),
            "last_sequence": str(self.last_sequence), "sequence_gaps": str(self.gaps),
            "missing_ticks": str(self.missing), "longest_silence_ms": str(int(self.longest_silence_s * 1000)),
        })
        if self.acks_dropped:
            entry["acks_dropped"] = str(self.acks_dropped)
        self.store.enqueue_audit(entry)

    async def send(self, context: grpc.aio.ServicerContext) -> None:
        while True:
            ack = await self.acks.get()
            await context.write(ack)
            if ack.final:
                return


async def serve(servicer: Any, requests: AsyncIterator[admin.MarkTicks], context: grpc.aio.ServicerContext
                ) -> None:
    """The whole stream (RiskAdminServicer.PublishMarks)."""
    stream = aiter(requests)
    first: admin.MarkTicks | None
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    except UndecodableRequest as undecodable:
        await undecodable.refuse(context)  # before any token is read: nothing of it was taken
        raise
    principal = await servicer._guard(METHOD, first if first is not None else admin.MarkTicks(), context)
    store: RedisStore = servicer.store
    batcher: MarkBatcher = servicer.mark_batcher()
    session = FeedSession(principal.name, context.peer(), store)
    session.audit_open()
    sender = asyncio.get_running_loop().create_task(session.send(context), name="riskgate-mark-feed-answers")
    how = "cancelled: the feed went away or the call was cut off"
    try:
        message = first
        stopping = False
        while message is not None:
            session.take(message, batcher)
            if not servicer.lifecycle.serving:
                stopping = True
                break
            try:
                message = await anext(stream)
            except StopAsyncIteration:
                message = None
        await session.settled(DRAIN_TIMEOUT_S)
        session.acks.put_nowait(session.ack([], final=True))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await asyncio.shield(sender)
        how = "riskgate is stopping" if stopping else "ended by the feed"
        if stopping:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "riskgate is stopping: reconnect the feed to another "
                                                             "gate process")
    except asyncio.CancelledError:
        raise
    except UndecodableRequest as undecodable:
        how = "aborted: the feed sent bytes that are not a MarkTicks message"
        await undecodable.refuse(context)
    except grpc.aio.AbortError:
        if how.startswith("cancelled"):
            how = f"aborted: {context.code()}: {context.details()}" if _has_code(context) else "aborted"
        raise
    except Exception as exc:
        how = f"failed: {exc!r}"
        raise
    finally:
        sender.cancel()
        session.audit_close(how)


def _has_code(context: grpc.aio.ServicerContext) -> bool:
    try:
        return context.code() is not None
    except Exception:
        return False
