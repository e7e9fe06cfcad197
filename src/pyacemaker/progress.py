"""The one style of progress bar every long phase shows."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn


def progress_bar(show: bool = True, transient: bool = False) -> Progress:
    """A rich progress bar (description, bar, done/total, elapsed); ``show=False`` disables it."""
    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), disable=not show, transient=transient)
