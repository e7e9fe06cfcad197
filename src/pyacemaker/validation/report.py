"""``validation_report.html``: one self-contained page (plots embedded as PNG data URIs, no
scripts, no network) with the pass/fail summary on top."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from pyacemaker.validation.validate import ValidationResult  # noqa: E402
from pyacemaker.workdir import REPORT_FILE, RESULT_FILE, write_file  # noqa: E402


def write_report(result: ValidationResult, folder: Path) -> Path:
    """Write ``validation.json`` and ``validation_report.html`` into ``folder``; return the
    report's path. Both are replaced atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    write_file(folder / RESULT_FILE, result.model_dump_json(indent=1))
    path = folder / REPORT_FILE
    write_file(path, render(result))
    return path


def render(result: ValidationResult) -> str:
    """The report's HTML text."""
    env = Environment(loader=PackageLoader("pyacemaker", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    plots = {name: _png(draw, result) for name, draw in PLOTS.items() if _has_data(name, result)}
    return env.get_template("report.html.j2").render(r=result, plots=plots, np=np)


def _has_data(name: str, r: ValidationResult) -> bool:
    if name == "history":
        return bool(r.history)
    if name == "processes":
        return any(h.get("processes") for h in r.history)
    return {"parity": r.metrics, "gamma": r.metrics, "eos": r.eos,
            "phonons": r.phonons}[name] is not None


def _png(draw: Callable[[ValidationResult], plt.Figure], result: ValidationResult) -> str:
    fig = draw(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # each figure has its tight_layout already
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _parity(r: ValidationResult) -> plt.Figure:
    m = r.metrics
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(9, 4))
    generators = np.array(m.generator)
    for name in sorted(set(m.generator)):
        pick = generators == name
        ax_e.scatter(np.array(m.energy_reference)[pick], np.array(m.energy_predicted)[pick],
                     s=18, label=name)
    _diagonal(ax_e, m.energy_reference + m.energy_predicted)
    ax_e.set(xlabel="reference energy (eV/atom)", ylabel="potential (eV/atom)",
             title=f"energy: RMSE {m.overall.energy_rmse:.2f} meV/atom")
    ax_e.legend(fontsize=7)
    ax_f.scatter(m.force_reference, m.force_predicted, s=4, alpha=0.5)
    _diagonal(ax_f, m.force_reference + m.force_predicted)
    ax_f.set(xlabel="reference force (eV/Å)", ylabel="potential (eV/Å)",
             title=f"forces: RMSE {m.overall.force_rmse:.3f} eV/Å")
    fig.tight_layout()
    return fig


def _diagonal(ax: plt.Axes, values: list[float]) -> None:
    low, high = min(values), max(values)
    ax.plot([low, high], [low, high], color="gray", lw=1, ls="--")


def _error_vs_gamma(r: ValidationResult) -> plt.Figure:
    m = r.metrics
    fig, ax = plt.subplots(figsize=(5, 3.6))
    error = 1000 * np.abs(np.array(m.energy_predicted) - np.array(m.energy_reference))
    ax.scatter(np.maximum(m.max_gamma, 1e-3), np.maximum(error, 1e-3), s=18)
    ax.set(xscale="log", yscale="log", xlabel="max extrapolation grade γ of the structure",
           ylabel="|energy error| (meV/atom)", title="error vs extrapolation grade")
    fig.tight_layout()
    return fig


def _eos(r: ValidationResult) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for fit, name, marker in ((r.eos, "potential", "o"), (r.eos_oracle, "oracle", "s")):
        if fit is None:
            continue
        v = np.linspace(min(fit.volumes), max(fit.volumes), 100)
        ax.plot(v, 1000 * (_birch_murnaghan(v, fit) - fit.e0), label=f"{name}: B0 {fit.b0_gpa:.0f} GPa")
        ax.scatter(fit.volumes, 1000 * (np.array(fit.energies) - fit.e0), marker=marker, s=20)
    ax.set(xlabel="volume (Å³/atom)", ylabel="E − E0 (meV/atom)", title="equation of state")
    ax.legend()
    fig.tight_layout()
    return fig


def _birch_murnaghan(v: np.ndarray, fit) -> np.ndarray:
    from ase.units import GPa

    eta = (fit.v0 / v) ** (2 / 3)
    b0 = fit.b0_gpa * GPa
    return fit.e0 + 9 * fit.v0 * b0 / 16 * ((eta - 1) ** 3 * fit.b0_prime
                                          + (eta - 1) ** 2 * (6 - 4 * eta))


def _phonons(r: ValidationResult) -> plt.Figure:
    p = r.phonons
    oracle = r.oracle_reference.phonons if r.oracle_reference is not None else None
    fig, (ax, ax_dos) = plt.subplots(1, 2, figsize=(9, 4), sharey=True,
                                     gridspec_kw={"width_ratios": [3, 1]})
    if oracle is not None:
        same_path = [len(d) for d in oracle.distances] == [len(d) for d in p.distances]
        for i, frequencies in enumerate(oracle.frequencies_thz):  # on the potential's axis when possible
            distances = p.distances[i] if same_path else oracle.distances[i]
            lines = ax.plot(distances, frequencies, color="gray", lw=1, ls="--")
            if i == 0:
                lines[0].set_label(f"oracle ({r.oracle})" if r.oracle else "oracle")
        ax_dos.plot(oracle.dos, oracle.dos_frequencies_thz, color="gray", ls="--")
    reach = r.comparison.phonon_reach if r.comparison is not None else None
    if reach is not None and reach.removed_pairs and reach.long_range_max_thz > 1e-3:
        for i, frequencies in enumerate(reach.phonons.frequencies_thz):  # the oracle's path
            own = len(p.distances[i]) == len(frequencies)
            distances = p.distances[i] if own else reach.phonons.distances[i]
            lines = ax.plot(distances, frequencies, color="tab:orange", lw=1, ls=":")
            if i == 0:
                lines[0].set_label(f"oracle within {reach.radius:g} Å")
    for i, (distances, frequencies) in enumerate(zip(p.distances, p.frequencies_thz, strict=True)):
        lines = ax.plot(distances, frequencies, color="tab:blue", lw=1)
        if i == 0:
            lines[0].set_label("potential")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xticks(p.label_positions, p.labels)
    for x in p.label_positions:
        ax.axvline(x, color="gray", lw=0.5)
    ax.set(xlim=(p.label_positions[0], p.label_positions[-1]), ylabel="frequency (THz)",
           title="phonon band structure")
    if oracle is not None:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], fontsize=8, loc="lower right")
    ax_dos.plot(p.dos, p.dos_frequencies_thz, color="tab:blue")
    ax_dos.set(xlabel="DOS", title="density of states")
    fig.tight_layout()
    return fig


def _history(r: ValidationResult) -> plt.Figure:
    iterations = [h["iteration"] for h in r.history]
    fig, (ax_e, ax_g) = plt.subplots(1, 2, figsize=(9, 3.6))
    ax_e.plot(iterations, [h.get("test_energy_rmse") or np.nan for h in r.history], "o-",
              label="energy (meV/atom)")
    ax_e.plot(iterations, [1000 * (h.get("test_force_rmse") or np.nan) for h in r.history], "s-",
              label="force (meV/Å)")
    ax_e.set(yscale="log", xlabel="iteration", ylabel="held-out RMSE", title="accuracy")
    ax_e.legend()
    ax_g.plot(iterations, [h.get("labels_total") for h in r.history], "o-", label="labels")
    ax_g.set(xlabel="iteration", ylabel="labelled structures", title="labels and max γ")
    twin = ax_g.twinx()
    twin.plot(iterations, [h.get("max_gamma") or np.nan for h in r.history], "s--", color="tab:red")
    twin.set(yscale="log", ylabel="max candidate γ")
    fig.tight_layout()
    return fig


def _processes(r: ValidationResult) -> plt.Figure:
    """Barrier against iteration and rate against barrier of every process the kMC found."""
    found = [(h["iteration"], p) for h in r.history for p in h.get("processes") or []]
    fig, (ax_b, ax_r) = plt.subplots(1, 2, figsize=(9, 3.6))
    for taken, style in ((False, dict(marker="o", s=70, facecolors="none", edgecolors="tab:blue",
                                      label="found")),
                         (True, dict(marker="*", s=90, color="tab:red", label="taken by kMC"))):
        pick = [(i, p) for i, p in found if p["chosen"] == taken]
        ax_b.scatter([i for i, _ in pick], [p["barrier_ev"] for _, p in pick], **style)
        ax_r.scatter([p["barrier_ev"] for _, p in pick], [p["rate_hz"] for _, p in pick], **style)
    barriers = [p["barrier_ev"] for _, p in found]
    rates = [p["rate_hz"] for _, p in found]
    ax_b.set(xlabel="iteration", ylabel="barrier (eV)", title="barriers found",
             ylim=(0, 1.2 * max(barriers)), xticks=sorted({i for i, _ in found}))
    ax_r.set(yscale="log", xlabel="barrier (eV)", ylabel="rate (Hz)", title="harmonic TST rates",
             xlim=(0, 1.2 * max(barriers)), ylim=(min(rates) / 10, max(rates) * 10))
    ax_r.legend(fontsize=8)
    fig.tight_layout()
    return fig


PLOTS = {"history": _history, "processes": _processes, "parity": _parity,
         "gamma": _error_vs_gamma, "eos": _eos, "phonons": _phonons}


def summary_table(result: ValidationResult):
    """The checks as a rich table for the terminal."""
    from rich.table import Table

    verdict = "[bold green]PASS[/]" if result.passed else "[bold red]FAIL[/]"
    system = f" of {result.composition}" if result.composition else ""
    table = Table(title=f"validation{system}: {verdict}")
    for name in ("check", "result", "value", "threshold"):
        table.add_column(name)
    for c in result.checks:
        mark = "[green]pass[/]" if c.passed else ("n/a" if c.passed is None else "[red]FAIL[/]")
        table.add_row(c.name, mark, c.value, c.threshold)
    return table
