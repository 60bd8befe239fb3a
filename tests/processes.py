"""`riskgate serve` as a real child process, for tests that signal or kill it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path


def serve(redis_url: str, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Starts `riskgate serve` on 127.0.0.1:port with the bundled sample configuration."""
    return subprocess.Popen(
        [sys.executable, "-m", "riskgate.cli.main", "serve", "--redis-url", redis_url,
         "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING", *extra],
        stdout=subprocess.PIPE, stderr=log.open("wb"), env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def ready(process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), timeout=60)
    assert b"riskgate ready on" in line, line


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
