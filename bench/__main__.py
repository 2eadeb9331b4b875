"""``python -m bench <stage>``: measure registry networks into a run's results store, then render.

Stages: all (every stage below in order, then every page of the run folder); profile
(parameters, MACs/FLOPs, activation memory); blocks (chapter 7's single layers); speed
(throughput, latency and peak memory across batch sizes); onnx (export, parity, onnxruntime
against PyTorch); train (Fashion-MNIST); pipeline (input pipelines against compute alone).
render re-renders a run folder from its store; compare prints the differences of two runs.

A run keeps its store, pages and plots in reports/<preset>-<device>/ unless --store or --out
say otherwise. Bad input gets one line on stderr and exit code 2; a network that fails is
recorded with its status and the others go on; one run at a time uses a store.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import archs
from bench import runs
from bench.compare import METRICS
from bench.console import Progress, plural
from bench.store import Store, StoreError, provenance
from bench.train import BOOK_MODELS, EXPERIMENTS


class UsageError(Exception):
    """Input the command cannot act on; reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage plus message
        raise UsageError(message)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _device(args: argparse.Namespace) -> Any:
    """The torch device ``--device`` names; one that is not there is a usage error."""
    from bench.timing import resolve_device

    try:
        return resolve_device(getattr(args, "device", "auto"))
    except ValueError as error:
        raise UsageError(str(error)) from None


def select_models(patterns: str) -> list[str]:
    """Registry names matching any of the comma-separated shell-style ``patterns``, in book
    order; a pattern that matches nothing is an error (a plain name gets close-match hints)."""
    chosen = set()
    for pattern in patterns.split(","):
        names = archs.list_models(pattern)
        if not names and not any(c in pattern for c in "*?["):
            try:
                archs.spec(pattern)
            except KeyError as error:
                raise UsageError(error.args[0]) from None
        if not names:
            raise UsageError(f"no model matches {pattern!r}; python -m archs lists them")
        chosen.update(names)
    return [name for name in archs.list_models() if name in chosen]


def run_profile(args: argparse.Namespace) -> int:
    """Profile every selected network not yet in the store, then write the tables."""
    from bench.complexity import profile_job
    from bench.isolation import exit_on_interrupt
    from bench.render.stages import write_profile

    names = select_models(args.models)
    if args.image_size is not None:
        too_small = [
            f"{n} ({archs.spec(n).min_input_size})"
            for n in names
            if archs.spec(n).min_input_size > args.image_size
        ]
        if too_small:
            raise UsageError(
                f"image size {args.image_size} is below the smallest input of "
                + ", ".join(too_small)
            )
    keys = [
        (name, {
            "image_size": args.image_size or archs.spec(name).input_size,
            "in_channels": args.in_channels,
            "batch_size": args.batch_size,
        })
        for name in names
    ]  # fmt: skip
    store = Store(args.store)
    todo = [(n, c) for n, c in keys if args.force or not store.has("profile", n, c)]
    print(f"profile: {plural(len(todo), 'network')} to measure, {len(keys) - len(todo)} already "
          f"in {args.store}")  # fmt: skip
    start, failures = time.perf_counter(), 0
    workers = min(args.workers, max(len(todo), 1))
    spawn = multiprocessing.get_context("spawn")  # a forked child can deadlock on OpenMP state
    with (
        ProcessPoolExecutor(workers, spawn, exit_on_interrupt) as pool,
        Progress("profile", len(todo)) as progress,
    ):
        jobs = {pool.submit(profile_job, n, c): (n, c) for n, c in todo}
        for job in as_completed(jobs):
            name, config = jobs[job]
            try:
                summary, layers, ops = job.result()
            except Exception as error:  # recorded, and the other networks go on
                failures += 1
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                store.put("profile", name, config, {"error": message}, status="error")
                progress.item(f"{name}: error: {message}")
                continue
            store.put("profile", name, config, summary, details={"layers": layers, "ops": ops})
            agree = "counters agree" if summary["counters_agree"] else "COUNTERS DISAGREE"
            if summary["fvcore_fwd_macs_per_image"] is None:
                agree += " (fvcore not installed)"
            progress.item(f"{name}: {summary['fwd_macs_per_image'] / 1e6:,.1f} M MACs/image "
                          f"forward, {agree}")  # fmt: skip
    elapsed = time.perf_counter() - start
    written = write_profile(store, args.out / "profile")
    store.close()
    print(f"profiled {plural(len(todo), 'network')} in {elapsed:.1f} s with "
          f"{plural(workers, 'worker')}; {plural(len(written), 'file')} in "
          f"{args.out / 'profile'}")  # fmt: skip
    return 1 if failures else 0


# A sweep's outcome that a rerun keeps; errors and timeouts are measured again.
FINAL = ("ok", "oom", "skipped", "n/a")


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text}")
    return sorted(set(sizes))


def _modes(text: str) -> list[str]:
    from bench.timing import MODES

    modes = text.split(",")
    if not set(modes) <= set(MODES):
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}; got {text!r}")
    return modes


def run_speed(args: argparse.Namespace) -> int:
    """Time every selected network across batch sizes, one child process per (model, mode)."""
    from bench.render.stages import write_speed
    from bench.timing import backend_for, iter_speed, measured_bandwidth, peak_flops

    names = select_models(args.models)
    device = _device(args)
    backend = backend_for(device)
    peak = peak_flops(device, args.precision, backend.name)
    bandwidth = measured_bandwidth(device)
    print(
        f"speed: {backend.name}; peak {peak[0] / 1e9:,.0f} GFLOP/s ({peak[1]}), memory "
        f"{bandwidth / 1e9:,.1f} GB/s; each point capped at {args.time_cap:g} s of timed steps"
    )
    store, failures = Store(args.store), 0
    # the roofline's roof: one row per device and precision, replaced by each run
    store.put("machine", backend.name, {"precision": args.precision}, {
        "peak_flops_per_s": peak[0], "peak_source": peak[1], "bandwidth_bytes_per_s": bandwidth,
        "bandwidth_source": "measured: 256 MiB copy, best of runs"})  # fmt: skip

    def config(batch: int, mode: str, size: int) -> dict[str, Any]:
        return {
            "mode": mode, "batch_size": batch, "device": backend.name,
            "precision": args.precision, "channels_last": args.channels_last,
            "compile": args.compile, "image_size": size, "in_channels": args.in_channels,
            "time_cap_s": args.time_cap, "max_step_s": args.max_step,
        }  # fmt: skip

    sweeps = []  # (network, mode, input size, batch sizes not yet in the store)
    for name in names:
        size = args.image_size or archs.spec(name).input_size
        for mode in args.mode:
            todo = [b for b in args.batch_sizes
                    if not store.has("speed", name, config(b, mode, size), FINAL)]  # fmt: skip
            if todo:
                sweeps.append((name, mode, size, todo))
    failure = ("skipped", "torch.compile cannot run here: ") if args.compile else ("error", "")
    with Progress("speed", sum(len(todo) for *_, todo in sweeps)) as progress:
        for name, mode, size, todo in sweeps:
            job = dict(
                model_or_name=name, batch_sizes=tuple(todo), modes=(mode,), device=args.device,
                precision=args.precision, channels_last=args.channels_last, compile=args.compile,
                input_size=size, in_channels=args.in_channels, time_cap_s=args.time_cap,
                max_step_s=args.max_step, peak=peak,
            )  # fmt: skip
            keys = functools.partial(config, mode=mode, size=size)
            for batch, status, text in _run_child(
                iter_speed, job, args.timeout, store, "speed", keys, failure
            ):
                failures += status in ("error", "timeout")
                progress.item(f"{name} {mode} batch {batch}: {status} {text}")
    written = write_speed(store, args.out / "speed")
    store.close()
    print(f"{plural(len(written), 'file')} in {args.out / 'speed'}")
    return 1 if failures else 0


def _run_child(
    produce: Callable[..., Iterator[dict]],
    job: dict[str, Any],
    timeout: float,
    store: Any,
    stage: str,
    config: Callable[[int], dict],
    failure: tuple[str, str] = ("error", ""),
) -> Iterator[tuple[int, str, str]]:
    """Run one network's batch-size sweep (``produce(**job)``) in a child; store each row as it
    arrives; give every batch size the child did not report a row saying why (``failure``:
    status and note prefix for an exception in the child)."""
    from bench.isolation import Row, ending, run_isolated, stream_rows

    name, pending = job["model_or_name"], list(job["batch_sizes"])
    for message in run_isolated(stream_rows, (produce, job), timeout):
        if isinstance(message, Row):
            row = message.value
            pending.remove(row["batch_size"])
            store.put(stage, name, config(row["batch_size"]), row, status=row["status"])
            shown = f"{row['images_per_s']:,.1f} images/s" if row["status"] == "ok" else row["note"]
            yield row["batch_size"], row["status"], shown
            continue
        status, note = ending(message, *failure)
        for batch in pending:
            row = {"model": name, "batch_size": batch, "note": note}
            store.put(stage, name, config(batch), row, status=status)
            yield batch, status, note
        return


def run_onnx(args: argparse.Namespace) -> int:
    """Export, check and time every selected network under onnxruntime, one child each."""
    from bench.onnx_runtime import iter_onnx
    from bench.render.stages import write_onnx
    from bench.timing import backend_for

    names = select_models(args.models)
    device = backend_for(_device(args)).name
    store, failures = Store(args.store), 0

    def config(batch: int, size: int) -> dict[str, Any]:
        return {"batch_size": batch, "image_size": size, "in_channels": args.in_channels,
                "device": device, "time_cap_s": args.time_cap,
                "max_step_s": args.max_step}  # fmt: skip

    exports = []  # (network, input size, batch sizes not yet in the store)
    for name in names:
        size = args.image_size or archs.spec(name).input_size
        todo = [b for b in args.batch_sizes if not store.has("onnx", name, config(b, size), FINAL)]
        if todo:
            exports.append((name, size, todo))
    with Progress("onnx", sum(len(todo) for *_, todo in exports)) as progress:
        for name, size, todo in exports:
            job = dict(
                model_or_name=name, batch_sizes=tuple(todo), device=args.device, input_size=size,
                in_channels=args.in_channels, time_cap_s=args.time_cap, max_step_s=args.max_step,
                onnx_dir=args.out / "onnx",
            )  # fmt: skip
            keys = functools.partial(config, size=size)
            for batch, status, text in _run_child(
                iter_onnx, job, args.timeout, store, "onnx", keys
            ):
                failures += status in ("error", "timeout")
                progress.item(f"{name} onnxruntime batch {batch}: {status} {text}")
    written = write_onnx(store, args.out / "onnx")
    store.close()
    print(f"{plural(len(written), 'file')} in {args.out / 'onnx'}")
    return 1 if failures else 0


def _load_data(data_dir: Path | None) -> Any:
    from bench.data import DataNotFoundError, load

    try:
        return load(data_dir)
    except DataNotFoundError as error:
        raise UsageError(str(error)) from None


def run_train(args: argparse.Namespace) -> int:
    """Train the runs of the chosen experiments, each in a child process, into the store."""
    from bench.isolation import Row, ending, run_isolated, stream_rows
    from bench.render.format import budget_text
    from bench.render.training import write_train
    from bench.store import config_hash
    from bench.timing import backend_for
    from bench.train import EXPERIMENTS, PRESETS, config, train_rows

    device = _device(args)
    name = _preset(args)
    preset = PRESETS[name]
    selected = set(select_models(args.models))
    runs = [r for e in args.experiment for r in EXPERIMENTS[e] if r.model in selected]
    if not runs:
        raise UsageError(f"no run of {', '.join(args.experiment)} trains {args.models!r}")
    skipped = sorted({r.model for r in runs if not preset.trains(r.model)})
    if skipped:
        print(f"train: the {name} preset does not train {', '.join(skipped)} (the book "
              "preset does)")  # fmt: skip
    runs = [r for r in runs if preset.trains(r.model)]
    _load_data(args.data_dir)  # fail fast, in one line, if the data is missing
    device_name = backend_for(device).name
    store, failures = Store(args.store), 0
    keys = [(run, {**config(run, preset, args.pipeline), "device": device_name}) for run in runs]
    keys = list({config_hash(k): (r, k) for r, k in keys}.values())  # experiments may share runs
    todo = [(r, k) for r, k in keys if not store.has("train", r.model, k, ("ok", "diverged"))]
    print(f"train: {plural(len(todo), 'run')} to train ({len(keys) - len(todo)} already in "
          f"{args.store}), preset {name}, on {device_name}")  # fmt: skip
    with Progress("train", len(todo)) as progress:
        for run, key in todo:
            checkpoint = args.out / "checkpoints" / f"{config_hash(key)}.pt"
            job = dict(run=run, preset=preset, data_dir=args.data_dir, device=str(device),
                       checkpoint=checkpoint, pipeline=args.pipeline)  # fmt: skip
            status, note = "error", "the child process ended without a result"
            for message in run_isolated(stream_rows, (train_rows, job), args.timeout):
                if not isinstance(message, Row):
                    status, note = ending(message)
                    continue
                result = message.value
                summary = {**result["summary"], "profile": name, "pipeline": args.pipeline}
                store.put("train", run.model, key, summary, status=summary["status"],
                          details={"history": result["history"]})  # fmt: skip
                status, note = summary["status"], f"test accuracy {summary['test_acc']:.3f}"
            if status in ("error", "timeout"):
                failures += 1
                store.put("train", run.model, key, {**run.settings(), "note": note}, status=status)
            settings, length = preset.adapt(run)[0].settings(), budget_text({"config": key})
            progress.item(f"{run.model}, lr {settings['lr']}, batch {settings['batch_size']}, "
                          f"{settings['resize'] or 28} px, {length}, techniques "
                          f"{settings['tricks']}, seed {run.seed}: {status}, {note}")  # fmt: skip
    for line in seed_medians(store, [r for r, _ in keys], preset, args.pipeline, device_name):
        print(line)
    written = write_train(store, args.out / "train")
    store.close()
    print(f"{plural(len(written), 'file')} in {args.out / 'train'}")
    return 1 if failures else 0


def seed_medians(store: Any, runs: list, preset: Any, pipeline: str, device: str) -> list[str]:
    """For runs that differ only by seed: the median test accuracy and wall clock over seeds."""
    import dataclasses
    import statistics

    from bench.train import config

    seeds: dict[Any, list[dict]] = {}
    for run in runs:
        row = store.get("train", run.model, {**config(run, preset, pipeline), "device": device})
        if row is not None and row["status"] in ("ok", "diverged"):
            seeds.setdefault(dataclasses.replace(run, seed=0), []).append(row)
    return [
        f"{run.model}, techniques {run.tricks.names()}: median of {len(rows)} seeds: test "
        f"accuracy {statistics.median(r['test_acc'] for r in rows):.2%} "
        f"({', '.join(format(r['test_acc'], '.2%') for r in rows)}), wall clock "
        f"{statistics.median(r['wall_s'] for r in rows):.0f} s (training and evaluation)"
        for run, rows in seeds.items()
        if len(rows) > 1
    ]


def run_pipeline(args: argparse.Namespace) -> int:
    """Training throughput of our pipeline, the book's, and compute alone, side by side."""
    from bench.render.stages import write_pipeline
    from bench.timing import backend_for
    from bench.train import FEEDS, PIPELINE_CASES, feed_throughputs

    device = _device(args)
    data = _load_data(args.data_dir)
    device_name, store = backend_for(device).name, Store(args.store)
    cases = [(m, r) for m, r in PIPELINE_CASES if m in select_models(args.models)]
    if not cases:
        raise UsageError(f"the pipeline cases are {', '.join(m for m, _ in PIPELINE_CASES)}")
    keys = [(m, r, {"resize": r, "device": device_name, "seconds": args.seconds}) for m, r in cases]
    todo = [(m, r, key) for m, r, key in keys
            if not all(store.has("pipeline", m, {**key, "feed": f}) for f in FEEDS)]  # fmt: skip
    with Progress("pipeline", len(todo) * len(FEEDS)) as progress:
        for model, resize, key in todo:
            for row in feed_throughputs(model, resize, data, device, args.seconds):
                store.put("pipeline", model, {**key, "feed": row["feed"]}, row)
                progress.item(f"{model} at {resize or 28} px, {row['feed']}: "
                              f"{row['images_per_s']:,.0f} images/s")  # fmt: skip
    written = write_pipeline(store, args.out / "pipeline")
    store.close()
    print(f"{plural(len(written), 'file')} in {args.out / 'pipeline'}")
    return 0


def run_blocks(args: argparse.Namespace) -> int:
    """Chapter 7's single-layer exercises: formula, counted and timed, into the store."""
    from bench.blocks import cases

    store = Store(args.store)
    todo = [c for c in cases(args.time_cap) if not store.has("blocks", c[0], c[1])]
    with Progress("blocks", len(todo)) as progress:
        for exercise, config, measure in todo:
            store.put("blocks", exercise, config, measure())
            progress.item(f"{exercise} {config['case']}: stored")
    store.close()
    return 0


def _store_of(path: Path) -> Store:
    """The store of a run folder (its results.sqlite) or a store file, opened to read."""
    return Store(path / runs.STORE_NAME if path.is_dir() else path, create=False)


def run_compare(args: argparse.Namespace) -> int:
    """Per-metric differences between two stores; changes beyond the measured noise flagged."""
    from bench.compare import compare

    table, flagged = compare(_store_of(args.a), _store_of(args.b), args.stage, args.threshold)
    print(table)
    print(f"{plural(flagged, 'change')} beyond the noise" if flagged else
          "no change beyond the noise")  # fmt: skip
    return 0


def run_render(args: argparse.Namespace) -> int:
    """Every page of a run folder, again, from its store alone."""
    store = _store_of(args.out)
    written = runs.render(store, args.out)
    store.close()
    print(f"{plural(len(written), 'file')} rendered from {args.store}")
    return 0


BOOK_NETWORKS = ",".join(BOOK_MODELS)
# What `python -m bench all` runs under each preset: every stage, in order, with its flags.
RUN_PRESETS: dict[str, dict[str, list[str]]] = {
    "smoke": {  # every stage end to end on the LeNets, in about a minute
        "profile": ["--models", "lenet,bn_lenet"],
        "blocks": ["--time-cap", "0.02"],
        "speed": ["--models", "lenet", "--batch-sizes", "1,8", "--time-cap", "0.05"],
        "onnx": ["--models", "lenet", "--batch-sizes", "1,8", "--time-cap", "0.05"],
        "pipeline": ["--models", "lenet", "--seconds", "0.3"],
        "train": ["--models", "lenet,bn_lenet", "--preset", "smoke"],
    },
    "cpu": {  # the book's networks on a CPU, on fixed work
        "profile": [],
        "blocks": [],
        "speed": ["--models", BOOK_NETWORKS, "--batch-sizes", "1,16,128", "--time-cap", "0.5",
                  "--max-step", "1"],
        "onnx": ["--models", BOOK_NETWORKS, "--batch-sizes", "1,32", "--time-cap", "0.5",
                 "--max-step", "1"],
        "pipeline": ["--seconds", "2"],
        "train": ["--preset", "cpu", "--experiment", "book", "lr_grid", "batch_sweep",
                  "vgg_sizes", "lenet_variants", "networks_28", "variants"],
    },
    "book": {  # a GPU: the chapter's recipes
        "profile": [],
        "blocks": [],
        "speed": [],
        "onnx": [],
        "pipeline": [],
        "train": ["--preset", "book", "--experiment", *EXPERIMENTS],
    },
}  # fmt: skip


def run_all(args: argparse.Namespace) -> int:
    """Every stage in order under one preset, then every page; a stage that fails is recorded
    and the next one runs."""
    preset = _preset(args)
    _load_data(args.data_dir)  # before anything runs: the data is there, or one line says how
    parser, worst, outcomes = build_parser(), 0, {}
    started, began = time.perf_counter(), provenance()["date"]
    try:
        for stage, flags in RUN_PRESETS[preset].items():
            argv = [stage, *flags, "--store", str(args.store), "--out", str(args.out)]
            if args.models is not None and stage != "blocks":
                argv += ["--models", args.models]
            if stage not in ("profile", "blocks"):
                argv += ["--device", args.device]
            if stage in ("train", "pipeline") and args.data_dir is not None:
                argv += ["--data-dir", str(args.data_dir)]
            print(f"== {stage} ({preset} preset) ==", flush=True)
            stage_args = parser.parse_args(argv)
            try:
                code = stage_args.run(stage_args)
                outcomes[stage] = "ok" if code == 0 else "some items failed (recorded)"
                worst = max(worst, code)
            except UsageError as error:  # e.g. no network of this stage matches --models
                outcomes[stage] = f"skipped: {error}"
                print(f"{stage} skipped: {error}", flush=True)
            except StoreError:
                raise  # the store itself is unusable: nothing after this can be kept
            except Exception as error:  # one stage's bug must not cost the others
                message = f"{type(error).__name__}: {error}".splitlines()[0]
                outcomes[stage], worst = f"failed: {message}", 1
                print(f"{stage} failed: {message}; the next stage runs", flush=True)
    finally:  # an interrupted run is recorded too, with the stages it finished
        store = Store(args.store)
        store.put("run", preset, {"started": began}, {
            "preset": preset, "models": args.models,
            "wall_s": time.perf_counter() - started, "stages": outcomes})  # fmt: skip
    written = runs.render(store, args.out)
    store.close()
    print(
        f"all stages in {time.perf_counter() - started:.0f} s; "
        f"{plural(len(written), 'file')} in {args.out}; index: {args.out / 'index.md'}"
    )
    return worst


def _preset_options(parser: argparse.ArgumentParser, text: str) -> None:
    """--preset, and --profile, its old name."""
    parser.add_argument("--preset", choices=list(RUN_PRESETS), help=text)
    parser.add_argument("--profile", choices=list(RUN_PRESETS), dest="preset", action=_Renamed,
                        help="deprecated: --preset")  # fmt: skip


def _preset(args: argparse.Namespace) -> str:
    """The preset asked for, else the device's: book with a GPU, cpu without."""
    return getattr(args, "preset", None) or runs.default_preset(_device(args))


class _Renamed(argparse.Action):
    """An option's old name: still accepted, with a one-line warning naming the new one."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"python -m bench: {option_string} is deprecated, use --preset", file=sys.stderr)
        setattr(namespace, self.dest, values)


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help; the description and examples kept as written."""


EXAMPLES = """examples:
  python -m bench all --preset cpu                  # every stage, then reports/cpu-<device>/
  python -m bench speed --models 'resnet*' --batch-sizes 1,32
  python -m bench compare reports/cpu-amd-epyc reports/book-nvidia-h100-80gb"""

# Options that several stages take: name -> (flag, argparse settings).
SHARED: dict[str, tuple[str, dict[str, Any]]] = {
    "models": ("--models", dict(default="*", help="shell-style patterns, comma-separated")),
    "device": ("--device", dict(default="auto", choices=["auto", "cpu", "cuda"],
                                help="auto: the GPU if there is one")),
    "batch_sizes": ("--batch-sizes", dict(type=_batch_sizes, default="1,8,32,128,512",
                                          help="comma-separated")),
    "image_size": ("--image-size", dict(type=_positive, help="None: the book's size")),
    "in_channels": ("--in-channels", dict(type=_positive, default=1, help="input channels")),
    "time_cap": ("--time-cap", dict(type=_seconds, default=2.0,
                                    help="seconds of timed steps per point")),
    "max_step": ("--max-step", dict(type=_seconds, default=60.0, help="batch sizes whose one "
                                    "step would take longer (extrapolated) are skipped")),
    "data_dir": ("--data-dir", dict(type=Path, help="None: $FASHION_MNIST_DIR, then Debian's")),
    "store": ("--store", dict(type=Path, help="results store; None: results.sqlite in --out")),
    "out": ("--out", dict(type=Path, help="pages folder; None: beside --store, else "
                                          "reports/<preset>-<device>/")),
}  # fmt: skip


def _add(parser: argparse.ArgumentParser, options: list[str]) -> None:
    for option in options:
        flag, settings = SHARED[option]
        parser.add_argument(flag, **settings)


def _stage(stages: Any, name: str, help: str, run: Callable, shared: list[str]) -> Any:
    parser = stages.add_parser(name, help=help, description=help, formatter_class=_Help)
    _add(parser, [*shared, "store", "out"])
    parser.set_defaults(run=run)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__, epilog=EXAMPLES,
                     formatter_class=_Help)  # fmt: skip
    stages = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    profile = _stage(stages, "profile", "parameters, MACs/FLOPs and memory, counted", run_profile,
                     ["models", "image_size", "in_channels"])  # fmt: skip
    profile.add_argument("--batch-size", type=_positive, default=128, help="images per batch")
    profile.add_argument("--workers", type=_positive, default=os.cpu_count() or 1,
                         help="networks counted at once")  # fmt: skip
    profile.add_argument("--force", action="store_true", help="measure again what is stored")

    timed = ["models", "device", "batch_sizes", "image_size", "in_channels", "time_cap",
             "max_step"]  # fmt: skip
    speed = _stage(stages, "speed", "throughput, latency and memory across batch sizes",
                   run_speed, timed)  # fmt: skip
    speed.add_argument("--mode", type=_modes, default="infer,train", help="comma-separated")
    speed.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                       help="autocast precision")  # fmt: skip
    speed.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    speed.add_argument("--compile", action="store_true", help="time torch.compile's model")
    speed.add_argument("--timeout", type=_seconds, default=600, help="seconds per (model, mode)")

    onnx = _stage(stages, "onnx", "ONNX export, parity and onnxruntime throughput", run_onnx,
                  timed)  # fmt: skip
    onnx.add_argument("--timeout", type=_seconds, default=600, help="seconds per model")

    train = _stage(stages, "train", "Fashion-MNIST training: the book's recipes under a preset",
                   run_train, ["models", "device", "data_dir"])  # fmt: skip
    train.add_argument("--experiment", nargs="+", default=["book"], choices=list(EXPERIMENTS),
                       help="named groups of runs (bench/train.py)")  # fmt: skip
    _preset_options(train, "what each run trains on; None: book with a GPU, cpu without")
    train.add_argument(
        "--pipeline",
        default="ours",
        choices=["ours", "torchvision"],
        help="ours: batches on the device; torchvision: the book's DataLoader",
    )
    train.add_argument("--timeout", type=_seconds, default=4 * 3600, help="seconds per run")

    pipeline = _stage(stages, "pipeline", "input pipelines against compute alone", run_pipeline,
                      ["models", "device", "data_dir"])  # fmt: skip
    pipeline.add_argument("--seconds", type=_seconds, default=5.0, help="per network and feed")

    blocks = _stage(stages, "blocks", "chapter 7's single layers: formula, counted, timed",
                    run_blocks, [])  # fmt: skip
    blocks.add_argument("--time-cap", type=_seconds, default=0.3, help="seconds per timing")

    help = "per-metric differences between two runs"
    compare = stages.add_parser("compare", help=help, description=help, formatter_class=_Help)
    compare.add_argument("a", type=Path, help="run folder or results store (the baseline)")
    compare.add_argument("b", type=Path, help="run folder or results store compared with it")
    compare.add_argument("--stage", choices=list(METRICS), help="only this stage's rows")
    compare.add_argument("--threshold", type=float, default=3.0,
                         help="flag changes beyond this many times their noise")  # fmt: skip
    compare.set_defaults(run=run_compare)

    help = "every page of a run folder, again, from its store alone"
    render = stages.add_parser("render", help=help, description=help, formatter_class=_Help)
    render.add_argument(
        "out", type=Path, metavar="run", help="run folder, e.g. reports/cpu-amd-epyc"
    )
    render.set_defaults(run=run_render)

    help = "every stage in order, then every page of the run folder"
    every = stages.add_parser("all", help=help, description=help, formatter_class=_Help)
    _preset_options(every, "None: book with a GPU, cpu without")
    every.add_argument("--models", help="shell-style patterns, comma-separated; None: the "
                                        "preset's choice for each stage")  # fmt: skip
    _add(every, ["device", "data_dir", "store", "out"])
    every.set_defaults(run=run_all)
    return parser


def _paths(args: argparse.Namespace) -> None:
    """Fill in where the command reads and writes: --store and --out, or the run folder."""
    if args.command == "compare":
        return
    if args.command == "render":
        args.store = args.out / runs.STORE_NAME
        if not args.store.is_file():
            raise UsageError(f"{args.out} holds no {runs.STORE_NAME}: not a run folder")
        return
    default = None
    if args.store is None and args.out is None:
        from bench.timing import backend_for

        default = runs.folder(_preset(args), backend_for(_device(args)).name)
    args.store, args.out = runs.locate(args.store, args.out, default)


@contextlib.contextmanager
def _only_run_on(store: Path) -> Iterator[None]:
    """Hold the store's lock file for the whole run; a second run on it fails at once. The lock
    file is removed at the end, however the run ends (but for kill -9)."""
    lock_path = store.with_name(store.name + ".lock")
    store.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            lock = open(lock_path, "a+")  # noqa: SIM115 (held until the run ends)
        except OSError as error:
            raise UsageError(f"cannot create the lock file {lock_path}: {error.strerror}; "
                             "pass a --store in a writable folder") from None  # fmt: skip
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise UsageError(
                f"another run is using {store} (pid {holder}); wait for it to end"
            ) from None
        # the file may have been removed by the run that held it before: lock the current one
        if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
            break
        lock.close()
    try:
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        lock.close()


def _kept(store: Path | None) -> str:
    """What an interrupted run leaves: the rows in its store."""
    try:
        count = len(Store(store, create=False).rows())
    except (StoreError, TypeError):
        return "nothing was stored"
    return f"{plural(count, 'row')} stored in {store} {'is' if count == 1 else 'are'} kept"


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        _paths(args)
        if args.command == "compare":  # reads only: no lock
            return args.run(args)
        with _only_run_on(args.store):
            return args.run(args)
    except (UsageError, StoreError, OSError) as error:
        print(f"python -m bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"python -m bench: interrupted; {_kept(getattr(args, 'store', None))}; the same "
              "command measures the rest", file=sys.stderr)  # fmt: skip
        return 130


if __name__ == "__main__":
    sys.exit(main())
