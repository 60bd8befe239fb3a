"""The load-test harness itself: open-loop schedule, latency from planned send times, HDR percentiles.

No sockets and no timing assertions: time is a fake clock the tests move by hand.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from loadtest import engine_bench, latency, profiling, report, riskgate_config, wire
from loadtest import records as rec
from loadtest.latency import Percentiles
from loadtest.pysender import ExecutionFeed, PySender
from loadtest.schedule import planned_ns, run_open_loop, sender_shares
from loadtest.search import SearchPlan, highest_passing, step_up
from loadtest.step_result import Cpu, StepResult, summarize
from loadtest.workload import LEVERAGES, Intent, Workload, WorkloadConfig
from riskgate.config import load_config
from riskgate.v1 import pretrade_pb2 as pb

MS = 1_000_000
QUIET = Cpu(server=0.5, server_helpers=0.0, client=0.1, background=0.0)


class FakeClock:
    """Virtual CLOCK_MONOTONIC: sleeping jumps to the deadline; `stall` makes the sender late on purpose."""

    def __init__(self, now: int = 0) -> None:
        self.now = now
        self.sleeps: list[int] = []

    def now_ns(self) -> int:
        return self.now

    def sleep_until(self, deadline_ns: int) -> None:
        self.sleeps.append(deadline_ns)
        self.now = max(self.now, deadline_ns)

    def stall(self, ns: int) -> None:
        self.now += ns


class SlowServer:
    """One request at a time, `service_ns` each, in arrival order: overloaded whenever rate x service > 1."""

    def __init__(self, service_ns: int) -> None:
        self.service_ns = service_ns
        self.free_at = 0

    def answer_at(self, arrival_ns: int) -> int:
        self.free_at = max(self.free_at, arrival_ns) + self.service_ns
        return self.free_at


def test_planned_times_are_start_plus_index_over_rate() -> None:
    assert [planned_ns(5 * MS, 0, i, 1000) for i in range(4)] == [5 * MS, 6 * MS, 7 * MS, 8 * MS]
    assert planned_ns(0, 250_000, 3, 2000) == 250_000 + 1_500_000


def test_sender_shares_interleave_into_one_even_schedule() -> None:
    shares = sender_shares(3000, 3)
    merged = sorted(planned_ns(0, offset, i, rate) for rate, offset in shares for i in range(100))
    assert merged == [planned_ns(0, 0, n, 3000) for n in range(300)]


def test_open_loop_sends_on_schedule_however_slow_the_answers() -> None:
    clock, server = FakeClock(), SlowServer(service_ns=3 * MS)  # 333/s of capacity, offered 1000/s
    records = rec.empty(50)

    def send(i: int, planned: int) -> None:
        # Open loop: the send returns at once; when the answer comes is the server's business.
        records["planned_ns"][i], records["sent_ns"][i] = planned, clock.now_ns()
        records["done_ns"][i], records["status"][i] = server.answer_at(clock.now_ns()), rec.STATUS_OK

    run_open_loop(50, 1000, start_ns=10 * MS, offset_ns=0, clock=clock, send=send)

    assert records["sent_ns"].tolist() == [10 * MS + i * MS for i in range(50)]
    assert clock.sleeps == records["planned_ns"].tolist()  # it only ever waited for the schedule
    # The backlog shows: the last answer is 101 ms after its planned time, not the 3 ms a closed loop would see.
    assert latency.latency_us(records)[-1] == (10 * MS + 50 * 3 * MS - (10 * MS + 49 * MS)) // 1000 == 101_000


def test_a_late_sender_catches_up_at_once_and_the_lateness_counts_in_the_latency() -> None:
    clock, server = FakeClock(), SlowServer(service_ns=100_000)
    records = rec.empty(20)

    def send(i: int, planned: int) -> None:
        if i == 5:
            clock.stall(7 * MS)  # the sender itself is held up (a GC pause, a preemption)
        records["planned_ns"][i], records["sent_ns"][i] = planned, clock.now_ns()
        records["done_ns"][i], records["status"][i] = server.answer_at(clock.now_ns()), rec.STATUS_OK

    run_open_loop(20, 1000, start_ns=MS, offset_ns=0, clock=clock, send=send)

    assert records["planned_ns"].tolist() == [MS + i * MS for i in range(20)]  # nothing skipped, nothing moved
    late = latency.lateness_us(records)
    assert late[5] == 7000 and late[6] == 6000 and late[12] == 0
    lat = latency.latency_us(records)
    service_only = (records["done_ns"] - records["sent_ns"]) // 1000
    assert lat[6] > 6000 > service_only[6]  # from the plan, not from when it actually went


def test_latency_is_measured_from_planned_not_actual_send_time() -> None:
    records = rec.empty(3)
    records["planned_ns"] = [1 * MS, 2 * MS, 3 * MS]
    records["sent_ns"] = [1 * MS, 5 * MS, 3 * MS]  # request 1 left 3 ms late
    records["done_ns"] = [1 * MS + 200_000, 5 * MS + 200_000, 3 * MS + 200_000]
    records["status"] = [rec.STATUS_OK, rec.STATUS_OK, 4]  # request 2 failed: no latency for it
    assert latency.latency_us(records).tolist() == [200, 3200]
    assert latency.lateness_us(records).tolist() == [0, 3000, 0]


class FakeFuture:
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.callbacks: list = []
        self.response: bytes | None = None

    def add_done_callback(self, callback) -> None:
        self.callbacks.append(callback)

    def complete(self, response: bytes) -> None:
        self.response = response
        for callback in self.callbacks:
            callback(self)

    def result(self) -> bytes:
        assert self.response is not None
        return self.response

    def exception(self) -> None:
        return None


class FakeUnary:
    def __init__(self) -> None:
        self.calls: list[FakeFuture] = []

    def future(self, request: bytes, timeout: float) -> FakeFuture:
        self.calls.append(FakeFuture(request))
        return self.calls[-1]


def _orders(count: int) -> list[tuple[bytes, bytes, bytes]]:
    return wire.decode_orders(wire.encode_orders(Workload(WorkloadConfig(accounts=50)).orders("t", count)))


ACCEPT = pb.CheckOrderResponse(decision=pb.DECISION_ACCEPT).SerializeToString()
REJECT = pb.CheckOrderResponse(decision=pb.DECISION_REJECT, reasons=[
    pb.Reason(code=pb.REASON_INSUFFICIENT_MARGIN)]).SerializeToString()


def test_python_sender_unary_does_not_wait_for_answers_and_times_from_the_plan() -> None:
    clock, check, execute = FakeClock(), FakeUnary(), FakeUnary()
    sender = PySender(_orders(30), 5.0, check, None, execute, clock)
    sender.run_unary(rate=500, start_ns=1 * MS, offset_ns=0)

    # Every request went out on its planned time although not one answer had come back.
    assert len(check.calls) == 30 and sender.records["sent_ns"].tolist() == [MS + i * 2 * MS for i in range(30)]
    server = SlowServer(service_ns=5 * MS)
    for i, call in enumerate(check.calls):
        clock.now = server.answer_at(int(sender.records["sent_ns"][i]))
        call.complete(REJECT if i % 3 == 0 else ACCEPT)
    lat = latency.latency_us(sender.records)
    assert lat.tolist() == [(server_done - planned) // 1000 for server_done, planned in
                            zip(np.cumsum([MS + 5 * MS] + [5 * MS] * 29), sender.records["planned_ns"], strict=True)]
    assert sender.records["reason"][0] == pb.REASON_INSUFFICIENT_MARGIN
    # Accepted orders, and only they, are reported back as executions.
    assert len(execute.calls) == 20


def test_python_sender_stream_matches_answers_in_order_and_times_from_the_plan() -> None:
    clock = FakeClock()
    arrivals: list[int] = []

    def checks(requests: Iterator[bytes], timeout: float) -> Iterator[bytes]:
        # gRPC drains the request iterator on its own thread, on schedule; answers follow at the server's pace.
        for _ in requests:
            arrivals.append(clock.now_ns())
        server = SlowServer(service_ns=3 * MS)
        for arrival in arrivals:
            clock.now = server.answer_at(arrival)
            yield ACCEPT

    sender = PySender(_orders(10), 5.0, None, checks, FakeUnary(), clock)
    sender.run_stream(rate=1000, start_ns=0, offset_ns=0)
    assert arrivals == [i * MS for i in range(10)]
    assert latency.latency_us(sender.records).tolist() == [3000 * (i + 1) - 1000 * i for i in range(10)]


def test_python_sender_execution_stream_numbers_reports_and_times_each_until_an_ack_covers_it() -> None:
    clock, check = FakeClock(), FakeUnary()
    received: list[pb.ExecutionFeedMessage] = []

    def feed(requests: Iterator[bytes], timeout: float) -> Iterator[bytes]:
        # Acknowledges every second message (the odd ones on their own), listing offset 3 as refused.
        for raw in requests:
            received.append(pb.ExecutionFeedMessage.FromString(raw))
            offset = received[-1].offset
            if offset % 2 == 0 or offset == 5:
                clock.now += MS
                outcomes = [pb.ExecutionOutcome(offset=3, code=3)] if offset == 4 else []
                yield pb.ExecutionFeedAck(acked_through=offset, outcomes=outcomes).SerializeToString()

    orders = _orders(5)
    sender = PySender(orders, 5.0, check, None, None, clock)
    sender.feed = ExecutionFeed(feed, 10.0, sender)
    sender.run_unary(rate=1000, start_ns=0, offset_ns=0)
    for call in check.calls:
        call.complete(ACCEPT)
    sender.wait(5.0)
    # Numbered in the order the answers came, each carrying the report prebuilt for its order.
    assert [m.offset for m in received] == [1, 2, 3, 4, 5]
    assert [m.report.SerializeToString() for m in received] == [o[1] for o in orders]
    assert not any(m.with_account_state for m in received)
    assert sender.records["exec_status"].tolist() == [0, 0, 3, 0, 0]
    assert (sender.records["exec_done_ns"] > sender.records["exec_sent_ns"]).all()


def test_hdr_percentiles_of_a_uniform_distribution_match_within_hdr_precision() -> None:
    histogram = latency.histogram_of(np.arange(1, 10_001))
    summary = Percentiles.of(histogram)
    # Three significant digits: every reported value is within 0.1% of the exact one.
    for got, exact in ((summary.p50, 5000), (summary.p90, 9000), (summary.p99, 9900), (summary.p999, 9990),
                       (summary.max, 10_000)):
        assert abs(got - exact) <= exact * 0.001, (got, exact)
    assert summary.count == 10_000 and summary.mean == pytest.approx(5000.5, rel=1e-3)


def test_hdr_percentiles_of_a_skewed_distribution() -> None:
    values = [100] * 990 + [5000] * 9 + [20_000]
    summary = Percentiles.of(latency.histogram_of(values))
    assert (summary.p50, summary.p99) == (100, 100)
    assert abs(summary.p999 - 5000) <= 5 and abs(summary.max - 20_000) <= 20


def test_histograms_from_several_senders_merge_to_the_whole() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(50, 50_000, size=20_000)
    parts = [latency.decode(latency.encode(latency.histogram_of(chunk))) for chunk in np.array_split(values, 3)]
    assert Percentiles.of(latency.merge(parts)) == Percentiles.of(latency.histogram_of(values))


def test_record_layout_matches_the_native_sender() -> None:
    source = (Path(__file__).resolve().parent.parent / "loadtest" / "native" / "loadgen.cc").read_text()
    struct = source[source.index("struct Record {"):source.index("};", source.index("struct Record {"))]
    fields = re.findall(r"(int64_t|int32_t) (\w+) =", struct)
    assert [(name, "<i8" if kind == "int64_t" else "<i4") for kind, name in fields] == [
        (name, rec.RECORD_DTYPE[name].str) for name in rec.RECORD_DTYPE.names]
    assert rec.RECORD_DTYPE.itemsize == 56


def test_wire_file_round_trip_carries_requests_and_their_execution_reports() -> None:
    orders = Workload(WorkloadConfig(accounts=50)).orders("w", 40)
    for order, (request, on_accept, on_cut) in zip(orders, wire.decode_orders(wire.encode_orders(orders)),
                                                   strict=True):
        assert pb.CheckOrderRequest.FromString(request) == wire.request(order)
        accept = pb.ExecutionReport.FromString(on_accept)
        assert accept.kind == (pb.EXECUTION_KIND_FILL if order.fill else pb.EXECUTION_KIND_CANCELED)
        assert pb.ExecutionReport.FromString(on_cut).kind == pb.EXECUTION_KIND_CANCELED


def test_workload_is_deterministic_and_has_the_planned_mix() -> None:
    first = Workload(WorkloadConfig(accounts=500)).orders("m", 5000)
    assert first == Workload(WorkloadConfig(accounts=500)).orders("m", 5000)
    intents = Counter(o.intent for o in first)
    assert 0.08 < intents[Intent.REDUCE] / 5000 < 0.12
    assert 0.035 < intents[Intent.MARGIN] / 5000 < 0.065
    assert 0.025 < intents[Intent.BAND] / 5000 < 0.055
    workload = Workload(WorkloadConfig(accounts=500))
    leverage: dict[tuple[str, str], set[int]] = {}
    for order in workload.orders("m", 3000):
        spec = workload.markets[order.symbol].spec
        assert Decimal(order.quantity) % spec.lot_size == 0 and Decimal(order.quantity) >= spec.min_quantity
        assert order.price == "" or Decimal(order.price) % spec.tick_size == 0
        if order.leverage:
            assert order.leverage in LEVERAGES[order.symbol]
            leverage.setdefault((order.account_id, order.symbol), set()).add(order.leverage)
    assert all(len(used) == 1 for used in leverage.values())  # one leverage per account and symbol


def test_generated_riskgate_config_loads(tmp_path: Path) -> None:
    workload = Workload(WorkloadConfig(accounts=30))
    path = riskgate_config.write(tmp_path / "c.toml", workload, "127.0.0.1:0", tmp_path / "data")
    config = load_config(path)
    assert len(config.accounts) == 30 and [s.symbol for s in config.symbols] == list(workload.markets)
    assert config.admin_tokens[0].roles == ["admin"]


def test_engine_bench_runs_the_workload_against_the_engine() -> None:
    result = engine_bench.run(Workload(WorkloadConfig(accounts=200)), seconds=0.2)
    assert result.checks >= 1000 and result.decisions.get("ACCEPT", 0) > result.checks / 2
    assert "INSUFFICIENT_MARGIN" in result.reasons
    assert {"PRICE_ABOVE_BAND", "PRICE_BELOW_BAND"} & set(result.reasons)


def _step(server: str, rate: float, p99: int, style: str = "unary", errors: int = 0, p50: int = 100
          ) -> StepResult:
    records = rec.empty(100)
    records["planned_ns"] = np.arange(1, 101) * MS
    records["sent_ns"] = records["planned_ns"]
    records["done_ns"] = records["planned_ns"] + p50 * 1000
    records["done_ns"][-2:] = records["planned_ns"][-2:] + p99 * 1000  # the 2% tail sets the p99
    records["status"] = rec.STATUS_OK
    records["status"][:errors] = 4
    records["decision"] = pb.DECISION_ACCEPT
    return summarize(server, style, rate, records, 0.1, QUIET, 1, True)


def test_summary_of_a_step_reads_percentiles_errors_and_the_verdict() -> None:
    good, slow = _step("riskgate", 1000, 900), _step("riskgate", 1000, 1500)
    failing = _step("baseline", 10, 100, errors=2)
    assert good.passed and good.latency_us.p50 == 100 and good.decisions == {"ACCEPT": 100}
    assert not slow.passed and not slow.saturated and slow.latency_us.max >= 1500
    assert _step("riskgate", 1000, 5000, p50=1200).saturated
    assert not failing.passed and failing.errors == 2 and failing.answered == 98


def test_step_up_search_pairs_both_servers_until_both_fail_twice_or_saturate() -> None:
    passes = {"baseline": 3000, "riskgate": 1000}
    saturates = {"baseline": 10_000, "riskgate": 2000}
    asked: list[tuple[str, float]] = []

    def measure(server: str, rate: float) -> StepResult:
        asked.append((server, rate))
        p50 = 2000 if rate > saturates[server] else 100
        return _step(server, rate, 500 if rate <= passes[server] else 5000, p50=p50)

    results = step_up(SearchPlan((500, 1000, 1500, 2000, 3000, 4000, 5000, 6000)), ["baseline", "riskgate"], measure)
    # riskgate goes on beside the baseline after failing, until it saturates at 3000.
    assert ("riskgate", 3000) in asked and ("riskgate", 4000) not in asked
    # The baseline fails at 4000 and 5000: two in a row, and riskgate is out, so the search ends.
    assert ("baseline", 5000) in asked and ("baseline", 6000) not in asked
    assert highest_passing(results, "riskgate", "unary") == 1000
    assert highest_passing(results, "baseline", "unary") == 3000
    assert report.highest(results)["unary"]["ratio"] == pytest.approx(1 / 3, abs=1e-3)


def test_report_pairs_riskgate_with_the_baseline_and_reads_the_targets() -> None:
    steps = [_step("baseline", 1500, 400), _step("riskgate", 1500, 440), _step("baseline", 5000, 300, "stream"),
             _step("riskgate", 5000, 700, "stream")]
    pair = report.pairs(steps)[0]
    assert pair.ratios()["p99"] == pytest.approx(1.1, abs=0.01)
    engine = {"checks_per_second": 120_000, "check_us": {"p99": 15.0}}
    assert all(t["met"] for t in report.targets(engine, steps))
    markdown = report.markdown({"meta": {"quick": True, "started": "now", "duration_s": 1, "machine": "m",
                                         "sender": "s", "placement": "p", "workload": "w", "budget_us": 1000,
                                         "step_seconds": 1}, "targets": report.targets(engine, steps),
                                "engine": None, "highest": report.highest(steps), "floor": report.floors(steps),
                                "_steps": steps})
    assert "| 1,500 |" in markdown and "| 5,000 |" in markdown


def test_profile_summary_counts_self_and_total_time() -> None:
    folded = "\n".join([
        "process 1:\"python\";thread (0x1);run (asyncio/base_events.py:10);check (riskgate/api/pretrade.py:30);"
        "check_order (riskgate/engine/check.py:25) 6",
        "process 1:\"python\";thread (0x1);run (asyncio/base_events.py:10);check (riskgate/api/pretrade.py:31) 3",
        "process 1:\"python\";thread (0x1);run (asyncio/base_events.py:12) 1",
    ])
    samples, by_self, by_total = profiling.hotspots(folded)
    assert samples == 10
    assert by_self[0].function == "riskgate/engine/check.py:check_order" and by_self[0].self_share == 0.6
    assert {h.function: h.total_share for h in by_total}["riskgate/api/pretrade.py:check"] == 0.9
    shares = dict(profiling.components(profiling.self_counts(folded)[1], samples))
    assert shares == {"riskgate engine": 0.6, "riskgate API (protobuf in/out)": 0.3,
                      "asyncio event loop and C code it runs": 0.1}
