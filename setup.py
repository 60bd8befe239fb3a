"""Compiles riskgate's hot path with mypyc when a C compiler is at hand.

The same sources run interpreted when it is not: every extension is optional, so installing
never fails for want of a compiler, and `riskgate.compiled` says which modules run compiled.
RISKGATE_COMPILE=0 skips compiling.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent / "service"


def _compiled_module() -> ModuleType:
    # Loaded from its file: riskgate itself is not importable while it is being built.
    spec = importlib.util.spec_from_file_location("riskgate_compiled", ROOT / "riskgate" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPILED = _compiled_module()
# Read before mypyc reads the sources: an edit made while compiling makes the build stale,
# never the stamp wrong.
SOURCES = COMPILED.source_digests(ROOT)


class BuildHotPath(build_ext):
    """Compiles all of the hot path or none of it, and stamps only a complete build.

    Compiled files left by an earlier build are removed first, so a failed or partial build
    leaves the sources running interpreted rather than older compiled code beside newer sources.
    """

    def run(self) -> None:
        in_place = bool(self.inplace or getattr(self, "editable_mode", False))
        target = ROOT if in_place else Path(self.build_lib)
        stamp = target / "riskgate" / COMPILED.STAMP_NAME
        for path in COMPILED.extension_files(target):
            path.unlink()
        stamp.unlink(missing_ok=True)
        super().run()
        built = COMPILED.extension_files(target)
        if len(built) == len(self.extensions):
            COMPILED.write_stamp(target, SOURCES)
            return
        for path in built:
            path.unlink()
        print(f"riskgate: compiled {len(built)} of {len(self.extensions)} extensions: the hot path runs interpreted",
              file=sys.stderr)


def extensions() -> list[Extension]:
    if os.environ.get("RISKGATE_COMPILE", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        # Only without build isolation (pyproject.toml's build requirements bring mypy).
        print("riskgate: mypyc is not installed; the hot path runs interpreted")
        return []
    paths = [str(COMPILED.source_path(module, ROOT).relative_to(Path.cwd())) for module in COMPILED.HOT_PATH]
    built = mypycify(paths, opt_level="3")
    for extension in built:
        extension.optional = True
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildHotPath})
