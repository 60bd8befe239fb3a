"""`python -m loadtest.scale`: start-up, memory and resync of `riskgate serve` against a large book.

For each size (default 10k and 100k accounts; `--sizes 1000000` for a million): a fresh embedded
Redis on 127.0.0.1 gets N synthetic accounts in the gate's stored format (the monitor
benchmark's generator: BTCUSDT for everyone, ETHUSDT for 30%, i.e. 1-2 positions; a share with
an open order each), then `riskgate serve --redis-url ... --no-monitor --metrics-listen ""`
is started and watched by a probe in this process, on an event loop of its own in its own thread
(so the harness's own blocking calls, a synchronous Redis command or reading a log, never show up
as the gate's stall):

- a CheckOrder every 5 ms (risk-increasing, small, round-robin over probe accounts so no
  per-account rate limit is hit), and the gRPC health check every 20 ms;
- launch -> first answer, launch -> health SERVING, launch -> first accepted order;
- the gate's RSS once loaded (and per account, over an empty book's);
- the longest stall of answers (the largest gap between two consecutive answers, or an answer's
  own latency, whichever is larger) in the second after SERVING, during a Redis pause
  (kill -STOP / -CONT, `--outage-s`), and during a link loss (every gate connection killed with
  CLIENT KILL: the gate resubscribes and reloads); for each, how long risk-increasing orders
  were refused as STATE_UNAVAILABLE.

Everything stops by itself within `--max-seconds` (a size that cannot start is reported, not
waited for); every child process is stopped on the way out. Prints a table, writes JSON.
`--pythonpath DIR` runs the gate from another tree (e.g. an export of an older commit) to
compare before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import grpc
import msgspec
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.monitor_accounts import LEVERAGE, PRIMARY, generate
from loadtest.monitor_bench import seed_markets, stored, write_accounts
from loadtest.servers import HOST, ROOT, free_port
from loadtest.workload import Market, load_markets
from riskgate.book.specs import AccountSnapshot, ControlsSpec, ReservationSpec
from riskgate.store.embedded import EmbeddedRedis
from riskgate.store.keys import Keys, order_field
from riskgate.v1 import pretrade_pb2 as pb
from riskgate.v1 import pretrade_pb2_grpc as pb_grpc

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "scale"
PREFIX = "rg"  # the bundled configuration's key prefix
ACCOUNT_PREFIX = "sc-"
ORDER_SHARE = 10  # one account in ORDER_SHARE holds an open order
PROBE_ACCOUNTS = 40
PROBE_INTERVAL_S = 0.005
HEALTH_INTERVAL_S = 0.02
ANSWER_TIMEOUT_S = 5.0
SETTLE_S = 1.0
MARK_MAX_AGE_MS = 86_400_000
# The longest wait for orders to be accepted again after a Redis pause or link loss, and how
# long they must then go on being accepted.
PHASE_WAIT_S = 90.0
STEADY_S = 3.0
_reservation = msgspec.json.Encoder(decimal_format="string")


@dataclass
class Answer:
    sent: float
    done: float
    accepted: bool
    unavailable: bool


@dataclass
class Result:
    accounts: int
    orders: int
    write_s: float = 0.0
    first_answer_s: float | None = None
    serving_s: float | None = None
    first_accept_s: float | None = None
    rss_mib: float | None = None
    rss_per_account_kib: float | None = None
    redis_per_account_kib: float | None = None
    stall_after_serving_ms: float | None = None
    pause_stall_ms: float | None = None
    pause_refused_s: float | None = None
    kill_stall_ms: float | None = None
    kill_refused_s: float | None = None
    kill_reload_s: float | None = None
    notes: list[str] = field(default_factory=list)


def write_book(client: redis.Redis, size: int) -> tuple[int, float]:
    """N accounts, their open orders, the probe accounts, symbols and marks; (orders, seconds)."""
    began = time.perf_counter()
    keys = Keys(PREFIX)
    # Marks written once must stay fresh for the whole run (the workload's markets expect a feed); no
    # open-interest cap, which a million synthetic accounts would fill.
    markets = {m.symbol: Market(msgspec.structs.replace(m.spec, mark_price_max_age_ms=MARK_MAX_AGE_MS,
                                                  open_interest_cap=None), m.mark)
               for m in load_markets()}
    seed_markets(client, keys, markets)
    book = generate(size, prefix=ACCOUNT_PREFIX, markets=markets)
    write_accounts(client, keys, book, 0, size)
    market = markets[PRIMARY]
    spec = market.spec
    price = (market.mark * Decimal("0.9")).quantize(spec.tick_size)
    quantity = spec.min_quantity
    orders = 0
    pipe = client.pipeline(transaction=False)
    mapping: dict[str, bytes] = {}
    for index in range(0, size, ORDER_SHARE):
        account_id = book.account_id(index)
        order_id = f"open-{index}"
        mapping[order_field(account_id, order_id)] = _reservation.encode(ReservationSpec(
            order_id=order_id, account_id=account_id, symbol=PRIMARY, side=1, price=price, leverage=LEVERAGE,
            remaining=quantity, reducing_left=Decimal(0), increasing_left=quantity,
            cost_left=price * quantity / LEVERAGE, margin_left=price * quantity / LEVERAGE,
            created_ms=time.time_ns() // 1_000_000))
        orders += 1
        if len(mapping) == 1000:
            pipe.hset(keys.orders, mapping=mapping)  # type: ignore[arg-type]
            mapping = {}
            if len(pipe) >= 20:
                pipe.execute()
    if mapping:
        pipe.hset(keys.orders, mapping=mapping)  # type: ignore[arg-type]
    pipe.execute()
    version = int(client.incrby(keys.seq, 2 * PROBE_ACCOUNTS))
    client.hset(keys.accounts, mapping={  # type: ignore[arg-type]
        probe_account(n): stored(version - n, AccountSnapshot(account_id=probe_account(n), balance=Decimal(10**8)))
        for n in range(PROBE_ACCOUNTS)})
    client.hset(keys.controls, mapping={  # type: ignore[arg-type]
        probe_account(n): stored(version - PROBE_ACCOUNTS - n, ControlsSpec(account_id=probe_account(n), kyc_level=3,
                                                                            qualified_investor=True))
        for n in range(PROBE_ACCOUNTS)})
    return orders, time.perf_counter() - began


def probe_account(n: int) -> str:
    return f"scale-probe-{n}"


class Probe:
    """Sends a CheckOrder every PROBE_INTERVAL_S and polls health; keeps every answer."""

    def __init__(self, target: str, price: str) -> None:
        self.target = target
        self.price = price
        self.answers: list[Answer] = []
        self.serving_at: float | None = None
        self.stopped = False
        self.last_refusal: list[str] = []
        self._n = 0

    async def run(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = pb_grpc.PreTradeRiskStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            tasks = {asyncio.create_task(self._health(health))}
            try:
                while not self.stopped:
                    tasks.add(asyncio.create_task(self._check(stub)))
                    tasks = {t for t in tasks if not t.done()}
                    await asyncio.sleep(PROBE_INTERVAL_S)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _check(self, stub: pb_grpc.PreTradeRiskStub) -> None:
        self._n += 1
        n = self._n
        request = pb.CheckOrderRequest(order_id=f"probe-{os.getpid()}-{n}",
                                       account_id=probe_account(n % PROBE_ACCOUNTS), symbol=PRIMARY,
                                       side=pb.SIDE_BUY, order_type=pb.ORDER_TYPE_LIMIT, quantity="0.001",
                                       price=self.price, leverage=LEVERAGE)
        sent = time.monotonic()
        try:
            response = await stub.CheckOrder(request, timeout=ANSWER_TIMEOUT_S, wait_for_ready=False)
        except grpc.RpcError:
            return
        done = time.monotonic()
        unavailable = any(r.code == pb.REASON_STATE_UNAVAILABLE for r in response.reasons)
        accepted = response.decision == pb.DECISION_ACCEPT
        self.answers.append(Answer(sent, done, accepted, unavailable))
        if not accepted:
            self.last_refusal = [pb.ReasonCode.Name(r.code) for r in response.reasons]
            return
        # Canceled at once: the probe accounts never accumulate reservations.
        with contextlib.suppress(grpc.RpcError):
            await stub.ReportExecution(pb.ExecutionReport(
                order_id=request.order_id, account_id=request.account_id, kind=pb.EXECUTION_KIND_CANCELED,
                execution_id=f"c-{request.order_id}"), timeout=ANSWER_TIMEOUT_S)

    async def _health(self, health: health_pb2_grpc.HealthStub) -> None:
        while not self.stopped and self.serving_at is None:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    self.serving_at = time.monotonic()
            except grpc.RpcError:
                pass
            await asyncio.sleep(HEALTH_INTERVAL_S)


def stall_ms(answers: list[Answer], start: float, end: float, sent_from: float | None = None) -> float:
    """The longest time without an answer in [start, end]: gaps between answers, and latencies
    (of the answers sent from `sent_from` on, when given)."""
    done = sorted(a.done for a in answers if start <= a.done <= end)
    first_sent = float("-inf") if sent_from is None else sent_from
    longest = max((a.done - a.sent for a in answers if start <= a.done <= end and a.sent >= first_sent),
                  default=0.0)
    points = [start, *done, end]
    gaps = max((b - a for a, b in itertools.pairwise(points)), default=0.0)
    return round(max(longest, gaps) * 1000, 1)


def refused_s(answers: list[Answer], start: float, end: float) -> float:
    """From the first to the last STATE_UNAVAILABLE refusal sent in [start, end] (0: none)."""
    refused = [a.sent for a in answers if start <= a.sent <= end and a.unavailable]
    return round(refused[-1] - refused[0], 2) if refused else 0.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def gate_env(pythonpath: str | None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [pythonpath] if pythonpath else []
    paths += [str(ROOT / "service"), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


async def measure(size: int, workdir: Path, args: argparse.Namespace, deadline: float) -> Result:
    with EmbeddedRedis(workdir / f"redis-{size}") as server:
        client = redis.Redis.from_url(server.url)
        try:
            orders, write_s = write_book(client, size)
            result = Result(size, orders, write_s=round(write_s, 1))
            # Redis's memory for the book (its used memory over the probe's and symbols' few records).
            used = int(client.info("memory")["used_memory"])  # type: ignore[index]
            result.redis_per_account_kib = round(used / 1024 / size, 2)
            port, admin_port = free_port(), free_port()
            log_path = workdir / f"riskgate-{size}.log"
            with log_path.open("wb") as log_file:
                launched = time.monotonic()
                gate = subprocess.Popen(
                    [sys.executable, "-m", "riskgate.cli.main", "serve", "--redis-url", server.url,
                     "--listen", f"{HOST}:{port}", "--admin-listen", f"{HOST}:{admin_port}", "--metrics-listen", "",
                     "--no-monitor", "--log-level", "INFO"],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir,
                    env=gate_env(args.pythonpath))
            mark = next(m.mark for m in load_markets() if m.symbol == PRIMARY)
            probe = Probe(f"{HOST}:{port}", format(mark, "f"))
            running = threading.Thread(target=asyncio.run, args=(probe.run(),), name="scale-probe", daemon=True)
            running.start()
            try:
                await _measure_gate(result, gate, probe, server, client, launched, deadline, args)
            finally:
                probe.stopped = True
                await asyncio.to_thread(running.join, 10)
                if gate.poll() is None:
                    gate.terminate()
                    try:
                        gate.wait(15)
                    except subprocess.TimeoutExpired:
                        gate.kill()
                        gate.wait()
                errors = [line for line in log_path.read_text(errors="replace").splitlines() if "ERROR" in line]
                if errors:
                    result.notes.append(f"{len(errors)} ERROR lines in the gate's log, first: {errors[0][:300]}")
            return result
        finally:
            client.close()


async def _measure_gate(result: Result, gate: subprocess.Popen[bytes], probe: Probe, server: EmbeddedRedis,
                        client: redis.Redis, launched: float, deadline: float, args: argparse.Namespace) -> None:
    def since(t: float | None) -> float | None:
        return None if t is None else round(t - launched, 2)

    while probe.serving_at is None or not any(a.accepted for a in probe.answers):
        if gate.poll() is not None:
            result.notes.append(f"gate exited with {gate.returncode} before it was ready")
            return
        if time.monotonic() > min(deadline, launched + args.ready_s):
            result.notes.append(f"not ready within the time budget (SERVING: {probe.serving_at is not None}, "
                                f"last refusal: {probe.last_refusal})")
            result.first_answer_s = since(min((a.done for a in probe.answers), default=None))
            return
        await asyncio.sleep(0.05)
    result.first_answer_s = since(min(a.done for a in probe.answers))
    result.serving_s = since(probe.serving_at)
    result.first_accept_s = since(min(a.done for a in probe.answers if a.accepted))
    await asyncio.sleep(SETTLE_S)
    # Orders sent while health still said NOT_SERVING (during the post-load collection) are not
    # a stall of a serving gate: only those sent from SERVING on count.
    result.stall_after_serving_ms = stall_ms(probe.answers, probe.serving_at, probe.serving_at + SETTLE_S,
                                             sent_from=probe.serving_at)
    rss = rss_mib(gate.pid)
    result.rss_mib = round(rss, 0)
    result.rss_per_account_kib = round((rss - args.empty_rss_mib) * 1024 / result.accounts, 2)
    pid = server.pid
    if pid is None:
        return
    # A Redis pause: the link hangs, nothing is closed.
    began = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(args.outage_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    returned = time.monotonic()
    await _until_accepting(probe, returned, deadline)
    await asyncio.sleep(SETTLE_S)
    result.pause_stall_ms = stall_ms(probe.answers, began, time.monotonic())
    result.pause_refused_s = refused_s(probe.answers, began, time.monotonic())
    # A link loss: every connection of the gate closed by Redis; it resubscribes and reloads.
    began = time.monotonic()
    for kind in ("pubsub", "normal"):
        client.client_kill_filter(_type=kind, skipme=True)
    reload_done = await _until_accepting(probe, began, deadline)
    await asyncio.sleep(SETTLE_S)
    result.kill_stall_ms = stall_ms(probe.answers, began, time.monotonic())
    result.kill_refused_s = refused_s(probe.answers, began, time.monotonic())
    result.kill_reload_s = None if reload_done is None else round(reload_done - began, 2)


async def _until_accepting(probe: Probe, after: float, deadline: float) -> float | None:
    """Waits (at most PHASE_WAIT_S) until orders sent after `after` are accepted and stay so:
    STEADY_S without a STATE_UNAVAILABLE refusal (longer than the staleness bound, so a gate
    that accepts on the freshness it proved before a loss, then fails closed while it reloads,
    is not taken as recovered). Returns when the first accept after the last refusal was
    answered."""
    deadline = min(deadline, time.monotonic() + PHASE_WAIT_S)
    while time.monotonic() < deadline:
        answers = [a for a in probe.answers if a.sent > after]
        refused = [a.sent for a in answers if a.unavailable]
        last_refused = refused[-1] if refused else after
        accepted = [a.done for a in answers if a.accepted and a.sent > last_refused]
        if accepted and time.monotonic() - last_refused >= STEADY_S:
            return accepted[0]
        await asyncio.sleep(0.02)
    print(f"  orders not steadily accepted within {PHASE_WAIT_S:.0f} s; last refusal: {probe.last_refusal}",
          flush=True)
    return None


def empty_rss_mib(workdir: Path, args: argparse.Namespace) -> float:
    """The gate's RSS on an empty book (the bundled configuration only): subtracted per account."""
    result = asyncio.run(_empty_rss(workdir, args))
    return result


async def _empty_rss(workdir: Path, args: argparse.Namespace) -> float:
    with EmbeddedRedis(workdir / "redis-empty") as server:
        port, admin_port = free_port(), free_port()
        with (workdir / "riskgate-empty.log").open("wb") as log_file:
            gate = subprocess.Popen(
                [sys.executable, "-m", "riskgate.cli.main", "serve", "--redis-url", server.url, "--listen",
                 f"{HOST}:{port}", "--admin-listen", f"{HOST}:{admin_port}", "--metrics-listen", "", "--no-monitor"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir,
                env=gate_env(args.pythonpath))
        try:
            async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                for _ in range(600):
                    try:
                        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    await asyncio.sleep(0.1)
            await asyncio.sleep(SETTLE_S)
            return rss_mib(gate.pid)
        finally:
            gate.terminate()
            try:
                gate.wait(15)
            except subprocess.TimeoutExpired:
                gate.kill()
                gate.wait()


COLUMNS = [
    ("accounts", "accounts"), ("orders", "open orders"), ("first_answer_s", "launch -> first answer (s)"),
    ("serving_s", "launch -> SERVING (s)"), ("first_accept_s", "launch -> first accept (s)"),
    ("rss_mib", "RSS (MiB)"), ("rss_per_account_kib", "KiB/account"),
    ("redis_per_account_kib", "Redis KiB/account"),
    ("stall_after_serving_ms", "stall, 1 s after SERVING (ms)"),
    ("pause_stall_ms", "stall, Redis paused (ms)"), ("pause_refused_s", "refused, Redis paused (s)"),
    ("kill_stall_ms", "stall, link killed (ms)"), ("kill_refused_s", "refused, link killed (s)"),
    ("kill_reload_s", "link killed -> accepting (s)"),
]


def table(results: list[Result], outage_s: float) -> str:
    header = [title.replace("Redis paused", f"Redis paused {outage_s:g} s") for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        values = asdict(r)
        cells = []
        for key, _ in COLUMNS:
            value = values[key]
            cells.append("-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated account counts")
    parser.add_argument("--outage-s", type=float, default=3.0, help="how long Redis is paused (kill -STOP)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="the whole run's time budget")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json")
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. before/after)")
    parser.add_argument("--pythonpath", default=None, help="run the gate from this source tree instead")
    parser.add_argument("--ready-s", type=float, default=240.0, help="the longest wait for a gate to be ready")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs and data here (default: a temp dir)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    began = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="riskgate-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        args.empty_rss_mib = empty_rss_mib(workdir, args)
        print(f"gate RSS on an empty book: {args.empty_rss_mib:.0f} MiB", flush=True)
        for size in sizes:
            remaining = args.max_seconds - (time.monotonic() - began)
            if remaining < 30:
                print(f"skipping {size:,} accounts: out of time", flush=True)
                continue
            print(f"{size:,} accounts ...", flush=True)
            result = asyncio.run(measure(size, workdir, args, time.monotonic() + remaining - 15))
            results.append(result)
            print(table([result], args.outage_s).splitlines()[-1], *result.notes, sep="\n", flush=True)
    print(table(results, args.outage_s))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"results{'-' + args.label if args.label else ''}.json"
    path.write_text(json.dumps({"at": datetime.now(UTC).isoformat(), "label": args.label,
                                "outage_s": args.outage_s, "empty_rss_mib": args.empty_rss_mib,
                                "results": [asdict(r) for r in results]}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
