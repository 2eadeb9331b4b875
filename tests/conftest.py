"""Shared fixtures; ``--under-load N`` runs the suite while N busy processes compete for the CPU,
as on a shared CI machine (``nox -s tests -- --under-load 2``); ``--all-torchvision`` counts
every torchvision classification model (tests/test_torchvision.py), ``--all-timm`` timm models
of every family listed in tests/test_timm.py."""

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--under-load",
        type=int,
        default=0,
        metavar="N",
        help="run the suite with N busy processes beside it",
    )
    parser.addoption(
        "--all-torchvision",
        action="store_true",
        help="count every torchvision classification model, not one of each kind",
    )
    parser.addoption(
        "--all-timm",
        action="store_true",
        help="count a timm model of every family tests/test_timm.py lists, not one of each kind",
    )


SPINNING = pytest.StashKey[list]()


def pytest_configure(config):
    """N processes spinning on the CPU for the whole session (none by default), started once by
    the process that runs the session. Each pytest-xdist worker (``-n``), and every process it
    starts, computes on one thread: the workers already take a core each, and the OpenMP
    threads of two workers sharing the cores spend their turns waiting for each other."""
    if hasattr(config, "workerinput"):
        os.environ["OMP_NUM_THREADS"] = "1"
        return
    count = config.getoption("--under-load")
    config.stash[SPINNING] = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)
    ]


def pytest_unconfigure(config):
    for process in config.stash.get(SPINNING, []):
        process.kill()
        process.wait()


def _clone_like(folder: Path) -> Path:
    """``folder`` made a git checkout holding the project's .gitignore and a committed
    reports/index.md, as a fresh clone does."""
    git = ["git", "-c", "user.name=cnnbench", "-c", "user.email=cnnbench@localhost"]
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    (folder / "reports").mkdir()
    (folder / "reports" / "index.md").write_text("the published runs\n")
    subprocess.run([*git, "init", "-q"], cwd=folder, check=True)
    subprocess.run([*git, "add", "."], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "a published run"], cwd=folder, check=True)
    return folder


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """The working directory is a git checkout, as a fresh clone is."""
    monkeypatch.chdir(_clone_like(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The run folder of ``python -m bench all --preset smoke``, run once in a fresh checkout
    (the local executor): what the other tests of a whole run read. Made once a session: under
    pytest-xdist the first worker to need it makes it, in the folder the workers share, and the
    others wait for it."""
    shared = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        shared = shared.parent  # the session's folder: each worker's own is inside it
    made = shared / "smoke_run"
    with (shared / "smoke_run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            made.write_text(str(_smoke_run(tmp_path_factory)))
    return Path(made.read_text())


def _smoke_run(tmp_path_factory) -> Path:
    from bench.cli import main

    folder, before = _clone_like(tmp_path_factory.mktemp("checkout")), Path.cwd()
    os.chdir(folder)
    try:
        assert main(["all", "--preset", "smoke"]) == 0
    finally:
        os.chdir(before)
    (out,) = (folder / "runs").glob("smoke-*")  # the run's own folder
    return out


@pytest.fixture
def full_row():
    """``full_row(stage, **values)``: a measured row of ``stage`` with every field of its schema
    (bench/schema.py), None where no value is given: what Store.put takes."""
    from bench.schema import ROWS

    def make(stage: str, **values):
        known = {"model": "lenet", "status": "ok"}  # what Store.rows also reports
        fields = ROWS[stage].__annotations__
        return {name: known.get(name) for name in fields} | values

    return make
