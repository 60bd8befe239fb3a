"""`python -m loadtest.exec_ab`: executions by unary ReportExecution vs the ReportExecutions stream.

One riskgate and one bare baseline (the harness's servers, workload and sender), each calling
style at fixed offered rates; per round both servers are measured with the executions reported
one unary call each ("unary") and on one ReportExecutions stream per sender ("stream"), the
order of the two alternating from round to round. Per step: the server's CPU per order
(its CPU seconds over the orders answered: steadier than a percentile on a shared machine),
p50/p99, and riskgate's CPU per order over the baseline's at the same rate. Medians over the
rounds. 127.0.0.1 only; bounded by --max-seconds; every child process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from loadtest import report, senders, servers
from loadtest.cpus import Placement
from loadtest.marks import MarkFeeder
from loadtest.progress import RunProgress
from loadtest.run import QUICK, SPIN_US, Bench
from loadtest.step_result import StepResult
from loadtest.workload import Workload, WorkloadConfig

MODES = ("unary", "stream")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.exec_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--unary-rates", default="1000,1500", help="CheckOrder rates, comma-separated")
    parser.add_argument("--stream-rates", default="2000,3000", help="CheckOrders rates, comma-separated")
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--sender", choices=["auto", "native", "python"], default="auto")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    return parser


def _row(result: StepResult) -> dict[str, Any]:
    answered = max(result.answered, 1)
    return {"cpu": result.cpu.server, "cpu_us_per_order": round(result.cpu.server * result.seconds / answered * 1e6,
                                                                  1),
            "p50_us": result.latency_us.p50, "p99_us": result.latency_us.p99, "passed": result.passed,
            "errors": result.errors, "executions": result.executions, "execution_errors": result.execution_errors,
            "execution_p50_us": result.execution_us.p50, "background": result.cpu.background}


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    workload = Workload(WorkloadConfig(accounts=QUICK.accounts))
    placement = Placement.split(not args.no_pin)
    backend, fallback = senders.choose_backend(args.sender, SPIN_US if placement.pinned else 0)
    plan = [("unary", float(r)) for r in args.unary_rates.split(",") if r] + \
        [("stream", float(r)) for r in args.stream_rates.split(",") if r]
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack, RunProgress(len(plan) * args.rounds * 4) as progress:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="riskgate-exec-ab-")))
        if fallback:
            progress.log(f"native sender unavailable ({fallback}); using the Python sender")
        started = {report.RISKGATE: servers.start_riskgate(workload, workdir, wait=False),
                   report.BASELINE: servers.start_baseline(workdir, wait=False)}
        for server in started.values():
            stack.callback(server.stop)
        for server in started.values():
            servers.wait_ready(server)
            server.place(placement.server, placement.client)
        feeder = MarkFeeder(started[report.RISKGATE].admin_target, list(workload.markets.values())).start()
        stack.callback(feeder.stop)
        settings = replace(QUICK, step_seconds=args.step_seconds, max_seconds=args.max_seconds)
        bench = Bench(settings, workload, backend, placement, workdir, progress)
        bench.deadline = began + args.max_seconds
        bench.servers = started
        for style, rate in plan:
            for mode in MODES:  # warm-up, not reported
                bench.backend = replace(backend, exec_mode=mode)
                for name in started:
                    bench.measure(name, style, rate, 1.0, f"warm-{style}-{mode}")
            for number in range(args.rounds):
                if bench.time_left() < 4 * bench.step_cost(args.step_seconds) + 5:
                    progress.log("time budget reached")
                    break
                for mode in (MODES if number % 2 == 0 else MODES[::-1]):
                    bench.backend = replace(backend, exec_mode=mode)
                    pair = {}
                    # Both servers take the same orders, riskgate first and last in turn.
                    names = [report.RISKGATE, report.BASELINE][:: 1 if number % 2 == 0 else -1]
                    for name in names:
                        result = bench.measure(name, style, rate, args.step_seconds, f"{style}{rate:g}-{number}-{mode}")
                        progress.finished(result)
                        pair[name] = _row(result)
                    rg, bl = pair[report.RISKGATE], pair[report.BASELINE]
                    rows.append({"style": style, "rate": rate, "round": number, "executions": mode,
                                 report.RISKGATE: rg, report.BASELINE: bl,
                                 "cpu_per_order_ratio": round(rg["cpu_us_per_order"] / max(bl["cpu_us_per_order"],
                                                                                          1e-9), 3)})
    summary = []
    for style, rate in plan:
        for mode in MODES:
            mine = [r for r in rows if r["style"] == style and r["rate"] == rate and r["executions"] == mode]
            if not mine:
                continue

            def median(server: str, key: str, rows: list[dict[str, Any]] = mine) -> float:
                return round(statistics.median(r[server][key] for r in rows), 1)

            summary.append({"style": style, "rate": rate, "executions": mode, "rounds": len(mine),
                            "rg_cpu_us_per_order": median(report.RISKGATE, "cpu_us_per_order"),
                            "bl_cpu_us_per_order": median(report.BASELINE, "cpu_us_per_order"),
                            "cpu_per_order_ratio": round(statistics.median(r["cpu_per_order_ratio"] for r in mine), 3),
                            "rg_p99_us": median(report.RISKGATE, "p99_us"), "bl_p99_us": median(report.BASELINE,
                                                                                                 "p99_us"),
                            "rg_passed": sum(r[report.RISKGATE]["passed"] for r in mine),
                            "bl_passed": sum(r[report.BASELINE]["passed"] for r in mine),
                            "rg_execution_p50_us": median(report.RISKGATE, "execution_p50_us"),
                            "execution_errors": sum(r[report.RISKGATE]["execution_errors"] for r in mine)})
    return {"sender": backend.name, "pinned": placement.pinned, "step_seconds": args.step_seconds,
            "duration_s": round(time.monotonic() - began, 1), "rows": rows, "summary": summary}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| style | rate/s | executions | rounds | riskgate CPU us/order | baseline CPU us/order | ratio "
             "| p99 rg / bl us (median) | passed rg / bl | rg execution ack p50 us |",
             "|---|---:|---|---:|---:|---:|---:|---|---|---:|"]
    for s in result["summary"]:
        lines.append(f"| {s['style']} | {s['rate']:,.0f} | {s['executions']} | {s['rounds']} | "
                     f"{s['rg_cpu_us_per_order']:.0f} | {s['bl_cpu_us_per_order']:.0f} | "
                     f"{s['cpu_per_order_ratio']:.2f} | {s['rg_p99_us']:,.0f} / {s['bl_p99_us']:,.0f} | "
                     f"{s['rg_passed']} / {s['bl_passed']} | "
                     f"{s['rg_execution_p50_us']:,.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = run(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
