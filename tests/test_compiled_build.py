"""The compiled hot path: it is what runs when it can be built, and never runs stale."""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from riskgate.compiled import HOT_PATH, StaleBuild, compiled_modules, source_path, verify_fresh, write_stamp


def _tree(root: Path) -> Path:
    for module in HOT_PATH:
        path = source_path(module, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {module}\n")
    return root


def _compile_fake(root: Path, module: str) -> None:
    source_path(module, root).with_suffix(EXTENSION_SUFFIXES[0]).write_bytes(b"\x7fELF")


def test_verify_fresh_when_a_compiled_modules_source_changed_after_the_build_then_stale_build_names_it(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path)
    _compile_fake(root, "riskgate.engine.check")
    write_stamp(root)
    source_path("riskgate.engine.check", root).write_text("# the rule, edited after the build\n")
    with pytest.raises(StaleBuild, match=r"riskgate\.engine\.check"):
        verify_fresh(root)


def test_verify_fresh_when_a_compiled_module_has_no_stamp_then_stale_build(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _compile_fake(root, "riskgate.values.money")
    with pytest.raises(StaleBuild, match=r"riskgate\.values\.money"):
        verify_fresh(root)


def test_verify_fresh_when_sources_are_as_compiled_then_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for module in HOT_PATH:
        _compile_fake(root, module)
    write_stamp(root)
    source_path("riskgate.compiled", root).parent.mkdir(parents=True, exist_ok=True)
    verify_fresh(root)
    assert compiled_modules(root) == list(HOT_PATH)


def test_verify_fresh_when_nothing_is_compiled_then_an_edited_source_runs_interpreted(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    write_stamp(root)
    source_path("riskgate.engine.check", root).write_text("# edited\n")
    verify_fresh(root)
    assert compiled_modules(root) == []


def _can_compile() -> bool:
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return os.environ.get("RISKGATE_COMPILE", "1") != "0" and shutil.which("cc") is not None and headers.exists()


@pytest.mark.skipif(not _can_compile(), reason="no C compiler or Python headers: the hot path runs interpreted")
def test_hot_path_when_a_compiler_is_at_hand_then_every_module_imports_compiled() -> None:
    # Where the install could compile, a module left interpreted means the build broke.
    for module in HOT_PATH:
        loaded = importlib.import_module(module)
        assert loaded.__file__ is not None and loaded.__file__.endswith(tuple(EXTENSION_SUFFIXES)), module
