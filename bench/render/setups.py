"""Which stored rows a page reads where a store holds one measurement in several setups: a GPU
run times each network in fp32 and in bf16 with channels_last, eager and under torch.compile,
and measures a roof for each precision. A page that compares with the book's numbers (memory,
the exercises, the roofline) reads the book's setup; one that shows the best says which."""

from __future__ import annotations

from typing import Any

from bench.schema import Status
from bench.store import Store

BOOK_SETUP = "fp32"  # eager fp32 in the default memory layout: how the book computes
POINT = ("device_name", "model", "image_size", "in_channels", "mode", "batch_size")


def speed_setup(row: dict[str, Any]) -> str:
    """How a timed row's steps ran, in words: its precision, then channels_last and
    torch.compile where they were on."""
    words = [row["precision"]]
    if row["channels_last"]:
        words.append("channels_last")
    if row["compiled"]:
        words.append("torch.compile")
    return ", ".join(words)


def spread(row: dict[str, Any]) -> str:
    """A timed row's spread: its steps' coefficient of variation, where more than one step
    was timed."""
    return f"CV {row['cv']:.0%}" if row["n"] > 1 else "1 timed step"


def per_point(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The speed rows that measured, one per point (device, setup, network, input, mode,
    batch): where runs with different time caps or step limits measured a point more than
    once, the row with the most timed steps (the later of equals)."""
    best: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row["status"] == Status.OK:
            point = (speed_setup(row), *(row[k] for k in POINT))
            if point not in best or row["n"] >= best[point]["n"]:
                best[point] = row
    return list(best.values())


def book_speed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The speed rows measured in the book's setup, one per point (``per_point``)."""
    return [r for r in per_point(rows) if speed_setup(r) == BOOK_SETUP]


def fp32_roof(store: Store) -> dict[str, Any] | None:
    """The roof (peak FLOP/s, bandwidth) measured for fp32, the latest stored; None if none."""
    roofs = [
        r
        for r in store.rows("machine")
        if r["status"] == Status.OK and r["config"]["precision"] == "fp32"
    ]
    return roofs[-1] if roofs else None
