"""Whether this process answers now: only once its book is loaded, and never once it stops."""

from __future__ import annotations

LOADING = "riskgate is loading its state"
STOPPING = "riskgate is stopping"


class Lifecycle:
    __slots__ = ("serving", "why_not")

    def __init__(self) -> None:
        self.serving = False
        self.why_not = LOADING

    def begin_stop(self) -> None:
        self.serving = False
        self.why_not = STOPPING
