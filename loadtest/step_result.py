"""What one load step measured, reduced from its per-request records."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from loadtest import latency
from loadtest import records as rec
from loadtest.latency import Percentiles
from riskgate.v1 import pretrade_pb2 as pb

BUDGET_US = 1000
# More than this much CPU used by processes outside the harness during a step: the step shared the machine.
BUSY_MACHINE_CORES = 0.25
# The sender has a CPU of its own and real-time priority: when it is this late, the machine stalled.
STALL_US = 250
STALLED_SHARE = 0.002
# Below this share of the offered rate answered in time, a step fails whatever its percentiles say.
MIN_ANSWERED_SHARE = 0.99


@dataclass(frozen=True)
class Lateness:
    """How far behind its schedule the harness put requests on the wire, in microseconds."""

    p50: int
    p99: int
    max: int
    # Share of requests sent more than STALL_US late.
    stalled: float = 0.0

    @classmethod
    def of(cls, records: rec.Records) -> Lateness:
        late = latency.lateness_us(records)
        if not len(late):
            return cls(0, 0, 0)
        return cls(int(np.percentile(late, 50)), int(np.percentile(late, 99)), int(late.max()),
                   round(float(np.mean(late > STALL_US)), 5))


@dataclass(frozen=True)
class Cpu:
    """Cores in use on average during the step (1.0 = one core busy all the time)."""

    server: float
    server_helpers: float
    client: float
    background: float


@dataclass
class StepResult:
    server: str
    style: str
    rate: float
    seconds: float
    sent: int
    answered: int
    errors: int
    achieved_rate: float
    latency_us: Percentiles
    lateness_us: Lateness
    executions: int
    execution_errors: int
    execution_us: Percentiles
    decisions: dict[str, int]
    reasons: dict[str, int]
    cpu: Cpu
    senders: int
    realtime_sender: bool
    budget_us: int = BUDGET_US
    attempts: int = 1
    first_attempt: str = ""
    histogram: str = field(default="", repr=False)

    @property
    def passed(self) -> bool:
        return self.latency_us.p99 <= self.budget_us and not self.saturated

    @property
    def saturated(self) -> bool:
        """Past what the server can carry: most answers late, some failed, or it fell behind the offered rate."""
        return (self.latency_us.p50 > self.budget_us or bool(self.errors)
                or self.answered < MIN_ANSWERED_SHARE * self.sent)

    def disturbance(self) -> str:
        """Why the step may not describe the server: the machine was busy, or the sender fell behind."""
        if self.cpu.background > BUSY_MACHINE_CORES:
            return f"{self.cpu.background:.2f} cores of other work on the machine"
        # A saturated server also holds stream writes back; only a sender late beside a server with CPU to
        # spare says the machine itself stalled.
        if self.lateness_us.stalled > STALLED_SHARE and self.cpu.server < 0.85:
            return f"the machine stalled the sender ({self.lateness_us.stalled:.2%} of sends > {STALL_US} us late)"
        return ""

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["passed"] = self.passed
        return data


def _name(enum: object, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)  # type: ignore[attr-defined]
    except ValueError:
        return str(value)


def summarize(server: str, style: str, rate: float, records: rec.Records, wall_s: float, cpu: Cpu, senders: int,
              realtime: bool, budget_us: int = BUDGET_US) -> StepResult:
    ok = rec.answered(records)
    histogram = latency.histogram_of(latency.latency_us(records))
    executed = records[records["exec_status"] != rec.NO_STATUS]
    executed_ok = executed[executed["exec_status"] == rec.STATUS_OK]
    exec_histogram = latency.histogram_of(latency.to_us(executed_ok["exec_done_ns"] - executed_ok["exec_sent_ns"]))
    span_s = (ok["done_ns"].max() - records["planned_ns"].min()) / 1e9 if len(ok) else wall_s
    decisions = Counter(_name(pb.Decision, int(d), "DECISION_") for d in ok["decision"])
    reasons = Counter(_name(pb.ReasonCode, int(r), "REASON_") for r in ok["reason"] if r)
    return StepResult(
        server=server, style=style, rate=rate, seconds=round(wall_s, 3), sent=len(records), answered=len(ok),
        errors=len(records) - len(ok), achieved_rate=round(len(ok) / span_s, 1) if span_s > 0 else 0.0,
        latency_us=Percentiles.of(histogram), lateness_us=Lateness.of(records),
        executions=len(executed), execution_errors=len(executed) - len(executed_ok),
        execution_us=Percentiles.of(exec_histogram), decisions=dict(decisions.most_common()),
        reasons=dict(reasons.most_common()), cpu=cpu, senders=senders, realtime_sender=realtime,
        budget_us=budget_us, histogram=latency.encode(histogram),
    )
