"""``python -m bench compare A B``: the metrics two results stores share, their differences, and
which differences exceed the noise each metric carries.

Noise, per metric (relative to the value): counted figures are exact, so any change counts;
a timing's noise is the spread of its timed steps (coefficient of variation, or the
interquartile range over the median for chapter 7's timed primitives); a test accuracy's is the
binomial standard error of the test set it was measured on; a measured peak memory is exact
from the CUDA allocator, and unknown from a process's resident memory, one reading whose
spread is not measured (it moves with what the allocator keeps): shown, never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from bench.console import plural
from bench.render.format import fmt_text, markdown
from bench.schema import ALLOCATED, Status
from bench.store import Store, config_hash

Noise = Callable[[dict[str, Any]], float]  # a row -> relative noise of its metrics


def _cv(row: dict[str, Any]) -> float:
    return row.get("cv") or 0.0


def _both_cv(row: dict[str, Any]) -> float:
    """An onnx row's noise: the larger of its two runtimes' (PyTorch's is not in rows stored
    before it was kept)."""
    return max(_cv(row), row.get("torch_cv") or 0.0)


def _iqr(row: dict[str, Any]) -> float:
    """A timed primitive's spread; 0 for a counted row, which has none."""
    return row["iqr_ms"] / row["median_ms"] if row.get("median_ms") else 0.0


def _binomial(row: dict[str, Any]) -> float:
    per_class = row["config"].get("test_per_class")
    n, p = 10 * per_class if per_class else 10_000, row.get("test_acc") or 0.0
    return math.sqrt(p * (1 - p) / n) / p if p else 0.0


def _exact(row: dict[str, Any]) -> float:
    return 0.0


def _memory(row: dict[str, Any]) -> float:
    """A measured peak's noise: none from the CUDA allocator, unknown (NaN) from the process's
    resident memory."""
    return 0.0 if row.get("memory_kind") == ALLOCATED else math.nan


# stage -> the metrics compared, each with its relative noise
METRICS: dict[str, dict[str, Noise]] = {
    "profile": dict.fromkeys(
        (
            "params",
            "fwd_macs_per_image",
            "bwd_macs_per_image",
            "saved_activation_bytes",
            "infer_peak_bytes",
        ),
        _exact,
    ),
    "layers": dict.fromkeys(
        ("fwd_macs_counted", "bwd_macs_counted", "saved_bytes_counted", "median_ms"), _iqr
    ),
    "speed": {"images_per_s": _cv, "median_ms": _cv, "peak_bytes": _memory},
    "onnx": dict.fromkeys(("images_per_s", "median_ms", "torch_images_per_s"), _both_cv),
    "train": {"test_acc": _binomial, "peak_bytes": _memory},
}


def _number(v: float) -> str:
    """A whole number in full (a count that changed by one shows it), others to 6 digits."""
    return f"{int(v):,}" if float(v).is_integer() else f"{v:,.6g}"


def _keyed(store: Store, stage: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (r["model"], config_hash(r["config"])): r
        for r in store.rows(stage)
        if r["status"] == Status.OK
    }


def _point(row: dict[str, Any]) -> str:
    """A row's point in words, where its key says more than its network: a case, or a mode and
    batch size."""
    config = row["config"]
    if "case" in config:
        return f" ({config['case']})"
    said = [config[k] for k in ("mode", "precision") if k in config]
    said += [f"batch {config['batch_size']}"] if "batch_size" in config else []
    return f" ({', '.join(map(str, said))})" if said else ""


def differences(
    a: Store, b: Store, stage: str | None = None, threshold: float = 3.0
) -> pd.DataFrame:
    """Every metric the two stores share, a row each: its values, relative change and noise,
    and whether it is flagged: a change is flagged when it exceeds ``threshold`` times the
    larger relative noise of the two rows, or, for exact (counted) metrics, when there is any
    change at all; never where the noise is unknown."""
    rows = []
    for name, metrics in METRICS.items():
        if stage is not None and name != stage:
            continue
        before, after = _keyed(a, name), _keyed(b, name)
        for key in [k for k in before if k in after]:
            old, new = before[key], after[key]
            for metric, noise in metrics.items():
                x, y = old.get(metric), new.get(metric)
                numbers = isinstance(x, int | float) and isinstance(y, int | float)
                if not numbers or not x or math.isnan(x) or math.isnan(y):
                    continue
                spreads = noise(old), noise(new)
                spread = math.nan if any(map(math.isnan, spreads)) else max(spreads)
                change = (y - x) / abs(x)
                flagged = abs(change) > threshold * spread if spread else y != x
                rows.append(
                    {
                        "stage": name,
                        "model": key[0],
                        "config": key[1],
                        "metric": metric,
                        "point": _point(old),
                        "a": x,
                        "b": y,
                        "change": change,
                        "noise": spread,
                        "flag": "CHANGED" if flagged else "",
                    }
                )
    columns = ["stage", "model", "config", "metric", "point", "a", "b", "change", "noise", "flag"]
    return pd.DataFrame(rows, columns=columns)


def compare(
    a: Store, b: Store, stage: str | None = None, threshold: float = 3.0, changed: bool = False
) -> tuple[str, int]:
    """A Markdown table of every shared metric's change (``changed``: of the flagged ones
    alone, empty where there are none), and how many changes are flagged."""
    return table(differences(a, b, stage, threshold), threshold, changed)


def table(frame: pd.DataFrame, threshold: float = 3.0, changed: bool = False) -> tuple[str, int]:
    """``compare``'s table and count, from ``differences``' rows."""
    if frame.empty:
        return "no rows in common", 0
    flagged = int((frame["flag"] != "").sum())
    if changed:
        frame = frame[frame["flag"] != ""]
        if frame.empty:
            return "", 0
    percent = lambda v: f"{v:+.1%}"  # noqa: E731
    text = markdown(
        frame,
        [
            ("stage", "stage", fmt_text),
            ("model", "model", fmt_text),
            ("config", "config hash", fmt_text),
            ("metric", "metric", fmt_text),
            ("a", "A", _number),
            ("b", "B", _number),
            ("change", "change", percent),
            ("noise", "noise (relative)", lambda v: "unknown" if math.isnan(v) else f"{v:.1%}"),
            ("flag", f"beyond {threshold:g} x noise", fmt_text),
        ],
    )
    return text, flagged


def summary(frame: pd.DataFrame, largest: int = 5) -> str:
    """A few lines on a comparison (``differences``): per stage, how many metrics were compared
    and how many changed beyond their noise; then the ``largest`` such changes, as B / A."""
    if frame.empty:
        return "no rows in common"
    lines = []
    for stage, group in frame.groupby("stage", sort=False):
        beyond = int((group["flag"] != "").sum())
        lines.append(f"{stage}: {plural(len(group), 'metric')} compared, {beyond} beyond the noise")
    flagged = frame[frame["flag"] != ""]
    top = flagged.reindex(flagged["change"].abs().sort_values(ascending=False).index)[:largest]
    if not top.empty:
        lines.append("largest changes beyond the noise (B / A):")
    for row in top.itertuples():
        noise = "exact" if row.noise == 0 else f"noise {row.noise:.1%}"
        lines.append(
            f"  {row.stage} {row.model}{row.point} {row.metric}: {_number(row.a)} -> "
            f"{_number(row.b)} (x{row.b / row.a:.2f}, {noise})"
        )
    return "\n".join(lines)
