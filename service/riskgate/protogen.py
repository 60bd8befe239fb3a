"""Builds the Python protobuf/gRPC modules from proto/ and checks the committed ones match.

The generated modules live in ``riskgate/v1`` so that the ``riskgate.v1`` imports protoc writes
resolve inside this package. ``python -m riskgate.protogen`` regenerates them;
``python -m riskgate.protogen --check`` fails when they differ from what ``proto/`` produces.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
PACKAGE_ROOT = REPO_ROOT / "service"
GENERATED_DIR = PACKAGE_ROOT / "riskgate" / "v1"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "riskgate" / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Runs protoc into out_dir and returns the generated files (relative to out_dir)."""
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    return sorted(p.relative_to(out_dir) for p in (out_dir / "riskgate" / "v1").glob("*_pb2*"))


def stale_files() -> list[str]:
    """Names of generated files that are missing, extra or different from a fresh build."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = sorted(p.relative_to(PACKAGE_ROOT) for p in GENERATED_DIR.glob("*_pb2*"))
        diffs = sorted({str(p) for p in set(fresh) ^ set(committed)})
        for rel in fresh:
            if rel in committed and not filecmp.cmp(Path(tmp) / rel, PACKAGE_ROOT / rel, shallow=False):
                diffs.append(str(rel))
        return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("generated protobuf code is stale:", ", ".join(stale), file=sys.stderr)
            return 1
        print("generated protobuf code matches proto/")
        return 0
    for rel in generate(PACKAGE_ROOT):
        print("wrote", PACKAGE_ROOT / rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
