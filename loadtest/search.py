"""The step-up search: raise the offered rate until p99 passes the budget, for each server in turn.

At every rate the servers still in the search are measured back to back on the same orders, so
their figures pair up. A server leaves the search once it is saturated (most answers over the
budget, failures, or behind the offered rate). The search ends when every server has failed
`failures_to_stop` steps in a row; until then one that fails but is not saturated goes on being
measured, so each rate has figures for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from loadtest.step_result import StepResult

# Returns None when the run's time budget cannot fit another step.
Measure = Callable[[str, float], StepResult | None]


@dataclass(frozen=True)
class SearchPlan:
    rates: tuple[float, ...]
    failures_to_stop: int = 2


def step_up(plan: SearchPlan, servers: Sequence[str], measure: Measure) -> list[StepResult]:
    results: list[StepResult] = []
    failures = dict.fromkeys(servers, 0)
    saturated: set[str] = set()
    for rate in plan.rates:
        if all(failures[s] >= plan.failures_to_stop for s in servers):
            break
        for server in [s for s in servers if s not in saturated]:
            result = measure(server, rate)
            if result is None:
                return results
            results.append(result)
            failures[server] = 0 if result.passed else failures[server] + 1
            if result.saturated:
                saturated.add(server)
                failures[server] = max(failures[server], plan.failures_to_stop)
    return results


def highest_passing(results: Sequence[StepResult], server: str, style: str) -> float | None:
    rates = [r.rate for r in results if r.server == server and r.style == style and r.passed]
    return max(rates) if rates else None


def steps_left(plan: SearchPlan, servers: int) -> int:
    """An upper bound, for the progress bar."""
    return len(plan.rates) * servers
