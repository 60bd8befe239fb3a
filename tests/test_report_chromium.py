"""The report's HTML as a real browser sees it: headless Chromium parses the page into the
sections and charts it should have, and can paint it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from riskgate.report import render
from tests import chromium
from tests.report_samples import empty_report, sample_report
from tests.test_report_render import HEADINGS, SECTION_IDS, outline


def require_chromium() -> None:
    # In CI a missing browser is a broken environment, not a reason to pass quietly.
    if chromium.binary() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not on PATH but CI is set: .ci/run should have installed it")
        pytest.skip("chromium is not on PATH (apt-get install chromium); set CI=1 to make this a failure")


def page(tmp_path: Path, report_html: str) -> Path:
    path = tmp_path / "report.html"
    path.write_text(report_html)
    return path


def test_dump_dom_when_sample_report_then_every_section_h2_and_chart_survives_parsing(tmp_path: Path) -> None:
    require_chromium()
    dom = chromium.dump_dom(page(tmp_path, render.html(sample_report())))
    parsed = outline(dom)
    assert list(parsed.sections) == SECTION_IDS
    assert list(parsed.sections.values()) == HEADINGS
    for section_id, heading in zip(SECTION_IDS, HEADINGS, strict=True):
        assert f'id="{section_id}"' in dom and f"<h2>{heading}</h2>" in dom
    assert dom.count("<svg") == 3
    assert "<script" not in dom


def test_dump_dom_when_empty_day_then_sections_and_charts_render(tmp_path: Path) -> None:
    require_chromium()
    dom = chromium.dump_dom(page(tmp_path, render.html(empty_report())))
    assert list(outline(dom).sections) == SECTION_IDS[:-1]
    assert dom.count("<svg") == 3


def test_screenshot_when_sample_report_then_a_non_trivial_png(tmp_path: Path) -> None:
    require_chromium()
    png = chromium.screenshot(page(tmp_path, render.html(sample_report())), tmp_path / "report.png", 1280, 2400)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    # A blank 1280x2400 page compresses to a few kilobytes; tables, charts and text do not.
    assert len(data) > 50_000


def running_with(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:  # gone while we looked
            pass
    return pids


def test_run_when_chromium_overruns_then_it_and_its_children_are_killed(tmp_path: Path) -> None:
    require_chromium()
    profile = tmp_path / "profiles"
    profile.mkdir()
    with pytest.raises(subprocess.TimeoutExpired):
        chromium.dump_dom(page(tmp_path, render.html(sample_report())), timeout=0.05, profile=profile)
    # SIGKILL is delivered at once but the kernel may take a moment to tear the processes down.
    deadline = time.monotonic() + 5
    while running_with(str(profile)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_with(str(profile)) == []
