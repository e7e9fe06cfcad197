"""The workdir module: run paths match the documented layout, and staged writes publish a
file or folder whole or not at all, deleting only what they created."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyacemaker import workdir
from pyacemaker.workdir import RunPaths, publish_copy, staged_folder, write_file


def _layout() -> dict[str, str]:
    """Path -> description from the module docstring's layout block."""
    block = workdir.__doc__.split("::", 1)[1].split("\n\n")[1]
    return dict(re.match(r"\s+(\S+)\s+(.*)", line).groups() for line in block.splitlines())


def test_run_paths_match_the_documented_layout(tmp_path):
    paths = RunPaths(tmp_path)
    documented = set(_layout())
    named = {
        "config.resolved.yaml": paths.resolved_config,
        "state.json": paths.state,
        "dataset.db": paths.dataset,
        "seeds.extxyz": paths.seeds,
        "iterations/iter_NNN/potential/": paths.potential_of(7),
        "iterations/iter_NNN/md/RUN/": paths.md_of(7) / "RUN",
        "iterations/iter_NNN/validation/": paths.validation_of(7),
        "dft/HASH/attempt_N/": paths.dft / "HASH" / "attempt_N",
        "potential/": paths.potential,
        "validation_report.html": paths.report,
        "validation/oracle_reference.json": paths.reference,
        "validation/large_cell.extxyz": paths.large_cell,
        "validation/locality.json": paths.locality,
        "parsl/": paths.parsl,
        "run.log": paths.log,
    }
    assert set(named) == documented
    for entry, path in named.items():
        assert path == tmp_path / entry.rstrip("/").replace("NNN", "007"), entry
    assert paths.iteration(12) == tmp_path / "iterations" / "iter_012"
    assert paths.validation_result_of(3) == tmp_path / "iterations/iter_003/validation/validation.json"
    assert paths.report_of(3) == tmp_path / "iterations/iter_003/validation/validation_report.html"
    assert RunPaths(str(tmp_path)) == paths  # a str workdir is a Path


def test_run_paths_find_validation_results_and_runs(tmp_path):
    paths = RunPaths(tmp_path)
    assert paths.validation_results() == [] and not paths.is_run()
    for i in (10, 2):
        paths.validation_of(i).mkdir(parents=True)
        paths.validation_result_of(i).write_text("{}")
    assert paths.validation_results() == [paths.validation_result_of(2), paths.validation_result_of(10)]
    paths.resolved_config.write_text("composition: Cu\n")
    paths.dataset.write_bytes(b"")
    assert paths.is_run()


def test_write_file_replaces_whole_files(tmp_path):
    path = tmp_path / "state.json"
    write_file(path, "old")
    write_file(path, "new")
    write_file(tmp_path / "blob", b"\x00\x01")
    assert path.read_text() == "new" and (tmp_path / "blob").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob", "state.json"]


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_staged_folder_publishes_whole(tmp_path):
    target = tmp_path / "potential"
    with staged_folder(target) as staging:
        assert staging == tmp_path / "potential.partial" and not any(staging.iterdir())
        assert not target.exists()  # nothing visible before the block ends
        (staging / "a.yaml").write_text("1")
    with staged_folder(target) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "b.asi").write_text("2")
        assert _tree(target) == {"a.yaml": "1"}  # the old version until the swap
    assert _tree(target) == {"sub/b.asi": "2"}
    assert [p.name for p in tmp_path.iterdir()] == ["potential"]


def test_staged_folder_keeps_the_old_target_and_a_failed_copy_on_error(tmp_path):
    target = tmp_path / "potential"
    (tmp_path / "potential.linear").mkdir()  # a neighbour not made by the helper: untouched
    with staged_folder(target) as staging:
        (staging / "a.yaml").write_text("good")
    for attempt in range(2):
        with pytest.raises(RuntimeError, match="fit blew up"), staged_folder(target) as staging:
            (staging / "a.yaml").write_text(f"half {attempt}")
            raise RuntimeError("fit blew up")
    assert _tree(target) == {"a.yaml": "good"}
    failed = sorted(tmp_path.glob("potential.failed-*"))
    assert len(failed) == 2  # one per failure, none overwritten
    assert {_tree(f)["a.yaml"] for f in failed} == {"half 0", "half 1"}
    assert not (tmp_path / "potential.partial").exists() and (tmp_path / "potential.linear").is_dir()


def test_staged_folder_leaves_partial_on_interrupt_and_replaces_stale_ones(tmp_path):
    target = tmp_path / "potential"
    with pytest.raises(KeyboardInterrupt), staged_folder(target) as staging:
        (staging / "half").write_text("x")
        raise KeyboardInterrupt
    assert (tmp_path / "potential.partial" / "half").is_file() and not target.exists()
    stale_swap = tmp_path / "potential.replaced"  # a swap killed between its two renames
    stale_swap.mkdir()
    (stale_swap / "old").write_text("x")
    with staged_folder(target) as staging:
        assert not any(staging.iterdir())  # the stale staging folder was removed, not reused
        assert not stale_swap.exists()
        (staging / "a.yaml").write_text("1")
    with staged_folder(target) as staging:
        (staging / "a.yaml").write_text("2")
    assert _tree(target) == {"a.yaml": "2"}
    assert [p.name for p in tmp_path.iterdir()] == ["potential"]


def test_publish_copy_replaces_target_and_keeps_source(tmp_path):
    source, target = tmp_path / "iter_001", tmp_path / "potential"
    (source / "sub").mkdir(parents=True)
    (source / "a.yaml").write_text("new")
    (source / "sub" / "b").write_text("b")
    target.mkdir()
    (target / "stale.asi").write_text("old")
    publish_copy(source, target)
    assert _tree(target) == _tree(source) == {"a.yaml": "new", "sub/b": "b"}
    with pytest.raises(FileNotFoundError):
        publish_copy(tmp_path / "missing", target)
    assert _tree(target) == {"a.yaml": "new", "sub/b": "b"}
    assert len(list(tmp_path.glob("potential.failed-*"))) == 1
