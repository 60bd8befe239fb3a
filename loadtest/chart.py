"""The PNG chart: latency percentiles against offered rate, riskgate beside the baseline, per style."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtest.report import BASELINE, RISKGATE, STYLES
from loadtest.step_result import StepResult

COLORS = {RISKGATE: "tab:red", BASELINE: "tab:blue"}
LINES = {"p50": ":", "p99": "-", "p999": "--"}


def draw(steps: Sequence[StepResult], budget_us: int, path: Path, title: str) -> Path:
    figure, axes = plt.subplots(1, len(STYLES), figsize=(13, 5.2), sharey=True)
    for axis, style in zip(axes, STYLES, strict=True):
        for server in (RISKGATE, BASELINE):
            series = sorted((s for s in steps if s.server == server and s.style == style and s.answered),
                            key=lambda s: s.rate)
            if not series:
                continue
            rates = [s.rate for s in series]
            for name, line in LINES.items():
                axis.plot(rates, [getattr(s.latency_us, name) for s in series], line, marker="o", markersize=3,
                          color=COLORS[server], label=f"{server} {name.replace('p999', 'p99.9')}")
        axis.axhline(budget_us, color="black", linewidth=0.8)
        axis.text(0.01, budget_us * 1.08, f"budget {budget_us} us", transform=axis.get_yaxis_transform(), fontsize=8)
        axis.set_yscale("log")
        axis.set_xlabel("offered rate (orders/s)")
        axis.set_title(f"{style}: CheckOrder{'s stream' if style == 'stream' else ''}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency from planned send time (us, log)")
    axes[-1].legend(fontsize=8, loc="upper left")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
