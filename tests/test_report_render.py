"""The validation report in a real browser: Debian's chromium, headless, offline."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from pyacemaker.config import TargetsConfig, ValidationConfig
from pyacemaker.validation.report import write_report
from pyacemaker.validation.validate import validate

# counts the images the browser decoded, after load, into an attribute --dump-dom shows
PROBE = ("<script>window.addEventListener('load', () => { document.body.dataset.decoded = "
         "[...document.images].filter(i => i.complete && i.naturalWidth > 0).length; });</script>")
OFFLINE = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed; `apt-get install chromium` (make test does it)")
    return path


def open_page(html: Path, profile: Path, *action: str) -> tuple[str, list[str]]:
    """(stdout, console messages) of chromium running ``action`` on ``html`` with a fresh
    profile."""
    done = subprocess.run([chromium(), *OFFLINE, f"--user-data-dir={profile}", *action,
                           html.as_uri()], capture_output=True, text=True, timeout=120)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def probed(report: Path, folder: Path) -> Path:
    """A copy of ``report`` with the image probe before ``</body>``."""
    copy = folder / "probed.html"
    copy.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    return copy


@pytest.fixture(scope="module")
def report(copper_fit, copper_data, tmp_path_factory) -> Path:
    potential, _, _ = copper_fit
    result = validate(potential, bulk("Cu", "fcc", a=3.6), ValidationConfig(), TargetsConfig(),
                      copper_data[1], oracle=EMT(), show_progress=False)
    return write_report(result, tmp_path_factory.mktemp("report"))


def test_report_renders_with_its_plots_and_no_console_errors(report, tmp_path):
    dom, console = open_page(probed(report, tmp_path), tmp_path / "profile", "--dump-dom")
    assert console == []
    decoded = re.search(r'data-decoded="(\d+)"', dom)
    assert decoded and int(decoded.group(1)) == 4  # parity, error vs gamma, EOS, phonons
    assert 'id="verdict"' in dom and "PASS" in dom
    for section in ("checks", "accuracy", "eos", "elastic", "phonons",  # and potential vs oracle:
                    "lattice", "elastic-comparison", "phonon-deviation"):
        assert f'id="{section}"' in dom
    shot = tmp_path / "report.png"
    _, console = open_page(report, tmp_path / "profile2", "--window-size=1100,3000",
                           f"--screenshot={shot}")
    assert console == [] and shot.stat().st_size > 50_000


def test_the_console_check_catches_script_errors(report, tmp_path):
    """The check above can fail: a page with a broken script is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace("</body>", "<script>notDefined();</script></body>"))
    _, console = open_page(broken, tmp_path / "profile", "--dump-dom")
    assert any("notDefined" in line for line in console)
