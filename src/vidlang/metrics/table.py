"""Show a metrics dict as a rich table (nested blocks flattened to ``a/b`` rows)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rich.table import Table


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(``"block/key"``, value) for every leaf, in insertion order."""
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{prefix}{key}/")
        else:
            yield f"{prefix}{key}", value


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def metrics_table(metrics: Mapping[str, Any], title: str | None = None,
                  caption: str | None = None) -> Table:
    """A two-column table: metric (with its convention tag) and value."""
    table = Table(title=title, caption=caption, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in flatten(metrics):
        table.add_row(key, format_value(value))
    return table
