"""Per-request timestamps as both senders (native and Python) write them: one fixed-size row each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

# Must match `struct Record` in native/loadgen.cc. Times are CLOCK_MONOTONIC nanoseconds.
RECORD_DTYPE = np.dtype([
    ("planned_ns", "<i8"),
    ("sent_ns", "<i8"),
    ("done_ns", "<i8"),
    ("exec_sent_ns", "<i8"),
    ("exec_done_ns", "<i8"),
    ("decision", "<i4"),
    ("reason", "<i4"),
    ("status", "<i4"),
    ("exec_status", "<i4"),
])
NO_STATUS = -1
STATUS_OK = 0
Records = npt.NDArray[np.void]


def empty(count: int) -> Records:
    records = np.zeros(count, dtype=RECORD_DTYPE)
    records["status"] = NO_STATUS
    records["exec_status"] = NO_STATUS
    return records


def save(path: Path, records: Records) -> None:
    path.write_bytes(records.tobytes())


def load(path: Path) -> Records:
    return np.frombuffer(path.read_bytes(), dtype=RECORD_DTYPE).copy()


def answered(records: Records) -> Records:
    return records[records["status"] == STATUS_OK]
