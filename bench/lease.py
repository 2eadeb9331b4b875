"""One GPU lease from start to end, as ``tools/gpu-check`` runs it: the machine and its versions,
the GPU tests' verdict, then the preset's plan continued in its store, each stage cut off
cleanly (SIGINT: finished rows kept) when its share of the budget is spent, and the store and
the rendered pages written to ``$OUT`` after every stage, so that a command killed part way
still returns what it finished.

Settings come from the environment: ``OUT`` (required), ``DEVICE`` (cuda), ``PRESET`` (book),
``BUDGET`` (seconds, 540: one 10-minute command with margin), ``STORE`` (the published run of
the preset on this device: ``reports/<preset>-<device>/results.sqlite``, so that each lease
continues the last) and ``MODELS`` (every network of the plan). It runs from the tree without
an install, nox or network; ``.device/commit`` (``tools/gpu-check prepare`` writes it) names the
commit, since ``.git`` does not travel.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import IO

from bench import runs
from bench.device import backend_for, cpu_flags, vector_isa
from bench.store import STORE_NAME

# shares of the budget: the GPU tests, then measuring; what is left renders and archives
TESTS_SHARE, MEASURE_SHARE = 0.15, 0.75
GRACE_S = 60  # how long a stage has to stop after SIGINT before it is killed
COMMIT_FILE = Path(".device/commit")


class LeaseError(Exception):
    """The lease cannot do what it was asked; one line, and a non-zero exit."""


def commit_environment() -> dict[str, str]:
    """CNNBENCH_COMMIT and CNNBENCH_DIRTY from ``.device/commit`` (its commit, then 'dirty' or
    'clean'), for the rows measured here; none where the file is missing."""
    if not COMMIT_FILE.is_file():
        return {}
    sha, state = [*COMMIT_FILE.read_text().split(), "clean"][:2]
    return {"CNNBENCH_COMMIT": sha, "CNNBENCH_DIRTY": "1" if state == "dirty" else "0"}


def stage(command: list[str], seconds: float, log: IO[str], env: dict[str, str]) -> int:
    """Run ``command`` in a process group of its own, its output into ``log``; when
    ``seconds`` are spent, SIGINT to the group (every stage keeps what it finished), then
    SIGKILL after ``GRACE_S``. Its exit status (130 when it was cut off)."""
    log.write(f"$ {' '.join(command)}  (at most {seconds:.0f} s)\n")
    log.flush()
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        return process.wait(timeout=max(seconds, 1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()


def archive(folder: Path, out: Path) -> None:
    """The run's store, and its pages in one archive, into ``out`` (replacing earlier ones)."""
    store = folder / "results.sqlite"
    if store.is_file():
        shutil.copyfile(store, out / ".results.sqlite.partial")
        (out / ".results.sqlite.partial").replace(out / "results.sqlite")
    partial = out / ".pages.tar.gz.partial"
    with tarfile.open(partial, "w:gz") as pages:
        for path in sorted(folder.rglob("*")):
            keep = (
                path.is_file()
                and path.name != "results.sqlite"
                and not path.name.endswith((".lock", ".partial"))
                and "checkpoints" not in path.parts
            )
            if keep:
                pages.add(path, arcname=str(path.relative_to(folder.parent)))
    partial.replace(out / "pages.tar.gz")


def describe_machine(device: str, env: dict[str, str]) -> str:
    """The machine and the versions a lease runs with, in lines of text."""
    import torch

    lines = []
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        lines.append(f"nvidia-smi -L: {smi.stdout.strip() or smi.stderr.strip()}")
    lines.append(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    )
    try:
        import onnxruntime

        lines.append(
            f"onnxruntime {onnxruntime.__version__}, providers "
            f"{', '.join(onnxruntime.get_available_providers())}"
        )
    except ImportError:
        lines.append("onnxruntime: not installed")
    try:
        import fvcore  # noqa: F401

        lines.append("fvcore: imported")
    except ImportError:
        lines.append("fvcore: not installed (profile rows carry FlopCounterMode's check alone)")
    dirty = " (uncommitted changes)" if env.get("CNNBENCH_DIRTY") == "1" else ""
    lines.append(
        f"device asked for: {device}; commit: {env.get('CNNBENCH_COMMIT', 'unknown')}{dirty}"
    )
    return "\n".join(lines) + "\n"


def default_store(preset: str, device: str) -> Path:
    """The published run of ``preset`` on this device, which each lease continues."""
    import torch

    backend = backend_for(torch.device(device))
    isa = vector_isa(cpu_flags()) if device == "cpu" else None
    return runs.folder(preset, backend.name, isa, root=runs.REPORTS) / STORE_NAME


def main() -> int:
    started = time.monotonic()
    if not os.environ.get("OUT"):
        raise LeaseError("OUT is not set: the folder whose files come back")
    out = Path(os.environ["OUT"])
    out.mkdir(parents=True, exist_ok=True)
    device, preset = os.environ.get("DEVICE", "cuda"), os.environ.get("PRESET", "book")
    budget = float(os.environ.get("BUDGET", "540"))
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise LeaseError(
            "DEVICE=cuda but torch cannot use a GPU here (torch.cuda.is_available() is False): "
            "nothing measured; DEVICE=cpu rehearses on the CPU"
        )
    store = Path(os.environ.get("STORE") or default_store(preset, device))
    folder = store.parent
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **commit_environment(),
        "PYTHONPATH": str(Path.cwd()),
        "PYTHONUNBUFFERED": "1",
    }
    python = [sys.executable]
    left = lambda: budget - (time.monotonic() - started)  # noqa: E731
    codes = {}
    with open(out / "gpu-check.log", "a") as log:
        (out / "environment.txt").write_text(describe_machine(device, env))
        codes["tests"] = stage(
            [
                *python,
                "-m",
                "pytest",
                "tests/test_gpu.py",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={out / 'gpu-tests.xml'}",
            ],
            budget * TESTS_SHARE,
            log,
            env,
        )
        archive(folder, out)
        models = ["--models", os.environ["MODELS"]] if os.environ.get("MODELS") else []
        codes["measure"] = stage(
            [
                *python,
                "-m",
                "bench",
                "all",
                "--preset",
                preset,
                "--device",
                device,
                "--store",
                str(store),
                "--out",
                str(folder),
                *models,
            ],
            min(budget * MEASURE_SHARE, left() - 60),
            log,
            env,
        )
        archive(folder, out)
        if store.is_file():
            codes["render"] = stage(
                [*python, "-m", "bench", "render", str(folder)], left(), log, env
            )
            archive(folder, out)
        log.write(f"gpu-check: {codes} in {time.monotonic() - started:.0f} s\n")
    print(f"gpu-check: {', '.join(f'{k} exit {v}' for k, v in codes.items())}; files in {out}")
    # a stage cut off by the budget (130) is expected; the next lease continues it
    return 0 if all(code in (0, 130) for code in codes.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LeaseError as error:
        print(f"gpu-check: error: {error}", file=sys.stderr)
        sys.exit(2)
