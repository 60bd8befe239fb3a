"""The CLI verbs of the history-driven analytics: `marks import|show`, `var`, `backtest` and
`report`. Their shared plumbing (channel, token, tables, errors) is main.py's."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from riskgate.v1 import monitor_pb2 as mpb
from riskgate.v1 import monitor_pb2_grpc as mpb_grpc

IMPORT_CHUNK = 5_000
CSV_COLUMNS = ("symbol", "time", "open", "high", "low", "close")


class CsvError(ValueError):
    pass


def add_commands(monitor_client: Callable[[str, str], argparse.ArgumentParser],
                 count: Callable[[str], int]) -> None:
    marks = monitor_client("marks", "import mark history from a CSV file (admin), or show a symbol's history")
    marks.add_argument("verb", choices=["import", "show"])
    marks.add_argument("what", help="import: the CSV file (columns symbol,time,close and optionally open,high,low; "
                                    "time ISO-8601 UTC or epoch ms); show: the symbol")
    marks.add_argument("--symbol", default="", help="import: the symbol of every row (a file without that column)")
    marks.add_argument("--minute", action="store_true", help="show: minute bars instead of daily closes")
    marks.add_argument("--limit", type=count, default=0, help="show: 0 = 1,000, at most 10,000")
    marks.set_defaults(handler=_marks)

    value_at_risk = monitor_client("var", "historical value at risk and expected shortfall of the platform and "
                                          "its accounts")
    value_at_risk.add_argument("--account", default="", help="only this account")
    value_at_risk.add_argument("--confidence", action="append", default=[],
                               help="repeatable; default 0.99 and 0.995")
    value_at_risk.add_argument("--lookback", type=count, default=0, help="days of history (0 = 365)")
    value_at_risk.add_argument("--horizon", type=count, default=0, help="days per move (0 = 1)")
    value_at_risk.add_argument("--top", type=count, default=0, help="accounts listed (0 = 10, at most 100)")
    value_at_risk.set_defaults(handler=_var)

    backtest = monitor_client("backtest", "backtest the historical VaR: exceptions, Kupiec's test, Basel's zone")
    backtest.add_argument("--account", default="", help="this account (default: the platform's net exposure)")
    backtest.add_argument("--confidence", default="", help="default 0.99")
    backtest.add_argument("--days", type=count, default=0, help="days tested (0 = 250)")
    backtest.add_argument("--lookback", type=count, default=0, help="days each VaR comes from (0 = 250)")
    backtest.set_defaults(handler=_backtest)

    report = monitor_client("report", "write the daily risk report: report.html, report.md and report.json")
    report.add_argument("--date", default="", help="YYYY-MM-DD, UTC (default: today)")
    report.add_argument("--out", required=True, help="the directory to write to (created if needed)")
    report.set_defaults(handler=_report)


def _plumbing() -> Any:
    from riskgate.cli import main  # main imports this module; its helpers are needed only at run time
    return main


# A busy day's report (every case of the day listed) is well beyond gRPC's 4 MiB default.
REPORT_MAX_BYTES = 512 * 1024 * 1024


def _call(args: argparse.Namespace, method: str, request: Any, timeout: float, max_receive: int = 0) -> Any:
    cli = _plumbing()
    options = [("grpc.max_receive_message_length", max_receive)] if max_receive else []
    with grpc.insecure_channel(args.target, options=options) as channel:
        return getattr(mpb_grpc.RiskMonitorStub(channel), method)(request, metadata=cli._metadata(args),
                                                                   timeout=timeout)


def _failed(exc: grpc.RpcError) -> int:
    _plumbing()._print_rpc_error(exc)
    return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1  # type: ignore[attr-defined]


# ---- marks -------------------------------------------------------------------------------


def read_csv(path: Path, symbol: str) -> list[tuple[int, mpb.MarkBar]]:
    """Every row as a bar with its line number; CsvError "FILE:LINE: ..." for the first row
    that cannot be read (nothing is sent then)."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise CsvError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip().lower() for name in reader.fieldnames or []]
        unknown = sorted(set(header) - set(CSV_COLUMNS))
        needed = {"time", "close"} | (set() if symbol else {"symbol"})
        if unknown or not needed <= set(header):
            raise CsvError(f"{path}:1: the header needs {', '.join(sorted(needed))} (optional: open, high, low"
                           f"{', symbol' if symbol else ''}); found {', '.join(header) or 'nothing'}")
        reader.fieldnames = header
        rows = []
        for row in reader:
            line = reader.line_num
            try:
                rows.append((line, mpb.MarkBar(
                    symbol=(row.get("symbol") or symbol).strip(), time_ms=parse_time(row["time"] or ""),
                    open=(row.get("open") or "").strip(), high=(row.get("high") or "").strip(),
                    low=(row.get("low") or "").strip(), close=(row["close"] or "").strip())))
            except ValueError as exc:
                raise CsvError(f"{path}:{line}: {exc}") from None
    if not rows:
        raise CsvError(f"{path}: no rows")
    return rows


def parse_time(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time: ISO-8601 (UTC unless an offset is given) or epoch ms, not {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _chunks(rows: list[tuple[int, mpb.MarkBar]]) -> Iterator[list[tuple[int, mpb.MarkBar]]]:
    for start in range(0, len(rows), IMPORT_CHUNK):
        yield rows[start:start + IMPORT_CHUNK]


def _marks(args: argparse.Namespace) -> int:
    if args.verb == "show":
        return _show_marks(args)
    try:
        rows = read_csv(Path(args.what), args.symbol)
    except CsvError as exc:
        print(f"riskgate marks import: {exc}", file=sys.stderr)
        return 2
    bars = minute = 0
    symbols: set[str] = set()
    for chunk in _chunks(rows):
        try:
            result = _call(args, "ImportMarkHistory", mpb.MarkHistoryImport(bars=[bar for _, bar in chunk]), 60)
        except grpc.RpcError as exc:
            details = exc.details() or ""  # type: ignore[attr-defined]
            if details.startswith("bars["):
                index = int(details[5:details.index("]")])
                details = f"{args.what}:{chunk[index][0]}: {details.split(': ', 1)[-1]}"
                print(f"riskgate marks import: {details}", file=sys.stderr)
            else:
                _plumbing()._print_rpc_error(exc)
            if bars:
                print(f"riskgate marks import: {bars} bars before that line were imported; importing the file "
                      "again is safe (bars merge)", file=sys.stderr)
            return 2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1  # type: ignore[attr-defined]
        bars += result.bars
        minute += result.minute_bars
        symbols.update(result.symbols)
    if args.json:
        print(f'{{"bars": {bars}, "minute_bars": {minute}, "symbols": {sorted(symbols)!r}}}'.replace("'", '"'))
    else:
        print(f"imported {bars} bars of {', '.join(sorted(symbols))} ({minute} within the minute table's retention; "
              "every bar set its day's close)")
    return 0


def _show_marks(args: argparse.Namespace) -> int:
    cli = _plumbing()
    try:
        history = _call(args, "GetMarkHistory", mpb.MarkHistoryRequest(
            symbol=args.what, interval="minute" if args.minute else "day", limit=args.limit), 10)
    except grpc.RpcError as exc:
        return _failed(exc)
    if args.json:
        cli._print(history)
    elif args.minute:
        cli._print_table([("MINUTE (UTC)", "OPEN", "HIGH", "LOW", "CLOSE"), *(
            (cli._utc(b.time_ms - b.time_ms % 60_000)[:16] + "Z", b.open, b.high, b.low, b.close)
            for b in history.bars)])
    else:
        cli._print_table([("DAY (UTC)", "CLOSE"), *((cli._utc(b.time_ms)[:10], b.close) for b in history.bars)])
    return 0


# ---- var, backtest -------------------------------------------------------------------------


def _var(args: argparse.Namespace) -> int:
    cli = _plumbing()
    request = mpb.VarRequest(confidences=args.confidence, lookback_days=args.lookback, horizon_days=args.horizon,
                             account_id=args.account, top=args.top)
    try:
        report = _call(args, "GetValueAtRisk", request, 120)
    except grpc.RpcError as exc:
        return _failed(exc)
    if args.json:
        cli._print(report)
        return 0
    print(f"{report.scenarios} scenario days from {report.first_day} to {report.last_day} "
          f"(lookback {report.lookback_days} d, horizon {report.horizon_days} d)")
    for name, symbols in (("no history (holders left out)", report.missing_history),
                          ("history shorter than the lookback", report.short_history)):
        if symbols:
            print(f"{name}: {', '.join(symbols)}")
    subjects = ([report.platform] if report.platform.subject else []) + list(report.accounts)
    cli._print_table([("SUBJECT", "CONFIDENCE", "VAR", "EXPECTED_SHORTFALL"), *(
        (s.subject, f.confidence, f.var, f.expected_shortfall) for s in subjects for f in s.figures)])
    return 0


def _backtest(args: argparse.Namespace) -> int:
    cli = _plumbing()
    request = mpb.BacktestRequest(account_id=args.account, confidence=args.confidence, days=args.days,
                                  lookback_days=args.lookback)
    try:
        report = _call(args, "BacktestVaR", request, 120)
    except grpc.RpcError as exc:
        return _failed(exc)
    if args.json:
        cli._print(report)
        return 0
    cli._print_table([("SUBJECT", "CONFIDENCE", "DAYS", "FROM", "TO", "EXCEPTIONS", "KUPIEC_LR", "REJECTED", "ZONE"),
                      (report.subject, report.confidence, str(report.days), report.first_day, report.last_day,
                       str(report.exceptions), report.kupiec_lr, "yes" if report.rejected else "no", report.zone)])
    if report.exception_days:
        print(f"exceptions on: {', '.join(report.exception_days)}")
    return 0


# ---- report --------------------------------------------------------------------------------


def _report(args: argparse.Namespace) -> int:
    from riskgate.report import document, render

    try:
        answer = _call(args, "GetDailyReport", mpb.DailyReportRequest(date=args.date), 180, REPORT_MAX_BYTES)
    except grpc.RpcError as exc:
        return _failed(exc)
    report = document.decoder.decode(answer.json)
    try:
        paths = render.write(report, Path(args.out))
    except OSError as exc:
        print(f"riskgate report: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(answer.json.decode() + "\n")
    else:
        for path in paths:
            print(path)
    return 0
