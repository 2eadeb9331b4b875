"""reports/<run>/exercises.md: the chapters' compute and memory exercises answered from the
results store. Each answer is a table of stored numbers, the preset and device behind them, and a
sentence computed from those numbers; an exercise whose rows are missing names the command that
measures them. The exercises are data (``catalogue``): the rows each needs (``rows``,
``answers``) and how to read them (``sentences``).
"""

from __future__ import annotations

from pathlib import Path

from bench.render.exercises.catalogue import EXERCISES
from bench.render.exercises.left import left_to_train
from bench.render.format import atomic_write, markdown
from bench.store import Store


def render(store: Store) -> str:
    """The Markdown page."""
    sections = []
    for exercise in EXERCISES:
        answer = exercise.answer(store)
        head = f"## {exercise.id}\n\n{exercise.question}\n\n"
        left = left_to_train(store, exercise.experiments, exercise.models)
        if answer is None:
            sections.append(
                head + (left or f"*Not measured yet*: `{exercise.command}` measures it.")
            )
            continue
        frame, columns, reasoning = answer
        sources = "; ".join(sorted({s for cell in frame["source"] for s in cell.split("; ")}))
        sections.append(
            head
            + markdown(frame, columns)
            + f"\n\nFrom: {sources}.\n\n{reasoning}"
            + (f"\n\n{left}" if left else "")
        )
    return (
        "# The chapters' exercises, answered with measured numbers\n\n"
        "Every number below is read from this run's results store (results.sqlite) by "
        "bench/render/exercises/. MACs = multiply-accumulates, FLOPs = 2 x MACs; *counted* "
        "figures are exact counts on the meta device, *estimated* ones sums of counted parts, "
        "*measured* ones timings or memory peaks on the device named under each table. "
        "Accuracies come from the training runs of this run's preset: each table names the "
        "input side, optimizer, techniques and fixed work of its runs, and says what that work "
        "buys, not what the book's 10 epochs reach.\n\n" + "\n\n".join(sections) + "\n"
    )


def write_exercises(store: Store, out_dir: Path) -> list[Path]:
    path = out_dir / "exercises.md"
    atomic_write(path, render(store))
    return [path]
