"""The run history as a rich table or JSON (``pyacemaker status``)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from pyacemaker.config import TargetsConfig
from pyacemaker.records import Grade
from pyacemaker.state import IterationRecord, WorkflowState


def history_table(state: WorkflowState, targets: TargetsConfig | None = None) -> Table:
    """One row per iteration: labels (failed ones marked ✗), new selections, held-out RMSE of the
    bulk classes (green when every class that decides meets its targets, ``TargetsConfig.grade``),
    the classes that meet their targets over those that decide (``+k few``: classes with too
    few held-out structures to decide), max candidate gamma, halted/total MD runs (failed ones marked ✗),
    halted/total kMC runs with the processes they found, the policy's MD temperatures, basis
    size (nl: nonlinear), validation verdict, seconds spent labelling, fitting and validating."""
    table = Table(title="pyacemaker iterations (held-out RMSE)", caption=_caption(state))
    for name in ("it", "labels", "new", "E meV/at", "F eV/Å", "classes", "max γ", "halts", "kMC",
                 "MD T K",
                 "basis", "valid", "time s"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in sorted(state.history, key=lambda r: r.iteration):
        grade = targets.grade(r.fit.test_by_class) if targets and r.fit else None
        e_ok, f_ok = (grade.met("energy"), grade.met("force")) if grade else (None, None)
        table.add_row(
            str(r.iteration), f"{r.labels_total}" + (f" ({r.failed_total}✗)" if r.failed_total else ""),
            str(r.selected), fmt(r.test_energy_rmse, "{:.2f}", e_ok),
            fmt(r.test_force_rmse, "{:.4f}", f_ok), _classes(grade), fmt(r.max_gamma, "{:.3g}"),
            _md_runs(r), _kmc_runs(r), _temperatures(r), _basis(r), _validation(r),
            f"{r.label_seconds + (r.fit.seconds if r.fit else 0) + r.validation_seconds:.0f}",
        )
    return table


def _classes(grade: Grade | None) -> str:
    """Classes meeting their targets over those that decide, e.g. ``5/6 +2 few``; ``-`` when
    no class decides (``+k few`` then says how many are too thin)."""
    if grade is None or not grade.classes:
        return "-"
    deciding = [grade.classes[name] for name in grade.deciding]
    met = sum(c.energy_met and c.force_met for c in deciding)
    few = f" +{len(grade.too_few)} few" if grade.too_few else ""
    if not deciding:
        return f"-{few}"
    return f"[{'green' if met == len(deciding) else 'red'}]{met}/{len(deciding)}[/]{few}"


def _md_runs(r: IterationRecord) -> str:
    if not r.md_runs:
        return "-"
    return f"{r.halts}/{r.md_runs}" + (f" ({r.md_failures}✗)" if r.md_failures else "")


def _kmc_runs(r: IterationRecord) -> str:
    """Halted/total kMC runs and the processes they found, e.g. ``1/2 (3 proc)``."""
    if not r.kmc_runs:
        return "-"
    return f"{r.kmc_halts}/{r.kmc_runs} ({len(r.processes)} proc)"


def _basis(r: IterationRecord) -> str:
    """Functions per element and cutoff (``400 @5.12``), ``nl`` marking a nonlinear fit."""
    if r.fit is None:
        return "-"
    cutoff = f" @{r.fit.cutoff:g}" if r.fit.cutoff else ""
    return f"{r.fit.functions_per_element}{cutoff}" + (" nl" if r.fit.kind == "nonlinear" else "")


def _validation(r: IterationRecord) -> str:
    """``pass``, or ``✗`` with the number of failed checks; ``-`` when not validated."""
    if r.validation_passed is None:
        return "-"
    return "[green]pass[/]" if r.validation_passed else f"[red]✗ {len(r.validation_failed)}[/]"


def _temperatures(r: IterationRecord) -> str:
    """The policy's MD temperature range, e.g. ``388-1359``."""
    temperatures = r.policy.temperatures_k if r.policy else []
    if not temperatures:
        return "-"
    low, high = min(temperatures), max(temperatures)
    return f"{low:.0f}" if low == high else f"{low:.0f}-{high:.0f}"


def status_dict(state: WorkflowState) -> dict[str, Any]:
    """The state as plain JSON-ready data."""
    return state.model_dump(mode="json")


def _caption(state: WorkflowState) -> str:
    if state.phase == "done":
        return f"stopped: {state.stop_reason}"
    return f"in progress: iteration {state.iteration}, phase {state.phase}"


def fmt(value: float | int | None, pattern: str, ok: bool | None = None) -> str:
    """``value`` formatted by ``pattern``, ``-`` when missing; green/red markup when ``ok`` is
    given."""
    if value is None:
        return "-"
    text = pattern.format(value)
    return text if ok is None else f"[{'green' if ok else 'red'}]{text}[/]"
