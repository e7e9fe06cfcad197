"""The one style of progress bar every long phase shows."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def progress_bar(show: bool = True, transient: bool = False, status: bool = False) -> Progress:
    """A rich progress bar (description, bar, done/total, elapsed); ``show=False`` disables it.
    With ``status``, a column shows each task's ``status`` field (e.g. tasks queued, running)."""
    columns = [TextColumn("{task.fields[status]}")] if status else []
    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    *columns, TimeElapsedColumn(), disable=not show, transient=transient)


def task_callback(progress: Progress, name: str) -> Callable[[int, int], None]:
    """A new bar ``name`` of ``progress`` and the callback ``(done, total)`` that drives it."""
    task = progress.add_task(name, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)

    return update
