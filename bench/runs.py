"""Run folders: each run keeps its store, pages and plots in a folder of its own.

A command measures this machine into ``runs/<preset>-<device>/``, which git ignores, unless
``--out`` or ``--store`` name another folder. The published runs are the folders of
``reports/``: no command writes into one unless it is named explicitly, and
``reports/index.md`` lists them (smoke runs aside). A run's pages are rendered from its store
alone (``render``), so a committed store re-renders its committed pages byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from bench.compare import differences, summary, table
from bench.console import plural
from bench.provenance import cpu_of, environment
from bench.recipes import FAST_RUN
from bench.render.exercises import write_exercises
from bench.render.findings import write_findings
from bench.render.format import atomic_write, fmt_int, fmt_text, markdown
from bench.render.headline import preset_of, write_tradeoffs
from bench.render.history import write_history
from bench.render.html import write_twin
from bench.render.index import write_index
from bench.render.memory import write_memory
from bench.render.peers import write_peers
from bench.render.plots import write_plots
from bench.render.search import recipe_median
from bench.render.stages import write_onnx, write_pipeline, write_profile, write_speed
from bench.render.terminal import ANSWERS, answer
from bench.render.training import write_train
from bench.stages.common import select_models
from bench.store import STORE_NAME, Store

REPORTS = Path("reports")  # the published runs
RUNS = Path("runs")  # this machine's own runs, ignored by git
UNLISTED = "smoke"  # the preset whose runs stay out of git and out of the index of runs


def other_cpus(store_path: Path) -> list[str]:
    """The CPUs of a store's rows that share this machine's CPU name but may not share its
    vector instructions (two virtual machines may report the same name): rows recording others,
    and rows recording none where this machine knows its own. What a stage run here would
    measure beside, and what it would not measure again."""
    if not store_path.exists():
        return []
    here = environment()
    store = Store(store_path, create=False)
    rows = store.rows()
    store.close()
    others, unrecorded = set(), f"{here['cpu']} (vector instructions not recorded)"
    for row in rows:
        measured, isa = row["provenance"], row["provenance"].get("cpu_isa")
        if measured["cpu"] == here["cpu"] and isa != here["cpu_isa"]:
            others.add(cpu_of(measured) if isa else unrecorded)
    return sorted(others)


def device_slug(device_name: str) -> str:
    """A folder-name form of a device: its first three words, lower case, without trademark
    signs, clock or 'CPU' ('AMD EPYC' -> 'amd-epyc', 'NVIDIA H100 80GB HBM3' ->
    'nvidia-h100-80gb')."""
    name = re.sub(r"\((r|tm)\)", " ", device_name.lower()).split("@")[0]
    words = [w for w in re.findall(r"[a-z0-9]+", name) if w not in ("cpu", "processor")]
    return "-".join(words[:3]) or "unknown"


def isa_slug(isa: str | None) -> str:
    """A folder-name form of a CPU's vector instructions ('AVX-512 BF16' -> '-avx512-bf16',
    'AVX2' -> '-avx2'); empty where none is known (a GPU, or a CPU without x86 flags)."""
    return "".join("-" + word for word in (isa or "").lower().replace("-", "").split())


def folder(preset: str, device_name: str, isa: str | None = None, root: Path = RUNS) -> Path:
    """Where a run of ``preset`` on ``device_name`` keeps its store and pages. A CPU's folder
    names its vector instructions too: two virtual machines may report the same CPU name and
    differ in them, and a run folder holds one machine's measurements."""
    return root / f"{preset}-{device_slug(device_name)}{isa_slug(isa)}"


def locate(store: Path | None, out: Path | None, default: Path) -> tuple[Path, Path]:
    """(store, pages folder) from the options given: both as given; a store alone puts the pages
    beside it; a folder alone holds the store; neither: the run folder ``default``."""
    if store is not None:
        return store, out if out is not None else store.parent
    out = out if out is not None else default
    return out / STORE_NAME, out


def finish(command: str, settings: Any, render_pages: bool) -> None:
    """After a command that writes a run folder: every page of the folder, rendered from its
    store where ``render_pages`` (a store the command left as it was keeps the pages its last
    render made); then what the command was asked, answered in the terminal: a stage's
    figures, or, after ``all``, this machine against the published run of its preset and
    device."""
    if not settings.store.is_file():
        return
    store = Store(settings.store, create=False)
    written = render(store, settings.out) if render_pages else []
    if command in ANSWERS:
        models = getattr(settings, "models", None)
        chosen = select_models(models) if models else None
        print(answer(command, store, settings, chosen, settings.out))
    elif command == "all" and (against := against_published(store, settings.out)):
        print(against)
    store.close()
    done = f"{plural(len(written), 'file')} rendered" if written else "nothing new to render"
    print(f"{done} in {settings.out}; index: {settings.out / 'index.md'}")


def against_published(store: Store, out: Path) -> str | None:
    """This run beside the published run of its preset and machine (``reports/`` holds a folder
    of its name), if there is one and it is another folder: a summary of the changes beyond
    the noise, and the path of the full comparison, written into ``out``."""
    published = REPORTS / out.name
    if not (published / STORE_NAME).is_file() or published.resolve() == out.resolve():
        return None
    reference = Store(published / STORE_NAME, create=False)
    frame = differences(reference, store)
    reference.close()
    full_table, lines = table(frame)[0], summary(frame)
    full = out / "against-published.md"
    atomic_write(
        full,
        f"# {out} against the published run {published}\n\nA: the published "
        f"run; B: this one. `python -m bench compare {published} {out} --table` "
        f"prints it again.\n\n{full_table}\n",
    )
    return (
        f"this machine against the published run {published} (A: published, B: this "
        f"run):\n{lines}\nevery metric: {full}"
    )


def render(store: Store, out: Path) -> list[Path]:
    """Every page and plot of the run whose store is ``store``, into ``out``; the index of runs
    too when ``out`` is a published run folder of reports/."""
    preset = preset_of(store)
    written = write_profile(store, out / "profile") + write_speed(store, out / "speed")
    written += write_onnx(store, out / "onnx") + write_pipeline(store, out / "pipeline")
    written += write_train(store, out / "train") + write_tradeoffs(store, out)
    written += write_exercises(store, out) + write_plots(store, out / "plots", preset)
    written += write_memory(store, out) + write_peers(store, out) + write_history(store, out)
    written += write_findings(store, out)
    written += write_index(store, out, preset)
    if out.resolve().parent == REPORTS.resolve() and not out.name.startswith(UNLISTED + "-"):
        written += write_runs_index(REPORTS)
    pages = [path for path in written if path.suffix == ".md"]
    return written + [write_twin(p) for p in pages if p.with_suffix(".html") not in written]


def _run_summary(path: Path) -> dict[str, Any]:
    """One line of the index of runs, read from the run folder's store."""
    store = Store(path / STORE_NAME, create=False)
    rows, runs, preset = store.rows(), store.rows("run"), preset_of(store)
    store.close()
    dates = sorted(r["provenance"]["date"][:10] for r in rows) or ["-"]
    machines = {
        r["provenance"]["device"] if r["provenance"]["device"] != "cpu" else cpu_of(r["provenance"])
        for r in rows
    }
    commits = list(dict.fromkeys((r["provenance"]["git_sha"] or "?")[:8] for r in rows))
    dirty = any(r["provenance"]["git_dirty"] for r in rows)
    wall = sum(r["wall_s"] for r in runs)
    return {
        "run": f"[{path.name}]({path.name}/index.md)",
        "preset": preset or "- (stage commands)",
        "device": ", ".join(sorted(machines)) or "-",
        "dates": dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}",
        "commits": ", ".join(commits) + (" (with uncommitted changes)" if dirty else ""),
        "wall": f"{wall / 60:.0f} min over {plural(len(runs), 'run')} of `all`" if runs else "-",
        "rows": f"{len(rows):,}",
    }


RUN_COLUMNS = [
    (column, header, fmt_text)
    for column, header in [
        ("run", "run folder"),
        ("preset", "preset"),
        ("device", "device"),
        ("dates", "measured"),
        ("commits", "git commits"),
        ("wall", "wall time of `python -m bench all`"),
        ("rows", "stored rows"),
    ]
]


def _results(path: Path, link: str) -> dict[str, Any]:
    """One line of the results table: what a run folder's store holds, and its best accuracy."""
    store = Store(path / STORE_NAME, create=False)
    rows = [r for r in store.rows() if r["status"] == "ok"]
    store.close()
    trained = [r for r in rows if r["stage"] == "train"]
    best = max(trained, key=lambda r: r["test_acc"], default=None)
    devices = {
        r["provenance"]["device"] if r["provenance"]["device"] != "cpu" else cpu_of(r["provenance"])
        for r in rows
    }
    return {
        "run": f"[{path.name}]({link}{path.name}/index.md)",
        "device": ", ".join(sorted(devices)) or "-",
        "profiled": sum(r["stage"] == "profile" for r in rows),
        "timed": sum(r["stage"] in ("speed", "onnx") for r in rows),
        "trained": len(trained),
        "best": "-"
        if best is None
        else f"{best['test_acc']:.1%} ({best['model']}, {best['preset']} preset)",
        "fast": recipe_median(trained, FAST_RUN),
    }


RESULT_COLUMNS = [
    ("run", "run folder", fmt_text),
    ("device", "device", fmt_text),
    ("profiled", "networks counted", fmt_int),
    ("timed", "speed and onnx points", fmt_int),
    ("trained", "training runs", fmt_int),
    ("best", "best test accuracy", fmt_text),
    ("fast", "the fast recipe (`nox -s fast`): test accuracy in wall clock", fmt_text),
]


def published(root: Path) -> list[Path]:
    """The published run folders of ``root`` (smoke runs aside)."""
    return sorted(
        p
        for p in root.iterdir()
        if (p / STORE_NAME).is_file() and not p.name.startswith(UNLISTED + "-")
    )


def results_table(root: Path, link: str = "") -> str:
    """The published runs of ``root`` in a few figures each, every link prefixed by ``link``
    (the README's table: ``reports/``)."""
    lines = [_results(p, link) for p in published(root)]
    return markdown(pd.DataFrame(lines, columns=[c for c, _, _ in RESULT_COLUMNS]), RESULT_COLUMNS)


RESULTS_BLOCK = re.compile(r"(<!-- results:start -->\n).*?(\n<!-- results:end -->)", re.S)


def write_readme_results(root: Path) -> None:
    """The results table of the README beside ``root`` (between its results markers), rendered
    from the published stores like the index of runs; nothing where there is no such README."""
    readme = root.parent / "README.md"
    if not readme.is_file() or not RESULTS_BLOCK.search(text := readme.read_text()):
        return
    table = results_table(root, f"{root.name}/")
    updated = RESULTS_BLOCK.sub(lambda m: m.group(1) + table + m.group(2), text)
    if updated != text:
        atomic_write(readme, updated)


def write_runs_index(root: Path) -> list[Path]:
    """``root``/index.md and index.html: every published run folder, one row each; and the
    README's results table."""
    folders = published(root)
    table = pd.DataFrame([_run_summary(p) for p in folders], columns=[c for c, _, _ in RUN_COLUMNS])
    intro = (
        "The published runs: each folder keeps its results store (`results.sqlite`), pages "
        "and plots, `<preset>-<device>/` (a CPU's device with its vector instructions); "
        "`python -m bench render reports/<folder>` renders a folder's pages again from its "
        "store alone, and its `history.md` says how it was made."
    )
    written = root / "index.md"
    atomic_write(
        written,
        f"# cnnbench: the runs\n\n{intro}\n\n{markdown(table, RUN_COLUMNS)}\n"
        f"\n## What each holds\n\n{results_table(root)}\n",
    )
    write_readme_results(root)
    return [written, write_twin(written)]
