"""The local one-node Slurm cluster (scripts/local-slurm, started by `make test`) runs a real job."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

START_HINT = "start it with `make slurm` (make test does it) and export SLURM_CONF"


def slurm_env() -> dict[str, str]:
    """The environment for the Slurm commands: SLURM_CONF as exported, else the script's default."""
    env = dict(os.environ)
    folder = env.get("PYACEMAKER_SLURM_DIR", "/tmp/pyacemaker-slurm")
    env.setdefault("SLURM_CONF", str(Path(folder) / "slurm.conf"))
    return env


def test_sbatch_runs_a_job(tmp_path: Path) -> None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.fail(f"Slurm is not installed; {START_HINT}")
    env = slurm_env()
    states = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True,
                            text=True, timeout=30, env=env)
    if states.returncode != 0 or not {"idle", "mix", "alloc"} & set(states.stdout.split()):
        pytest.fail(f"no Slurm node is up (sinfo: {states.stdout.strip() or states.stderr.strip()}); "
                    f"{START_HINT}")

    script = tmp_path / "job.sh"
    script.write_text('#!/bin/sh\necho "$SLURM_JOB_ID $(hostname -s)" > done.txt\n')
    submitted = subprocess.run(
        ["sbatch", "--wait", "--job-name=pyacemaker-test", f"--chdir={tmp_path}",
         f"--output={tmp_path / 'job.out'}", "--time=00:01:00", str(script)],
        capture_output=True, text=True, timeout=120, env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = re.search(r"Submitted batch job (\d+)", submitted.stdout)
    assert job_id is not None, submitted.stdout
    done = tmp_path / "done.txt"
    assert done.read_text().split()[0] == job_id.group(1)
