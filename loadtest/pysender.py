"""The Python sender: the fallback when the native one cannot be built. Same protocol, same records.

It paces with clock_nanosleep at 1 ns timer slack (not asyncio, whose selector rounds every sleep
up to a whole millisecond) and never waits for an answer before the next send. What it cannot
avoid is its own CPU: tens of microseconds per call, which on 2 cores the server feels.
`python -m loadtest.pysender --target HOST:PORT --mode unary|stream --input F --output F --rate R`
"""

from __future__ import annotations

import argparse
import queue
import resource
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from loadtest import records as rec
from loadtest import wire
from loadtest.schedule import Clock, MonotonicClock, open_loop, run_open_loop
from riskgate.v1 import pretrade_pb2 as pb

CHECK_ORDER = "/riskgate.v1.PreTradeRisk/CheckOrder"
CHECK_ORDERS = "/riskgate.v1.PreTradeRisk/CheckOrders"
REPORT_EXECUTION = "/riskgate.v1.PreTradeRisk/ReportExecution"
REPORT_EXECUTIONS = "/riskgate.v1.PreTradeRisk/ReportExecutions"
DECISION_ACCEPT = 1
DECISION_REDUCE_ONLY = 3


UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class ExecutionFeed:
    """Execution reports on one ReportExecutions stream: numbered 1, 2, 3... as they are sent,
    each timed until an acknowledgement covers its offset (status from its listed outcome)."""

    def __init__(self, call: Any, timeout_s: float, sender: PySender) -> None:
        self.sender = sender
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._unacked: deque[tuple[int, int]] = deque()
        self._next = 1
        self._responses = call(iter(self._queue.get, None), timeout=timeout_s)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def submit(self, index: int, report: bytes) -> None:
        with self._lock:
            offset = self._next
            self._next += 1
            self._unacked.append((offset, index))
        # ExecutionFeedMessage{offset = 1, report = 2}, framed by hand around the prebuilt report.
        self._queue.put(b"\x08" + _varint(offset) + b"\x12" + _varint(len(report)) + report)

    def _read(self) -> None:
        clock = self.sender.clock
        status = rec.STATUS_OK
        try:
            for raw in self._responses:
                at = clock.now_ns()
                ack = pb.ExecutionFeedAck.FromString(raw)
                codes = {o.offset: o.code for o in ack.outcomes}
                with self._lock:
                    done = []
                    while self._unacked and self._unacked[0][0] <= ack.acked_through:
                        done.append(self._unacked.popleft())
                for offset, index in done:
                    self.sender.records[index]["exec_done_ns"] = at
                    self.sender.records[index]["exec_status"] = codes.get(offset, rec.STATUS_OK)
                    self.sender._end()
        except grpc.RpcError as error:
            status = error.code().value[0]  # type: ignore[attr-defined]
        at = clock.now_ns()
        with self._lock:
            left, self._unacked = list(self._unacked), deque()
        for _, index in left:
            self.sender.records[index]["exec_done_ns"] = at
            self.sender.records[index]["exec_status"] = status if status != rec.STATUS_OK else UNKNOWN
            self.sender._end()

    def close(self, timeout_s: float) -> None:
        self._queue.put(None)
        self._reader.join(timeout_s)


class PySender:
    """Sends prebuilt requests on schedule through gRPC multi-callables (real ones, or test doubles)."""

    def __init__(self, orders: list[tuple[bytes, bytes, bytes]], deadline_s: float, check: Any, checks: Any,
                 execute: Any, clock: Clock) -> None:
        # execute: the ReportExecution multi-callable; or None with `feed` set (the stream).
        self.orders = orders
        self.records = rec.empty(len(orders))
        self.deadline_s = deadline_s
        self.clock = clock
        self.check = check
        self.checks = checks
        self.execute = execute
        self.channels: list[grpc.Channel] = []
        self.feed: ExecutionFeed | None = None
        self._lock = threading.Lock()
        self._outstanding = 0
        self._idle = threading.Event()
        self._idle.set()

    @classmethod
    def connect(cls, target: str, orders: list[tuple[bytes, bytes, bytes]], deadline_s: float,
                timeout_s: float = 10.0, exec_mode: str = "stream", run_s: float = 60.0) -> PySender:
        # Checks on one connection, execution reports on another, as the native sender does.
        options = [("grpc.use_local_subchannel_pool", 1)]
        channel, exec_channel = grpc.insecure_channel(target, options), grpc.insecure_channel(target, options)
        for each in (channel, exec_channel):
            grpc.channel_ready_future(each).result(timeout=timeout_s)
        sender = cls(orders, deadline_s, channel.unary_unary(CHECK_ORDER), channel.stream_stream(CHECK_ORDERS),
                     exec_channel.unary_unary(REPORT_EXECUTION), MonotonicClock())
        sender.channels = [channel, exec_channel]
        if exec_mode == "stream":
            sender.feed = ExecutionFeed(exec_channel.stream_stream(REPORT_EXECUTIONS), run_s + 15 + 2 * deadline_s,
                                        sender)
        return sender

    def _begin(self) -> None:
        with self._lock:
            self._outstanding += 1
            self._idle.clear()

    def _end(self) -> None:
        with self._lock:
            self._outstanding -= 1
            if not self._outstanding:
                self._idle.set()

    def _answered(self, index: int, response: bytes, at_ns: int) -> None:
        record = self.records[index]
        record["done_ns"] = at_ns
        record["status"] = rec.STATUS_OK
        parsed = pb.CheckOrderResponse.FromString(response)
        record["decision"] = parsed.decision
        record["reason"] = parsed.reasons[0].code if parsed.reasons else 0
        _, on_accept, on_reduce = self.orders[index]
        report = on_accept if parsed.decision == DECISION_ACCEPT else (
            on_reduce if parsed.decision == DECISION_REDUCE_ONLY else b"")
        if report:
            self._begin()
            record["exec_sent_ns"] = self.clock.now_ns()
            if self.feed is not None:
                self.feed.submit(index, report)
                return
            future = self.execute.future(report, timeout=self.deadline_s)
            future.add_done_callback(lambda f: self._executed(index, f))

    def _failed(self, index: int, error: grpc.RpcError, at_ns: int) -> None:
        self.records[index]["done_ns"] = at_ns
        self.records[index]["status"] = error.code().value[0]  # type: ignore[attr-defined]

    def _executed(self, index: int, future: Any) -> None:
        record = self.records[index]
        record["exec_done_ns"] = self.clock.now_ns()
        error = future.exception()
        record["exec_status"] = error.code().value[0] if error is not None else rec.STATUS_OK  # type: ignore[attr-defined]
        self._end()

    def run_unary(self, rate: float, start_ns: int, offset_ns: int) -> None:
        def send(index: int, planned: int) -> None:
            self.records[index]["planned_ns"] = planned
            self.records[index]["sent_ns"] = self.clock.now_ns()
            self._begin()
            future = self.check.future(self.orders[index][0], timeout=self.deadline_s)
            future.add_done_callback(lambda f: self._checked(index, f))

        run_open_loop(len(self.orders), rate, start_ns, offset_ns, self.clock, send)

    def _checked(self, index: int, future: Any) -> None:
        at = self.clock.now_ns()
        try:
            self._answered(index, future.result(), at)
        except grpc.RpcError as error:
            self._failed(index, error, at)
        finally:
            self._end()

    def run_stream(self, rate: float, start_ns: int, offset_ns: int) -> None:
        def requests() -> Iterator[bytes]:
            # gRPC's own thread drains this generator, so pacing here never blocks the reader below.
            for index, planned in open_loop(len(self.orders), rate, start_ns, offset_ns, self.clock):
                self.records[index]["planned_ns"] = planned
                self.records[index]["sent_ns"] = self.clock.now_ns()
                yield self.orders[index][0]

        run_s = len(self.orders) / rate
        call = self.checks(requests(), timeout=run_s + 15 + self.deadline_s)
        index = 0
        try:
            for response in call:
                self._answered(index, response, self.clock.now_ns())
                index += 1
        except grpc.RpcError as error:
            at = self.clock.now_ns()
            for left in range(index, len(self.orders)):
                self._failed(left, error, at)

    def wait(self, timeout_s: float) -> None:
        self._idle.wait(timeout_s)
        if self.feed is not None:
            self.feed.close(timeout_s)
        for channel in self.channels:
            channel.close()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.pysender")
    parser.add_argument("--target", required=True)
    parser.add_argument("--mode", choices=["unary", "stream"], default="unary")
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--offset-ns", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1, help="accepted for parity; the Python sender uses one")
    parser.add_argument("--deadline-ms", type=int, default=5000)
    parser.add_argument("--exec-mode", choices=["stream", "unary"], default="stream")
    args, _ = parser.parse_known_args(argv)  # options only the native sender has are ignored
    orders = wire.decode_orders(args.input.read_bytes())
    sender = PySender.connect(args.target, orders, args.deadline_ms / 1000, exec_mode=args.exec_mode,
                              run_s=len(orders) / args.rate)
    print("ready", flush=True)
    word, start = sys.stdin.readline().split()
    if word != "start":
        return 1
    if args.mode == "unary":
        sender.run_unary(args.rate, int(start), args.offset_ns)
    else:
        sender.run_stream(args.rate, int(start), args.offset_ns)
    sender.wait(args.deadline_ms / 1000 + 5)
    rec.save(args.output, sender.records)
    print(f"done {_cpu_seconds():.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
