"""peers.md: other FLOP counters beside ours, network by network, and why each differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.render.format import (
    Column,
    atomic_write,
    book_rank,
    fmt_int,
    fmt_mega,
    fmt_mib,
    fmt_text,
    markdown,
)
from bench.schema import OP_KINDS, Status
from bench.store import Store

MATRIX = ("conv", "linear")  # the kinds whose closed form the tests check our count against


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-3 * max(abs(a), abs(b))


def cause(ours: dict[str, float], entry: dict[str, Any]) -> str:
    """Why a counter's forward MACs differ from ours, kind by kind where it splits its count,
    else from its total against our conv and linear MACs."""
    if entry["macs"] is None:
        return entry["note"]
    total, matrix = sum(ours.values()), sum(ours[k] for k in MATRIX)
    if entry["by_kind"] is None:
        if _close(entry["macs"], total):
            return "equal to ours (a total only)"
        if _close(entry["macs"], matrix):
            return "counts conv and linear only (a total only)"
        beyond, rest = (entry["macs"] - matrix) / 1e6, (total - matrix) / 1e6
        return (
            f"a total only: {beyond:+,.4g} M beyond our conv and linear, where ours count "
            f"{rest:,.4g} M for the other kinds"
        )
    parts = []
    for kind in OP_KINDS:
        mine, theirs = ours[kind], entry["by_kind"][kind]
        if _close(mine, theirs):
            continue
        if theirs == 0:
            parts.append(f"skips {kind}")
        elif mine == 0:
            parts.append(f"counts {kind} ({theirs / 1e6:,.2f} M), free in ours")
        else:
            parts.append(f"{kind} x{theirs / mine:.4g}")
    return "; ".join(parts) or "equal to ours, kind by kind"


COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("counter", "counter", fmt_text),
    ("macs", "forward MACs / image (M)", fmt_mega),
    ("ratio", "against ours", fmt_text),
    ("cause", "why it differs", fmt_text),
]
BACKWARD: list[Column] = [
    ("model", "model", fmt_text),
    ("cnnbench", "ours (M)", fmt_mega),
    ("FlopCounterMode", "FlopCounterMode (M)", fmt_mega),
    ("FlopCounterMode, corrected", "FlopCounterMode, grouped rule corrected (M)", fmt_mega),
]
MEMORY: list[Column] = [
    ("model", "model", fmt_text),
    ("torchinfo", "torchinfo's estimated total size (MiB)", fmt_mib),
    ("tracked", "our tracked peak of a training step, batch 1 (MiB, counted)", fmt_mib),
    ("ratio", "torchinfo against tracked", fmt_text),
]


def fmt_gmacs(value: float) -> str:
    """G MACs to torchvision's three decimals."""
    return f"{value:.3f}"


REFERENCE: list[Column] = [
    ("model", "model", fmt_text),
    ("reference", "torchvision's", fmt_text),
    ("params", "parameters, ours", fmt_int),
    ("published_params", "parameters, published", fmt_int),
    ("gmacs", "G MACs, ours", fmt_gmacs),
    ("published_gmacs", "G MACs, published", fmt_gmacs),
]


def agrees(reference: dict[str, Any]) -> bool:
    """Our count of a network built as torchvision builds it equals what torchvision publishes:
    parameters exactly, conv and linear MACs to its three decimals."""
    same_macs = abs(reference["macs"] / 1e9 - reference["published_gmacs"]) <= 5e-4
    return reference["params"] == reference["published_params"] and same_macs


def _reference_line(row: dict[str, Any]) -> dict[str, Any]:
    reference = row["torchvision"]
    return {
        **reference,
        "model": row["model"],
        "reference": reference["model"],
        "gmacs": reference["macs"] / 1e9,
    }


def write_peers(store: Store, out_dir: Path) -> list[Path]:
    """peers.md in ``out_dir``: every network the peers stage counted."""
    rows = sorted(
        (r for r in store.rows("peers") if r["status"] == Status.OK),
        key=lambda r: book_rank(r["model"]),
    )
    if not rows:
        return []
    tracked = {
        (r["model"], r["image_size"]): r["train_bytes_tracked_sgd_batch1"]
        for r in store.rows("profile")
        if "train_bytes_tracked_sgd_batch1" in r
    }
    lines, backward, memory = [], [], []
    for row in rows:
        ours = next(c for c in row["counters"] if c["counter"] == "cnnbench")
        for entry in row["counters"]:
            ratio = None if entry["macs"] is None else f"{entry['macs'] / ours['macs']:.4f}"
            why = "" if entry is ours else cause(ours["by_kind"], entry)
            lines.append(
                {
                    "model": row["model"],
                    "counter": entry["counter"],
                    "macs": entry["macs"],
                    "ratio": ratio,
                    "cause": why,
                }
            )
        backward.append({"model": row["model"], **row["backward_macs"]})
        peak, theirs = tracked.get((row["model"], row["image_size"])), row["torchinfo_memory_bytes"]
        memory.append(
            {
                "model": row["model"],
                "torchinfo": theirs,
                "tracked": peak,
                "ratio": f"{theirs / peak:.2f}" if theirs and peak else None,
            }
        )
    text = (
        "# Other FLOP counters beside ours (`python -m bench peers`)\n\n"
        "Each network at its book input, batch 1, in inference. Every figure is in MACs "
        "(multiply-accumulates): fvcore counts one per fused multiply-add; FlopCounterMode's "
        "FLOPs are halved; thop, ptflops (its pytorch backend) and torchinfo report MACs. Where "
        "a counter splits its count by op (fvcore, FlopCounterMode) or by module (torchinfo), "
        "the split is set against ours kind by kind: *skips* a kind it counts nothing for, "
        "*x r* a kind it weighs r times ours; thop and ptflops report a total only. Our conv "
        "and linear MACs equal the closed form, c_o (c_i / g) k_h k_w h_o w_o per conv and "
        "in x out per linear layer, for every registry network (tests/test_complexity.py): a "
        "counter whose conv and linear agree with ours matches it; the kinds in its cause are "
        "where it departs, by its own rules for batch norm, activations, pooling and "
        "additions, which have no single closed form.\n\n"
        + markdown(pd.DataFrame(lines), COLUMNS)
        + "\n\n## Backward: conv and matrix products\n\nMACs per image of one backward pass "
        "(batch 2 in training mode, batch norm needing two). FlopCounterMode's rule charges a "
        "grouped conv's weight gradient once per group; corrected, it charges it once, as a "
        "weight gradient costs what the forward conv does.\n\n"
        + markdown(pd.DataFrame(backward), BACKWARD)
        + "\n\n## Memory\n\ntorchinfo's estimate (input + every layer's output, its "
        '"forward/backward pass size", + parameters) against the peak our tracker finds '
        "through a real training step (memory.md).\n\n"
        + markdown(pd.DataFrame(memory), MEMORY)
        + "\n"
    )
    references = [_reference_line(r) for r in rows if r.get("torchvision")]
    if references:
        text += (
            "\n## Against torchvision\n\nEach network torchvision also builds, built as it "
            "builds it (3 input channels, 1,000 classes, 224 x 224), counted by us, beside the "
            'parameters and the conv and linear forward MACs (its "GFLOPS", given to three '
            "decimals) torchvision publishes with its weights.\n\n"
            + markdown(pd.DataFrame(references), REFERENCE)
            + "\n"
        )
    written = out_dir / "peers.md"
    atomic_write(written, text)
    return [written]
