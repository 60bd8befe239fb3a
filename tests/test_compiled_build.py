"""The compiled hot path: it is what runs when it can be built, and never runs stale."""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from riskgate.compiled import (
    HOT_PATH,
    StaleBuild,
    compiled_modules,
    source_digests,
    source_path,
    verify_fresh,
    write_stamp,
)

SUFFIX = EXTENSION_SUFFIXES[0]


def _tree(root: Path) -> Path:
    for module in HOT_PATH:
        path = source_path(module, root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {module}\n")
    return root


def _compile_fake(root: Path, modules: tuple[str, ...] = HOT_PATH) -> None:
    """What a build leaves: one extension per module and mypyc's shared library beside the package."""
    for module in modules:
        source_path(module, root).with_suffix(SUFFIX).write_bytes(f"compiled {module}".encode())
    (root / f"0123abcd__mypyc{SUFFIX}").write_bytes(b"shared")


def _built(root: Path) -> Path:
    _compile_fake(_tree(root))
    write_stamp(root, source_digests(root))
    return root


def test_verify_fresh_when_the_files_are_the_recorded_build_of_these_sources_then_passes(tmp_path: Path) -> None:
    root = _built(tmp_path)
    verify_fresh(root)
    assert compiled_modules(root) == list(HOT_PATH)


def test_verify_fresh_when_a_compiled_modules_source_changed_after_the_build_then_stale_build_names_it(
    tmp_path: Path,
) -> None:
    root = _built(tmp_path)
    source_path("riskgate.engine.check", root).write_text("# the rule, edited after the build\n")
    with pytest.raises(StaleBuild, match=r"riskgate\.engine\.check"):
        verify_fresh(root)


def test_verify_fresh_when_a_compiled_file_is_not_the_one_built_then_stale_build_names_it(tmp_path: Path) -> None:
    root = _built(tmp_path)
    (root / f"0123abcd__mypyc{SUFFIX}").write_bytes(b"an older shared library")
    with pytest.raises(StaleBuild, match="__mypyc"):
        verify_fresh(root)


def test_verify_fresh_when_one_compiled_module_was_deleted_then_stale_build(tmp_path: Path) -> None:
    # The others would still call the shared library's copy of it: all or nothing.
    root = _built(tmp_path)
    source_path("riskgate.engine.fast_check", root).with_suffix(SUFFIX).unlink()
    with pytest.raises(StaleBuild, match="fast_check"):
        verify_fresh(root)


def test_verify_fresh_when_a_module_left_the_hot_path_but_its_compiled_file_stayed_then_stale_build(
    tmp_path: Path,
) -> None:
    root = _built(tmp_path)
    leftover = root / "riskgate" / "engine" / f"retired{SUFFIX}"
    leftover.write_bytes(b"compiled by an earlier version")
    with pytest.raises(StaleBuild, match="retired"):
        verify_fresh(root)


def test_verify_fresh_when_compiled_files_have_no_stamp_then_stale_build(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _compile_fake(root)
    with pytest.raises(StaleBuild):
        verify_fresh(root)


def test_verify_fresh_when_nothing_is_compiled_then_an_edited_source_runs_interpreted(tmp_path: Path) -> None:
    root = _built(tmp_path)
    for path in root.rglob(f"*{SUFFIX}"):
        path.unlink()
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
