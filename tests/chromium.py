"""Headless Chromium, run for one page and then gone: used by the report's browser test and by
scripts/report_screenshot."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

TIMEOUT_S = 60.0


def binary() -> str | None:
    return shutil.which("chromium")


def run(page: Path, *extra: str, timeout: float = TIMEOUT_S, profile: Path | None = None) -> str:
    """Runs chromium on page (a local file) with extra flags; returns its stdout.

    Chromium forks a zygote, a GPU and renderer processes: it is started in its own process
    group so a run that overruns is killed whole, children included, not just the browser
    process. A private profile directory keeps concurrent runs (other tests, other worktrees)
    from fighting over the default profile's lock."""
    exe = binary()
    if exe is None:
        raise FileNotFoundError("chromium is not on PATH")
    with tempfile.TemporaryDirectory(prefix="riskgate-chromium-", dir=profile) as user_data:
        command = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
                   f"--user-data-dir={user_data}", *extra, page.resolve().as_uri()]
        # Every process of the run inherits this variable (only the browser's command line names
        # the profile), which is how a test finds any that outlived it.
        env = {**os.environ, "RISKGATE_CHROMIUM_PROFILE": user_data}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True, env=env)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        finally:
            # The browser can exit before helpers it forked; they must not outlive the run.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    if process.returncode != 0:
        raise RuntimeError(f"chromium exited with {process.returncode}: {err[-2000:]}")
    return out


def dump_dom(page: Path, timeout: float = TIMEOUT_S, profile: Path | None = None) -> str:
    return run(page, "--dump-dom", timeout=timeout, profile=profile)


def screenshot(page: Path, png: Path, width: int, height: int, timeout: float = TIMEOUT_S) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    run(page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}", timeout=timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
