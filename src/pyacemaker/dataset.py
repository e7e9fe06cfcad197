"""The labelled-structure store: an ase.db SQLite file with provenance per structure.

Each row is one structure with a status: ``pending`` (selected, not yet labelled),
``labelled`` (reference energy/forces/stress attached) or ``failed`` (the oracle gave up; the
reason is kept). A structure hash deduplicates rows and picks the held-out split, stratified by
structure class (generator) and fixed when a row is written. Every write is one SQLite transaction:
a write that fails (a full disk) leaves the file as it was. A file that is not an intact ase.db
database is refused when opened, and never written to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect

from pyacemaker.errors import ParseError, StorageError
from pyacemaker.records import LabelResult
from pyacemaker.structures import bare

PENDING, LABELLED, FAILED = "pending", "labelled", "failed"


def structure_hash(atoms: Atoms, decimals: int = 4) -> str:
    """SHA-1 of species, cell and wrapped fractional positions rounded to ``decimals``."""
    scaled = np.round(atoms.get_scaled_positions(wrap=True), decimals) % 1.0
    digest = hashlib.sha1()
    for array in (atoms.numbers, np.round(np.asarray(atoms.cell), decimals), np.round(scaled, decimals)):
        digest.update(np.ascontiguousarray(array, dtype=float).tobytes())
    return digest.hexdigest()


def split_of(hash_: str, test_fraction: float, rows: tuple[int, int], tests: tuple[int, int]) -> str:
    """Split of a new row, given the existing ``rows`` of its class and of the whole dataset and
    how many of those are held out (``tests``, in the same order).

    The hash decides (a pseudo-random ``test_fraction`` share), but each class keeps between
    floor and ceil of ``test_fraction`` times its row count held out, so every class with
    ``1 / test_fraction`` rows is tested; while the whole dataset is below its floor, a class
    below its ceil takes the row, so that small datasets have a test set too. Once written, a
    row's split never changes.
    """
    (class_rows, all_rows), (class_tests, all_tests) = rows, tests
    want, want_all = test_fraction * (class_rows + 1), test_fraction * (all_rows + 1)
    by_hash = int(hash_[:8], 16) / 16**8 < test_fraction
    below_ceil = class_tests < math.ceil(want)
    if class_tests < math.floor(want) or (below_ceil and (by_hash or all_tests < math.floor(want_all))):
        return "test"
    return "train"


def _create(path: Path) -> None:
    """Write an empty dataset file atomically. ase.db creates its tables in separate commits, so
    a run killed while it did would leave a file that ase.db can no longer open."""
    partial = path.with_name(path.name + ".new")
    partial.unlink(missing_ok=True)
    connect(str(partial), type="db", use_lock_file=False).count()  # creates every table
    os.replace(partial, path)


class Dataset:
    """Structures with labels and provenance in ``path`` (SQLite, via ase.db)."""

    def __init__(self, path: Path | str, test_fraction: float) -> None:
        self.path = Path(path)
        self.test_fraction = test_fraction
        check_database(self.path)
        if not self.path.is_file() or self.path.stat().st_size == 0:
            _create(self.path)
        # SQLite transactions keep the file consistent; ase.db's extra lock file would survive
        # a SIGKILL and make the resumed run wait for it forever
        self._db = connect(str(self.path), type="db", use_lock_file=False)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """One transaction on the database; a failed write (a full disk) is rolled back and
        raised as StorageError naming the file."""
        try:
            with self._db as db:
                yield db
        except sqlite3.OperationalError as err:
            if self._db.connection is not None:  # the commit itself failed: start clean
                self._db.connection.close()
                self._db.connection = None
            full = "full" in str(err)
            cause = (f"no space left on device while writing {self.path}" if full
                     else f"cannot write {self.path}")
            raise StorageError(
                f"{cause} (SQLite: {err}); the write was rolled back and the labels stored "
                f"before are intact: {'free space' if full else 'fix the cause'} and run the "
                "same command again to resume") from err

    def add_pending(self, items: list[tuple[Atoms, dict[str, Any]]],
                    top_up: list[tuple[Atoms, dict[str, Any]]] = (), min_held_out: int = 0) -> int:
        """Add structures to be labelled, skipping known hashes; return how many were new.

        ``items`` are (atoms, provenance) pairs; provenance keys such as ``iteration`` and
        ``generator`` become searchable columns. ``force_weights`` (per atom, from periodic
        embedding) go into the row's data; such a row has energy weight 0 and is always in the
        training split (its boundary atoms make it useless as a test). Then ``top_up`` items,
        in their order, are added only while their class has fewer than ``min_held_out``
        held-out rows (``held_out_counts``), each as a test-only row (column ``test_only``):
        held out whatever its hash, and outside the label budget (``budget_count``). All rows
        go in one transaction.
        """
        known = self.hashes()
        rows, tests = self.class_counts()
        held = self.held_out_counts()
        flagged = [(a, p, False) for a, p in items] + [(a, p, True) for a, p in top_up]
        added = 0
        with self._writing() as db:
            for atoms, provenance, test_only in flagged:
                h, kind = structure_hash(atoms), str(provenance.get("generator", ""))
                if h in known or (test_only and (held[kind] >= min_held_out
                                                 or "force_weights" in provenance)):
                    continue
                known.add(h)
                provenance = dict(provenance)
                weights = provenance.pop("force_weights", None)
                split = "test" if test_only else "train" if weights is not None else split_of(
                    h, self.test_fraction, (rows[kind], rows.total()), (tests[kind], tests.total()))
                if test_only:
                    provenance["test_only"] = True
                data = {} if weights is None else {"force_weights": np.asarray(weights, float)}
                if weights is not None:
                    provenance["energy_weight"] = 0.0
                db.write(bare(atoms), hash=h, status=PENDING, split=split, data=data,
                         **_columns(provenance))
                rows[kind], tests[kind], added = rows[kind] + 1, tests[kind] + (split == "test"), added + 1
                held[kind] += split == "test"
        return added

    def class_counts(self) -> tuple[Counter, Counter]:
        """Rows per structure class (generator), and held-out rows per class: the split is
        stratified by class, so rare classes are tested too."""
        rows, tests = Counter(), Counter()
        for row in self._db.select(include_data=False):
            kind = str(row.get("generator", ""))
            rows[kind] += 1
            tests[kind] += row.get("split") == "test"
        return rows, tests

    def held_out_counts(self) -> Counter:
        """Held-out rows per structure class that are, or may still become, labelled (not
        failed)."""
        return Counter(str(row.get("generator", "")) for row in self._db.select(
            split="test", include_data=False) if row.status != FAILED)

    def budget_count(self) -> int:
        """Rows counted against ``budget.max_labels``: all but the test-only ones."""
        return self._db.count() - self._db.count(test_only=True)

    def pending(self) -> list[tuple[int, Atoms]]:
        """Row ids and structures still waiting for a label, in insertion order."""
        return [(row.id, row.toatoms()) for row in self._db.select(status=PENDING)]

    def store_label(self, row_id: int, result: LabelResult) -> None:
        """Attach an oracle result to a pending row (one transaction)."""
        row = self._db.get(id=row_id)
        atoms = row.toatoms()
        data = {**row.data, "oracle": result.settings, "seconds": result.seconds}
        if result.ok:
            atoms.calc = SinglePointCalculator(
                atoms, energy=result.energy, forces=np.asarray(result.forces),
                stress=None if result.stress is None else np.asarray(result.stress),
            )
            status = LABELLED
        else:
            data["reason"] = result.reason
            status = FAILED
        with self._writing() as db:
            db.update(row_id, atoms=atoms, data=data, status=status)

    def labelled(self, split: str | None = None) -> list[Atoms]:
        """Labelled structures (with a single-point calculator), optionally of one split."""
        query = {"status": LABELLED} | ({"split": split} if split else {})
        out = []
        for row in self._db.select(**query):
            atoms = row.toatoms(add_additional_information=True)
            atoms.info = {"hash": row.hash, "generator": row.get("generator", ""),
                          "iteration": row.get("iteration", -1),
                          "energy_weight": row.get("energy_weight", 1.0),
                          "test_only": bool(row.get("test_only", False))}
            if "force_weights" in row.data:
                atoms.arrays["force_weight"] = np.asarray(row.data["force_weights"], float)
            out.append(atoms)
        return out

    def hashes(self, status: str | None = None) -> set[str]:
        """Hashes of all rows (or of rows with ``status``)."""
        query = {"status": status} if status else {}
        return {row.hash for row in self._db.select(**query)}

    def count(self, **query: Any) -> int:
        """Number of rows matching ``query`` (e.g. ``iteration=2`` or ``status="labelled"``)."""
        return self._db.count(**query)

    def counts(self) -> Counter:
        """Number of rows per status."""
        return Counter(row.status for row in self._db.select())

    def failures(self) -> list[dict[str, Any]]:
        """Failed rows with their reasons (the quarantine)."""
        return [{"id": r.id, "hash": r.hash, "reason": r.data.get("reason", "")}
                for r in self._db.select(status=FAILED)]


def check_database(path: Path) -> None:
    """Refuse a dataset file that is not an intact ase.db database (random bytes, a truncated
    copy, another program's file); a missing or empty file is a new dataset.

    Raises
    ------
    ParseError
        Naming the file, what is wrong and what to do; the file is not changed.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    fix = (f"it was left as it is. Restore it from a backup (or try `sqlite3 {path} .recover`); "
           "a run cannot resume without its dataset")
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        raise ParseError(f"{path} is not a readable SQLite database ({err}); {fix}") from err
    if problems != ["ok"]:
        raise ParseError(f"{path} is damaged (SQLite: {'; '.join(problems)}); {fix}")
    if "systems" not in tables:
        raise ParseError(f"{path} is an SQLite database but not a pyacemaker dataset (no ase.db "
                         f"'systems' table); {fix}")


def to_pacemaker_dataframe(structures: list[Atoms]) -> pd.DataFrame:
    """pacemaker's DataFrame: ``ase_atoms``, ``energy`` (eV), ``forces`` (eV/Angstrom, (n, 3)),
    ``NUMBER_OF_ATOMS``; structures must carry a single-point calculator."""
    return pd.DataFrame({
        "name": [a.info.get("hash", str(i)) for i, a in enumerate(structures)],
        "ase_atoms": [bare(a) for a in structures],
        "energy": [a.get_potential_energy() for a in structures],
        "forces": [a.get_forces() for a in structures],
        "NUMBER_OF_ATOMS": [len(a) for a in structures],
    })


def _columns(provenance: dict[str, Any]) -> dict[str, Any]:
    """ase.db columns accept str/int/float/bool only; other values are stored as JSON text."""
    return {k: v if isinstance(v, str | int | float | bool) else json.dumps(v)
            for k, v in provenance.items()}
