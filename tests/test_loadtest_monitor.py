"""The monitor benchmark (`python -m loadtest.monitor`): its tick-evaluation part on a tiny book,
the synthetic accounts, the stored records, and the report. No timing assertions, no sockets."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np

from loadtest import monitor, monitor_bench
from loadtest import records as rec
from loadtest.monitor_accounts import PRIMARY, SECOND, generate
from loadtest.step_result import Cpu, StepResult, summarize
from riskgate.book.specs import AccountSnapshot
from riskgate.monitor.columns import AccountColumns
from riskgate.store.codec import Stored
from riskgate.v1 import pretrade_pb2 as pb

MS = 1_000_000
FIGURES = {"count", "p50", "p99", "max", "mean"}


def test_tick_part_on_a_tiny_book_reports_every_field() -> None:
    result = monitor_bench.tick_bench(1000, ticks=4, seconds=30.0)
    assert result["accounts"] == 1000
    assert result["holders"][PRIMARY] == 1000 and 0 < result["holders"][SECOND] < 1000
    for name in ("columns_tick_ms", "on_tick_ms"):
        assert set(result[name]) == FIGURES and result[name]["count"] == 4
        assert result[name]["p50"] <= result[name]["p99"] <= result[name]["max"]
    for name in ("build_s", "build_us_per_account", "generate_s", "evaluate_all_ms", "counting"):
        assert result[name] >= 0
    assert set(result["at_or_above"]) == {"0.8", "0.9", "1"}
    assert result["at_or_above"]["0.8"] >= result["at_or_above"]["0.9"] >= result["at_or_above"]["1"]
    assert set(result["gc_on_tick"]) == {"collections", "max_pause_ms"}
    assert "rss_mb" in result and "cpu" in result


def test_synthetic_accounts_sit_on_the_symbols_grids_and_fill_the_column_book() -> None:
    book = generate(300)
    snapshots = list(book.snapshots())
    assert [s.account_id for s in snapshots[:2]] == ["mb-0000000", "mb-0000001"]
    for snapshot in snapshots:
        assert snapshot.positions[0].symbol == PRIMARY
        for position in snapshot.positions:
            spec = book.markets[position.symbol].spec
            assert position.quantity and position.quantity % spec.lot_size == 0
            assert position.entry_price % spec.tick_size == 0
    assert list(book.snapshots(100, 103)) == snapshots[100:103]
    assert generate(300).balance.tolist() == book.balance.tolist()  # seeded
    columns = AccountColumns()
    monitor_bench.fill(columns, book, 1)
    assert len(columns) == 300 and columns.holders[PRIMARY].n == 300
    assert columns.holders[SECOND].n == sum(len(s.positions) == 2 for s in snapshots)


def test_records_are_written_in_the_gates_stored_format() -> None:
    snapshot = next(generate(5).snapshots())
    stored = msgspec.json.decode(monitor_bench.stored(42, snapshot), type=Stored)
    assert stored.v == 42
    assert msgspec.json.decode(stored.d, type=AccountSnapshot) == snapshot
    assert isinstance(snapshot.balance, Decimal)


def _step(p99_us: int, background: float = 0.0) -> StepResult:
    records = rec.empty(100)
    records["planned_ns"] = np.arange(1, 101) * MS
    records["sent_ns"] = records["planned_ns"]
    records["done_ns"] = records["planned_ns"] + 300_000
    records["done_ns"][-2:] = records["planned_ns"][-2:] + p99_us * 1000
    records["status"] = rec.STATUS_OK
    records["decision"] = pb.DECISION_ACCEPT
    cpu = Cpu(server=0.5, server_helpers=0.0, client=0.1, background=background)
    return summarize("riskgate", "unary", 1000, records, 0.1, cpu, 1, True)


def _phase(pair: int, condition: str, p99_us: int, background: float = 0.0) -> dict:
    step = _step(p99_us, background)
    phase = {"pair": pair, "condition": condition, "_step": step, "disturbed": step.disturbance()}
    if condition == monitor.WITH:
        phase.update({"monitor_cpu": 0.2, "monitor_ready_s": 1.0, "alerts": 0,
                      "monitor": {"role": "actor", "account_events": 10, "lag_ms": 5}})
    return phase


def test_gate_summary_pools_the_pairs_and_leaves_a_disturbed_pair_out() -> None:
    phases = [_phase(1, monitor.WITHOUT, 1000), _phase(1, monitor.WITH, 9000, background=0.8),
              _phase(2, monitor.WITHOUT, 1000), _phase(2, monitor.WITH, 1040)]
    summary = monitor.gate_summary(phases)
    assert summary["pairs_used"] == [2] and monitor.clean_pairs(phases) == 1
    assert abs(summary["ratio_p99"] - 1.04) < 0.01 and summary["passed"]
    assert summary["pair_ratios_p99"][1] > 8
    everything_disturbed = monitor.gate_summary(phases[:2])
    assert everything_disturbed["pairs_used"] == [1] and everything_disturbed["note"]
    assert everything_disturbed["passed"] is None  # inconclusive, whatever the ratio
    assert monitor.gate_summary(phases[:1])["passed"] is None


def test_report_lists_each_part_and_reads_the_targets(tmp_path: Path) -> None:
    tick = monitor_bench.tick_bench(500, ticks=3, seconds=30.0)
    tick100k = {**tick, "accounts": monitor.TICK_TARGET_ACCOUNTS, "on_tick_ms": {**tick["on_tick_ms"], "p99": 12.0}}
    load = {"accounts": 1_000_000, "start_s": 42.0, "until_loaded_s": 41.0, "evaluate_all_s": 0.5, "peak_rss_mb": 900,
            "redis_used_mb": 400, "written": 900_000, "write_s": 20.0}
    phases = [_phase(1, monitor.WITHOUT, 1000), _phase(1, monitor.WITH, 1200)]
    result = {
        "meta": {"quick": False, "started": "now", "duration_s": 1, "machine": "m", "placement": "p", "book": "b"},
        "tick": [tick, tick100k, {"accounts": 1_000_000, "skipped": "needs about 90 s"}], "load": [load],
        "gate": {"rate": 1000.0, "phase_seconds": 5.0, "gate_accounts": 10, "idle_accounts": 20, "monitor_nice": 0,
                 "marks_per_second": 10.0, "marks_sent": 50, "marks_failed": 0, "sender": "native",
                 "alerts_fired_first": 3, "phases": phases, "summary": monitor.gate_summary(phases)},
    }
    result["targets"] = monitor.targets(result)
    assert [t["met"] for t in result["targets"]] == [True, True, False]
    text = monitor.markdown(result)
    assert "| 500 |" in text and "skipped: needs about 90 s" in text and "| 1,000,000 | 42.00 |" in text
    assert "p99 ratio with / without: 1.200" in text
    written = monitor.write_outputs(result, tmp_path)
    saved = json.loads(written[0].read_text())
    assert saved["gate"]["phases"][1]["step"]["latency_us"]["p99"] == phases[1]["_step"].latency_us.p99
    assert written[1].read_text() == text
