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
_REBUILD = ("rebuild with `pip install -e .`, or delete the compiled files to run interpreted "
            "(`find service -name '*.so' -delete`)")
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


def extension_files(root: Path = _PACKAGE_ROOT) -> list[Path]:
    """Every compiled file riskgate could load: extension modules under the package and mypyc's
    shared library beside it, whatever module list built them."""
    suffixes = tuple(EXTENSION_SUFFIXES)
    package = [path for path in (root / "riskgate").rglob("*") if path.name.endswith(suffixes)]
    shared = [path for path in root.glob("*__mypyc*") if path.name.endswith(suffixes)]
    return sorted(package + shared)


def source_digests(root: Path) -> dict[str, str]:
    return {module: source_digest(source_path(module, root)) for module in HOT_PATH}


def write_stamp(root: Path, sources: dict[str, str]) -> None:
    """Records what a build compiled: each source's digest as it was read for compiling, and
    each compiled file's digest. setup.py calls this once every extension is in place."""
    compiled = {path.relative_to(root).as_posix(): source_digest(path) for path in extension_files(root)}
    stamp = {"sources": sources, "compiled": compiled}
    (root / "riskgate" / STAMP_NAME).write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")


def verify_fresh(root: Path = _PACKAGE_ROOT) -> None:
    """Raises StaleBuild unless the compiled files are exactly those of the recorded build, and
    each hot-path source is the one that build compiled. Nothing compiled: nothing to check."""
    files = extension_files(root)
    if not files:
        return
    try:
        stamp = json.loads((root / "riskgate" / STAMP_NAME).read_text())
        sources, compiled = dict(stamp["sources"]), dict(stamp["compiled"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StaleBuild(f"compiled modules without a record of their build ({STAMP_NAME}): {_REBUILD}") from None
    found = {path.relative_to(root).as_posix(): path for path in files}
    problems = sorted(set(found) ^ set(compiled))
    problems += sorted(name for name, path in found.items()
                       if name in compiled and compiled[name] != source_digest(path))
    if set(sources) != set(HOT_PATH):
        problems.append("the recorded module list is not this version's")
    # A source-less install (only the compiled modules shipped) has nothing to be stale against.
    for module in HOT_PATH:
        source = source_path(module, root)
        if source.exists() and sources.get(module) != source_digest(source):
            problems.append(module)
    if problems:
        shown = ", ".join(problems[:4]) + (f" and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise StaleBuild(f"compiled modules that are not the recorded build of these sources ({shown}): {_REBUILD}")
