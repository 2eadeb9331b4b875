"""Commands that read a run's store and measure nothing: ``render`` (every page again, from the
store alone) and ``compare`` (per-metric differences of two runs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.compare import METRICS, differences, summary, table
from bench.stages.common import AtRunFolder, Command, option
from bench.store import STORE_NAME, Store


def open_store(path: Path) -> Store:
    """The store of a run folder (its results.sqlite) or a store file, opened to read."""
    return Store(path / STORE_NAME if path.is_dir() else path, create=False)


def render(s: AtRunFolder) -> int:
    """Nothing to measure: like every command that writes a run folder, it ends with every page
    of the folder rendered again from its store alone (``bench.cli``)."""
    return 0


@dataclass(frozen=True)
class CompareSettings:
    a: Path = option(
        None, "run folder or results store (the baseline)", parse=Path, positional=True
    )
    b: Path = option(
        None, "run folder or results store compared with it", parse=Path, positional=True
    )
    stage: str | None = option(None, "only this stage's rows", choices=tuple(METRICS))
    threshold: float = option(3.0, "flag changes beyond this many times their noise", parse=float)
    table: bool = option(False, "print every compared metric as a table after the summary")
    changed: bool = option(False, "with --table: only the changes beyond the noise")


def compare(s: CompareSettings) -> int:
    """A summary of the differences between two stores (changes beyond the measured noise,
    per stage, and the largest); every metric's with --table."""
    frame = differences(open_store(s.a), open_store(s.b), s.stage, s.threshold)
    print(summary(frame))
    if s.table:
        print(f"\n{table(frame, s.threshold, s.changed)[0]}")
    else:
        print(f"every metric: python -m bench compare {s.a} {s.b} --table")
    return 0


RENDER = Command(
    "render", "every page of a run folder, again, from its store alone", AtRunFolder, render
)
COMPARE = Command(
    "compare", "per-metric differences between two runs", CompareSettings, compare, locks=False
)
