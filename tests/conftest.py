"""Shared fixtures; ``--under-load N`` runs the suite while N busy processes compete for the CPU,
as on a shared CI machine (``nox -s tests -- --under-load 2``)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def pytest_addoption(parser):
    parser.addoption("--under-load", type=int, default=0, metavar="N",
                     help="run the suite with N busy processes beside it")  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def busy_processes(request):
    """N processes spinning on the CPU for the whole session (none by default)."""
    count = request.config.getoption("--under-load")
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    yield spinning
    for process in spinning:
        process.kill()
        process.wait()


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """The working directory is a git checkout holding the project's .gitignore and a committed
    reports/index.md, as a fresh clone does."""
    git = ["git", "-c", "user.name=cnnbench", "-c", "user.email=cnnbench@localhost"]
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "index.md").write_text("the published runs\n")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "a published run"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
