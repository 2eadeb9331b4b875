"""``python -m bench <command>``: measure registry networks into a run's results store, then render.

Stages: profile (parameters, MACs/FLOPs, activation memory); peers (other FLOP counters
beside ours); layers (chapter 7's single layers); speed (throughput, latency and peak memory
across batch sizes); memory (the CPU allocator's peak through a real step); onnx (export,
parity, onnxruntime against PyTorch); pipeline (input pipelines against compute alone); train
(Fashion-MNIST). all runs every stage, in the order
its preset's plan gives; render re-renders a run folder from its store; compare summarises
the differences of two runs; prune deletes rows from a store.

A run keeps its store, pages and plots in runs/<preset>-<device>/ (a CPU's with its vector
instructions: runs/cpu-amd-epyc-avx2/), which git ignores, unless --store or --out say
otherwise; the published runs of reports/ change only when named (--out reports/<run>). Every
command that writes a run folder ends with its figures in the terminal and every page of the
folder rendered from its store; one that changed the store is recorded in it (history.md).
Bad input gets one line on stderr and exit code 2; a network that fails is recorded with its
status and the others go on; one run at a time uses a store.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from bench import runs
from bench.console import plural
from bench.device import backend_for, cpu_flags, vector_isa
from bench.ledger import recorded
from bench.provenance import cpu_of, environment
from bench.stages import COMMANDS
from bench.stages.common import RunFolder, UsageError, add_options, device_of, settings_from
from bench.stages.train import preset_name
from bench.store import Store, StoreError, one_run_at_a_time


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage plus message
        raise UsageError(message)


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help; the description and examples kept as written."""


EXAMPLES = """examples:
  python -m bench all --preset smoke                # every stage, then runs/smoke-<device>/
  python -m bench profile --models resnet18
  python -m bench speed --models 'lenet*' --batch-sizes 1,32
  python -m bench compare reports/cpu-amd-epyc-avx2 reports/cpu-amd-epyc-avx512-bf16"""


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per registered command, its options read from its settings' fields."""
    parser = _Parser(
        prog="python -m bench", description=__doc__, epilog=EXAMPLES, formatter_class=_Help
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS.values():
        sub = commands.add_parser(
            command.name, help=command.help, description=command.help, formatter_class=_Help
        )
        add_options(sub, command.settings)
    return parser


def _located(settings: Any) -> Any:
    """The settings with the run folder filled in: --store and --out, or the run folder of the
    preset and device."""
    if not isinstance(settings, RunFolder):
        return settings
    default = None
    if settings.store is None and settings.out is None:
        device = device_of(settings)
        isa = vector_isa(cpu_flags()) if device.type == "cpu" else None
        default = runs.folder(preset_name(settings), backend_for(device).name, isa)
    store, out = runs.locate(settings.store, settings.out, default)
    for folder in (out, store.parent):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file, not a folder for a run's store and pages")
    return dataclasses.replace(settings, store=store, out=out)


def _kept(store: Any) -> str:
    """What an interrupted run leaves: the rows in its store."""
    try:
        count = len(Store(store, create=False).rows())
    except (StoreError, TypeError):
        return "nothing was stored"
    return f"{plural(count, 'row')} stored in {store} {'is' if count == 1 else 'are'} kept"


def _said(error: Exception) -> str:
    """An error in one line; a file system's as the shell says it ('FILE: Not a directory')."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    settings, argv = None, sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        command = COMMANDS[args.command]
        settings = _located(settings_from(args, command.settings))
        if not command.locks:  # reads only
            return command.run(settings)
        with one_run_at_a_time(settings.store):
            for cpu in runs.other_cpus(settings.store):
                print(
                    f"python -m bench: note: {settings.store} holds rows measured on {cpu}; "
                    f"this CPU is {cpu_of(environment())}: what is stored is not measured "
                    "again, and the pages name each row's CPU",
                    file=sys.stderr,
                )
            code, changed = recorded(command.run, settings, ["python", "-m", "bench", *argv])
            runs.finish(command.name, settings, render_pages=changed or command.name == "render")
            return code
    except (UsageError, StoreError, OSError) as error:
        print(f"python -m bench: error: {_said(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"python -m bench: interrupted; {_kept(getattr(settings, 'store', None))}; the "
            "same command measures the rest",
            file=sys.stderr,
        )
        return 130
