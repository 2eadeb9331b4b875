"""What a run prints: one progress bar per stage on a terminal, one line per item in a log."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 run``, ``2 runs``; ``nouns`` where the plural is not ``noun + "s"``."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


class Progress:
    """A stage's finished items out of ``total``.

    On a terminal: a tqdm bar with the count and the estimated time left, each item's line
    printed above it. Elsewhere (a log, CI): one line per item, ``[3/32] ...``, as it finishes.
    """

    def __init__(self, stage: str, total: int, stream: TextIO | None = None):
        self.stream, self.total, self.done = stream or sys.stdout, total, 0
        self.bar = (
            tqdm(total=total, desc=stage, unit="item", file=self.stream, dynamic_ncols=True)
            if total and self.stream.isatty()
            else None
        )

    def item(self, line: str) -> None:
        """One item finished; ``line`` says how it went."""
        self.done += 1
        self.say(f"[{self.done}/{self.total}] {line}")
        if self.bar is not None:
            self.bar.update(1)

    def say(self, line: str) -> None:
        """A line that is not an item (a note, a skip)."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
