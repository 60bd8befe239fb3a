"""`python -m loadtest.monitor`: the monitor's benchmark, bounded in time, against 127.0.0.1 only.

1. Tick evaluation: a book of 10k, 100k and 1M synthetic accounts holding BTCUSDT (30% also
   ETHUSDT), one mark tick after another, timed as `AccountColumns.tick` alone and as the whole
   `AccountWatcher.on_tick` with the default rules; a child process pinned to one CPU.
2. Load: the same sizes written to an embedded Redis in the gate's stored format, then a real
   `MonitorService` started against it (a child process pinned to one CPU) until it serves.
3. The gate with and without a monitor: `riskgate serve` at one offered unary CheckOrder rate,
   alternately without and with `riskgate monitor` running beside it on the other CPU (marks
   moved ten times a second), the p99 of both compared in the same run.

Then the table, results.md and results.json. Every child process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import redis

from loadtest import cpus, latency, run, senders, servers
from loadtest.cpus import Placement
from loadtest.latency import Percentiles
from loadtest.marks import MarkFeeder
from loadtest.monitor_accounts import generate
from loadtest.monitor_bench import seed_markets, write_accounts
from loadtest.progress import RunProgress, describe
from loadtest.riskgate_config import ADMIN_TOKEN
from loadtest.search import SearchPlan
from loadtest.servers import Server, child_env
from loadtest.step_result import StepResult
from loadtest.workload import Workload, WorkloadConfig
from riskgate.config import load_config
from riskgate.monitor.keys import MonitorKeys
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys
from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "monitor"
# The targets.
TICK_TARGET_ACCOUNTS = 100_000
TICK_TARGET_MS = 50.0
LOAD_TARGET_ACCOUNTS = 1_000_000
LOAD_TARGET_S = 60.0
GATE_MAX_P99_RATIO = 1.05
MARK_UPDATES_PER_SECOND = 10.0
LOAD_PREFIX = "rg"
MONITOR_READY_S = 120.0
RESERVE_S = 5.0
# Starting the senders, their start delay, collecting records, settling: what a phase costs beyond its length.
PHASE_OVERHEAD_S = 2.5
WITHOUT, WITH = "without monitor", "with monitor"
PARTS = ("tick", "load", "gate")
# Idle accounts in the gate are small (retail-sized): 100,000 of them hold about a quarter of the
# BTCUSDT and a sixth of the ETHUSDT open-interest cap, so the workload's orders still fit the caps.
IDLE_BALANCES = (50.0, 12_500.0)


@dataclass(frozen=True)
class Settings:
    quick: bool
    max_seconds: float
    sizes: tuple[int, ...]
    ticks: int
    tick_seconds: float
    rate: float
    phase_seconds: float
    pairs: int
    warmup_seconds: float
    # The accounts orders come from (the load test's workload), and idle accounts (positions, no
    # orders in the run) that the gate and the monitor hold too, so each mark tick gives the
    # monitor the work of a realistic book.
    gate_accounts: int
    idle_accounts: int
    parts: tuple[str, ...] = PARTS
    # Niceness of the measured monitors (0: as started by hand).
    monitor_nice: int = 0


FULL = Settings(quick=False, max_seconds=900, sizes=(10_000, 100_000, 1_000_000), ticks=300, tick_seconds=15.0,
                rate=500.0, phase_seconds=20.0, pairs=3, warmup_seconds=3.0, gate_accounts=4000,
                idle_accounts=100_000)
QUICK = Settings(quick=True, max_seconds=115, sizes=(10_000, 100_000), ticks=100, tick_seconds=2.0, rate=500.0,
                 phase_seconds=5.0, pairs=2, warmup_seconds=1.0, gate_accounts=2000, idle_accounts=10_000)


# ---- time and memory estimates (upper bounds measured on the 2-core VM; used to skip what cannot fit) ----

def tick_estimate_s(accounts: int, settings: Settings) -> float:
    return 3.0 + accounts * 45e-6 + 2 * settings.tick_seconds


def load_estimate_s(accounts: int, written: int) -> float:
    return 4.0 + (accounts - written) * 20e-6 + accounts * 70e-6


def gate_estimate_s(settings: Settings) -> float:
    monitor_start = 3.0 + settings.idle_accounts * 60e-6
    phase = settings.phase_seconds + PHASE_OVERHEAD_S
    # Two gate starts (the second loads the idle accounts), the first monitor, the warm-up, the pairs.
    return (20.0 + settings.idle_accounts * 80e-6 + monitor_start + settings.warmup_seconds + 2
            + settings.pairs * (2 * phase + monitor_start + 1.0))


def memory_estimate_mb(accounts: int) -> float:
    """The tick child's or the monitor's resident memory for a book of this size (about 1.2 KB each)."""
    return 150 + accounts * 1.2e-3


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.reserved = 0.0

    def left(self) -> float:
        return self.deadline - time.monotonic() - self.reserved


class _Stopped(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(f"stopped by signal {signum}")


def _child(args: list[str], timeout_s: float, also: Sequence[int] = ()) -> dict[str, Any]:
    """Runs one measurement in a child process; adds the cores that anything outside it (and the
    processes in `also`, and this one) used meanwhile: other work sharing the machine."""
    def used() -> float:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (children.ru_utime + children.ru_stime + time.process_time()
                + sum(cpus.cpu_seconds(pid) for pid in also))

    machine, ours, began = cpus.machine_busy_seconds(), used(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "loadtest.monitor_bench", *args], capture_output=True, text=True,
                          timeout=timeout_s, env=child_env(), check=False)
    if done.returncode:
        raise RuntimeError(f"monitor_bench {args[0]} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    wall = max(time.monotonic() - began, 1e-3)
    other = (cpus.machine_busy_seconds() - machine) - (used() - ours)
    result["other_cores"] = round(max(0.0, other) / wall, 2)
    return result


def _skip(accounts: int, why: str, log: Callable[[str], None]) -> dict[str, Any]:
    log(f"[yellow]{accounts:,} accounts skipped: {why}[/yellow]")
    return {"accounts": accounts, "skipped": why}


def _fits(accounts: int, need_s: float, budget: Budget) -> str:
    if budget.left() < need_s:
        return f"needs about {need_s:.0f} s, {max(0.0, budget.left()):.0f} s left in --max-seconds"
    need_mb = memory_estimate_mb(accounts) * 1.5
    if available_mb() < need_mb:
        return f"needs about {need_mb:,.0f} MB of memory, {available_mb():,.0f} MB available"
    return ""


# ---- 1. tick evaluation ----------------------------------------------------------------------------

def run_ticks(settings: Settings, placement: Placement, budget: Budget, progress: RunProgress) -> list[dict[str, Any]]:
    rows = []
    cpu = min(placement.server) if placement.pinned else None
    for accounts in settings.sizes:
        need = tick_estimate_s(accounts, settings)
        why = _fits(accounts, need, budget)
        if why:
            rows.append(_skip(accounts, why, progress.log))
            continue
        progress.stage(f"tick evaluation, {accounts:,} accounts")
        args = ["tick", "--accounts", str(accounts), "--ticks", str(settings.ticks),
                "--seconds", str(settings.tick_seconds)] + (["--cpu", str(cpu)] if cpu is not None else [])
        try:
            row = _child(args, timeout_s=budget.left())
        except subprocess.TimeoutExpired:
            rows.append(_skip(accounts, "did not finish within the time budget", progress.log))
            continue
        rows.append(row)
        progress.finished()
        progress.log(f"tick {accounts:>9,}: columns.tick p50 {row['columns_tick_ms']['p50']:.2f} ms "
                     f"p99 {row['columns_tick_ms']['p99']:.2f} ms; on_tick p50 {row['on_tick_ms']['p50']:.2f} ms "
                     f"p99 {row['on_tick_ms']['p99']:.2f} ms max {row['on_tick_ms']['max']:.2f} ms "
                     f"({row['on_tick_ms']['count']} ticks); built in {row['build_s']:.1f} s, "
                     f"{row.get('rss_mb', 0):,.0f} MB")
    return rows


# ---- 2. load from Redis ------------------------------------------------------------------------------

def run_loads(settings: Settings, placement: Placement, budget: Budget, workdir: Path, stack: ExitStack,
              progress: RunProgress) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    embedded = EmbeddedRedis(workdir / "monitor-load-redis")
    progress.stage("starting an embedded Redis")
    embedded.start()
    stack.callback(embedded.stop)
    if embedded.pid is not None:
        cpus.pin(embedded.pid, placement.client)
    client = redis.Redis.from_url(embedded.url)
    stack.callback(client.close)
    keys = Keys(LOAD_PREFIX)
    book = generate(max(settings.sizes))
    seed_markets(client, keys, book.markets)
    cpu = min(placement.server) if placement.pinned else None
    written = 0
    for accounts in settings.sizes:
        need = load_estimate_s(accounts, written)
        why = _fits(accounts, need, budget)
        if why:
            rows.append(_skip(accounts, why, progress.log))
            continue
        progress.stage(f"writing {accounts - written:,} accounts to Redis")
        write_s = write_accounts(client, keys, book, written, accounts)
        written_now, written = accounts - written, accounts
        memory = client.info("memory")
        progress.stage(f"monitor loading {accounts:,} accounts")
        args = ["load", "--redis-url", embedded.url, "--prefix", LOAD_PREFIX] + (
            ["--cpu", str(cpu)] if cpu is not None else [])
        try:
            row = _child(args, timeout_s=max(5.0, budget.left()), also=[embedded.pid] if embedded.pid else [])
        except subprocess.TimeoutExpired:
            rows.append(_skip(accounts, "the monitor did not load within the time budget", progress.log))
            continue
        row.update({"written": written_now, "write_s": round(write_s, 3),
                    "redis_used_mb": round(int(memory["used_memory"]) / 2**20, 1)})
        rows.append(row)
        progress.finished()
        progress.log(f"load {accounts:>9,}: monitor serving after {row['start_s']:.2f} s (records loaded at "
                     f"{row['until_loaded_s']:.2f} s, all evaluated {row['evaluate_all_s']:.2f} s later); "
                     f"{row.get('peak_rss_mb', 0):,.0f} MB peak; Redis {row['redis_used_mb']:,.0f} MB; "
                     f"{written_now:,} written in {write_s:.1f} s")
    return rows


# ---- 3. the gate with and without the monitor ----------------------------------------------------------

def redis_url_of(server: Server) -> str:
    """The URL of `riskgate serve`'s embedded Redis, read from its child's command line."""
    for pid in server.helpers or cpus.tree(server.process.pid)[1:]:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found = re.search(r"--port (\d+)", command) or re.search(r"127\.0\.0\.1:(\d+)", command)
        if "redis" in command and found:
            return f"redis://127.0.0.1:{found.group(1)}/0"
    raise RuntimeError("cannot find riskgate's embedded Redis")


def start_monitor(redis_url: str, config: Path, workdir: Path, placement: Placement, label: str, nice: int = 0
                  ) -> Server:
    """`riskgate monitor` beside the gate, on the harness's CPU; returns once it says it is ready."""
    log_path = workdir / f"monitor-{label}.log"
    args = [*(["nice", "-n", str(nice)] if nice else []), sys.executable, "-m", "riskgate.cli.main", "monitor",
            "--redis-url", redis_url, "--listen",
            "127.0.0.1:0", "--config", str(config), "--log-level", "WARNING"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                   cwd=workdir, env=child_env(), text=True)
    server = Server("monitor", 0, process, log_path)
    try:
        cpus.pin(process.pid, placement.client)
        assert process.stdout is not None
        deadline = time.monotonic() + MONITOR_READY_S
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"monitor not ready after {MONITOR_READY_S:.0f} s: {server.log_tail()}")
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()
                if not line:
                    raise RuntimeError(f"monitor exited at start ({process.wait()}): {server.log_tail()}")
                if "ready on" in line:
                    server.port = int(line.strip().rsplit(":", 1)[1])
                    break
        cpus.pin(process.pid, placement.client)  # threads started meanwhile
    except BaseException:
        server.stop()
        raise
    return server


def monitor_status(monitor: Server) -> dict[str, Any]:
    try:
        with grpc.insecure_channel(monitor.target) as channel:
            status = mpb_grpc.RiskMonitorStub(channel).GetMonitorStatus(
                mpb.MonitorStatusRequest(), metadata=[("authorization", f"Bearer {ADMIN_TOKEN}")], timeout=2.0)
    except grpc.RpcError as exc:
        return {"error": str(exc.code())}
    return {"role": status.role, "feed_live": status.feed_live, "accounts": status.accounts,
            "account_events": status.account_events, "lag_ms": status.lag_ms, "open_episodes": status.open_episodes}


def pooled(steps: Sequence[StepResult]) -> Percentiles:
    return Percentiles.of(latency.merge(latency.decode(s.histogram) for s in steps))


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def gate_summary(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Both conditions' latencies pooled over the pairs, and the ratio the budget is read on.

    Only complete pairs undisturbed by other work on the machine count, when there is one;
    otherwise every phase does, and the summary says so."""
    complete = sorted(pair for pair in {p["pair"] for p in phases}
                      if {p["condition"] for p in phases if p["pair"] == pair} == {WITHOUT, WITH})
    clean = [pair for pair in complete if not any(p["disturbed"] for p in phases if p["pair"] == pair)]
    used = clean or complete
    if not used:
        return {"passed": None, "why": "no pair measured with and without the monitor"}
    by = {c: [p["_step"] for p in phases if p["condition"] == c and p["pair"] in used] for c in (WITHOUT, WITH)}
    without, with_ = pooled(by[WITHOUT]), pooled(by[WITH])
    p99 = ratio(with_.p99, without.p99)
    pairs = {}
    for pair in complete:
        got = {p["condition"]: p["_step"].latency_us.p99 for p in phases if p["pair"] == pair}
        pairs[pair] = ratio(got[WITH], got[WITHOUT])
    return {"without": without.as_dict(), "with": with_.as_dict(), "ratio_p50": ratio(with_.p50, without.p50),
            "ratio_p99": p99, "pair_ratios_p99": pairs, "pairs_used": used,
            "note": "" if clean else ("every pair was disturbed by other work on the machine: all are pooled, "
                                      "and the comparison is inconclusive"),
            "budget": GATE_MAX_P99_RATIO,
            "passed": (p99 is not None and p99 <= GATE_MAX_P99_RATIO) if clean else None}


def run_gate(settings: Settings, placement: Placement, budget: Budget, workdir: Path, stack: ExitStack,
             progress: RunProgress) -> dict[str, Any]:
    workload = Workload(WorkloadConfig(accounts=settings.gate_accounts))
    progress.stage("starting riskgate")
    first_gate = servers.start_riskgate(workload, workdir)
    stack.callback(first_gate.stop)
    config_path = workdir / "riskgate.toml"
    prefix = load_config(config_path).server.key_prefix
    progress.stage(f"writing {settings.idle_accounts:,} idle accounts")
    extra = generate(settings.idle_accounts, prefix="idle-", markets=workload.markets, balances=IDLE_BALANCES)
    with redis.Redis.from_url(redis_url_of(first_gate)) as first_client:
        write_s = write_accounts(first_client, Keys(prefix), extra, 0, extra.size)
    # Started again on the same data, the gate holds the idle accounts too, as it would in production.
    first_gate.stop()
    progress.stage(f"starting riskgate again ({settings.gate_accounts + settings.idle_accounts:,} accounts)")
    gate = servers.start_riskgate(workload, workdir, wait=False)
    stack.callback(gate.stop)
    servers.wait_ready(gate)
    gate.place(placement.server, placement.client)
    redis_url = redis_url_of(gate)
    client = redis.Redis.from_url(redis_url)
    stack.callback(client.close)
    feeder = MarkFeeder(gate.admin_target, list(workload.markets.values()),
                        updates_per_second=MARK_UPDATES_PER_SECOND).start()
    stack.callback(feeder.stop)
    backend, fallback = senders.choose_backend("auto", run.SPIN_US if placement.pinned else 0)
    if fallback:
        progress.log(f"[yellow]native sender unavailable ({fallback}); using the Python sender[/yellow]")
    plan = SearchPlan((settings.rate,))
    bench = run.Bench(replace(run.QUICK, step_seconds=settings.phase_seconds, warmup_seconds=settings.warmup_seconds,
                              accounts=settings.gate_accounts, unary=plan, stream=plan), workload, backend, placement,
                      workdir, progress)
    bench.servers = {"riskgate": gate}
    bench.measure("riskgate", "unary", settings.rate, settings.warmup_seconds, "warm")
    progress.finished()
    alerts_key = MonitorKeys(prefix).alerts
    # A first monitor, not measured, fires what the book holds past the rules' levels (alerts,
    # close-only, liquidation candidates): the measured monitors then find those episodes open
    # and do what a monitor does in a steady state.
    progress.stage("first monitor: acting on the book")
    first = start_monitor(redis_url, config_path, workdir, placement, "first")
    try:
        bench.settle(first)
        _until_steady(lambda: int(client.hlen(alerts_key)))
        fired_first = int(client.hlen(alerts_key))
    finally:
        first.stop()
    progress.log(f"first monitor: {fired_first:,} alerts fired on the book before the measured phases")
    phases: list[dict[str, Any]] = []
    phase_cost = settings.phase_seconds + PHASE_OVERHEAD_S
    monitor_cost = 3.0 + settings.idle_accounts * 60e-6
    pair = 0
    # A pair disturbed by other work on the machine is measured again, up to once per planned pair.
    while clean_pairs(phases) < settings.pairs and pair < 2 * settings.pairs:
        if budget.left() < 2 * phase_cost + monitor_cost:
            progress.log(f"[yellow]time budget reached: gate phases stop before pair {pair + 1}[/yellow]")
            break
        pair += 1
        for condition in (WITHOUT, WITH):
            phase = measure_phase(bench, settings, condition, pair, lambda label: start_monitor(
                redis_url, config_path, workdir, placement, label, settings.monitor_nice),
                lambda: int(client.hlen(alerts_key)))
            phases.append(phase)
            progress.finished()
            step = phase["_step"]
            extra_text = (f" monitor cpu {phase['monitor_cpu']:.2f}, {phase['monitor'].get('account_events', 0):,} "
                          f"account events" if condition == WITH else "")
            disturbed = f" [yellow]disturbed: {phase['disturbed']}[/yellow]" if phase["disturbed"] else ""
            progress.log(f"{condition:15} {describe(step)}{extra_text}{disturbed}")
    return {"rate": settings.rate, "phase_seconds": settings.phase_seconds, "gate_accounts": settings.gate_accounts,
            "idle_accounts": settings.idle_accounts, "idle_accounts_write_s": round(write_s, 2),
            "monitor_nice": settings.monitor_nice,
            "marks_per_second": MARK_UPDATES_PER_SECOND, "marks_sent": feeder.sent, "marks_failed": feeder.failed,
            "sender": backend.name + (f" (fallback: {fallback})" if fallback else ""),
            "alerts_fired_first": fired_first, "phases": phases, "summary": gate_summary(phases)}


def _until_steady(count: Callable[[], int], timeout_s: float = 20.0) -> None:
    """Until count() stops changing for a second (the first monitor has fired what it will)."""
    deadline = time.monotonic() + timeout_s
    last = count()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = count()
        if now == last:
            return
        last = now


def clean_pairs(phases: list[dict[str, Any]]) -> int:
    pairs = {p["pair"] for p in phases}
    return sum(1 for pair in pairs if len([p for p in phases if p["pair"] == pair]) == 2
               and not any(p["disturbed"] for p in phases if p["pair"] == pair))


def measure_phase(bench: run.Bench, settings: Settings, condition: str, pair: int,
                  start: Callable[[str], Server], alerts: Callable[[], int]) -> dict[str, Any]:
    """One phase at the offered rate; with the monitor, a fresh one started (outside the measured
    window) before and stopped after."""
    monitor = None
    phase: dict[str, Any] = {"condition": condition, "pair": pair}
    if condition == WITH:
        bench.progress.stage(f"starting the monitor (pair {pair})")
        started = time.monotonic()
        monitor = start(str(pair))
        phase["monitor_ready_s"] = round(time.monotonic() - started, 2)
        bench.servers["monitor"] = monitor
    try:
        if monitor is not None:
            bench.settle(monitor)
            alerts_before = alerts()
            before = monitor.cpu_seconds()
        began = time.monotonic()
        step = bench.measure("riskgate", "unary", settings.rate, settings.phase_seconds,
                             f"{'m' if monitor else 'n'}{pair}")
        if monitor is not None:
            phase["monitor_cpu"] = round((monitor.cpu_seconds() - before) / (time.monotonic() - began), 3)
            phase["monitor"] = monitor_status(monitor)
            phase["alerts"] = alerts() - alerts_before
    finally:
        if monitor is not None:
            bench.servers.pop("monitor", None)
            monitor.stop()
    phase["_step"] = step
    phase["disturbed"] = step.disturbance()
    return phase


# ---- report --------------------------------------------------------------------------------------------

def _measured(rows: list[dict[str, Any]], accounts: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["accounts"] == accounts and "skipped" not in r), None)


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    tick = _measured(result["tick"], TICK_TARGET_ACCOUNTS)
    out.append({"target": f"one mark tick over {TICK_TARGET_ACCOUNTS:,} holders, whole evaluation (p99), one core",
                "wanted": f"< {TICK_TARGET_MS:g} ms",
                "measured": f"{tick['on_tick_ms']['p99']:.1f} ms" if tick else "not measured",
                "met": tick["on_tick_ms"]["p99"] < TICK_TARGET_MS if tick else None})
    load = _measured(result["load"], LOAD_TARGET_ACCOUNTS)
    out.append({"target": f"{LOAD_TARGET_ACCOUNTS:,} accounts loaded from Redis (monitor start until serving)",
                "wanted": f"< {LOAD_TARGET_S:g} s", "measured": f"{load['start_s']:.1f} s" if load else "not measured",
                "met": load["start_s"] < LOAD_TARGET_S if load else None})
    summary = result["gate"].get("summary", {}) if result.get("gate") else {}
    got = summary.get("ratio_p99")
    measured = f"{got:.3f}" if got is not None else "not measured"
    if got is not None and summary.get("passed") is None:
        measured += " (every pair disturbed: inconclusive)"
    out.append({"target": "gate CheckOrder p99 with / without the monitor, same rate, same run",
                "wanted": f"<= {GATE_MAX_P99_RATIO}", "measured": measured, "met": summary.get("passed")})
    return out


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"# riskgate monitor benchmark ({'quick' if meta['quick'] else 'full'})", "",
             f"- {meta['started']}, {meta['duration_s']:.0f} s, {meta['machine']}; {meta['placement']}",
             f"- book: {meta['book']}", ""]
    lines += ["## Targets", "", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        met = "-" if t["met"] is None else ("yes" if t["met"] else "NO")
        lines.append(f"| {t['target']} | {t['wanted']} | {t['measured']} | {met} |")
    if result["tick"]:
        lines += ["", "## 1. Mark tick evaluation (one core, ms per tick)", "",
                  "`columns.tick` re-values every holder of BTCUSDT; `on_tick` is the whole evaluation the monitor "
                  "runs per tick (`AccountWatcher.on_tick`, default rules: margin ratio 0.8/0.9/1.0 and "
                  "concentration; a standby, so it writes nothing).", "",
                  "| accounts | holders BTC / ETH | columns.tick p50 | p99 | max | on_tick p50 | p99 | max | ticks "
                  "| >= 0.8 / 0.9 / 1.0 | GC during on_tick (gen0/1/2, max pause ms) | book built (s, us/account) "
                  "| RSS MB | other cores |", "|" + "---|" * 14]
        for row in result["tick"]:
            if "skipped" in row:
                lines.append(f"| {row['accounts']:,} | skipped: {row['skipped']} |" + " |" * 12)
                continue
            col, watch, gc_ = row["columns_tick_ms"], row["on_tick_ms"], row["gc_on_tick"]
            holders = " / ".join(f"{n:,}" for n in row["holders"].values())
            above = " / ".join(f"{n:,}" for n in row["at_or_above"].values())
            collections = "/".join(str(n) for n in gc_["collections"].values())
            lines.append(f"| {row['accounts']:,} | {holders} | {col['p50']:.2f} | {col['p99']:.2f} | {col['max']:.2f} "
                         f"| {watch['p50']:.2f} | {watch['p99']:.2f} | {watch['max']:.2f} | {watch['count']} | {above} "
                         f"| {collections}, {gc_['max_pause_ms']:.1f} | {row['build_s']:.1f}, "
                         f"{row['build_us_per_account']:.0f} | {row.get('rss_mb', 0):,.0f} "
                         f"| {_cell(row.get('other_cores'))} |")
    if result["load"]:
        lines += ["", "## 2. Load from Redis (MonitorService start until serving, one core)", "",
                  "| accounts | serving after s | records loaded at s | first evaluation s | us per account "
                  "| monitor peak RSS MB | Redis used MB | written (this step) | write s | other cores |",
                  "|" + "---|" * 10]
        for row in result["load"]:
            if "skipped" in row:
                lines.append(f"| {row['accounts']:,} | skipped: {row['skipped']} |" + " |" * 8)
                continue
            per = row["start_s"] / max(1, row["accounts"]) * 1e6
            lines.append(f"| {row['accounts']:,} | {row['start_s']:.2f} | {row['until_loaded_s']:.2f} "
                         f"| {row['evaluate_all_s']:.2f} | {per:.0f} | {row.get('peak_rss_mb', 0):,.0f} "
                         f"| {row['redis_used_mb']:,.0f} | {row['written']:,} | {row['write_s']:.1f} "
                         f"| {_cell(row.get('other_cores'))} |")
    gate = result.get("gate") or {}
    if gate.get("phases"):
        summary = gate["summary"]
        lines += ["", "## 3. Gate CheckOrder latency without and with the monitor (us, from the planned send time)",
                  "", f"Unary CheckOrder at {gate['rate']:,.0f}/s offered (plus one ReportExecution per allowed "
                  "order), "
                  f"{gate['phase_seconds']:g} s per phase, alternating; {gate['gate_accounts']:,} gate accounts and "
                  f"{gate['idle_accounts']:,} idle accounts (positions, no orders) held by both; marks moved "
                  f"{gate['marks_per_second']:g} times a second ({gate['marks_sent']:,} sent, {gate['marks_failed']} "
                  f"failed); sender: {gate['sender']}. A first monitor, not measured, fired "
                  f"{gate['alerts_fired_first']:,} alerts on the book before the phases (those episodes stay "
                  "open, as in a steady state).", "",
                  "| phase | condition | p50 | p99 | p99.9 | max | answered | accepted | late max "
                  "| cpu gate / client / other | monitor cpu | monitor role, account events, lag ms | new alerts |",
                  "|" + "---|" * 13]
        for p in gate["phases"]:
            step: StepResult = p["_step"]
            lat = step.latency_us
            status = p.get("monitor") or {}
            seen = (f"{status.get('role', '?')}, {status.get('account_events', 0):,}, {status.get('lag_ms', 0)}"
                    if status else "-")
            mark = " (disturbed)" if p["disturbed"] else ""
            accepted = step.decisions.get("ACCEPT", 0) / max(1, step.answered)
            lines.append(f"| {p['pair']} | {p['condition']}{mark} | {lat.p50:,} | {lat.p99:,} | {lat.p999:,} "
                         f"| {lat.max:,} | {step.answered:,}/{step.sent:,} | {accepted:.0%} | {step.lateness_us.max:,} "
                         f"| {step.cpu.server:.2f} / "
                         f"{step.cpu.client:.2f} / {step.cpu.background:.2f} | {_cell(p.get('monitor_cpu'))} "
                         f"| {seen} | {_cell(p.get('alerts'))} |")
        if "ratio_p99" in summary:
            verdict = {True: "pass", False: "FAIL", None: "inconclusive"}[summary["passed"]]
            lines += ["", f"Pooled over the phases: without p50 {summary['without']['p50']:,} us, p99 "
                      f"{summary['without']['p99']:,} us; with p50 {summary['with']['p50']:,} us, p99 "
                      f"{summary['with']['p99']:,} us. **p99 ratio with / without: {summary['ratio_p99']:.3f}** "
                      f"(budget <= {GATE_MAX_P99_RATIO}: {verdict}); p50 ratio {summary['ratio_p50']:.3f}. "
                      "Pairs pooled: "
                      + ", ".join(str(p) for p in summary["pairs_used"]) + "; p99 ratio per pair: "
                      + ", ".join(f"{pair}: {_cell(r, 3)}" for pair, r in summary["pair_ratios_p99"].items())
                      + ". " + (summary["note"] or "A pair with a phase disturbed by other work on the machine "
                                "(*other* > 0.25 cores, or the sender stalled) is left out and measured again.")]
    lines += ["", "## Reading it", "",
              "- *other cores*: CPU used meanwhile by processes outside the benchmark (this machine is shared): "
              "at 0.5 or more, expect the figures to be inflated.",
              "- Tick figures come from a child process pinned to one CPU; `on_tick` includes `columns.tick`. "
              "The accounts are synthetic (loadtest/monitor_accounts.py): log-uniform balances, log-normal "
              "leverage, entries scattered around the mark, so about 1% sit at or above the 80% margin ratio "
              "(the column `>= 0.8 / 0.9 / 1.0`): the rules' per-account work scales with that tail.",
              "- Load: the records are written in the gate's stored format (`{\"v\": version, \"d\": "
              "AccountSnapshot}` in the accounts hash), then a fresh `MonitorService` (child process, one CPU, "
              "uvloop as `riskgate monitor` runs) starts: rules seeded, symbols and marks loaded, every record "
              "read with HSCAN into the column book, every account evaluated once. *serving after* is that whole "
              "start; *records loaded at* is when the last record was in.",
              "- Gate: the same harness pieces as `python -m loadtest` (compiled open-loop sender, HDR histograms, "
              "latency from the planned send time, gate alone on its CPU). The monitor is a separate `riskgate "
              "monitor` process on the harness's CPU, started fresh for each *with* phase (outside the measured "
              "window) and stopped after it. *other*: CPU used by anything outside the harness, the gate and "
              "the monitor."]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in result.items() if k != "gate"}
    gate = dict(result.get("gate") or {})
    gate["phases"] = [{**{k: v for k, v in p.items() if k != "_step"}, "step": p["_step"].as_dict()}
                      for p in gate.get("phases", [])]
    public["gate"] = gate
    paths = [out / "results.json", out / "results.md"]
    paths[0].write_text(json.dumps(public, indent=2, default=str) + "\n")
    paths[1].write_text(markdown(result))
    return paths


# ---- the command ---------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.monitor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k accounts only, short gate phases "
                                                             "(under 2 minutes)")
    parser.add_argument("--max-seconds", type=float, help=f"hard bound on the run (default {FULL.max_seconds:g}, "
                                                          f"quick {QUICK.max_seconds:g}); sizes that do not fit "
                                                          "are skipped, and the report says so")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--rate", type=float, help=f"the gate's offered CheckOrder rate (default {FULL.rate:g}/s)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the measured processes to CPUs")
    parser.add_argument("--monitor-nice", type=int, default=0,
                        help="run the measured monitors under `nice -n N` (default 0: normal priority)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {', '.join(PARTS)} (default: all)")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else FULL
    if args.max_seconds:
        settings = replace(settings, max_seconds=args.max_seconds)
    if args.rate:
        settings = replace(settings, rate=args.rate)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise SystemExit(f"--parts: expected some of {', '.join(PARTS)}, got {args.parts!r}")
    return replace(settings, parts=parts, monitor_nice=args.monitor_nice)


def execute(settings: Settings, pin: bool, progress_factory: Callable[[int], RunProgress]) -> dict[str, Any]:
    began = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    budget = Budget(settings.max_seconds - RESERVE_S)
    placement = Placement.split(pin)
    result: dict[str, Any] = {"tick": [], "load": [], "gate": {}}
    parts = settings.parts
    total = (len(settings.sizes) * (("tick" in parts) + ("load" in parts))
             + (1 + 2 * settings.pairs if "gate" in parts else 0))
    with ExitStack() as stack, progress_factory(total) as progress:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="riskgate-monitor-bench-")))
        budget.reserved = gate_estimate_s(settings) if "gate" in parts else 0.0
        if "tick" in parts:
            result["tick"] = run_ticks(settings, placement, budget, progress)
        if "load" in parts:
            result["load"] = run_loads(settings, placement, budget, workdir, stack, progress)
        budget.reserved = 0.0
        if "gate" in parts:
            result["gate"] = run_gate(settings, placement, budget, workdir, stack, progress)
    result["meta"] = {
        "quick": settings.quick, "started": started_at, "duration_s": round(time.monotonic() - began, 1),
        "command": "python -m loadtest.monitor" + (" --quick" if settings.quick else "")
        + (f" --parts {','.join(parts)}" if parts != PARTS else "")
        + (f" --monitor-nice {settings.monitor_nice}" if settings.monitor_nice else ""),
        "machine": cpus.describe_machine(),
        "placement": (f"measured process (tick child, loading monitor, gate) on CPU {sorted(placement.server)}; "
                      f"Redis, senders and the monitor beside the gate on CPU {sorted(placement.client)}"
                      if placement.pinned else "not pinned"),
        "book": "synthetic accounts, every one holding BTCUSDT, 30% also ETHUSDT, bundled tier tables and marks",
        "settings": asdict(settings),
    }
    result["targets"] = targets(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = settings_from(args)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        result = execute(settings, not args.no_pin, RunProgress)
    except (_Stopped, KeyboardInterrupt) as exc:
        print(f"loadtest.monitor: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    paths = write_outputs(result, args.out)
    print(markdown(result))
    print("wrote " + ", ".join(os.path.relpath(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
