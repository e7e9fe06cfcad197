"""The documentation: it builds without warnings, its generated pages cover the code, and the
tutorial's commands run.

The tutorial test runs every ```bash block of docs/tutorial.md, one command per line, as an
argument list (no shell) in an empty folder with this environment's bin first on PATH, and
writes every ```yaml block marked ``<!-- file: NAME -->`` to NAME where the page tells the reader
to edit that file. Blocks marked in the page are not run:

- ``<!-- install: ... -->``: the installation (``make ...``, ``source ...``); the test runs in
  the environment ``make test`` installed, so installing again would test nothing new.
- ``<!-- long: ...; instead: COMMAND -->``: runs too long for CI (the full CHGNet run, 1 min
  44 s more on idle cores, far more on busy ones; any Quantum ESPRESSO run, hours on 2 cores).
  COMMAND, a shorter command of the page that exercises the same start-up (the CHGNet trial
  run with ``--max-iterations 1``, the espresso start-up check ``doctor --config``), must be
  among the commands that ran.

``<!-- exit: 0 or 1 ... -->`` allows exit status 1 (``validate`` on a potential that fails a
check). ```python blocks are not run (they need the reader's own structure).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel

from pyacemaker.config import Config

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
MAX_LONG_BLOCKS = 3


def load_hooks():
    spec = importlib.util.spec_from_file_location("pyacemaker_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


hooks = load_hooks()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The docs built with ``mkdocs build --strict`` (a warning fails the build)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def test_docs_build_without_warnings(site):
    for page in ("index", "tutorial", "configuration", "troubleshooting", "security"):
        assert (site / f"{page}.html").is_file(), page


def every_field(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted names of every leaf field, found independently of the docs' own walk."""
    out = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += every_field(info.annotation, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_config_reference_covers_every_field(site):
    page = (site / "configuration.html").read_text()
    fields = every_field(Config)
    assert len(fields) > 100 and sorted(fields) == sorted(hooks.all_fields())
    missing = [f for f in fields if f"<code>{f}</code>" not in page]
    assert not missing, missing
    description = Config.model_fields["oracle"].annotation.model_fields["workers"].description
    assert html.escape(description, quote=False) in page


@pytest.mark.parametrize("case", hooks.CASES, ids=lambda c: c.title)
def test_troubleshooting_case_produces_its_error(case, site):
    message = hooks.message_of(case)
    assert message.startswith("error: ") and len(message) > 20
    page = (site / "troubleshooting.html").read_text()
    first_line = message.splitlines()[0]
    assert html.escape(first_line, quote=False).replace('"', "&quot;") in page


# --------------------------------------------------------------------------- the tutorial


@dataclass
class Block:
    lang: str
    lines: list[str]
    marker: str = ""  # install, long, exit, file
    note: str = ""  # the marker's text

    @property
    def commands(self) -> list[str]:
        return [line.strip() for line in self.lines if line.strip() and not line.strip().startswith("#")]


@dataclass
class Plan:
    steps: list[Block] = field(default_factory=list)
    skipped: list[Block] = field(default_factory=list)


def tutorial_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, each with the marker comment right before it."""
    blocks, marker, note = [], "", ""
    lines = iter(text.splitlines())
    for line in lines:
        comment = re.fullmatch(r"<!-- (install|long|exit|file): (.*) -->", line.strip())
        if comment:
            marker, note = comment.groups()
            continue
        fence = re.fullmatch(r"```(\w+)", line.strip())
        if fence:
            body = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            blocks.append(Block(fence.group(1), body, marker, note))
        if line.strip():
            marker, note = "", ""
    return blocks


def test_tutorial_markers_are_few_and_have_short_versions():
    blocks = tutorial_blocks(TUTORIAL.read_text())
    long_blocks = [b for b in blocks if b.marker == "long"]
    assert 0 < len(long_blocks) <= MAX_LONG_BLOCKS
    ran = {c for b in blocks if b.lang == "bash" and b.marker not in ("install", "long")
           for c in b.commands}
    for block in long_blocks:
        instead = block.note.split("instead: ", 1)[1]
        assert instead in ran, f"{instead!r} is not a tested command of the tutorial"
    for block in blocks:
        if block.marker == "install":
            assert all(c.split()[0] in ("make", "source") for c in block.commands), block.commands
    assert [b.note for b in blocks if b.marker == "file"] == ["config.yaml", "espresso.yaml"]


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    """Every command of the tutorial but the marked ones, in order, in an empty folder: 93 s on
    idle cores, 7 min on busy ones (the CHGNet trial run is most of it)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "120"}
    ran = []
    for block in tutorial_blocks(TUTORIAL.read_text()):
        if block.marker == "file":
            (tmp_path / block.note).write_text("\n".join(block.lines) + "\n")
            continue
        if block.lang != "bash" or block.marker in ("install", "long"):
            continue
        allowed = {0, 1} if block.marker == "exit" else {0}
        for command in block.commands:
            done = subprocess.run(shlex.split(command), cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=900, check=False)
            assert done.returncode in allowed, (
                f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
            ran.append(command)
    assert any(c.startswith("pyacemaker run") for c in ran)
    assert (tmp_path / "runs/tio2/potential/potential.yace").is_file()
    assert (tmp_path / "trial-report/validation_report.html").is_file()
    resolved = (tmp_path / "runs/tio2_espresso").exists()
    assert not resolved  # doctor --config checks the start-up without starting a run
