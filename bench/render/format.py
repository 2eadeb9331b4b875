"""Formatting shared by every page: number formats, Markdown tables, atomic writes and the
conventions every table states.

CSV files keep raw units (bytes, MACs, FLOPs) in columns named after them; Markdown tables
convert to MiB and millions and say so in their headers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

import archs
from bench.schema import FAILURE_FIELDS, ROWS

MIB = 2**20
CONVENTIONS = (
    "MACs = multiply-accumulates; FLOPs = 2 x MACs (an op doing one arithmetic operation per "
    "element counts 1 FLOP = 0.5 MAC). *Counted*: exact, from the op handler table in "
    "bench/flops/handlers.py, run on the meta device (shapes, no arithmetic). *Estimated*: a "
    "sum of counted parts, allocator overhead aside (memory.md says which parts). A "
    "profile's forward MACs are the forward half of a training step (batch norm's batch "
    "statistics and dropout counted); forward MACs *as trained*, and the peer counters', are "
    "an inference pass: a network with batch norm or dropout has two forward figures, the "
    "training one larger."
)

Column = tuple[str, str, Callable[[Any], str]]  # (source column, header, formatter)
STORED_FIELDS = FAILURE_FIELDS.union(*(schema.__annotations__ for schema in ROWS.values()))


def _or_dash(show: Callable[[Any], str]) -> Callable[[Any], str]:
    """A number formatter: ``show(value)``, or '-' for a missing value."""
    return lambda v: "-" if v is None or pd.isna(v) else show(v)


fmt_int = _or_dash(lambda v: f"{int(v):,}")
fmt_mega = _or_dash(lambda v: f"{v / 1e6:,.2f}")  # millions
fmt_mib = _or_dash(lambda v: f"{v / MIB:,.1f}")  # bytes as MiB
fmt_ratio = _or_dash(lambda v: f"{v:,.1f}")
fmt_ms = _or_dash(lambda v: f"{v:,.2f}")
fmt_points = _or_dash(lambda v: f"{100 * v:+.2f}")  # a difference of fractions, in points
fmt_seconds_delta = _or_dash(lambda v: f"{v:+,.1f}")  # a difference of seconds
fmt_percent = _or_dash(lambda v: "0.0%" if f"{v:.1%}" == "-0.0%" else f"{v:.1%}")


def fmt_bound(v: Any) -> str:
    """A number as ``fmt_ratio`` shows it, or a bound already written out ("≤ 322.7")."""
    return v if isinstance(v, str) else fmt_ratio(v)


def fmt_text(v: Any) -> str:
    return "-" if v is None or v == "" or (isinstance(v, float) and pd.isna(v)) else str(v)


def markdown(frame: pd.DataFrame, columns: list[Column]) -> str:
    """A Markdown table of ``frame`` with the given columns, headers and formatters; text
    columns are aligned left, the others right. A column is either in ``frame`` or a field of
    a stored row (bench/schema.py) that no row of this table has (dashes); anything else is a
    KeyError, so that a renamed field cannot turn into a column of dashes."""
    unknown = [c for c, _, _ in columns if c not in frame.columns and c not in STORED_FIELDS]
    if unknown:
        raise KeyError(f"no column {', '.join(unknown)} in the table or in any stored row")
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    # text left, numbers right
    lines.append(
        "|" + "|".join(" :--- " if fmt is fmt_text else " ---: " for *_, fmt in columns) + "|"
    )
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(fmt(row.get(src)) for src, _, fmt in columns) + " |")
    return "\n".join(lines)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def book_rank(model: str) -> int:
    """A network's place in the book's order (networks outside the registry come last)."""
    names = archs.list_models()
    return names.index(model) if model in names else len(names)
