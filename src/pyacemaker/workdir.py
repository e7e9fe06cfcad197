"""A run's workdir: where every file of a run lives, and how files and folders are published.

Workdir layout (``RunPaths`` names every entry; runs resume from it, so names never change)::

    config.resolved.yaml   every setting, inferred ones included
    state.json             iteration, phase, per-iteration history, stop reason
    dataset.db             structures, labels and provenance (ase.db / SQLite)
    seeds.extxyz           the starting structures
    iterations/iter_NNN/potential/   .yaml .yace .asi potential.json fit.json
    iterations/iter_NNN/md/RUN/      LAMMPS input, log and dumps of each MD run
    iterations/iter_NNN/validation/  validation.json and validation_report.html
    dft/HASH/attempt_N/    inputs and outputs of each DFT attempt, gzip-compressed
    potential/             copy of the latest potential
    validation_report.html the latest potential's report
    validation/oracle_reference.json  the oracle's side of the validation (cache)
    validation/large_cell.extxyz      the oracle's MD frames of a large cell (test only, cache)
    validation/locality.json          the oracle's locality probe (cache)
    parsl/                 Parsl's logs and batch scripts (executor: parsl)
    run.log                the log of every session

Publishing: a file is written beside its target and renamed over it (``write_file``); a
folder is written into ``<name>.partial`` beside its target and swapped in whole
(``staged_folder``), so a reader (or a resumed run) sees the old version or the new one, never
half of one. The helpers delete only what they created: ``<name>.partial`` and
``<name>.replaced`` are theirs by name (a run killed mid-write leaves them; the next publish of
the same target removes them), a failed write is kept as ``<name>.failed-<timestamp>`` for
inspection, and a replaced target is one they published before.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyacemaker.errors import StorageError

log = logging.getLogger(__name__)

RESOLVED_CONFIG = "config.resolved.yaml"
STATE_FILE = "state.json"
DATASET_FILE = "dataset.db"
SEEDS_FILE = "seeds.extxyz"
LOG_FILE = "run.log"
REPORT_FILE = "validation_report.html"  # also inside iterations/iter_NNN/validation/
RESULT_FILE = "validation.json"  # the ValidationResult beside each report
ITERATIONS = "iterations"
POTENTIAL = "potential"
MD = "md"
VALIDATION = "validation"
DFT = "dft"
PARSL = "parsl"
REFERENCE_FILE = "oracle_reference.json"
LARGE_CELL_FILE = "large_cell.extxyz"
LOCALITY_FILE = "locality.json"

STAGING_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"
FAILED_SUFFIX = ".failed-"


@dataclass(frozen=True)
class RunPaths:
    """Every path of the run in ``workdir`` (see the module docstring for the layout)."""

    workdir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "workdir", Path(self.workdir))

    @property
    def resolved_config(self) -> Path:
        """Every setting of the run, inferred ones included (YAML)."""
        return self.workdir / RESOLVED_CONFIG

    @property
    def state(self) -> Path:
        """The resumable state (JSON)."""
        return self.workdir / STATE_FILE

    @property
    def dataset(self) -> Path:
        """Structures, labels and provenance (ase.db SQLite)."""
        return self.workdir / DATASET_FILE

    @property
    def seeds(self) -> Path:
        """The starting structures (extended XYZ)."""
        return self.workdir / SEEDS_FILE

    @property
    def log(self) -> Path:
        """The log of every session."""
        return self.workdir / LOG_FILE

    @property
    def report(self) -> Path:
        """The latest potential's validation report (HTML)."""
        return self.workdir / REPORT_FILE

    @property
    def potential(self) -> Path:
        """Folder with a copy of the latest potential."""
        return self.workdir / POTENTIAL

    @property
    def dft(self) -> Path:
        """Folder of the kept DFT inputs and outputs (``HASH/attempt_N/FILE.gz``)."""
        return self.workdir / DFT

    @property
    def parsl(self) -> Path:
        """Parsl's run folder (logs, batch scripts)."""
        return self.workdir / PARSL

    @property
    def reference(self) -> Path:
        """The cached oracle side of the validation (JSON)."""
        return self.workdir / VALIDATION / REFERENCE_FILE

    @property
    def large_cell(self) -> Path:
        """The cached large-cell MD frames of the validation (extxyz)."""
        return self.workdir / VALIDATION / LARGE_CELL_FILE

    @property
    def locality(self) -> Path:
        """The cached locality probe of the oracle (JSON)."""
        return self.workdir / VALIDATION / LOCALITY_FILE

    @property
    def iterations(self) -> Path:
        """Folder of the per-iteration folders."""
        return self.workdir / ITERATIONS

    def iteration(self, i: int) -> Path:
        """Folder of iteration ``i`` (``iterations/iter_NNN``)."""
        return self.iterations / f"iter_{i:03d}"

    def potential_of(self, i: int) -> Path:
        """Folder of iteration ``i``'s potential."""
        return self.iteration(i) / POTENTIAL

    def md_of(self, i: int) -> Path:
        """Folder of iteration ``i``'s MD runs (one sub-folder per run)."""
        return self.iteration(i) / MD

    def validation_of(self, i: int) -> Path:
        """Folder of iteration ``i``'s ``validation.json`` and report."""
        return self.iteration(i) / VALIDATION

    def validation_result_of(self, i: int) -> Path:
        """Iteration ``i``'s ``validation.json`` (the ValidationResult)."""
        return self.validation_of(i) / RESULT_FILE

    def report_of(self, i: int) -> Path:
        """Iteration ``i``'s validation report (HTML)."""
        return self.validation_of(i) / REPORT_FILE

    def validation_results(self) -> list[Path]:
        """The ``validation.json`` of every validated iteration, oldest first."""
        return sorted(self.iterations.glob(f"iter_*/{VALIDATION}/{RESULT_FILE}"))

    def is_run(self) -> bool:
        """``workdir`` holds a run (its resolved config and dataset exist)."""
        return self.resolved_config.is_file() and self.dataset.is_file()


def write_file(path: Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` so that readers see the old or the new file, never a
    partial one: written to ``<name>.tmp`` beside it, fsync'ed, renamed over it. ``str`` is
    written as text (locale encoding), ``bytes`` as they are.

    Raises
    ------
    OSError
        The folder does not exist or is not writable, or the disk is full (``path`` is left
        unchanged and ``<name>.tmp`` removed).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb" if isinstance(content, bytes) else "w") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a partial copy would only hold space (a full disk)
        raise


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """An empty folder ``<name>.partial`` beside ``target`` to write into; on leaving the block
    it replaces ``target`` whole (rename).

    An existing ``target`` is renamed to ``<name>.replaced`` and removed after the swap: it was
    published here before. A stale ``<name>.partial`` or ``<name>.replaced`` (left by a run
    killed mid-write or mid-swap) is ours by name and removed first. When the block raises an
    ``Exception``, ``target`` stays as it was, the staging folder is kept as
    ``<name>.failed-<timestamp>`` and the exception propagates; an interrupt
    (KeyboardInterrupt) leaves ``<name>.partial`` for the next call to remove.

    Raises
    ------
    OSError
        The parent folder cannot be created or written.
    Exception
        Whatever the block raises, unchanged.
    """
    target = Path(target)
    staging = target.with_name(target.name + STAGING_SUFFIX)
    for stale in (staging, target.with_name(target.name + REPLACED_SUFFIX)):
        if stale.exists():  # a killed run's leftover: ours by name
            shutil.rmtree(stale)
    staging.mkdir(parents=True)
    try:
        yield staging
    except Exception:
        failed = _failed_name(target)
        staging.rename(failed)
        log.warning("writing %s failed; what was written is kept in %s", target, failed)
        raise
    _swap(staging, target)


def publish_copy(source: Path, target: Path) -> None:
    """Replace the folder ``target`` with a copy of the folder ``source`` (``staged_folder``)."""
    with staged_folder(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


def _swap(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, the old ``target`` moved aside and then removed."""
    if not target.exists():
        staging.rename(target)
        return
    old = target.with_name(target.name + REPLACED_SUFFIX)
    target.rename(old)  # a rename cannot replace a non-empty folder
    staging.rename(target)
    shutil.rmtree(old)  # the previous version, published here


def _failed_name(target: Path) -> Path:
    """``<name>.failed-<YYYYmmdd-HHMMSS>`` beside ``target``, ``-N`` added when taken."""
    stem = f"{target.name}{FAILED_SUFFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = target.with_name(stem), 1
    while path.exists():
        path, n = target.with_name(f"{stem}-{n}"), n + 1
    return path


def storage_error(err: OSError, workdir: Path) -> StorageError:
    """``err`` (raised while writing the run's files) as a message naming the file and the fix."""
    where = err.filename or f"a file in {workdir}"
    if err.errno == errno.ENOSPC:
        cause = f"no space left on device while writing {where}"
        fix = "free space on its file system"
    else:
        cause = f"cannot write {where} ({err.strerror or err})"
        fix = "fix the cause"
    return StorageError(f"{cause}; what was stored before is intact: {fix} and run the same "
                        "command again to resume")


class RunLogHandler(logging.FileHandler):
    """The handler of ``run.log``: a line it cannot write (a full disk) is reported once on
    stderr, not as a traceback per line; the lines after it are written once there is room."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failed = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self.failed:
            self.failed = True
            sys.stderr.write(f"warning: cannot write {self.baseFilename} ({sys.exc_info()[1]}); "
                             "some lines of the run's log are missing\n")
