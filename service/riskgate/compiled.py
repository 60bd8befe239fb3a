"""Which hot-path modules run compiled (mypyc), and the guard against a stale build.

An editable install compiles beside the sources. Without the guard, a source edited after the
build would be shadowed by its older compiled module: the process would run rules that are no
longer in the code, silently. Only the standard library is imported here: setup.py loads this
file before riskgate is importable.
"""

from __future__ import annotations

import hashlib
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

# The modules a check, a reservation and an execution run through; setup.py compiles these.
HOT_PATH: tuple[str, ...] = (
    "riskgate.values.money",
    "riskgate.values.fixed",
    "riskgate.values.tiers",
    "riskgate.book.ratelimit",
    "riskgate.book.state",
    "riskgate.engine.result",
    "riskgate.engine.order",
    "riskgate.engine.margin",
    "riskgate.engine.fast_check",
    "riskgate.engine.check",
    "riskgate.engine.ledger",
)
STAMP_NAME = "compiled_sources.json"
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class StaleBuild(ImportError):
    """A compiled module older than its source."""


def source_path(module: str, root: Path = _PACKAGE_ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_path(module: str, root: Path = _PACKAGE_ROOT) -> Path | None:
    source = source_path(module, root)
    for suffix in EXTENSION_SUFFIXES:
        candidate = source.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return None


def compiled_modules(root: Path = _PACKAGE_ROOT) -> list[str]:
    """The hot-path modules that import compiled (an extension module wins over the source)."""
    return [module for module in HOT_PATH if compiled_path(module, root) is not None]


def write_stamp(root: Path) -> None:
    """Records the digest of each source as compiled; setup.py calls this."""
    digests = {module: source_digest(source_path(module, root)) for module in HOT_PATH}
    (root / "riskgate" / STAMP_NAME).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


def verify_fresh(root: Path = _PACKAGE_ROOT) -> None:
    """Raises StaleBuild when a compiled module's source changed since it was compiled."""
    compiled = compiled_modules(root)
    if not compiled:
        return
    stamp_file = root / "riskgate" / STAMP_NAME
    try:
        stamp = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamp = {}
    # A source-less install (only the compiled module shipped) has nothing to be stale against.
    stale = [module for module in compiled
             if source_path(module, root).exists() and stamp.get(module) != source_digest(source_path(module, root))]
    if stale:
        raise StaleBuild(
            f"compiled module(s) {', '.join(stale)} older than their source: rebuild with `pip install -e .`, or "
            "delete the compiled files to run interpreted (`find service -name '*.so' -delete`)"
        )
