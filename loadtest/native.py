"""Builds the compiled sender (native/loadgen.cc) against Debian's gRPC C++ packages, once per source.

Needs `apt-get install g++ pkg-config libgrpc++-dev`. Without them the harness falls back to the
Python sender and says so in the report.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "native" / "loadgen.cc"
BUILD_TIMEOUT_S = 180


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "riskgate-loadtest"


def missing_tools() -> list[str]:
    missing = [tool for tool in ("g++", "pkg-config") if shutil.which(tool) is None]
    if not missing and subprocess.run(["pkg-config", "--exists", "grpc++"], check=False).returncode != 0:
        missing.append("libgrpc++-dev")
    return missing


def build() -> Path:
    """Path of the compiled sender; compiles it when the source changed since the cached build."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache_dir() / f"loadgen-{digest}"
    if binary.exists():
        return binary
    missing = missing_tools()
    if missing:
        raise BuildError(f"cannot build the native sender, missing: {', '.join(missing)}")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++"], capture_output=True, text=True,
                           check=True).stdout.split()
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        partial = Path(tmp) / binary.name
        result = subprocess.run(["g++", "-O2", "-std=c++17", "-o", str(partial), str(SOURCE), *flags],
                                capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise BuildError(f"g++ failed:\n{result.stderr[-3000:]}")
        # Rename is atomic: a concurrent run never sees a half-written binary.
        partial.rename(binary)
    return binary
