"""Fault injection: crashing and hanging oracles, LAMMPS losing atoms, truncated and corrupt
engine outputs, a full disk, and corrupt stored files on resume. Each fault is injected for
real (a worker process that dies, a calculator that sleeps, a real tmpfs that fills up, real
LAMMPS and pw.x outputs cut short); each test checks what the user sees and that what was
stored before is intact.

Covered elsewhere (not repeated here):
- a worker killed (SIGKILL) while labelling, locally and through Parsl: tests/test_dispatch.py
  (test_a_worker_killed_while_labelling_loses_nothing)
- the whole run killed while labelling or fitting, then resumed: tests/test_loop.py
- a LAMMPS run that cannot read its potential, and one that times out:
  tests/test_dynamics.py (test_lammps_error_is_recorded_and_not_raised,
  test_timeout_is_a_failure_with_its_reason, test_explorer_turns_md_into_candidates_and_survives_failures)
- pw.x SCF failures, healing, quarantine and timeouts: tests/test_espresso.py
- ase.db's lock file left by a killed run: tests/test_dataset.py
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.db import connect
from typer.testing import CliRunner

from pyacemaker.candidates import md_candidates
from pyacemaker.cli import app
from pyacemaker.dataset import Dataset, structure_hash
from pyacemaker.dynamics.lammps_input import EXTRAPOLATIVE_DUMP, FINAL_DUMP, LOG_FILE, MDRequest
from pyacemaker.dynamics.lammps_output import iter_dump, read_log
from pyacemaker.dynamics.md import LammpsEngine
from pyacemaker.errors import ParseError, StorageError
from pyacemaker.records import LabelResult
from pyacemaker.state import WorkflowState
from pyacemaker.training.potential import Potential
from pyacemaker.workdir import RunLogHandler, storage_error
from tests.faulty_emt import CRASH, HANG, fault_of, fill

TESTS = Path(__file__).parent
FAULTY = "ase:faulty_emt:FaultyEMT"  # EMT that crashes or hangs on some structures
MODULUS = 7  # FaultyEMT: hash % MODULUS == 0 kills the worker, == 1 hangs
CONFIG = {
    "composition": "Cu",
    "oracle": {"engine": FAULTY, "parameters": {"modulus": MODULUS}, "timeout_s": 2.0,
               "workers": 2},
    "executor": {"retries": 1},
    "budget": {"max_iterations": 1, "max_labels": 40},
    "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
    "exploration": {"seed_labels": 10, "labels_per_iteration": 4, "md_steps": 30,
                    "md_temperatures": [700], "rare_events": {"when": "never"}},
    "trainer": {"kind": "linear"},
    "validation": {"every_iteration": False},
}
FILL_AFTER = 3  # labels computed before the faulty oracle fills the disk


# ---------------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def small_disk(folder: Path, size: str = "64m") -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted on ``folder`` (None when it cannot be mounted: not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield None
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def need(disk: Path | None) -> Path:
    if disk is None:
        pytest.skip("a small file system needs `mount -t tmpfs` (root); the CI runs as root")
    return disk


def write_config(path: Path, workdir: Path) -> Path:
    path.write_text(yaml.safe_dump({**CONFIG, "workdir": str(workdir)}))
    return path


def cli_run(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``pyacemaker run CONFIG`` as a user runs it: its exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "pyacemaker.cli", "run", str(config),
                           "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def rows(run: Path) -> dict[str, tuple]:
    """hash -> (status, energy, forces, reason) of every row of the run's dataset."""
    out = {}
    for r in connect(str(run / "dataset.db")).select():
        labelled = r.status == "labelled"
        out[r.hash] = (r.status, r.get("energy"), r.toatoms().get_forces() if labelled else None,
                       r.data.get("reason", ""))
    return out


def integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def assert_kept(before: dict[str, tuple], after: dict[str, tuple]) -> None:
    """Every labelled row of ``before`` is in ``after``, unchanged."""
    for h, (status, energy, forces, _) in before.items():
        if status == "labelled":
            assert after[h][0] == "labelled" and after[h][1] == energy
            np.testing.assert_array_equal(after[h][2], forces)


def no_traceback(*outputs: str) -> None:
    for text in outputs:
        assert "Traceback" not in text and "Logging error" not in text, text[-3000:]


@dataclass
class FaultyRun:
    config: Path
    run: Path
    env: dict[str, str]
    calls: Path  # the hashes the oracle computed, one a line
    full: subprocess.CompletedProcess | None  # the run the full disk stopped (None: no tmpfs)
    at_full: dict[str, tuple]  # the dataset right after that stop
    state_at_full: bytes
    integrity_at_full: str
    resumed: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory) -> Iterator[FaultyRun]:
    """A run on a 64 MB tmpfs whose oracle kills its worker on some structures and hangs on
    others; the disk fills up after a few labels (the run stops), space is freed, and the same
    command resumes the run to its end. Without root the run goes through without the full
    disk, on the ordinary file system."""
    folder = tmp_path_factory.mktemp("faulty")
    with small_disk(folder / "disk") as disk:
        run = (disk or folder) / "run"
        config = write_config(folder / "config.yaml", run)
        calls = folder / "calls.log"
        env = {**os.environ, "PYACEMAKER_TEST_LOG": str(calls),
               "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        full, at_full, state, check = None, {}, b"", ""
        if disk is not None:
            filler = disk / "filler"
            Path(f"{filler}.trigger").touch()
            full = cli_run(config, {**env, "PYACEMAKER_TEST_FILL": str(filler),
                                    "PYACEMAKER_TEST_FILL_AFTER": str(FILL_AFTER)})
            at_full, state = rows(run), (run / "state.json").read_bytes()
            check = integrity(run / "dataset.db")
            filler.unlink()
        resumed = cli_run(config, env)
        yield FaultyRun(config, run, env, calls, full, at_full, state, check, resumed)


def copy_run(source: FaultyRun, folder: Path) -> tuple[Path, Path]:
    """(config, workdir): a copy of the finished faulty run in ``folder``."""
    run = folder / "run"
    shutil.copytree(source.run, run)
    return write_config(folder / "config.yaml", run), run


def invoke(config: Path, monkeypatch) -> object:
    """``pyacemaker run`` in this process (the faulty oracle importable)."""
    monkeypatch.syspath_prepend(str(TESTS))
    return CliRunner().invoke(app, ["run", str(config), "--no-progress"])


# ------------------------------------------------------------------ oracle crashes and hangs

def test_a_crashing_or_hanging_oracle_gives_failed_labels_and_the_run_goes_on(faulty_run):
    result = faulty_run.resumed
    assert result.returncode == 0, result.stderr[-3000:]
    no_traceback(result.stdout, result.stderr)
    state = WorkflowState.load(faulty_run.run)
    assert state.phase == "done" and "iteration budget" in state.stop_reason
    stored = rows(faulty_run.run)
    faults = {h: fault_of(h, MODULUS) for h in stored}
    assert CRASH in faults.values() and HANG in faults.values(), "no fault was injected"
    for h, (status, energy, _, reason) in stored.items():
        if faults[h] == CRASH:
            assert status == "failed" and "worker process died 2 times" in reason, reason
        elif faults[h] == HANG:
            assert status == "failed" and "timed out after 2 s (oracle.timeout_s)" in reason
        else:  # the structures that ran beside a crash were labelled
            assert status == "labelled" and energy is not None, reason
    assert state.history[-1].failed_total == sum(f is not None for f in faults.values())
    assert state.history[-1].labels_total == sum(f is None for f in faults.values()) > 8


# ------------------------------------------------------------------------------- full disk

def test_a_full_disk_stops_the_run_with_a_message_and_the_resume_completes(faulty_run):
    full = faulty_run.full
    if full is None:
        pytest.skip("a small file system needs `mount -t tmpfs` (root); the CI runs as root")
    assert full.returncode == 2, full.stdout[-2000:] + full.stderr[-2000:]
    no_traceback(full.stdout, full.stderr)
    message = " ".join(full.stderr.split())
    assert "no space left on device while writing" in message and "dataset.db" in message
    assert "free space and run the same command again to resume" in message
    assert faulty_run.integrity_at_full == "ok"
    labelled = [h for h, r in faulty_run.at_full.items() if r[0] == "labelled"]
    assert len(labelled) >= FILL_AFTER - 1 and "pending" in {r[0] for r in faulty_run.at_full.values()}
    WorkflowState.model_validate_json(faulty_run.state_at_full)  # a whole, valid state
    assert not list(faulty_run.run.glob("*.tmp"))
    final = rows(faulty_run.run)
    assert_kept(faulty_run.at_full, final)
    computed = faulty_run.calls.read_text().split()
    assert all(computed.count(h) == 1 for h in labelled)  # stored labels were not recomputed


def test_full_disk_during_dataset_and_state_writes_keeps_the_stored_versions(tmp_path, capsys):
    with small_disk(tmp_path / "disk", "2m") as disk:
        work = need(disk) / "run"
        work.mkdir()
        dataset = Dataset(work / "dataset.db", 0.2)
        dataset.add_pending([(bulk("Cu", cubic=True) * (n, 1, 1), {"iteration": 0})
                             for n in range(1, 5)])
        (first, _), *pending = dataset.pending()
        dataset.store_label(first, LabelResult(ok=True, energy=-1.0, forces=[[0.0] * 3] * 4))
        state = WorkflowState(iteration=3, phase="label")
        state.save(work)
        before, saved = rows(work), (work / "state.json").read_bytes()
        log = RunLogHandler(work / "run.log")
        logger = logging.getLogger("pyacemaker.test_faults")
        logger.addHandler(log)
        fill(disk / "filler")
        for _ in range(3):
            logger.warning("a line that does not fit: %s", "x" * 8192)
        logger.removeHandler(log)
        log.close()
        printed = capsys.readouterr().err
        assert printed.count("warning: cannot write") == 1 and "run.log" in printed
        assert "Traceback" not in printed
        row, atoms = pending[0]
        with pytest.raises(StorageError, match="no space left on device.*dataset.db.*rolled back"):
            dataset.store_label(row, LabelResult(ok=True, energy=-2.0, forces=[[0.0] * 3] * 8))
        with pytest.raises(StorageError, match="dataset.db"):
            dataset.add_pending([(bulk("Cu") * (9, 1, 1), {"iteration": 0})])
        with pytest.raises(OSError) as err:
            WorkflowState(iteration=4, phase="train").save(work)
        message = str(storage_error(err.value, work))
        assert "no space left on device" in message and "run the same command again" in message
        assert (work / "state.json").read_bytes() == saved and not list(work.glob("*.tmp"))
        assert integrity(work / "dataset.db") == "ok"
        after = rows(work)
        assert {h: r[0] for h, r in after.items()} == {h: r[0] for h, r in before.items()}
        assert_kept(before, after)
        (disk / "filler").unlink()
        dataset.store_label(row, LabelResult(ok=True, energy=-2.0, forces=[[0.0] * 3] * 8))
        WorkflowState(iteration=4, phase="train").save(work)
        assert rows(work)[structure_hash(atoms)][1] == -2.0
        assert WorkflowState.load(work).iteration == 4


# --------------------------------------------------------------- corrupt stored files on resume

STATE_FAULTS = {
    "empty": b"",
    "truncated": b'{"iteration": 1, "phase": "tra',
    "wrong type": b'{"iteration": "two", "phase": "train"}',
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("fault", list(STATE_FAULTS))
def test_a_corrupt_state_json_stops_with_a_message_and_is_left_as_it_is(fault, faulty_run,
                                                                        tmp_path, monkeypatch):
    config, run = copy_run(faulty_run, tmp_path)
    (run / "state.json").write_bytes(STATE_FAULTS[fault])
    result = invoke(config, monkeypatch)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    message = " ".join(result.output.split())
    assert f"{run / 'state.json'} is unreadable" in message and "move it away" in message
    assert (run / "state.json").read_bytes() == STATE_FAULTS[fault]
    status = CliRunner().invoke(app, ["status", str(run)])
    assert status.exit_code == 2 and "state.json is unreadable" in " ".join(status.output.split())


def test_moving_a_corrupt_state_away_resumes_without_recomputing(faulty_run, tmp_path,
                                                                 monkeypatch):
    """What the message promises: without state.json the run goes through its stored
    iterations again, reusing every label and fit."""
    config, run = copy_run(faulty_run, tmp_path)
    (run / "state.json").write_text("{")
    (run / "state.json").rename(run / "state.json.corrupt")
    calls = faulty_run.calls.read_text()
    result = invoke(config, monkeypatch)
    assert result.exit_code == 0, result.output
    assert rows(run).keys() == rows(faulty_run.run).keys()
    assert_kept(rows(faulty_run.run), rows(run))
    assert faulty_run.calls.read_text() == calls  # no label computed again
    state, original = WorkflowState.load(run), WorkflowState.load(faulty_run.run)
    assert (state.iteration, state.phase) == (original.iteration, original.phase)
    assert [r.fit for r in state.history] == [r.fit for r in original.history]


def random_bytes(size: int) -> bytes:
    return np.random.default_rng(7).bytes(size)


DATASET_FAULTS = {
    "random bytes": lambda good: random_bytes(len(good)),
    "truncated": lambda good: good[: len(good) // 3],
    "not sqlite": lambda good: b"composition: Cu\n" * 100,
    "garbage pages": lambda good: good[:8192] + random_bytes(len(good) - 8192),
}


@pytest.mark.parametrize("fault", list(DATASET_FAULTS))
def test_a_corrupt_dataset_stops_with_a_message_and_is_left_as_it_is(fault, faulty_run, tmp_path,
                                                                     monkeypatch):
    config, run = copy_run(faulty_run, tmp_path)
    path = run / "dataset.db"
    broken = DATASET_FAULTS[fault](path.read_bytes())
    path.write_bytes(broken)
    result = invoke(config, monkeypatch)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    message = " ".join(result.output.split())
    assert str(path) in message and "Restore it from a backup" in message
    assert path.read_bytes() == broken


def test_a_missing_dataset_or_a_broken_resolved_config_is_named(faulty_run, tmp_path,
                                                               monkeypatch):
    config, run = copy_run(faulty_run, tmp_path)
    resolved = run / "config.resolved.yaml"
    good = resolved.read_bytes()
    resolved.write_bytes(good[: len(good) // 2] + b"\n  - [unclosed")
    result = invoke(config, monkeypatch)
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "config.resolved.yaml is not readable YAML" in message
    resolved.write_bytes(good)
    (run / "dataset.db").unlink()
    result = invoke(config, monkeypatch)
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "dataset.db is missing" in message, result.output
    assert not (run / "dataset.db").exists()  # no empty dataset put in its place


# ------------------------------------------------------------------------- LAMMPS faults

@pytest.fixture(scope="module")
def potential(faulty_run) -> Potential:
    return Potential.load(faulty_run.run / "iterations" / "iter_001" / "potential")


def md_request(**kw) -> MDRequest:
    settings = {"temperature_k": 300.0, "steps": 40, "timestep_fs": 2.0, "gamma_every": 10,
                "gamma_collect": 1e6, "gamma_halt": 1e9, "seed": 4242, **kw}
    return MDRequest(**settings)


def test_lammps_losing_atoms_is_a_failed_run_with_its_reason(potential, tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.positions[1] = atoms.positions[0] + [0.05, 0.0, 0.0]  # on top of each other
    md = LammpsEngine().run(atoms, potential, md_request(timestep_fs=20.0), tmp_path / "lost")
    assert md.status == "failed" and "Lost atoms" in md.error, md.error
    candidates = md_candidates(md, "prototype:fcc", keep=4)
    assert all("md_step" in c.provenance for c in candidates)  # frames before the loss, if any


def test_truncated_and_garbage_lammps_outputs_give_frames_or_parse_errors(potential, tmp_path):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=1)
    md = LammpsEngine().run(atoms, potential, md_request(gamma_collect=0.0), tmp_path / "ok")
    assert md.status == "completed", md.error
    dump = md.folder / EXTRAPOLATIVE_DUMP
    good, frames = dump.read_bytes(), len(list(md.extrapolative_frames()))
    assert frames >= 3
    for cut in (len(good) // 2, len(good) - 7, 40):
        dump.write_bytes(good[:cut])
        with pytest.raises(ParseError, match=EXTRAPOLATIVE_DUMP):
            list(md.extrapolative_frames())
        kept = md_candidates(md, "prototype:fcc", keep=10)
        assert 1 <= len(kept) <= frames + 1  # the frames before the cut, and the final frame
    dump.write_bytes(random_bytes(3000))
    with pytest.raises(ParseError, match=EXTRAPOLATIVE_DUMP):
        list(md.extrapolative_frames())
    (md.folder / FINAL_DUMP).write_bytes(good.replace(b"\n1 1 ", b"\n1 3 ", 1))
    with pytest.raises(ParseError, match="atom types"):
        list(iter_dump(md.folder / FINAL_DUMP, ["Cu"]))
    log = md.folder / LOG_FILE
    text, rows_before = log.read_bytes(), read_log(log).thermo
    log.write_bytes(text[: text.index(b"Loop time") - 9] + random_bytes(500))  # in the last row
    rows_after = read_log(log).thermo
    assert 1 < len(rows_after) <= len(rows_before) and rows_after == rows_before[:len(rows_after)]


# ---------------------------------------------------------------------------- pw.x outputs

@pytest.mark.skipif(shutil.which("pw.x") is None, reason="needs pw.x (make quickstart)")
@pytest.mark.parametrize("script", ['pw.x "$@" | head -c 6000', "head -c 3000 /dev/urandom"])
def test_truncated_or_garbage_pw_output_is_a_failed_label_naming_the_file(script, tmp_path):
    from pyacemaker.oracle.espresso import EspressoOracle
    from tests.test_espresso import rattled_si, si_config

    wrapper = tmp_path / "pw.sh"
    wrapper.write_text(f"#!/bin/sh\n{script}\n")
    config = si_config(tmp_path, max_attempts=1, command=f"sh {wrapper}")
    result = EspressoOracle(config.oracle, tmp_path / "dft").label(rattled_si())
    assert not result.ok
    assert "pw.x output espresso.pwo truncated or unreadable" in result.reason, result.reason
    assert any(name.endswith("espresso.pwo.gz") for name in result.logs)  # kept to inspect
