"""Compiles riskgate's hot path with mypyc when a C compiler is at hand.

The same sources run interpreted when it is not: every extension is optional, so installing
never fails for want of a compiler, and `riskgate.compiled` says which modules run compiled.
RISKGATE_COMPILE=0 skips compiling.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup

ROOT = Path(__file__).resolve().parent / "service"


def _compiled_module() -> ModuleType:
    # Loaded from its file: riskgate itself is not importable while it is being built.
    spec = importlib.util.spec_from_file_location("riskgate_compiled", ROOT / "riskgate" / "compiled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extensions() -> list[Extension]:
    if os.environ.get("RISKGATE_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify

    compiled = _compiled_module()
    paths = [str(compiled.source_path(module, ROOT).relative_to(Path.cwd())) for module in compiled.HOT_PATH]
    built = mypycify(paths, opt_level="3")
    for extension in built:
        extension.optional = True
    compiled.write_stamp(ROOT)
    return built


setup(ext_modules=extensions())
