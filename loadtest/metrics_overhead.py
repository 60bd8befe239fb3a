"""`python -m loadtest.metrics_overhead`: what exporting metrics costs the gate, measured.

Two `riskgate serve` processes from the same configuration, one with `/metrics` (scraped every
`--scrape-seconds` during its steps, as Prometheus would, only more often) and one with metrics
off (`--metrics-listen ""`: no meter provider, nothing recorded on the hot path). Both take the
same orders at the same rate, in alternating order (off/on, on/off, ...) for `--rounds` rounds
per calling style, with the load-test harness's open-loop sender; the p99 ratio on/off is
reported per round and as the median of the rounds. 127.0.0.1 only; bounded by --max-seconds;
every child process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from loadtest import senders, servers
from loadtest.cpus import Placement
from loadtest.marks import MarkFeeder
from loadtest.progress import RunProgress
from loadtest.run import QUICK, SPIN_US, Bench
from loadtest.workload import Workload, WorkloadConfig

OFF, ON = "metrics-off", "metrics-on"
BUDGET_RATIO = 1.03


class Scraper:
    """GETs /metrics every interval_s in a thread (the cost a Prometheus scrape puts on the gate)."""

    def __init__(self, port: int, interval_s: float) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval_s = interval_s
        self.scrapes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    answer.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest.metrics_overhead", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="orders per second (default 1000)")
    parser.add_argument("--stream-rate", type=float, default=2000.0,
                        help="orders per second on the CheckOrders stream (default 2000; 0 = unary only)")
    parser.add_argument("--step-seconds", type=float, default=5.0, help="length of each measured step")
    parser.add_argument("--rounds", type=int, default=4, help="alternating off/on pairs per style (default 4)")
    parser.add_argument("--scrape-seconds", type=float, default=2.0, help="scrape interval (default 2 s)")
    parser.add_argument("--max-seconds", type=float, default=420.0, help="hard bound on the run (default 420)")
    parser.add_argument("--sender", choices=["auto", "native", "python"], default="auto")
    parser.add_argument("--no-pin", action="store_true", help="do not give the servers a CPU of their own")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.monotonic()
    workload = Workload(WorkloadConfig(accounts=QUICK.accounts))
    placement = Placement.split(not args.no_pin)
    backend, fallback = senders.choose_backend(args.sender, SPIN_US if placement.pinned else 0)
    styles = [("unary", args.rate)] + ([("stream", args.stream_rate)] if args.stream_rate else [])
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack, RunProgress(len(styles) * args.rounds * 2) as progress:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="riskgate-metrics-overhead-")))
        if fallback:
            progress.log(f"native sender unavailable ({fallback}); using the Python sender")
        started = {name: servers.start_riskgate(workload, workdir, wait=False, metrics=name == ON, name=name)
                   for name in (OFF, ON)}
        for server in started.values():
            stack.callback(server.stop)
        for server in started.values():
            servers.wait_ready(server)
            server.place(placement.server, placement.client)
        for server in started.values():
            feeder = MarkFeeder(server.target, list(workload.markets.values())).start()
            stack.callback(feeder.stop)
        settings = QUICK.__class__(**{**QUICK.__dict__, "step_seconds": args.step_seconds,
                                      "max_seconds": args.max_seconds})
        bench = Bench(settings, workload, backend, placement, workdir, progress)
        bench.deadline = began + args.max_seconds
        bench.servers = started
        for style, rate in styles:
            for name in (OFF, ON):  # warm-up, not reported
                bench.measure(name, style, rate, 1.5, f"warm-{style}")
            for number in range(args.rounds):
                if bench.time_left() < 2 * bench.step_cost(args.step_seconds) + 5:
                    progress.log("time budget reached")
                    break
                order = (OFF, ON) if number % 2 == 0 else (ON, OFF)
                label = f"{style}-{number}"
                pair: dict[str, Any] = {}
                scraper = Scraper(started[ON].metrics_port, args.scrape_seconds)
                for name in order:
                    if name == ON:
                        scraper = Scraper(started[ON].metrics_port, args.scrape_seconds).start()
                    try:
                        result = bench.measure(name, style, rate, args.step_seconds, label)
                    finally:
                        if name == ON:
                            scraper.stop()
                    progress.finished(result)
                    pair[name] = {"p50_us": result.latency_us.p50, "p99_us": result.latency_us.p99,
                                  "answered": result.answered, "errors": result.errors,
                                  "background_cpu": result.cpu.background, "server_cpu": result.cpu.server,
                                  "scrapes": scraper.scrapes if name == ON else 0}
                rows.append({"style": style, "rate": rate, "round": number, "first": order[0], **pair,
                             "p99_ratio": round(pair[ON]["p99_us"] / max(pair[OFF]["p99_us"], 1), 3),
                             "p50_ratio": round(pair[ON]["p50_us"] / max(pair[OFF]["p50_us"], 1), 3),
                             # The server's CPU at the same offered rate: steadier than a p99 on a
                             # noisy machine, and what metrics cost directly.
                             "cpu_ratio": round(pair[ON]["server_cpu"] / max(pair[OFF]["server_cpu"], 1e-9), 3)})
    summary = {}
    for style, rate in styles:
        mine = [r for r in rows if r["style"] == style]
        if mine:
            summary[style] = {"rate": rate, "rounds": len(mine),
                              "median_p99_ratio": round(statistics.median(r["p99_ratio"] for r in mine), 3),
                              "median_p50_ratio": round(statistics.median(r["p50_ratio"] for r in mine), 3),
                              "median_cpu_ratio": round(statistics.median(r["cpu_ratio"] for r in mine), 3),
                              "p99_off_us": [r[OFF]["p99_us"] for r in mine],
                              "p99_on_us": [r[ON]["p99_us"] for r in mine]}
    return {"sender": backend.name, "pinned": placement.pinned, "step_seconds": args.step_seconds,
            "scrape_seconds": args.scrape_seconds, "duration_s": round(time.monotonic() - began, 1),
            "rows": rows, "summary": summary}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| style | rate/s | round | first | p50 off us | p50 on us | p99 off us | p99 on us | p99 on/off "
             "| background CPU off/on |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['style']} | {r['rate']:,.0f} | {r['round']} | {r['first']} | {r[OFF]['p50_us']} | "
                     f"{r[ON]['p50_us']} | {r[OFF]['p99_us']} | {r[ON]['p99_us']} | {r['p99_ratio']:.3f} | "
                     f"{r[OFF]['background_cpu']:.2f}/{r[ON]['background_cpu']:.2f} |")
    for style, s in result["summary"].items():
        verdict = "within" if s["median_p99_ratio"] <= BUDGET_RATIO else "OVER"
        lines.append(f"\n{style} at {s['rate']:,.0f}/s: median p99 on/off {s['median_p99_ratio']:.3f} over "
                     f"{s['rounds']} rounds ({verdict} the 3% budget); median p50 on/off {s['median_p50_ratio']:.3f}; "
                     f"median server CPU on/off {s['median_cpu_ratio']:.3f}")
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
