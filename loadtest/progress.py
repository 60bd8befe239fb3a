"""The live progress display: the whole run's steps, the current step, and one line per finished step."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from loadtest.step_result import StepResult


class RunProgress:
    def __init__(self, total_steps: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=self.console, refresh_per_second=8)
        self._run: TaskID | None = None
        self._step: TaskID | None = None
        self._total = total_steps

    def __enter__(self) -> RunProgress:
        self._progress.__enter__()
        self._run = self._progress.add_task("load test", total=self._total)
        self._step = self._progress.add_task("", total=100)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._progress.__exit__(kind, error, trace)

    def stage(self, text: str) -> None:
        assert self._step is not None
        self._progress.update(self._step, description=text, completed=0)

    def fraction(self, done: float) -> None:
        assert self._step is not None
        self._progress.update(self._step, completed=round(done * 100))

    def finished(self, result: StepResult | None = None) -> None:
        assert self._run is not None
        self._progress.advance(self._run)
        if result is not None:
            self.log(describe(result))

    def shrink(self, total: int) -> None:
        """The search stops early once both servers are past the budget: the bar's total follows."""
        assert self._run is not None
        self._progress.update(self._run, total=total)

    def log(self, text: str) -> None:
        self._progress.console.print(text, highlight=False)


def describe(result: StepResult) -> str:
    lat = result.latency_us
    verdict = "pass" if result.passed else "FAIL"
    busy = f" other {result.cpu.background:.2f}" if result.cpu.background >= 0.1 else ""
    return (f"{result.style:6} {result.server:8} {result.rate:>6,.0f}/s p50 {lat.p50:>5,} p99 {lat.p99:>6,} "
            f"max {lat.max:>6,} late {result.lateness_us.max:>4,} cpu {result.cpu.server:.2f}{busy} {verdict}")
