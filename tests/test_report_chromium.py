"""The HTML report in a real browser: headless Chromium renders it without errors, shows its tables and
images, and a concept named ``<script>alert(1)</script>`` appears as text (skipped without ``chromium``)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from qrprobe.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars"]


def _chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(make_report_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("chromium")
    inputs = make_report_inputs(root / "inputs")
    html = build_report([inputs[k] for k in ("full", "labels", "k6", "breakdown")], root / "report.html",
                        explain_pairs=2)
    return html, root


def test_dom_shows_the_script_concept_as_text(page) -> None:
    html, root = page
    run = _chromium(["--dump-dom", html.as_uri()], root / "profile-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert "Model comparison" in dom
    assert "<table " in dom
    # serialized DOM: the name is a text node (escaped), and the page has no script element at all
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom.lower()
    assert dom.count("<img ") > 10
    assert "Uncaught" not in run.stderr
    assert "Refused to" not in run.stderr


def test_screenshot_shows_tables_and_images(page) -> None:
    from PIL import Image

    html, root = page
    shot = root / "report.png"
    run = _chromium([f"--screenshot={shot}", "--window-size=1280,2600", html.as_uri()], root / "profile-shot")
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (2600, 1280)
    # the dark header band is drawn ...
    assert np.abs(pixels[20, 640] - [0x1F, 0x3B, 0x5A]).max() < 10
    # ... and the page is not blank: figures put many distinct colours on it
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 200


def test_print_keeps_every_configuration_row(page) -> None:
    """Printed (Chromium's PDF), the run configuration is whole: its last setting is in the PDF's text (a
    scroll box of fixed height would cut it off), and the page has print rules."""
    html, root = page
    text = html.read_text(encoding="utf-8")
    # no box of fixed height around a table (a figure's image may be capped at a page's height)
    assert not re.search(r"(\.scroll|table|\.tables|section|main)[^{]*\{[^}]*max-height", text)
    assert "@media print" in text
    settings = re.findall(r'<table class="t-configuration">.*?</table>', text, re.S)[0]
    last = re.findall(r'<tr><td class="text">([^<]+)</td>', settings)[-1]
    pdf = root / "report.pdf"
    run = _chromium([f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.as_uri()], root / "profile-pdf")
    assert run.returncode == 0, run.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF"), run.stderr[-2000:]
    pdftotext = shutil.which("pdftotext")
    if pdftotext is None:
        pytest.skip("pdftotext (Debian poppler-utils) is not installed: the PDF's text cannot be read")
    words = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert last in words.replace("\n", " ")


def test_print_has_no_mostly_blank_pages(page) -> None:
    """Printed, every page but the last is at least half used: no section forced onto a new page leaves half a page
    empty, and no figure is too tall for a page (rendered with poppler's pdftoppm; skipped without it)."""
    from PIL import Image

    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed: the PDF's pages cannot be drawn")
    html, root = page
    pdf = root / "report-pages.pdf"
    run = _chromium([f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.as_uri()], root / "profile-pages")
    assert run.returncode == 0, run.stderr[-2000:]
    subprocess.run([pdftoppm, "-r", "24", "-png", str(pdf), str(root / "page")], check=True, timeout=120)
    pages = sorted(root.glob("page-*.png"))
    assert len(pages) >= 2
    for path in pages[:-1]:
        grey = np.asarray(Image.open(path).convert("L"))
        inked = (grey < 235).any(axis=1)
        rows = np.flatnonzero(inked)
        used = (rows[-1] - rows[0] + 1) / len(grey) if len(rows) else 0.0
        assert used >= 0.5, f"{path.name}: only {used:.0%} of the page is used"
