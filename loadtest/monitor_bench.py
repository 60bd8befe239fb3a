"""The monitor's in-process measurements, each run in a child process of `python -m loadtest.monitor`:

- `tick`: an `AccountColumns` book of N synthetic accounts (monitor_accounts.py), filled with
  `AccountColumns.put` as the account feed fills it, then many mark ticks with small random
  moves, timed two ways: `columns.tick(symbol, mark)` alone, and the whole evaluation the
  monitor runs per tick (`AccountWatcher.on_tick` with `default_rules()`, over a `MarketView`
  holding the symbol specs and a mark history; not the actor, so it writes nothing).
- `load`: a real `MonitorService` started against a Redis holding N account records, timed
  until it serves (its account feed loaded and every account evaluated once).

`python -m loadtest.monitor_bench tick --accounts N [--ticks T] [--seconds S] [--cpu C]` and
`python -m loadtest.monitor_bench load --redis-url URL --prefix P --expect N [--cpu C]` print JSON.
The Redis side of `load` (writing the records in the gate's stored format) is here too, used by
the parent, which owns the Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from collections.abc import Callable
from contextlib import suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis
import redis.asyncio as aioredis

from loadtest.monitor_accounts import PRIMARY, SEED, Book, generate
from loadtest.workload import Market, on_grid
from riskgate.book.specs import MarkSpec
from riskgate.config import Config, MonitorConfig, ServerConfig
from riskgate.monitor.account_watch import AccountWatcher
from riskgate.monitor.columns import AccountColumns, Indices
from riskgate.monitor.feed import MarketView
from riskgate.monitor.keys import MonitorKeys
from riskgate.monitor.rules import default_rules
from riskgate.monitor.service import MonitorService
from riskgate.monitor.writes import MonitorWrites
from riskgate.store.codec import encode
from riskgate.store.keys import Keys

# Mark moves per tick: a random walk of this relative size, kept within MAX_DRIFT of the start.
TICK_MOVE = 0.0003
MAX_DRIFT = 0.01
# Marks of the history the view holds before the timed ticks (one per 100 ms: five minutes).
HISTORY_MARKS = 3000
HISTORY_STEP_MS = 100
WRITE_CHUNK = 50_000
HSET_FIELDS = 1000
PIPELINE_COMMANDS = 20
RULE_LEVELS = (0.8, 0.9, 1.0)


def _memory_mb() -> dict[str, float]:
    """Resident memory of this process now and at its peak, MB (Linux)."""
    found = {}
    with suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) / 1024, 1)
    return found


def _figures(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000
    if not len(ms):
        return {"count": 0}
    return {"count": len(ms), "p50": round(float(np.percentile(ms, 50)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3), "max": round(float(ms.max()), 3),
            "mean": round(float(ms.mean()), 3)}


class GcPauses:
    """Collections (and their pauses) while it is on: a full one over a large book is part of a tick."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, Any]:
        every = [p for pauses in self.pauses.values() for p in pauses]
        return {"collections": {str(g): len(p) for g, p in self.pauses.items()},
                "max_pause_ms": round(max(every) * 1000, 3) if every else 0.0}


def market_view(book: Book, now_ms: int) -> tuple[MarketView, int]:
    """Symbol specs, the default rules and a mark history (ending at now_ms), versioned as Redis would."""
    view = MarketView()
    version = 0
    for rule in default_rules():
        version += 1
        view.apply("rule", msgspec.structs.replace(rule, version=version))
    for market in book.markets.values():
        version += 1
        view.apply("symbol", msgspec.structs.replace(market.spec, version=version))
        for k in range(HISTORY_MARKS):
            version += 1
            view.apply("mark", MarkSpec(symbol=market.symbol, price=market.mark,
                                        timestamp_ms=now_ms - (HISTORY_MARKS - k) * HISTORY_STEP_MS, version=version))
    return view, version


def fill(columns: AccountColumns, book: Book, first_version: int) -> None:
    version = first_version
    for start in range(0, book.size, WRITE_CHUNK):
        for snapshot in book.snapshots(start, min(book.size, start + WRITE_CHUNK)):
            columns.put(snapshot.account_id, version, snapshot.balance, snapshot.positions)
            version += 1


def _walk(market: Market, rng: np.random.Generator) -> Callable[[], Decimal]:
    start = float(market.mark)
    price = start

    def step() -> Decimal:
        nonlocal price
        price = min(max(price * (1 + rng.normal(0.0, TICK_MOVE)), start * (1 - MAX_DRIFT)), start * (1 + MAX_DRIFT))
        return on_grid(price, market.spec.tick_size)

    return step


def tick_bench(accounts: int, ticks: int = 300, seconds: float = 10.0, seed: int = SEED) -> dict[str, Any]:
    """Builds the book, then times up to `ticks` ticks (or `seconds` per loop) both ways."""
    began = time.perf_counter()
    book = generate(accounts, seed)
    now = time.time_ns() // 1_000_000
    view, version = market_view(book, now)
    columns = AccountColumns()
    # A writer that is never used: the watcher is not the actor, so it enqueues nothing.
    writes = MonitorWrites(aioredis.Redis(), MonitorKeys("bench"), 1000)
    watcher = AccountWatcher(view, columns, writes)
    for symbol in view.symbols:  # tiers and marks in the book before the accounts, as MonitorService.start does
        watcher.on_tick(symbol)
    generated = time.perf_counter()
    fill(columns, book, version + 1)
    built = time.perf_counter()
    watcher.on_accounts(np.arange(len(columns), dtype=np.int64))
    evaluated = time.perf_counter()
    market = book.markets[PRIMARY]
    rng = np.random.default_rng(seed + 1)
    step = _walk(market, rng)
    gc.collect()
    perf = time.perf_counter
    with GcPauses() as column_gc:
        column_s: list[float] = []
        end = perf() + seconds
        while len(column_s) < ticks and (perf() < end or len(column_s) < 3):
            mark = float(step())
            t0 = perf()
            columns.tick(PRIMARY, mark)
            column_s.append(perf() - t0)
    history = view.marks[PRIMARY]
    latest_ms = history.latest[0] if history.latest else now
    with GcPauses() as watch_gc:
        watch_s: list[float] = []
        end = perf() + seconds
        while len(watch_s) < ticks and (perf() < end or len(watch_s) < 3):
            version += 1
            latest_ms += HISTORY_STEP_MS
            view.apply("mark", MarkSpec(symbol=PRIMARY, price=step(), timestamp_ms=latest_ms, version=version))
            t0 = perf()
            watcher.on_tick(PRIMARY)
            watch_s.append(perf() - t0)
    ratio = columns.ratio[:len(columns)]
    affinity = os.sched_getaffinity(0)
    return {
        "accounts": len(columns),
        "holders": {symbol: holders.n for symbol, holders in columns.holders.items()},
        "build_s": round(built - generated, 3),
        "build_us_per_account": round((built - generated) / max(1, accounts) * 1e6, 2),
        "generate_s": round(generated - began, 3),
        "evaluate_all_ms": round((evaluated - built) * 1000, 3),
        "columns_tick_ms": _figures(column_s),
        "on_tick_ms": _figures(watch_s),
        "gc_columns_tick": column_gc.summary(),
        "gc_on_tick": watch_gc.summary(),
        "at_or_above": {f"{level:g}": int(np.count_nonzero(ratio >= level)) for level in RULE_LEVELS},
        "counting": sum(len(state.counts) for state in watcher.states.values()),
        "cpu": next(iter(affinity)) if len(affinity) == 1 else None,
        **_memory_mb(),
    }


# ---- load: the Redis side (in the parent) ---------------------------------------------------------


def stored(version: int, record: msgspec.Struct) -> bytes:
    """The gate's stored envelope, byte for byte as its Lua scripts write it."""
    return b'{"v":%d,"d":%s}' % (version, encode(record))


def seed_markets(client: redis.Redis, keys: Keys, markets: dict[str, Market]) -> None:
    """Symbols and fresh marks, so the monitor values positions as it loads them."""
    now = time.time_ns() // 1_000_000
    for market in markets.values():
        version = int(client.incr(keys.seq))
        client.hset(keys.symbols, market.symbol, stored(version, market.spec))
        version = int(client.incr(keys.seq))
        client.hset(keys.marks, market.symbol, stored(version, MarkSpec(symbol=market.symbol, price=market.mark,
                                                                        timestamp_ms=now)))


def write_accounts(client: redis.Redis, keys: Keys, book: Book, start: int, stop: int) -> float:
    """Accounts start..stop into the accounts hash (pipelined multi-field HSETs); seconds taken."""
    began = time.perf_counter()
    count = stop - start
    if count <= 0:
        return 0.0
    version = int(client.incrby(keys.shard_seq, count)) - count + 1
    pipe = client.pipeline(transaction=False)
    mapping: dict[str, bytes] = {}
    for chunk in range(start, stop, WRITE_CHUNK):
        for snapshot in book.snapshots(chunk, min(stop, chunk + WRITE_CHUNK)):
            mapping[snapshot.account_id] = stored(version, snapshot)
            version += 1
            if len(mapping) == HSET_FIELDS:
                pipe.hset(keys.accounts, mapping=mapping)  # type: ignore[arg-type]
                mapping = {}
                if len(pipe) >= PIPELINE_COMMANDS:
                    pipe.execute()
    if mapping:
        pipe.hset(keys.accounts, mapping=mapping)  # type: ignore[arg-type]
    pipe.execute()
    return time.perf_counter() - began


# ---- load: the monitor side (in the child) --------------------------------------------------------


def monitor_config(prefix: str, redis_url: str) -> Config:
    return Config(server=ServerConfig(key_prefix=prefix, redis_url=redis_url),
                  monitor=MonitorConfig(listen="127.0.0.1:0", metrics_listen=""))


async def load_once(redis_url: str, prefix: str) -> dict[str, Any]:
    """Starts a MonitorService as `riskgate monitor` does, until it serves; then stops it."""
    service = MonitorService(monitor_config(prefix, redis_url), redis_url, "127.0.0.1:0")
    marks: dict[str, float] = {}
    evaluate = service._on_accounts

    def first_evaluation(accounts: Indices) -> None:
        # The account feed calls this once its records are all in: the load ends here.
        marks.setdefault("loaded", time.perf_counter())
        evaluate(accounts)
        marks.setdefault("evaluated", time.perf_counter())

    service._on_accounts = first_evaluation  # type: ignore[method-assign]
    began = time.perf_counter()
    try:
        await service.start()
        ready = time.perf_counter()
        status = service._status()
    finally:
        await service.stop()
    loaded, evaluated = marks.get("loaded", ready), marks.get("evaluated", ready)
    affinity = os.sched_getaffinity(0)
    return {"accounts": len(service.columns), "start_s": round(ready - began, 3),
            "until_loaded_s": round(loaded - began, 3), "evaluate_all_s": round(evaluated - loaded, 3),
            "feed_live": status.feed_live, "cpu": next(iter(affinity)) if len(affinity) == 1 else None,
            **_memory_mb()}


def _run_loop(coroutine: Any) -> Any:
    """On uvloop, as `riskgate monitor` runs with the default configuration."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency of riskgate
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.monitor_bench")
    sub = parser.add_subparsers(dest="part", required=True)
    tick = sub.add_parser("tick")
    tick.add_argument("--accounts", type=int, required=True)
    tick.add_argument("--ticks", type=int, default=300)
    tick.add_argument("--seconds", type=float, default=10.0)
    load = sub.add_parser("load")
    load.add_argument("--redis-url", required=True)
    load.add_argument("--prefix", required=True)
    for part in (tick, load):
        part.add_argument("--cpu", type=int, default=None, help="pin to this CPU (one core)")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.part == "tick":
        result = tick_bench(args.accounts, args.ticks, args.seconds)
    else:
        result = _run_loop(load_once(args.redis_url, args.prefix))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
