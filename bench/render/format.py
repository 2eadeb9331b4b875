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

MIB = 2**20
CONVENTIONS = (
    "MACs = multiply-accumulates; FLOPs = 2 x MACs (an op doing one arithmetic operation per "
    "element counts 1 FLOP = 0.5 MAC). *Counted*: exact, from the op handler table in "
    "bench/flops/handlers.py, run on the meta device (shapes, no arithmetic). *Estimated*: a "
    "sum of counted parts, without allocator overhead or workspaces."
)

Column = tuple[str, str, Callable[[Any], str]]  # (source column, header, formatter)


def fmt_int(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{int(v):,}"


def fmt_mega(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v / 1e6:,.2f}"


def fmt_mib(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v / MIB:,.1f}"


def fmt_ratio(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:,.1f}"


def fmt_ms(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:,.2f}"


def fmt_percent(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else f"{v:.1%}"


def fmt_text(v: Any) -> str:
    return "-" if v is None or v == "" or (isinstance(v, float) and pd.isna(v)) else str(v)


def markdown(frame: pd.DataFrame, columns: list[Column]) -> str:
    """A Markdown table of ``frame`` with the given columns, headers and formatters; text
    columns are aligned left, the others right."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    # text left, numbers right
    lines.append("|" + "|".join(" :--- " if fmt is fmt_text else " ---: " for *_, fmt in columns)
                 + "|")  # fmt: skip
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
