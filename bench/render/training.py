"""The training page: every stored run, the curves of its evaluation points, and what each
technique of the fast recipe buys; rendered from the results store only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

import archs
from bench.console import plural
from bench.provenance import cpu_of
from bench.recipes import ACCURACY_TARGETS, EVAL_BATCH_SIZE, EXPERIMENTS, PRESETS
from bench.render.chance import (
    PROBE_COLUMNS,
    at_chance,
    he_init,
    learned,
    lr_fix,
    sooner,
    with_he_init,
)
from bench.render.format import (
    Column,
    atomic_write,
    book_rank,
    fmt_bound,
    fmt_int,
    fmt_mib,
    fmt_percent,
    fmt_points,
    fmt_ratio,
    fmt_text,
    markdown,
)
from bench.render.search import search_section
from bench.schema import MEASURED, Status
from bench.store import Store

BOOK_PRESETS = ("book", "book_cpu")  # the presets that train the book's recipe as it is
SLOW = 2  # epochs at chance from which a book-recipe run has its section on the training page

# which training run speaks for a network: the book's recipe, then the same at CPU scale
PRESET_RANK = {"book": 0, "book_cpu": 1, "cpu": 2, "smoke": 3}


def preset_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Of one network's runs, its book recipe as its preset adapts it (the book's own under the
    book preset: a run that changes nothing of it), under the preset closest to the book's."""
    matching = [r for r in runs if r["changes"] == [] and r["preset"] in PRESET_RANK]
    return min(matching, key=lambda r: PRESET_RANK[r["preset"]], default=None)


def fast_recipes(runs: list[dict]) -> dict[str, list[dict]]:
    """The fast recipe's runs among ``runs``, by recipe (a run's settings but its seed: the
    recipe has changed over time), each named by its schedule."""
    recipes: dict[str, list[dict]] = {}
    for r in runs:
        if r["fast_recipe"]:
            name = f"fast recipe, {r['epochs']} epochs of batch {r['batch_size']} at lr {r['lr']}"
            recipes.setdefault(name, []).append(r)
    return recipes


TIMES_TO = {f"time_to_{round(100 * t)}_s": f"to {round(100 * t)}% (s)" for t in ACCURACY_TARGETS}


def evaluated_at_end(run: dict[str, Any]) -> bool:
    """Whether a run was tested after its last epoch alone: it may have reached an accuracy
    anywhere in its training, so its times to accuracy are upper bounds."""
    return bool((run.get("technique_settings") or {}).get("eval_at_end"))


def at_chance_for(rows: list[dict[str, Any]], histories: list[list[dict]]) -> str:
    """A section on each book recipe whose training loss sat at chance for ``SLOW`` epochs or
    more under the book's presets: the run, the probes of its network (the probe preset: its
    first epochs at learning rates around the book's, and runs of its preset that change the
    rate alone) and, for a run that never left chance, the smallest change of its rate that
    makes it learn."""
    done, stuck = [], []
    for run, history in zip(rows, histories, strict=True):
        if run["status"] not in MEASURED:
            continue
        losses = [point.get("train_loss") for point in history]
        chance = sum(map(at_chance, losses))
        left = next((i for i, loss in enumerate(losses, 1) if not at_chance(loss)), None)
        done.append({**run, "chance_epochs": f"{chance} of {len(history)}", "left_at": left})
        if (
            run["changes"] == []
            and run["preset"] in BOOK_PRESETS
            and not run["fast_recipe"]
            and chance >= SLOW
        ):
            stuck.append(done[-1])
    if not stuck:
        return ""
    parts = []
    for run in sorted(stuck, key=lambda r: book_rank(r["model"])):
        spec = archs.spec(run["model"])
        book_side, side = spec.recipe.resize or 28, run["resize"] or 28
        probes = [
            r
            for r in done
            if r["model"] == run["model"]
            and r["resize"] == run["resize"]
            and (
                r["config"] == run["config"]
                or r["preset"] == "probe"
                or (r["preset"] == run["preset"] and r["changes"] == ["lr"])
            )
        ]
        probes.sort(key=lambda r: (r["preset"] != "probe", he_init(r), r["lr"]))
        table = pd.DataFrame(probes).assign(
            run=[f"{r['preset']} preset: {r['work']}" for r in probes],
            input=f"{side} px",
            init=["He" if he_init(r) else "Xavier (book)" for r in probes],
            factor=[f"{r['lr'] / spec.recipe.lr:g}" for r in probes],
        )
        fix = None if learned(run) else lr_fix(run, done)
        if learned(run):
            verdict = sooner(run, probes, spec.recipe.lr)
        elif fix:
            verdict = (
                "The smallest change of the rate that makes it learn, among those stored: "
                f"lr {fix['lr']:g} ({fix['lr'] / spec.recipe.lr:g} times the book's), "
                f"{fix['test_acc']:.1%} "
                f"under {fix['preset']}; the headline names it beside the book's row."
            )
        else:
            verdict = (
                f"It never left chance, and no run under {run['preset']} that changes its "
                "learning rate alone is stored yet."
            )
        experiments = [
            name
            for name in ("lr_probes", "init_probes")
            if any(r.model == run["model"] for r in EXPERIMENTS[name])
        ]
        inits = any(map(he_init, probes))
        init_asked = (
            ", and those with He initialization whether the book's Xavier init does "
            "(docs/training.md: why a side changes the rate a network needs, and why depth "
            "without normalization starts near chance)"
            if inits
            else " (docs/training.md: why a side changes the rate a network needs)"
        )
        said = [
            f"At the book's lr {run['lr']:g} and {side} px, its training loss sat at chance for "
            f"{run['chance_epochs']} epochs ({run['work']}; final training loss "
            f"{run['train_loss']:.3f}, test accuracy {run['test_acc']:.1%}).",
            f"The book sets this rate for {book_side} px; the runs below (the probe preset: the "
            "same recipe for its first epochs) at other rates ask whether the rate is what holds "
            f"it at chance at this side{init_asked}.",
            verdict,
            with_he_init(run, probes),
        ]
        if experiments:
            said.append(
                f"`python -m bench train --preset probe --experiment {' '.join(experiments)} "
                f"--models {run['model']}` trains the probes ({PRESETS['probe'].epochs} epochs "
                "each)."
            )
        parts.append(
            f"### {run['model']} under {run['preset']}\n\n"
            + " ".join(filter(None, said))
            + "\n\n"
            + markdown(table, [c for c in PROBE_COLUMNS if inits or c[0] != "init"])
        )
    return (
        "\n## Book recipes slow to leave chance\n\n"
        "Runs of the book's recipe whose training loss stayed within 10 % of chance's (ln 10, a "
        f"uniform guess over the 10 classes) for {SLOW} epochs or more.\n\n"
        + "\n\n".join(parts)
        + "\n"
    )


def bounded(seconds: float | None, at_end: bool) -> float | str | None:
    """A time to accuracy as a table shows it: the number, or "≤ number" for a run evaluated at
    its end alone."""
    shown = fmt_ratio(seconds)
    return f"≤ {shown}" if at_end and shown != "-" else seconds


TRAIN_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("lr", "lr", fmt_text),
    ("batch_size", "batch", fmt_int),
    ("input", "input", fmt_text),
    ("techniques", "techniques (autocast)", fmt_text),
    ("run", "preset: run", fmt_text),
    ("test_set", "test images", fmt_text),
    ("status", "status", fmt_text),
    ("seed", "seed", fmt_int),
    ("test_acc", "test accuracy (final)", fmt_percent),
    ("best_test_acc", "best", fmt_percent),
    ("train_s", "training time (s)", fmt_ratio),
    ("wall_s", "wall clock (s)", fmt_ratio),
    ("images_per_s", "images/s", fmt_ratio),
    ("images_per_s_cv", "images/s: CV over evaluation intervals", fmt_percent),
    *[(column, header, fmt_bound) for column, header in TIMES_TO.items()],
    ("compile_s", "compile warm-up (s, not in training time)", fmt_ratio),
    ("peak_bytes", "peak memory (MiB, measured)", fmt_mib),
    ("note", "note", fmt_text),
]


def throughput_cv(history: list[dict[str, Any]]) -> float:
    """The coefficient of variation of a run's training images/s over its evaluation
    intervals (an epoch each, or the whole run with eval_at_end: then NaN)."""
    if len(history) < 2:
        return float("nan")
    speeds = pd.Series([point["images_per_s"] for point in history], dtype=float)
    return float(speeds.std(ddof=1) / speeds.mean())


def machine_time(frame: pd.DataFrame) -> str:
    """A sentence: the wall clock of the stored runs that finished, by preset, and in all."""
    done = frame[frame["status"].isin(MEASURED)]
    if done.empty:
        return ""
    hours = done.groupby("preset")["wall_s"].agg(["sum", "count"]).sort_values("sum")
    parts = [
        f"{preset} {row['sum'] / 3600:.1f} h ({plural(int(row['count']), 'run')})"
        for preset, row in hours.iterrows()
    ]
    return (
        f"Machine time of the finished runs (wall clock, training and evaluation): "
        f"{'; '.join(parts)}; {hours['sum'].sum() / 3600:.1f} h in all.\n\n"
    )


def write_train(store: Store, out_dir: Path) -> list[Path]:
    """Every stored training run (CSV and Markdown), and the curves of evaluation points."""
    rows = store.rows("train")
    if not rows:
        return []
    frame = pd.DataFrame(rows)
    histories = [store.details("train", r["model"], r["config"], "history") for r in rows]
    frame["images_per_s_cv"] = [throughput_cv(history) for history in histories]
    frame["input"] = [f"{r['config']['resize'] or 28} px" for r in rows]
    frame["run"] = [f"{r['preset']} preset: {r['work']}" for r in rows]
    ablation = _ablation(frame)  # by the techniques' names, before they are shown with autocast
    frame["techniques"] = [f"{r['techniques']} ({r.get('autocast', 'off')})" for r in rows]
    devices = sorted({f"{r['provenance']['device']} / {cpu_of(r['provenance'])}" for r in rows})
    shown_times = {
        column: [bounded(r.get(column), evaluated_at_end(r)) for r in rows] for column in TIMES_TO
    }
    text = (
        "# Training on Fashion-MNIST (`python -m bench train`)\n\n"
        "The book's loop: cross-entropy, the book's Xavier-uniform initialization, SGD "
        "without momentum at each network's learning rate, batch and input side. The "
        "techniques column names what a run changes in that loop (adam: Adam in place of SGD; "
        "the fast recipe: docs/training.md, bench/recipes.py) and, in brackets, whether "
        "bfloat16 autocast ran. Every run trains on fixed work, never a time: the *book* "
        "preset on the chapter's "
        "10 epochs over all 60,000 images; the *book_cpu* preset is the same recipe (SGD, "
        "the book's learning rate, batch 128, 10 epochs over all 60,000 images, all 10,000 "
        "test images, fp32) at the smallest side of at least 32 pixels each network accepts, "
        "in place of the book's 224 or 96; the *cpu* preset adapts each recipe to a CPU (Adam, "
        "inputs of at most 32 pixels or the smallest the network accepts, a few epochs over a "
        "fixed subset, tested on a fixed subset) so that what it reports is what that work "
        "buys, not the book's results; a run with its own schedule (the fast recipe) keeps it "
        "under every preset but smoke. The *smoke* preset checks that training runs end to "
        "end, on far too little work to learn: its accuracies (chance, 10 %, is common) mean "
        "nothing. Training time excludes evaluation, and torch.compile's "
        "warm-up where a run compiles (a column of its own); time-to-accuracy is the "
        "training time at the first evaluation whose test accuracy reaches that accuracy: "
        "after every epoch, or, marked ≤, after the last epoch alone (such a run may have "
        "reached it anywhere in its training). "
        "Images/s: the run's training images over its training time; beside it, how much it "
        "varied over the run's evaluation intervals (an epoch each, the first with the warm-up; "
        "a run evaluated at its end alone has one). Peak memory: the run's highest, training "
        f"and evaluation (in batches of {EVAL_BATCH_SIZE}), as growth over its network and "
        "data already in memory: of the process's peak RSS on a CPU (with the "
        "runtime's one-time allocations, and the freed memory the heap keeps for reuse), of "
        "allocated memory on a GPU (with cuDNN's "
        f"algorithm search). Devices: {'; '.join(devices)}.\n\n"
        + machine_time(frame)
        + markdown(frame.assign(**shown_times), TRAIN_COLUMNS)
        + "\n"
    )
    curves = [
        {
            "model": r["model"],
            "lr": r["lr"],
            "batch_size": r["batch_size"],
            "resize": r["config"]["resize"],
            "preset": r["preset"],
            **point,
        }
        for r, history in zip(rows, histories, strict=True)
        for point in history
    ]
    text += at_chance_for(rows, histories)
    if len(ablation):
        text += (
            "\n## What each technique of the fast recipe buys\n\n"
            "The fast recipe with one technique switched off at a time (and with none: the "
            "book's loop on the same schedule); the difference is against the fast recipe's "
            "median over its seeds under the same preset. Each row is the median over the seeds "
            "it counts (the ablation trains three: 0, 1, 2); compare a difference with the seed "
            "ranges.\n\n" + markdown(ablation, ABLATION_COLUMNS) + "\n"
        )
    text += search_section(rows)
    written = [out_dir / "train.md", out_dir / "train.csv", out_dir / "curves.csv"]
    atomic_write(written[0], text)
    atomic_write(written[1], frame.drop(columns=["provenance"]).to_csv(index=False))
    atomic_write(written[2], pd.DataFrame(curves).to_csv(index=False))
    return written


ABLATION_COLUMNS: list[Column] = [
    ("model", "model", fmt_text),
    ("change", "techniques", fmt_text),
    ("seeds", "seeds", fmt_int),
    ("test_acc", "test accuracy (median)", fmt_percent),
    ("spread", "seed range", fmt_text),
    ("delta", "difference (points)", fmt_points),
    ("wall_s", "wall clock (s, median)", fmt_ratio),
    ("images_per_s", "training images/s", fmt_ratio),
]


def _ablation(frame: pd.DataFrame) -> pd.DataFrame:
    """Scheduled runs grouped by network, schedule, preset and techniques: medians over seeds,
    differences from the run with the most techniques on (a recipe whose runs all have the
    same techniques has no line)."""
    if "epochs" not in frame:
        return pd.DataFrame()
    runs = frame[frame["epochs"].notna() & (frame["status"] == Status.OK)].copy()
    if runs.empty:
        return runs
    rows = []
    recipe = ["model", "epochs", "batch_size", "lr", "preset"]
    for (model, epochs, batch, lr, preset), group in runs.groupby(recipe):
        full = max(group["techniques"], key=lambda t: len(t.split("+")))
        everything = "all (the fast recipe)" if group["fast_recipe"].any() else "all"
        medians = group.groupby("techniques").agg(
            test_acc=("test_acc", "median"),
            low=("test_acc", "min"),
            high=("test_acc", "max"),
            seeds=("seed", "nunique"),
            wall_s=("wall_s", "median"),
            images_per_s=("images_per_s", "median"),
        )
        if len(medians) < 2:  # a recipe with nothing switched off: no comparison to show
            continue
        base = medians["test_acc"].get(full)
        for techniques, row in medians.iterrows():
            off = [name for name in full.split("+") if name not in techniques.split("+")]
            change = (
                everything
                if techniques == full
                else (
                    "none (the book's loop)" if techniques == "-" else "without " + ", ".join(off)
                )
            )
            name = f"{model} ({preset} preset, {int(epochs)} epochs, batch {batch}, lr {lr:g})"
            rows.append(
                {
                    "model": name,
                    "change": change,
                    "seeds": row["seeds"],
                    "test_acc": row["test_acc"],
                    "spread": f"{row['low']:.2%} - {row['high']:.2%}",
                    "delta": row["test_acc"] - base if base is not None else None,
                    "wall_s": row["wall_s"],
                    "images_per_s": row["images_per_s"],
                    "order": len(off) if techniques != "-" else 99,
                }
            )
    return pd.DataFrame(rows).sort_values(["model", "order"]) if rows else pd.DataFrame()
