"""Where tasks run: local worker processes (the default) or Parsl's HighThroughputExecutor on
this machine, a Slurm or a PBS Pro cluster.

A task is a module-level function and its arguments, all data (structures, settings, file
contents); it returns data. Workers never see the driver's workdir: the driver alone stores
what comes back, through ``on_result`` as each task finishes, so a lost worker or a killed
batch job loses nothing stored. A task whose worker dies is resubmitted up to ``retries``
times (locally: alone, so that a task that kills its worker is told apart from the ones that
ran beside it); then the task's ``on_lost`` result is stored (a label becomes a failed label)
or, without one, the phase stops. An error raised by the task itself stops the phase (the
engines report their own per-structure failures as data).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from rich.progress import Progress

from pyacemaker.config import ExecutorConfig
from pyacemaker.errors import CalculationFailed, ConfigError
from pyacemaker.progress import progress_bar
from pyacemaker.timing import record
from pyacemaker.workdir import write_file

log = logging.getLogger(__name__)

Kind = Literal["label", "md", "search", "fit"]
PROCESS_KINDS = ("label", "search")  # Python-heavy tasks: worker processes (MD runs LAMMPS)
POLL_S = 1.0  # how often the live status is refreshed, seconds
DEFAULT_WORKER_DIR = "${TMPDIR:-/tmp}/pyacemaker-workers"
# Parsl's errors for a task whose worker, node or walltime (task_timeout_s) ran out: on_lost
PARSL_LOSSES = ("WorkerLost", "ManagerLost", "AppTimeout")


@dataclass(frozen=True)
class Task:
    """``function(*args)`` under the name ``key``; ``function`` must be importable by name.
    ``on_lost(reason)`` gives the result to store when the task's worker died more than
    ``retries`` times (None: the phase stops with CalculationFailed)."""

    key: Any
    function: Callable[..., Any]
    args: tuple[Any, ...]
    on_lost: Callable[[str], Any] | None = None


OnResult = Callable[[Any, Any], None]


class Dispatcher(Protocol):
    """Runs tasks of one kind and hands each result to ``on_result(key, result)``."""

    def run(self, kind: Kind, tasks: list[Task], on_result: OnResult, description: str) -> None: ...

    def close(self) -> None: ...


SUBMIT_COMMANDS = {"slurm": "sbatch", "pbspro": "qsub"}


def check_executor(settings: ExecutorConfig) -> None:
    """Start-up check: the batch system's submit command is on this machine's PATH.

    Raises
    ------
    ConfigError
        Naming ``executor.provider`` and the fix.
    """
    command = SUBMIT_COMMANDS.get(settings.provider) if settings.kind == "parsl" else None
    if command and shutil.which(command) is None:
        raise ConfigError(
            f"field 'executor.provider': {settings.provider} needs `{command}` on PATH, which "
            f"this machine does not have; run pyacemaker where jobs are submitted (a login "
            f"node), or use provider: local")


def make_dispatcher(settings: ExecutorConfig, workers: dict[Kind, int], run_dir: Path,
                    show_progress: bool = True) -> Dispatcher:
    """The dispatcher for ``settings``: ``workers`` sizes the local pools; Parsl keeps its
    logs and batch scripts in ``run_dir`` (on the driver's machine)."""
    if settings.kind == "parsl":
        return ParslDispatcher(settings, run_dir, show_progress)
    return LocalDispatcher(workers, settings.retries, show_progress)


def store_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write the files a task sent back (relative path -> content) under ``folder``, each
    atomically (driver side)."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, content)


def timed_call(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float, float]:
    """``function(*args)`` and the wall-clock epochs it ran between (runs on the worker)."""
    start = time.time()
    result = function(*args)
    return result, start, time.time()


# --------------------------------------------------------------------------- local


_started: Any = None  # in a local worker: the queue it reports the tasks it starts to


def _start_worker(started: Any) -> None:
    """Worker initialiser: one engine thread per process; ``started`` (a SimpleQueue, written
    synchronously, so a report survives a crash right after it) hears of every task begun."""
    global _started
    os.environ["OMP_NUM_THREADS"] = "1"
    _started = started


def _tracked_call(token: tuple[int, int], function: Callable[..., Any],
                  args: tuple[Any, ...]) -> tuple[Any, float, float]:
    """``timed_call`` in a local worker, reporting ``token`` (run, task index) first."""
    _started.put(token)
    return timed_call(function, args)


def lost_reason(losses: int) -> str:
    """Why a task was given up: its worker process died every time it ran it."""
    return (f"its worker process died {losses} times while running it (a crash inside the "
            "engine, or killed: out of memory?)")


class LocalDispatcher:
    """Labels and saddle searches in spawned worker processes, MD runs in threads (each runs
    LAMMPS as a subprocess), fits in the driver itself. Pools live as long as the dispatcher.

    A worker process that dies breaks its pool: the tasks it had started are resubmitted one
    at a time (a break is then theirs alone), the ones not started yet in parallel again."""

    def __init__(self, workers: dict[Kind, int], retries: int, show_progress: bool = True) -> None:
        self.workers = workers
        self.retries = retries
        self.show_progress = show_progress
        self._pools: dict[Kind, ProcessPoolExecutor | ThreadPoolExecutor] = {}
        self._started: dict[Kind, Any] = {}  # per process pool: its workers' start reports
        self._runs = 0  # submissions so far; tags the start reports
        self._began: set[int] = set()  # tasks of the current submission that have started

    def pool(self, kind: Kind) -> ProcessPoolExecutor | ThreadPoolExecutor:
        if kind not in self._pools:
            n = self.workers.get(kind, 1)
            if kind in PROCESS_KINDS:
                context = multiprocessing.get_context("spawn")
                self._started[kind] = context.SimpleQueue()
                self._pools[kind] = ProcessPoolExecutor(
                    n, mp_context=context, initializer=_start_worker,
                    initargs=(self._started[kind],))
            else:
                self._pools[kind] = ThreadPoolExecutor(n)
        return self._pools[kind]

    def run(self, kind: Kind, tasks: list[Task], on_result: OnResult, description: str) -> None:
        if not tasks:
            return
        if kind == "fit":
            for task in tasks:
                result, start, end = timed_call(task.function, task.args)
                record(start, end)
                on_result(task.key, result)
            return
        losses = dict.fromkeys(range(len(tasks)), 0)
        idle_breaks = 0
        with progress_bar(self.show_progress, status=True) as progress:
            bar = progress.add_task(description, total=len(tasks), status="")
            remaining = set(range(len(tasks)))
            while remaining:
                for index in sorted(i for i in remaining if losses[i]):
                    self._run_alone(kind, tasks, index, losses, on_result, progress, bar)
                    remaining.discard(index)
                rest = set(remaining)
                unfinished = self._run_once(kind, tasks, rest, on_result, progress, bar)
                remaining -= rest - unfinished
                if not unfinished:
                    continue
                started = self._began & unfinished
                for index in started:
                    losses[index] += 1
                idle_breaks = 0 if started else idle_breaks + 1
                if idle_breaks > self.retries:
                    raise CalculationFailed(
                        f"the {kind} worker processes died {idle_breaks} times before running any "
                        "task (see the messages above); the results stored so far are kept: "
                        "run again to resume")
                log.warning("a %s worker died; resubmitting %d unfinished tasks (%d of them one "
                            "at a time: they were running)", kind, len(unfinished), len(started))
            progress.update(bar, status="done")

    def _run_alone(self, kind: Kind, tasks: list[Task], index: int, losses: dict[int, int],
                   on_result: OnResult, progress: Progress, bar: Any) -> None:
        """Run task ``index`` (it was running when a worker died) by itself until it finishes,
        or its worker died more than ``retries`` times running it: then store its ``on_lost``
        result, or stop the phase without one."""
        task = tasks[index]
        while self._run_once(kind, tasks, {index}, on_result, progress, bar):
            if index not in self._began:
                raise CalculationFailed(
                    f"the {kind} worker processes died before running task {task.key}; the "
                    "results stored so far are kept: run again to resume")
            losses[index] += 1
            if losses[index] <= self.retries:
                log.warning("a %s worker died running task %s alone; resubmitting it", kind,
                            task.key)
                continue
            reason = lost_reason(losses[index])
            if task.on_lost is None:
                raise CalculationFailed(f"task {task.key}: {reason}; the results stored so far "
                                        "are kept: run again to resume")
            log.warning("task %s given up: %s", task.key, reason)
            on_result(task.key, task.on_lost(reason))
            progress.advance(bar)
            return

    def _run_once(self, kind: Kind, tasks: list[Task], indices: set[int], on_result: OnResult,
                  progress: Progress, bar: Any) -> set[int]:
        """Submit ``indices``; store results as they come. Returns the indices left unfinished
        because the worker pool broke (a worker process died); ``_began`` then holds the
        indices whose tasks had started."""
        self._began = set()
        if not indices:
            return set()
        pool = self.pool(kind)
        self._runs += 1
        futures: dict[Future, int] = {self._submit(pool, kind, tasks[i], i): i for i in sorted(indices)}
        slots = self.workers.get(kind, 1)
        left = set(indices)
        try:
            while futures:
                running = min(slots, len(futures))
                progress.update(bar, status=f"{len(futures) - running} queued · {running} running")
                done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
                self._drain(kind)
                for future in done:
                    index = futures.pop(future)
                    result, start, end = future.result()
                    record(start, end)
                    on_result(tasks[index].key, result)
                    left.discard(index)
                    progress.advance(bar)
        except BrokenProcessPool:
            self._drain(kind)
            self._pools.pop(kind).shutdown(wait=False, cancel_futures=True)
            self._started.pop(kind, None)
            return left
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return set()

    def _submit(self, pool: Any, kind: Kind, task: Task, index: int) -> Future:
        if kind in PROCESS_KINDS:  # the worker reports the start: a crash is told apart
            return pool.submit(_tracked_call, (self._runs, index), task.function, task.args)
        return pool.submit(timed_call, task.function, task.args)

    def _drain(self, kind: Kind) -> None:
        """Move the workers' start reports of the current run into ``_began`` (emptying the
        pipe, which would block the workers once full)."""
        queue = self._started.get(kind)
        while queue is not None and not queue.empty():
            run, index = queue.get()
            if run == self._runs:
                self._began.add(index)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()


# --------------------------------------------------------------------------- parsl


class ParslDispatcher:
    """Every task goes to one Parsl HighThroughputExecutor; its blocks are batch jobs of the
    configured provider. Parsl resubmits a task whose worker or block was lost."""

    def __init__(self, settings: ExecutorConfig, run_dir: Path, show_progress: bool = True) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.show_progress = show_progress
        self.dfk: Any = None  # started by the first task, so that blocks are not idle before

    def start(self) -> None:
        """Start Parsl: its interchange here, its first block on the provider."""
        from parsl.app.app import python_app
        from parsl.dataflow.dflow import DataFlowKernel

        self.run_dir.mkdir(parents=True, exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)  # Parsl starts its interchange.py from PATH
        if bin_dir not in os.environ["PATH"].split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ["PATH"]])
        self.dfk = DataFlowKernel(parsl_config(self.settings, self.run_dir))
        self.executor = self.dfk.executors["pyacemaker"]
        self.app = python_app(timed_call, data_flow_kernel=self.dfk, executors=["pyacemaker"])

    def run(self, kind: Kind, tasks: list[Task], on_result: OnResult, description: str) -> None:
        if not tasks:
            return
        if self.dfk is None:
            self.start()
        options = {"walltime": self.settings.task_timeout_s} if self.settings.task_timeout_s else {}
        futures = {self.app(task.function, task.args, **options): task for task in tasks}
        with progress_bar(self.show_progress, status=True) as progress:  # on an error, close() drops the rest
            bar = progress.add_task(description, total=len(tasks), status="")
            while futures:
                progress.update(bar, status=self.status(len(futures)))
                done, _ = wait(futures, timeout=POLL_S * 2, return_when=FIRST_COMPLETED)
                for future in done:
                    task = futures.pop(future)
                    result, start, end = self.result(task, future)
                    record(start, end)
                    on_result(task.key, result)
                    progress.advance(bar)
            progress.update(bar, status="done")

    def result(self, task: Task, future: Future) -> tuple[Any, float, float]:
        """The task's result; a task Parsl gave up on (after its retries) becomes its
        ``on_lost`` result when its worker was lost or it ran out of time, else
        CalculationFailed naming the task and the cause."""
        try:
            return future.result()
        except Exception as err:
            if task.on_lost is not None and type(err).__name__ in PARSL_LOSSES:
                now = time.time()
                return task.on_lost(f"{lost_reason(self.settings.retries + 1)} "
                                    f"({type(err).__name__}: {err})"), now, now
            raise CalculationFailed(
                f"task {task.key} failed on the cluster after {self.settings.retries} "
                f"resubmissions ({type(err).__name__}: {err}); the results stored so far are "
                f"kept: run again to resume. Parsl's logs: {self.dfk.run_dir}") from err

    def status(self, unfinished: int) -> str:
        """Tasks queued, running and blocks requested/connected (best effort: the interchange
        may be busy)."""
        try:
            managers = self.executor.connected_managers()
            running = sum(m["tasks"] for m in managers)
            connected = len(self.executor.connected_blocks())
        except Exception:  # noqa: BLE001 - a status line must never stop the run
            return f"{unfinished} unfinished"
        requested = len(self.executor.blocks_to_job_id)
        return (f"{unfinished - running} queued · {running} running · "
                f"blocks {connected}/{requested} connected")

    def close(self) -> None:
        """Stop the workers and cancel the blocks (a later task starts them again)."""
        if self.dfk is not None:
            self.dfk.cleanup()
            self.dfk = None


def parsl_config(settings: ExecutorConfig, run_dir: Path):
    """Parsl's Config for ``settings``: one HighThroughputExecutor named ``pyacemaker``."""
    from parsl.addresses import address_by_hostname
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor

    worker_dir = settings.worker_dir or DEFAULT_WORKER_DIR
    executor = HighThroughputExecutor(
        label="pyacemaker",
        provider=parsl_provider(settings, worker_dir),
        address=settings.address or ("127.0.0.1" if settings.provider == "local"
                                     else address_by_hostname()),
        cores_per_worker=settings.cores_per_worker,
        max_workers_per_node=settings.workers_per_node,
        worker_logdir_root=worker_dir,
        encrypted=settings.encrypted,
        heartbeat_period=10,
        heartbeat_threshold=60,
    )
    return Config(executors=[executor], run_dir=str(run_dir), retries=settings.retries,
                  strategy="simple", max_idletime=60.0, usage_tracking=0)


def worker_init(settings: ExecutorConfig, worker_dir: str) -> str:
    """Shell lines a block runs before its workers: the worker folder, this Python
    environment's ``bin`` first on PATH (used where the nodes see it), the user's lines."""
    lines = [f'mkdir -p "{worker_dir}"', f'cd "{worker_dir}"',
             f'export PATH="{Path(sys.executable).parent}:$PATH"', settings.worker_init]
    return "\n".join(line for line in lines if line)


def make_launcher(name: str):
    """Parsl's launcher ``name`` (single, srun, mpiexec): how a block starts its workers."""
    from parsl.launchers import MpiExecLauncher, SingleNodeLauncher, SrunLauncher

    return {"single": SingleNodeLauncher, "srun": SrunLauncher, "mpiexec": MpiExecLauncher}[name]()


def parsl_provider(settings: ExecutorConfig, worker_dir: str):
    """The Parsl provider (local, slurm or pbspro) with its launcher."""
    from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

    common = {"nodes_per_block": settings.nodes_per_block, "init_blocks": 1, "min_blocks": 0,
              "max_blocks": settings.max_blocks, "launcher": make_launcher(settings.launcher),
              "worker_init": worker_init(settings, worker_dir)}
    if settings.provider == "slurm":
        return SlurmProvider(partition=settings.partition, account=settings.account,
                             walltime=settings.walltime, cores_per_node=settings.cores_per_node,
                             scheduler_options=settings.scheduler_options, exclusive=False,
                             cmd_timeout=60, **common)
    if settings.provider == "pbspro":
        return PBSProProvider(queue=settings.queue, account=settings.account,
                              walltime=settings.walltime, cpus_per_node=settings.cores_per_node or 1,
                              scheduler_options=settings.scheduler_options, **common)
    return LocalProvider(**common)
