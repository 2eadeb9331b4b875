"""What the commands share: typed settings whose fields are their command-line options, the
options several stages take, and the checks that turn bad input into one line."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import archs
from bench.console import Progress
from bench.data import DataNotFoundError, load
from bench.device import resolve_device
from bench.executors import Local, Ray, images_per_s, sweep_into
from bench.schema import FAILED, Status
from bench.store import STORE_NAME
from bench.timing import MIN_TIMED_STEPS


class UsageError(Exception):
    """Input the command cannot act on; reported in one line with exit code 2."""


@dataclass(frozen=True)
class Command:
    """A ``python -m bench`` command: its settings (a dataclass whose fields are its options)
    and what runs them; ``locks``: it writes a run's store, one run at a time."""

    name: str
    help: str
    settings: type
    run: Callable[[Any], int]
    locks: bool = True


def option(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: Any = None,
    many: bool = False,
    positional: bool = False,
) -> Any:
    """A settings field and the command-line option that sets it: ``--field-name``, or a
    positional argument; ``parse`` reads its text, ``many`` takes several values, a False
    default makes a switch."""
    metadata = dict(help=help, parse=parse, choices=choices, many=many, positional=positional)
    return field(default=default, metadata=metadata)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive, got {text}")
    return tuple(sorted(set(sizes)))


# Options several stages take.
def models_option(default: str | None = "*") -> Any:
    return option(default, "shell-style patterns, comma-separated")


def device_option() -> Any:
    return option("auto", "auto: the GPU if there is one", choices=("auto", "cpu", "cuda"))


def batch_sizes_option() -> Any:
    return option((1, 8, 32, 128, 512), "comma-separated", parse=batch_sizes)


def image_size_option() -> Any:
    return option(None, "None: the book's size", parse=positive)


def in_channels_option() -> Any:
    return option(
        None, "input channels; None: the network's own (1; 3 for tv:/timm:)", parse=positive
    )


def time_cap_option(default: float = 2.0, steps: int = 1) -> Any:
    """``--time-cap``: the seconds a point's timed steps take, of which at least ``steps``."""
    least = f", and at least {steps} steps" if steps > 1 else ""
    return option(default, f"seconds of timed steps per point{least}", parse=seconds)


def max_step_option() -> Any:
    return option(
        60.0,
        "batch sizes whose one step would take longer (extrapolated) are skipped",
        parse=seconds,
    )


def data_dir_option() -> Any:
    return option(None, "None: $FASHION_MNIST_DIR, then Debian's", parse=Path)


def timeout_option(default: float, per: str) -> Any:
    return option(default, f"seconds per {per}", parse=seconds)


@dataclass(frozen=True)
class RunFolder:
    """Where a command reads and writes: a results store and a pages folder."""

    store: Path | None = option(None, "results store; None: results.sqlite in --out", parse=Path)
    out: Path | None = option(
        None,
        "run folder; None: beside --store, else "
        "runs/<preset>-<device>/ (a published run: reports/<run>)",
        parse=Path,
    )


@dataclass(frozen=True)
class AtRunFolder:
    """A command on a run folder that exists (its results store is there), named first."""

    out: Path = option(
        None, "run folder, e.g. reports/cpu-amd-epyc-avx2", parse=Path, positional=True
    )

    @property
    def store(self) -> Path:
        return self.out / STORE_NAME

    def __post_init__(self) -> None:
        if not self.store.is_file():
            raise UsageError(f"{self.out} holds no {self.store.name}: not a run folder")


@dataclass(frozen=True)
class Staged(RunFolder):
    """A stage: where its jobs run. A whole number given for a float field (a plan's
    ``max_step=1``) is kept as the float the command line reads, so that the store keys a
    point alike however its settings were given (a key's JSON tells 1 from 1.0)."""

    executor: str = option(
        "local",
        "local: child processes on this machine; ray: Ray tasks (pip install -e '.[ray]')",
        choices=("local", "ray"),
    )
    address: str | None = option(
        None,
        "the Ray cluster of --executor ray; None: start Ray "
        "here; auto or ray://host:port: a running one",
    )

    def __post_init__(self) -> None:
        for name, kind in typing.get_type_hints(type(self)).items():
            value = getattr(self, name)
            if float in (kind, *typing.get_args(kind)) and type(value) is int:
                object.__setattr__(self, name, float(value))

    def runner(self, device: Any = None, workers: int = 1) -> Any:
        """The executor that runs this stage's jobs on ``device`` (``workers``: how many jobs
        that time nothing run at once here)."""
        if self.executor == "local":
            return Local(workers)
        try:
            return Ray(self.address, gpu=device is not None and device.type == "cuda")
        except ImportError:
            raise UsageError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        except Exception as error:  # no cluster at the address, no GPU in it, ...
            message = f"{type(error).__name__}: {error}".strip().splitlines()[0]
            raise UsageError(f"--executor ray: {message}") from None


@dataclass(frozen=True)
class Networks(Staged):
    """A stage that measures registry networks."""

    models: str = models_option()


@dataclass(frozen=True)
class OnDevice(Networks):
    """A stage that runs the networks on a device."""

    device: str = device_option()


@dataclass(frozen=True)
class Sweep(OnDevice):
    """A stage that times each network across batch sizes."""

    batch_sizes: tuple[int, ...] = batch_sizes_option()
    image_size: int | None = image_size_option()
    in_channels: int | None = in_channels_option()
    time_cap: float = time_cap_option(steps=MIN_TIMED_STEPS)
    max_step: float = max_step_option()


@dataclass(frozen=True)
class OnData(OnDevice):
    """A stage that feeds Fashion-MNIST to the networks."""

    data_dir: Path | None = data_dir_option()

    def data(self) -> Any:
        """Fashion-MNIST, or a usage error saying how to get it."""
        try:
            return load(self.data_dir)
        except DataNotFoundError as error:
            raise UsageError(str(error)) from None


def add_options(parser: argparse.ArgumentParser, settings: type) -> None:
    """One command-line option per field of ``settings``."""
    for f in dataclasses.fields(settings):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        if meta["positional"]:
            parser.add_argument(f.name, type=meta["parse"], help=meta["help"])
            continue
        if f.default is False:
            parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        default = f.default
        if isinstance(default, tuple) and meta["parse"]:  # as typed: argparse parses it
            default = ",".join(map(str, default))
        elif isinstance(default, tuple):
            default = list(default)
        parser.add_argument(
            flag,
            type=meta["parse"],
            default=default,
            choices=meta["choices"],
            nargs="+" if meta["many"] else None,
            help=meta["help"],
        )


def settings_from(args: argparse.Namespace, settings: type) -> Any:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(settings)}
    return settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def device_of(settings: Any) -> Any:
    """The torch device ``--device`` names; one that is not there is a usage error."""
    try:
        return resolve_device(getattr(settings, "device", "auto"))
    except ValueError as error:
        raise UsageError(str(error)) from None


def select_models(patterns: str) -> list[str]:
    """Registry names matching any of the comma-separated shell-style ``patterns``, in book
    order, then the ``tv:``/``timm:`` names given; a pattern that matches nothing is an error (a
    plain name gets close-match hints)."""
    chosen, external = set(), []
    for pattern in patterns.split(","):
        if not pattern.strip():
            raise UsageError(f"--models {patterns!r} holds an empty name")
        if ":" in pattern:  # a tv:/timm: network, by its exact name
            try:
                external.append(archs.spec(pattern).name)
            except KeyError as error:
                raise UsageError(error.args[0]) from None
            continue
        names = archs.list_models(pattern)
        if not names and not any(c in pattern for c in "*?["):
            try:
                archs.spec(pattern)
            except KeyError as error:
                raise UsageError(error.args[0]) from None
        if not names:
            raise UsageError(f"no model matches {pattern!r}; python -m archs lists them")
        chosen.update(names)
    return [name for name in archs.list_models() if name in chosen] + external


def run_sweeps(store: Any, stage: str, executor: Any, jobs: list, show: Any = None) -> int:
    """Each network's batch-size sweep (``bench.executors.sweep_into``; ``show``: what to
    print of a point measured, its images/s by default), with a progress bar over its points;
    how many points failed."""
    if not jobs:
        all_stored(stage, "point", store)
    show = show or images_per_s
    failed = []
    with Progress(stage, sum(len(job.kwargs["batch_sizes"]) for job, *_ in jobs)) as progress:

        def say(label: str, batch: int, status: Status, row: dict) -> None:
            failed.append(status in FAILED)
            text = show(row) if status == Status.OK else row["note"]
            progress.item(f"{label} batch {batch}: {status} {text}")

        sweep_into(store, stage, executor, jobs, say)
    return sum(failed)


def all_stored(stage: str, item: str, store: Any) -> None:
    """Say that a stage found every ``item`` it was asked for in ``store`` already."""
    print(f"{stage}: every {item} is in {store.path} already; nothing to measure")
