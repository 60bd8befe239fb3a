"""What marks cost the gate: CPU per tick of the old path (SetMarkPrice, one unary call, one
transaction and one audit entry per mark) and of the mark feed (PublishMarks: one stream,
batched writes, audited per stream), at 100 symbols x 10 ticks/s.

    python -m loadtest.markfeed [--seconds 12] [--json results.json]

Starts `riskgate serve` (embedded Redis, no monitor) on 127.0.0.1 with 100 extra symbols, pins
it to a CPU of its own when there are two or more, and reads its CPU time from /proc (user +
system of the gate process, not its Redis). Phases, each after a short warm-up:

- idle: nothing sent (health rounds and the like: what every phase pays anyway);
- unary: SetMarkPrice at 100 ticks/s (100 symbols x 1/s: the old path cannot take 1,000/s on
  one core, its cost per tick is what matters);
- stream-1: PublishMarks, one tick per message, 1,000 ticks/s;
- stream-100: PublishMarks, one message of all 100 symbols every 100 ms, 1,000 ticks/s.

CPU per tick = (gate CPU seconds in the phase - idle rate x phase seconds) / ticks sent; a
core's share = gate CPU seconds / phase seconds at that rate. Bounded to about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import msgspec

from loadtest import servers
from loadtest.cpus import Placement
from loadtest.riskgate_config import ADMIN_TOKEN
from loadtest.workload import Market, Workload, WorkloadConfig, on_grid, text
from riskgate.v1 import admin_pb2 as admin
from riskgate.v1 import admin_pb2_grpc as admin_grpc

SYMBOLS = 100
TICKS_PER_SYMBOL_PER_S = 10
WARMUP_S = 2.0
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


@dataclass
class Phase:
    name: str
    ticks_per_s: float
    seconds: float
    ticks: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    failed: int = 0
    rejected: int = 0

    def per_tick_us(self, idle_rate: float) -> float:
        return (self.cpu_s - idle_rate * self.wall_s) / self.ticks * 1e6 if self.ticks else 0.0

    def core_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def markets(base: Market) -> list[Market]:
    return [Market(msgspec.structs.replace(base.spec, symbol=f"MF{n:03d}USDT"), base.mark) for n in range(SYMBOLS)]


class Prices:
    """A random walk within half a percent of each starting mark: never near max_mark_move."""

    def __init__(self, feed: list[Market]) -> None:
        self.feed = feed
        self.drift = {m.symbol: 0.0 for m in feed}
        self.rng = random.Random(7)

    def next(self, market: Market) -> str:
        drift = max(-0.005, min(0.005, self.drift[market.symbol] + self.rng.uniform(-0.0005, 0.0005)))
        self.drift[market.symbol] = drift
        return text(on_grid(float(market.mark) * (1 + drift), market.spec.tick_size))


async def paced(rate: float, seconds: float, burst_every_s: float, send: object) -> int:
    """Calls send(n) with the ticks due every burst_every_s; returns how many were sent."""
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) - sent
        if due > 0:
            await send(due)  # type: ignore[operator]
            sent += due
        await asyncio.sleep(burst_every_s)
    return sent


async def unary(stub: admin_grpc.RiskAdminStub, prices: Prices, phase: Phase, seconds: float) -> None:
    turn = 0
    calls: set[asyncio.Future[object]] = set()

    def done(call: asyncio.Future[object]) -> None:
        calls.discard(call)
        if call.cancelled() or call.exception() is not None:
            phase.failed += 1

    async def send(n: int) -> None:
        nonlocal turn
        for _ in range(n):
            market = prices.feed[turn % len(prices.feed)]
            turn += 1
            call = asyncio.ensure_future(stub.SetMarkPrice(admin.MarkPrice(symbol=market.symbol,
                                                                           price=prices.next(market)),
                                                           metadata=AUTH, timeout=5.0))
            calls.add(call)
            call.add_done_callback(done)

    phase.ticks += await paced(phase.ticks_per_s, seconds, 0.01, send)
    if calls:
        await asyncio.wait(calls, timeout=5.0)


async def stream(stub: admin_grpc.RiskAdminStub, prices: Prices, phase: Phase, seconds: float, per_message: int
                 ) -> None:
    call = stub.PublishMarks(metadata=AUTH)
    turn = 0
    sequence = 0

    async def send(n: int) -> None:
        nonlocal turn, sequence
        message = admin.MarkTicks()
        for _ in range(n):
            market = prices.feed[turn % len(prices.feed)]
            turn += 1
            sequence += 1
            message.ticks.append(admin.MarkTick(symbol=market.symbol, price=prices.next(market), sequence=sequence))
            if len(message.ticks) >= per_message:
                await call.write(message)
                message = admin.MarkTicks()
        if message.ticks:
            await call.write(message)

    async def answers() -> admin.MarkFeedAck | None:
        last = None
        while (ack := await call.read()) is not grpc.aio.EOF:
            last = ack
        return last

    reader = asyncio.ensure_future(answers())
    burst = 0.01 if per_message == 1 else 1 / TICKS_PER_SYMBOL_PER_S
    phase.ticks += await paced(phase.ticks_per_s, seconds, burst, send)
    await call.done_writing()
    final = await asyncio.wait_for(reader, 10.0)
    if final is not None:
        phase.rejected += final.rejected


async def run_phase(gate: servers.Server, phase: Phase, prices: Prices, per_message: int = 0) -> Phase:
    async with grpc.aio.insecure_channel(gate.admin_target) as channel:
        stub = admin_grpc.RiskAdminStub(channel)

        async def drive(seconds: float, into: Phase) -> None:
            if phase.name == "idle":
                await asyncio.sleep(seconds)
            elif phase.name == "unary":
                await unary(stub, prices, into, seconds)
            else:
                await stream(stub, prices, into, seconds, per_message)

        await drive(WARMUP_S, Phase("warm-up", phase.ticks_per_s, WARMUP_S))
        cpu_before, wall_before = gate.cpu_seconds(), time.monotonic()
        await drive(phase.seconds, phase)
        phase.cpu_s = gate.cpu_seconds() - cpu_before
        phase.wall_s = time.monotonic() - wall_before
    return phase


async def check_marks(gate: servers.Server, prices: Prices) -> int:
    """How many of the feed's symbols the gate holds a mark for."""
    async with grpc.aio.insecure_channel(gate.admin_target) as channel:
        stub = admin_grpc.RiskAdminStub(channel)
        listed = await stub.ListSymbols(admin.ListSymbolsRequest(), metadata=AUTH, timeout=10)
    held = {s.spec.symbol for s in listed.symbols if s.mark.price}
    return sum(1 for m in prices.feed if m.symbol in held)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per phase")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    workload = Workload(WorkloadConfig(accounts=50, hot_accounts=0))
    feed = markets(next(iter(workload.markets.values())))
    workload.markets.update({m.symbol: m for m in feed})
    prices = Prices(feed)
    rate = SYMBOLS * TICKS_PER_SYMBOL_PER_S
    phases = [Phase("idle", 0, args.seconds / 2), Phase("unary", SYMBOLS * 1.0, args.seconds),
              Phase("stream-1", rate, args.seconds), Phase("stream-100", rate, args.seconds)]
    placement = Placement.split()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="markfeed-")))
        gate = servers.start_riskgate(workload, workdir, wait=False)
        stack.callback(gate.stop)
        servers.wait_ready(gate)
        gate.place(placement.server, placement.client)
        for phase in phases:
            per_message = 100 if phase.name == "stream-100" else 1
            asyncio.run(run_phase(gate, phase, prices, per_message))
            if not gate.alive():
                print(f"riskgate exited: {gate.log_tail()}", file=sys.stderr)
                return 1
        held = asyncio.run(check_marks(gate, prices))
    idle_rate = phases[0].core_share()
    lines = [f"gate CPU pinned: {placement.pinned}; idle gate: {idle_rate:.2%} of a core",
             f"{'phase':<11} {'ticks/s':>8} {'ticks':>7} {'gate CPU':>9} {'per tick':>10} {'at 1000/s':>10} "
             f"{'failed':>6} {'rejected':>8}"]
    results = {"idle_core_share": idle_rate, "pinned": placement.pinned, "marks_held": held, "phases": []}
    for phase in phases[1:]:
        per_tick = phase.per_tick_us(idle_rate)
        lines.append(f"{phase.name:<11} {phase.ticks / phase.wall_s:>8.0f} {phase.ticks:>7} {phase.core_share():>9.2%} "
                     f"{per_tick:>8.1f}us {per_tick * rate / 1e6:>10.2%} {phase.failed:>6} {phase.rejected:>8}")
        results["phases"].append({"name": phase.name, "ticks": phase.ticks, "seconds": round(phase.wall_s, 2),  # type: ignore[attr-defined]
                                  "gate_cpu_s": round(phase.cpu_s, 3), "core_share": round(phase.core_share(), 4),
                                  "per_tick_us_net_of_idle": round(per_tick, 1),
                                  "core_share_at_1000_per_s_net": round(per_tick * rate / 1e6, 4),
                                  "failed": phase.failed, "rejected": phase.rejected})
    lines.append(f"the gate holds a mark for {held} of the {SYMBOLS} fed symbols")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
