"""What a stage command prints when it ends: the figures it was asked for, as a compact table of
the store's rows that its options describe (measured now or found stored), and the page that
holds all of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from bench.render.format import (
    Column,
    book_rank,
    fmt_int,
    fmt_mega,
    fmt_mib,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    fmt_text,
    markdown,
)
from bench.store import Store


def _rate(row: dict[str, Any]) -> str:
    """Images per second with the spread of the timed steps, where the row has both."""
    rate, cv = row.get("images_per_s"), row.get("cv")
    if rate is None or pd.isna(rate):
        return "-"
    return f"{rate:,.0f}" + ("" if cv is None or pd.isna(cv) else f" ± {cv:.0%}")


# stage -> (its page, the columns it prints); rate, case and by_counter are computed from a row
ANSWERS: dict[str, tuple[str, list[Column]]] = {
    "profile": (
        "profile/summary.md",
        [
            ("model", "model", fmt_text),
            ("image_size", "side", fmt_int),
            ("params", "params", fmt_int),
            ("fwd_macs_per_image", "fwd MACs/image (M)", fmt_mega),
            ("bwd_macs_per_image", "bwd MACs/image (M)", fmt_mega),
            ("infer_bytes_est", "inference (MiB, est.)", fmt_mib),
            ("train_bytes_est_sgd", "SGD step (MiB, est.)", fmt_mib),
        ],
    ),
    "speed": (
        "speed/speed.md",
        [
            ("model", "model", fmt_text),
            ("mode", "mode", fmt_text),
            ("precision", "precision", fmt_text),
            ("batch_size", "batch", fmt_int),
            ("rate", "images/s ± cv", fmt_text),
            ("median_ms", "median ms", fmt_ms),
            ("peak_bytes", "peak growth (MiB)", fmt_mib),
        ],
    ),
    "onnx": (
        "onnx/onnx.md",
        [
            ("model", "model", fmt_text),
            ("batch_size", "batch", fmt_int),
            ("provider", "provider", fmt_text),
            ("rate", "onnxruntime images/s ± cv", fmt_text),
            ("torch_images_per_s", "PyTorch images/s", fmt_ratio),
            ("parity_ok", "parity", fmt_text),
        ],
    ),
    "train": (
        "train/train.md",
        [
            ("model", "model", fmt_text),
            ("work", "work", fmt_text),
            ("lr", "lr", fmt_text),
            ("seed", "seed", fmt_int),
            ("test_acc", "test accuracy", fmt_percent),
            ("wall_s", "wall (s)", fmt_ratio),
        ],
    ),
    "pipeline": (
        "pipeline/pipeline.md",
        [
            ("model", "model", fmt_text),
            ("feed", "feed", fmt_text),
            ("rate", "images/s ± cv", fmt_text),
        ],
    ),
    "layers": (
        "exercises.md",
        [
            ("model", "exercise", fmt_text),
            ("case", "case", fmt_text),
            ("fwd_macs_counted", "fwd MACs (M, counted)", fmt_mega),
            ("median_ms", "median ms", fmt_ms),
        ],
    ),
    "peers": (
        "peers.md",
        [
            ("model", "model", fmt_text),
            ("image_size", "side", fmt_int),
            ("params", "params", fmt_int),
            ("by_counter", "fwd MACs, batch 1 (M)", fmt_text),
        ],
    ),
}

# a stage option and the row field it sets, where their names differ
_FIELD = {
    "batch_sizes": "batch_size",
    "time_cap": "time_cap_s",
    "max_step": "max_step_s",
    "compile": "compiled",
}
# options that say where or how to run, not what a row measured
_WHERE = {
    "store",
    "out",
    "executor",
    "address",
    "models",
    "device",
    "data_dir",
    "timeout",
    "workers",
    "force",
    "experiment",
}


def describes(settings: Any, row: dict[str, Any]) -> bool:
    """Whether ``row`` is one that ``settings`` ask for: each option that a row records (under
    its own name or the row's) holds the row's value, or, for a list, includes it; an option
    left to its network's default (None), or a field a failed row lacks, does not decide."""
    for option in dataclasses.fields(settings):
        wanted = getattr(settings, option.name)
        field = _FIELD.get(option.name, option.name)
        if option.name in _WHERE or wanted is None or row.get(field) is None:
            continue
        if isinstance(wanted, tuple) and row[field] not in wanted:
            return False
        if not isinstance(wanted, tuple) and row[field] != wanted:
            return False
    return True


def answer(stage: str, store: Store, settings: Any, models: list[str] | None, out: Path) -> str:
    """The rows of ``stage`` that ``settings`` ask for, of ``models`` (None: any), as a compact
    table, then the path of the page that holds every figure."""
    page, columns = ANSWERS[stage]
    rows = [
        r
        for r in store.rows(stage)
        if (models is None or r["model"] in models) and describes(settings, r)
    ]
    if not rows:
        return f"{stage}: nothing stored for what was asked; see {out / page}"
    rows.sort(key=lambda r: (book_rank(r["model"]), r["model"], str(sorted(r["config"].items()))))
    frame = pd.DataFrame(rows)
    frame["rate"] = [_rate(r) for r in rows]
    frame["case"] = [r["config"].get("case") for r in rows]
    frame["by_counter"] = [
        "; ".join(f"{c['counter']} {c['macs'] / 1e6:,.1f}" for c in r.get("counters") or [])
        for r in rows
    ]
    # a failed row says so in its first column
    frame["model"] = [
        r["model"] if r["status"] == "ok" else f"{r['model']} ({r['status']})" for r in rows
    ]
    return f"{markdown(frame, columns)}\n\nevery figure: {out / page}"
