"""Rich progress bars that stay quiet when FLARE_PROGRESS=0 (tests, CI logs)."""

from __future__ import annotations

import os
from typing import Iterable, Iterator, TypeVar

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["track", "progress_enabled", "make_progress"]

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("FLARE_PROGRESS", "1") != "0"


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress_enabled(), transient=False)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (or silently)."""
    if not progress_enabled():
        yield from items
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total if total is not None else _len(items))
        for item in items:
            yield item
            progress.advance(task)


def _len(items: Iterable[object]) -> int | None:
    try:
        return len(items)  # type: ignore[arg-type]
    except TypeError:
        return None
