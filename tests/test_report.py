"""The HTML report loads in headless Chromium with no console errors, and its images render."""

import os
import re
import shutil
import subprocess

import pytest

from phenoseg.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_dump(url: str, user_dir) -> tuple[str, str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={user_dir}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
           "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return proc.stdout, proc.stderr


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="chromium not installed (CI installs it)")
def test_report_renders_in_chromium(tmp_path, rgb_tiff, model_dir, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(rgb_tiff), "-o", str(out), "--model", str(model_dir)]) == 0
    report = out / "report.html"
    assert report.is_file()
    assert CHROMIUM is not None, "CI must install chromium"
    dom, log = chromium_dump(report.as_uri(), tmp_path / "profile")
    assert "phenoseg report" in dom
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert m is not None, dom[:500]
    assert int(m.group(2)) >= 1 and m.group(1) == m.group(2)
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not [c for c in console if "rror" in c or "Uncaught" in c], console
    assert dom.count("<svg") >= 2
