"""Show a metrics dict as a rich table (nested blocks flattened to ``a/b`` rows)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text

COUNT_WORDS = ("queries", "skipped", "steps", "tasks")


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(``"block/key"``, value) for every leaf, in insertion order."""
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


def format_value(key: str, value: Any) -> str:
    """Counts as integers, other numbers with two decimals."""
    if isinstance(value, float):
        if value.is_integer() and any(w in key for w in COUNT_WORDS):
            return f"{value:.0f}"
        return f"{value:.2f}"
    return str(value)


def metrics_table(metrics: Mapping[str, Any], title: str | None = None) -> Table:
    """A two-column table: metric (with its convention tag, shown literally) and value."""
    table = Table(title=Text(title) if title else None, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in flatten(metrics):
        table.add_row(Text(key), Text(format_value(key, value)))
    return table
