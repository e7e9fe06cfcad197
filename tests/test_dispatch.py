"""Where tasks run: the same Cu/EMT loop through local workers, Parsl's HighThroughputExecutor
on this machine and Parsl on a real one-node Slurm (``make slurm``), with workers that cannot
see the driver's workdir, and workers killed mid-labelling.

The workers are started inside their own mount namespace (``unshare``) with an empty tmpfs
mounted over the folder that holds the run: a worker that read or wrote the driver's workdir
would find nothing there, and what it wrote would never reach the real folder.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml
from ase.db import connect

from pyacemaker import dispatch
from pyacemaker.config import config_from_dict
from pyacemaker.orchestrator import Workflow
from pyacemaker.resolve import load_config

TESTS = Path(__file__).parent
SLOW = "ase:slow_emt:SlowEMT"  # EMT with a delay, logging every calculation (tests/slow_emt.py)
LOOP = {
    "composition": "Cu",
    "budget": {"max_iterations": 1, "max_labels": 40},
    "targets": {"energy_rmse_mev_per_atom": 0.001},  # out of reach: the budget ends the run
    "exploration": {"seed_labels": 12, "labels_per_iteration": 8, "md_steps": 30,
                    "md_temperatures": [700]},
    "trainer": {"kind": "linear"},
    "validation": {"every_iteration": False},
}


def hidden_launcher(hidden: Path):
    """A launcher that starts the workers where ``hidden`` is an empty tmpfs."""
    from parsl.launchers import SingleNodeLauncher

    class HiddenFolderLauncher(SingleNodeLauncher):
        def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int,
                     script_dir: str = "") -> str:
            inner = super().__call__(command, tasks_per_node, nodes_per_block, script_dir)
            script = f"mount -t tmpfs none {shlex.quote(str(hidden))} && {inner}"
            return f"unshare --mount --propagation private bash -c {shlex.quote(script)}"

    return lambda name: HiddenFolderLauncher()


def run_loop(folder: Path, executor: dict, engine: str = "emt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder.parent / f"{folder.name}.yaml"
    path.write_text(yaml.safe_dump({**LOOP, "workdir": str(folder / "run"), "executor": executor,
                                    "oracle": {"engine": engine, "workers": 2}}))
    Workflow(load_config(path), show_progress=False).run()
    return folder / "run"


def dataset(run: Path) -> list[tuple]:
    """Every row: hash, status, split, iteration, class, energy (eV), forces (eV/A) and whether
    it is a test-only label (EMT is cheap: thin classes get them, outside the budget)."""
    return [(r.hash, r.status, r.split, r.iteration, r.generator, r.get("energy"),
             r.toatoms().get_forces() if r.status == "labelled" else None, bool(r.get("test_only")))
            for r in connect(str(run / "dataset.db")).select(sort="id")]


def assert_same_dataset(got: list[tuple], expected: list[tuple]) -> None:
    assert [r[:5] for r in got] == [r[:5] for r in expected]
    assert all(r[1] == "labelled" for r in got) and sum(not r[7] for r in got) == 12 + 8
    assert [r[5] for r in got] == pytest.approx([r[5] for r in expected], rel=1e-12)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a[6], b[6], atol=1e-12)


def parsl_settings(tmp_path: Path, **extra) -> dict:
    return {"kind": "parsl", "worker_dir": str(tmp_path / "workers"), "retries": 2, **extra}


def worker_files(folder: Path) -> list[str]:
    names = ("manager.log", "worker_0.log", "pyacemaker-md", "pyacemaker-fit")
    return [str(p) for p in folder.rglob("*") if any(n in p.name for n in names)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The loop with the default local workers: the reference."""
    return run_loop(tmp_path_factory.mktemp("local"), {})


def test_parsl_workers_without_the_workdir_give_the_local_dataset(local_run, tmp_path,
                                                                  monkeypatch):
    folder = tmp_path / "hidden"
    monkeypatch.setattr(dispatch, "make_launcher", hidden_launcher(folder))
    run = run_loop(folder, parsl_settings(tmp_path))
    assert_same_dataset(dataset(run), dataset(local_run))
    assert list((tmp_path / "workers").rglob("manager.log"))  # the workers ran over there
    assert not worker_files(run)
    assert list((run / "iterations" / "iter_001" / "md").glob("*/log.lammps.gz"))
    assert (run / "iterations" / "iter_001" / "potential" / "potential.asi").is_file()


def test_a_hidden_workdir_is_really_hidden_from_the_workers(tmp_path, monkeypatch):
    """The control for the test above: the same launcher hides a file the driver sees."""
    folder = tmp_path / "hidden"
    folder.mkdir()
    (folder / "marker").write_text("driver side")
    monkeypatch.setattr(dispatch, "make_launcher", hidden_launcher(folder))
    settings = config_from_dict({**LOOP, "workdir": str(tmp_path / "run"), "oracle": {
        "engine": "emt"}, "executor": parsl_settings(tmp_path)}).executor
    runner = dispatch.ParslDispatcher(settings, tmp_path / "parsl", show_progress=False)
    seen = {}
    try:
        runner.run("label", [dispatch.Task(p.name, os.path.exists, (str(p),))
                             for p in (folder / "marker", tmp_path / "parsl")],
                   seen.__setitem__, "checking")
    finally:
        runner.close()
    assert seen == {"marker": False, "parsl": True}


def test_the_live_status_counts_tasks_and_blocks(tmp_path):
    """What the progress bar shows while Parsl works: queued and running tasks, and the
    blocks connected out of those requested."""
    settings = config_from_dict({**LOOP, "workdir": str(tmp_path / "run"), "oracle": {
        "engine": "emt"}, "executor": parsl_settings(tmp_path)}).executor
    runner = dispatch.ParslDispatcher(settings, tmp_path / "parsl", show_progress=False)
    shown, status = [], runner.status
    runner.status = lambda unfinished: shown.append(status(unfinished)) or shown[-1]
    done = []
    try:
        runner.run("label", [dispatch.Task(k, time.sleep, (1.5,)) for k in range(5)],
                   lambda key, _: done.append(key), "waiting")
    finally:
        runner.close()
    assert sorted(done) == list(range(5))
    assert shown[0].startswith("5 queued · 0 running")
    assert any("2 running · blocks 1/1 connected" in line for line in shown), shown


def test_the_loop_through_a_real_slurm_gives_the_local_dataset(local_run, tmp_path, monkeypatch):
    """Parsl's SlurmProvider submits a batch job to the one-node cluster of ``make slurm``."""
    conf = os.environ.get("SLURM_CONF", "/tmp/pyacemaker-slurm/slurm.conf")
    assert Path(conf).is_file(), "no local Slurm: start it with `make slurm`"
    monkeypatch.setenv("SLURM_CONF", conf)
    folder = tmp_path / "hidden"
    monkeypatch.setattr(dispatch, "make_launcher", hidden_launcher(folder))
    run = run_loop(folder, parsl_settings(tmp_path, provider="slurm", partition="debug",
                                          walltime="00:20:00"))
    assert_same_dataset(dataset(run), dataset(local_run))
    scripts = [p for p in (run / "parsl").rglob("parsl.pyacemaker.block-*")
               if p.suffix not in (".stdout", ".stderr")]
    assert scripts and "#SBATCH --partition=debug" in scripts[0].read_text()
    assert not worker_files(run)


# --------------------------------------------------------------------------- killed workers


def kill_a_worker_when(labels: Path, find_workers, done: threading.Event) -> list[int]:
    """SIGKILL one worker process once 3 labels are logged; returns the killed pids."""
    killed: list[int] = []

    def watch() -> None:
        while not done.is_set():
            count = len(labels.read_text().split()) if labels.exists() else 0
            workers = find_workers()
            if count >= 3 and workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def local_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "multiprocessing.spawn" in " ".join(p.cmdline())]


def parsl_workers() -> list[psutil.Process]:
    managers = [p for p in psutil.process_iter(["cmdline"])
                if "process_worker_pool" in " ".join(p.info["cmdline"] or [])]
    return [c for m in managers for c in m.children()
            if "process_worker_pool" not in " ".join(c.cmdline())]


@pytest.mark.parametrize("where", ["local", "parsl"])
def test_a_worker_killed_while_labelling_loses_nothing(where, local_run, tmp_path, monkeypatch):
    labels = tmp_path / "labels.log"
    monkeypatch.setenv("PYACEMAKER_TEST_LOG", str(labels))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(TESTS))
    done = threading.Event()
    killed = kill_a_worker_when(labels, local_workers if where == "local" else parsl_workers, done)
    try:
        run = run_loop(tmp_path / where, parsl_settings(tmp_path) if where == "parsl" else {},
                       engine=SLOW)
    finally:
        done.set()
    assert killed, "no worker was killed: the test did not test anything"
    assert_same_dataset(dataset(run), dataset(local_run))
    computed = labels.read_text().split()
    assert len(computed) - len(set(computed)) <= 2  # at most the labels in flight ran twice


STAND_IN_QSUB = """#!/bin/sh
# a stand-in for PBS Pro's qsub (no PBS server installs here): keep the call, print a job id
printf '%s\\n' "$@" > "$(dirname "$0")/qsub.args"
cp "$(eval echo \\${$#})" "$(dirname "$0")/submitted.sh"
echo 4242.pbs-server
"""


def test_parsl_submits_pbspro_batch_jobs_with_our_settings(tmp_path, monkeypatch):
    """No PBS server can be installed here, so ``qsub`` is a stand-in that keeps what it was
    given: Parsl's PBSProProvider, built from our settings, really submits, and the batch
    script carries the queue, account, walltime, nodes, cpus, launcher and worker_init."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "qsub").write_text(STAND_IN_QSUB)
    (bin_dir / "qsub").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = config_from_dict({**LOOP, "workdir": str(tmp_path / "run"), "oracle": {
        "engine": "emt"}, "executor": {
            "kind": "parsl", "provider": "pbspro", "queue": "workq", "account": "proj42",
            "walltime": "02:00:00", "nodes_per_block": 2, "cores_per_node": 64,
            "launcher": "mpiexec", "worker_init": "module load qe/7.2",
            "scheduler_options": "#PBS -l place=scatter", "worker_dir": "/scratch/me/w"}}).executor
    provider = dispatch.parsl_provider(settings, "/scratch/me/w")
    provider.script_dir = str(tmp_path)
    assert provider.submit("process_worker_pool.py --the-args", 1) == "4242.pbs-server"
    assert (bin_dir / "qsub.args").read_text().split()[:4] == ["-q", "workq", "-A", "proj42"]
    script = (bin_dir / "submitted.sh").read_text()
    for line in ("#PBS -l walltime=02:00:00", "#PBS -l select=2:ncpus=64", "#PBS -l place=scatter",
                 'mkdir -p "/scratch/me/w"', 'cd "/scratch/me/w"', "module load qe/7.2",
                 "mpiexec", "process_worker_pool.py --the-args"):
        assert line in script, f"{line!r} not in the batch script:\n{script}"
