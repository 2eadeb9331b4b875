"""findings.md: one screen a teacher can put on a slide. Each line is a claim chapter 8 makes
about what its networks cost, its question of what they buy, or a reader's (are the counts
right?), the figure measured or counted here beside it, and the page it comes from; every
figure is read from the results store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import archs
from bench.render.chance import he_init, learned, lr_fix
from bench.render.exercises.left import book_preset
from bench.render.format import MIB, atomic_write
from bench.render.peers import agrees
from bench.render.stages import profile_name
from bench.render.training import BOOK_PRESETS, preset_run
from bench.schema import MEASURED, Status
from bench.store import Store

Finding = tuple[str, str, str]  # the claim or question, what was measured, where it comes from


def _profile(store: Store, model: str) -> dict[str, Any] | None:
    """The network's profile at its book input, batch 128 (None: not counted yet)."""
    side = archs.spec(model).image_size
    found = [
        r
        for r in store.rows("profile")
        if r["model"] == model
        and r["status"] == Status.OK
        and (r["image_size"], r["batch_size"]) == (side, 128)
    ]
    return found[0] if found else None


def _linear_layers(store: Store, row: dict[str, Any]) -> list[dict[str, Any]]:
    layers = store.details("profile", row["model"], row["config"], "layers")
    return [layer for layer in layers if layer["type"] == "Linear"]


def _link(row: dict[str, Any]) -> str:
    return f"[{row['model']}](profile/{profile_name(row)}.md)"


def _size(params: float) -> str:
    """fp32 bytes of ``params`` in MiB and MB (the book's "MB" are often MiB)."""
    return f"{4 * params / MIB:,.1f} MiB ({4 * params / 1e6:,.1f} MB)"


def torchvision_agrees(store: Store) -> Finding | None:
    """Our counts of the networks torchvision also builds against what it publishes."""
    references = [
        (r["model"], r["torchvision"])
        for r in store.rows("peers")
        if r["status"] == Status.OK and r.get("torchvision")
    ]
    if not references:
        return None
    differ = [model for model, reference in references if not agrees(reference)]
    model, reference = max(references, key=lambda pair: pair[1]["macs"])
    return (
        "Are these counts right? (the networks torchvision also builds, built as it builds them: "
        "3 x 224 input, 1,000 classes)",
        f"{len(references) - len(differ)} of {len(references)} equal to torchvision's published "
        f"parameters and forward MACs{'; ' + ', '.join(differ) + ' differ' if differ else ''}, "
        f"e.g. {model}: "
        f"{reference['params']:,} parameters and {reference['macs'] / 1e9:.3f} G MACs, "
        f"published {reference['published_params']:,} and {reference['published_gmacs']:.3f}",
        "[peers](peers.md#against-torchvision)",
    )


def alexnet_head(store: Store) -> Finding | None:
    row = _profile(store, "alexnet")
    if row is None:
        return None
    hidden = _linear_layers(store, row)[:2]  # the two hidden layers; the third is the output
    params = sum(layer["params"] for layer in hidden)
    macs = sum(layer["fwd_macs"] for layer in hidden) / row["batch_size"]
    return (
        "AlexNet's two hidden fully connected layers take 164 MB and 81 MFLOPs, over 40 M "
        "parameters (8.1)",
        f"{params / 1e6:,.1f} M parameters: {_size(params)} in fp32; {macs / 1e6:,.1f} M MACs "
        f"= {2 * macs / 1e6:,.1f} MFLOPs per image",
        _link(row),
    )


def vgg_matrix(store: Store) -> Finding | None:
    row = _profile(store, "vgg11")
    if row is None:
        return None
    largest = max(_linear_layers(store, row), key=lambda layer: layer["params"])
    share = largest["params"] / row["params"]
    return (
        "VGG-11's first fully connected matrix takes almost 400 MB in fp32 (8.2)",
        f"{largest['params'] / 1e6:,.1f} M parameters: {_size(largest['params'])}, "
        f"{share:.0%} of the network's",
        _link(row),
    )


def _share_linear(row: dict[str, Any]) -> str:
    return (
        f"{row['model']} {row['params'] / 1e6:,.1f} M ({row['params_linear'] / row['params']:.0%} "
        "in fully connected layers)"
    )


def nin_savings(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("nin", "alexnet", "vgg11")]
    if any(r is None for r in rows):
        return None
    return (
        "NiN has dramatically fewer parameters than AlexNet and VGG: it needs no giant fully "
        "connected layers (8.3)",
        "; ".join(_share_linear(r) for r in rows),
        ", ".join(_link(r) for r in rows),
    )


def googlenet_savings(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("googlenet", "alexnet")]
    if any(r is None for r in rows):
        return None
    googlenet, alexnet = rows
    return (
        "GoogLeNet's 1x1 reductions and global pooling keep its parameters low (8.4)",
        f"{_share_linear(googlenet)}, {alexnet['params'] / googlenet['params']:,.1f}x fewer "
        f"than {_share_linear(alexnet)}",
        ", ".join(_link(r) for r in rows),
    )


def densenet_memory(store: Store) -> Finding | None:
    rows = [_profile(store, m) for m in ("densenet121", "resnet50")]
    if any(r is None for r in rows):
        return None
    densenet, resnet = rows

    def training(row: dict[str, Any]) -> str:
        return (
            f"{row['model']} {row['train_bytes_est_sgd'] / MIB:,.0f} MiB "
            f"({row['saved_activation_bytes'] / MIB:,.0f} MiB saved for backward)"
        )

    ratio = densenet["train_bytes_est_sgd"] / resnet["train_bytes_est_sgd"]
    return (
        "DenseNet's concatenations make it memory-hungry (8.7)",
        f"a training step at 224 px, batch 128, SGD (estimated): {training(densenet)} against "
        f"{training(resnet)}: {ratio:,.2f}x, with "
        f"{resnet['params'] / densenet['params']:,.1f}x fewer parameters",
        ", ".join(_link(r) for r in rows) + ", [exercises](exercises.md#8773)",
    )


def book_accuracies(store: Store) -> Finding | None:
    """Each of the chapter's nine networks trained with its book recipe (under book_cpu: at
    the smallest side of at least 32 it accepts), and for one that never left chance the
    smallest learning-rate change that makes it learn."""
    runs = [r for r in store.rows("train") if r["status"] in MEASURED]
    preset, said = book_preset(store), []
    for name in archs.BOOK_MODELS:
        mine = [r for r in runs if r["model"] == name and r["preset"] in BOOK_PRESETS]
        run = preset_run(mine)
        if run is None:
            said.append(f"{name} not trained yet")
            continue
        other = f", {run['preset']} preset" if run["preset"] != preset else ""
        text = f"{name} {run['test_acc']:.1%} ({run['resize'] or 28} px{other})"
        fix = None if learned(run) else lr_fix(run, mine)
        if fix is not None:
            text += (
                f", at chance; at lr {fix['lr']:g} instead of {run['lr']:g}: {fix['test_acc']:.1%}"
            )
        said.append(text)
    if len(said) == sum(s.endswith("not trained yet") for s in said):
        return None
    return (
        "What does each of chapter 8's networks buy on Fashion-MNIST, trained as the book "
        "trains it (SGD at its learning rate, batch 128, 10 epochs over all 60,000 images)?",
        f"test accuracy on all 10,000 test images, {preset} preset: " + "; ".join(said),
        "[training](train/train.md)",
    )


def init_probes(store: Store) -> Finding | None:
    """The book networks probed with He initialization in place of Xavier at their book rate,
    beside what their book recipe reached in all its epochs."""
    runs = [r for r in store.rows("train") if r["status"] in MEASURED]
    said = []
    for name in archs.BOOK_MODELS:
        mine = [r for r in runs if r["model"] == name]
        book = preset_run([r for r in mine if r["preset"] in BOOK_PRESETS])
        if book is None:
            continue
        he = [
            f"{probe['test_acc']:.1%} after {probe['work']} ({probe['preset']} preset)"
            for probe in mine
            if he_init(probe) and probe["lr"] == book["lr"] and probe["resize"] == book["resize"]
        ]
        if he:
            xavier = f"with Xavier, {book['test_acc']:.1%} after {book['work']}"
            said.append(f"{name} {', '.join(he)}; {xavier}")
    if not said:
        return None
    return (
        "The book draws every weight Xavier-uniform: does that hold its deep networks without "
        "normalization near chance at CPU scale?",
        "test accuracy with He initialization instead, at the book's rate and side: "
        + ". ".join(said),
        "[training](train/train.md)",
    )


# each finding, and the command that measures what it needs
FINDINGS: tuple[tuple[Callable[[Store], Finding | None], str], ...] = (
    (torchvision_agrees, "python -m bench peers --force"),
    (alexnet_head, "python -m bench profile"),
    (vgg_matrix, "python -m bench profile"),
    (nin_savings, "python -m bench profile"),
    (googlenet_savings, "python -m bench profile"),
    (densenet_memory, "python -m bench profile"),
    (book_accuracies, "python -m bench train --experiment book --preset book_cpu (on a GPU: book)"),
    (init_probes, "python -m bench train --experiment init_probes --preset probe"),
)


def render(store: Store) -> str:
    """The Markdown page: a table of the book's claims beside what was measured."""
    found = [(finding(store), command) for finding, command in FINDINGS]
    rows = [f"| {' | '.join(said)} |" for said, _ in found if said is not None]
    missing = Counter(command for said, command in found if said is None)
    waiting = "; ".join(
        f"{n} more {'claim waits' if n == 1 else 'claims wait'} for `{command}`"
        for command, n in missing.items()
    )
    return (
        "# Findings: the book's claims beside what was measured here\n\n"
        "Parameters and MACs are counted exactly on the meta device, for the networks as the "
        "book builds them (one input channel, 10 classes, the book's input side) unless a line "
        "says otherwise; memory is "
        "estimated from counted parts; accuracy is measured. MACs = multiply-accumulates, "
        "FLOPs = 2 x MACs; MiB = 2^20 bytes, MB = 10^6.\n\n"
        "| the book says, or a reader asks | measured here | from |\n| :--- | :--- | :--- |\n"
        + "\n".join(rows)
        + (f"\n\n{waiting}." if waiting else "")
        + "\n"
    )


def write_findings(store: Store, out_dir: Path) -> list[Path]:
    path = out_dir / "findings.md"
    atomic_write(path, render(store))
    return [path]
