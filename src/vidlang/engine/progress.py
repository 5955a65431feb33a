"""A progress bar over any iterable (on stderr, gone when done), so long loops outside the
Lightning trainer (``vidlang eval``'s pass over a split) are never silent minutes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_iter(items: Iterable[T], description: str, total: int | None = None,
                  enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while a rich bar counts them (``total`` from ``len(items)`` when not
    given); ``enabled=False`` yields them silently."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
