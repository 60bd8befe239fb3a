"""HDR histograms of latency in microseconds, counted from each request's planned send time."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

from loadtest.records import Records, answered

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_us(nanoseconds: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Rounds up: a 1.2 us answer is never reported as 1 us, and nothing is below the histogram's floor."""
    return np.clip((nanoseconds + 999) // 1000, LOWEST_US, HIGHEST_US)


def latency_us(records: Records) -> npt.NDArray[np.int64]:
    """Answered requests only; from the *planned* send time, so a late send counts against the result."""
    ok = answered(records)
    return to_us(ok["done_ns"] - ok["planned_ns"])


def lateness_us(records: Records) -> npt.NDArray[np.int64]:
    """How far behind its schedule the sender put each request on the wire (0 when on time)."""
    sent = records[records["sent_ns"] > 0]
    return np.maximum(sent["sent_ns"] - sent["planned_ns"], 0) // 1000


def record_values(histogram: HdrHistogram, values_us: Iterable[int] | npt.NDArray[np.int64]) -> HdrHistogram:
    unique, counts = np.unique(np.asarray(values_us, dtype=np.int64), return_counts=True)
    for value, count in zip(unique.tolist(), counts.tolist(), strict=True):
        histogram.record_value(min(max(value, LOWEST_US), HIGHEST_US), count)
    return histogram


def histogram_of(values_us: Iterable[int] | npt.NDArray[np.int64]) -> HdrHistogram:
    return record_values(new_histogram(), values_us)


def merge(histograms: Iterable[HdrHistogram]) -> HdrHistogram:
    merged = new_histogram()
    for histogram in histograms:
        merged.add(histogram)
    return merged


def encode(histogram: HdrHistogram) -> str:
    return histogram.encode().decode("ascii")


def decode(text: str) -> HdrHistogram:
    return HdrHistogram.decode(text.encode("ascii"))


@dataclass(frozen=True)
class Percentiles:
    count: int
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
    mean: float

    @classmethod
    def of(cls, histogram: HdrHistogram) -> Percentiles:
        if not histogram.get_total_count():
            return cls(0, 0, 0, 0, 0, 0, math.nan)
        values = histogram.get_percentile_to_value_dict(list(PERCENTILES))
        return cls(
            count=int(histogram.get_total_count()),
            p50=int(values[50.0]),
            p90=int(values[90.0]),
            p99=int(values[99.0]),
            p999=int(values[99.9]),
            max=int(histogram.get_max_value()),
            mean=round(float(histogram.get_mean_value()), 1),
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
