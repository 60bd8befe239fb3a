"""The daily report's views: `markdown`, `html` and `write` (all three files into a directory)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import msgspec

from riskgate.report.document import DailyReport, encoder
from riskgate.report.render_html import html
from riskgate.report.render_md import markdown

__all__ = ["html", "markdown", "write"]


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader (a mail job, a web server) sees the old file or the new one, never half of one:
    the bytes go to a temporary file in the same directory (same filesystem) and replace the
    target in one rename."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the report from the web server's user
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write(report: DailyReport, out_dir: Path) -> list[Path]:
    """Writes report.json, report.md and report.html into out_dir (created if needed); returns
    their paths in that order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": msgspec.json.format(encoder.encode(report), indent=2) + b"\n",
        "report.md": markdown(report).encode(),
        "report.html": html(report).encode(),
    }
    paths = []
    for name, data in files.items():
        path = out_dir / name
        _write_atomically(path, data)
        paths.append(path)
    return paths
