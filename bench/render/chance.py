"""Whether a training run left chance: the loss of a uniform guess, the runs that learned, the
smallest learning-rate change that makes a stuck run learn, and which rate or initialization
left chance sooner."""

from __future__ import annotations

import math
from typing import Any

from bench.render.format import Column, fmt_percent, fmt_text
from bench.schema import MEASURED

# the cross-entropy of a uniform guess over Fashion-MNIST's 10 classes: a network whose training
# loss ends near it has not learned
CHANCE_LOSS = math.log(10)


def at_chance(loss: float | None) -> bool:
    """Whether a training loss is within 10 % of chance's (ln 10); None (not recorded) is not."""
    return loss is not None and loss >= 0.9 * CHANCE_LOSS


def learned(run: dict[str, Any]) -> bool:
    """Whether a run left chance: its final training loss at least 10 % below ln 10."""
    return not at_chance(run["train_loss"])


def lr_fix(run: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For a preset run that did not learn, the run of the same network and preset that
    changes its learning rate alone, learns, and stays closest to the book's rate: the smallest
    change that makes it learn (None: none stored)."""
    fixes = [
        r
        for r in runs
        if r["model"] == run["model"]
        and r["preset"] == run["preset"]
        and r["changes"] == ["lr"]
        and r["status"] in MEASURED
        and learned(r)
    ]
    return min(fixes, key=lambda r: abs(math.log(r["lr"] / run["lr"])), default=None)


PROBE_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("run", "preset: run", fmt_text),
    ("input", "input", fmt_text),
    ("init", "init", fmt_text),
    ("lr", "lr", fmt_text),
    ("factor", "times the book's lr", fmt_text),
    ("chance_epochs", "epochs at chance", fmt_text),
    ("train_loss", "training loss (final; chance: ln 10 = 2.303)", lambda v: f"{v:.3f}"),
    ("test_acc", "test accuracy (final)", fmt_percent),
]


def he_init(run: dict[str, Any]) -> bool:
    """Whether a run drew its weights He-normal in place of the book's Xavier-uniform."""
    return bool((run.get("technique_settings") or {}).get("he_init"))


def sooner(run: dict[str, Any], probes: list[dict[str, Any]], book_lr: float) -> str:
    """For a book run that left chance late: the smallest rate among its probes (and its
    preset's runs that change the rate alone) that left it sooner."""
    faster = [
        p
        for p in probes
        if p["config"] != run["config"]
        and not he_init(p)
        and p["left_at"] is not None
        and p["left_at"] < run["left_at"]
    ]
    late = f"It learned late: its loss left chance in epoch {run['left_at']}"
    if not faster:
        return f"{late}, and no run stored at another rate left it sooner."
    probe = min(faster, key=lambda p: p["lr"])
    return (
        f"{late}; at lr {probe['lr']:g} ({probe['lr'] / book_lr:g} times the book's) it left "
        f"chance in epoch {probe['left_at']} ({probe['test_acc']:.1%} after {probe['work']})."
    )


def with_he_init(run: dict[str, Any], probes: list[dict[str, Any]]) -> str:
    """What the probes with He initialization at the run's rate say: when their loss left
    chance, against the run's own epochs at chance ("" where none is stored)."""
    said = []
    for probe in (p for p in probes if he_init(p) and p["lr"] == run["lr"]):
        left = (
            f"its loss left chance in epoch {probe['left_at']}"
            if probe["left_at"] is not None
            else "its loss stayed at chance"
        )
        said.append(
            f"With He initialization in place of the book's Xavier, at the same rate, {left} "
            f"({probe['test_acc']:.1%} after {probe['work']}, the {probe['preset']} preset)."
        )
    return " ".join(said)
