"""tools/gpu-check rehearsed on the CPU, as a GPU lease runs it: in a copy of the tree without
.git, not installed, with no package index, its files in $OUT, and a second lease continuing
the first's store."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.store import Store

ROOT = Path(__file__).parents[1]
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
LEFT_BEHIND = (
    ".git",
    ".nox",
    "runs",
    "reports",
    ".device",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The tree as a lease gets it, its commit named in .device/commit."""
    copy = tmp_path_factory.mktemp("lease") / "tree"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*LEFT_BEHIND))
    (copy / "reports").mkdir()
    (copy / ".device").mkdir()
    (copy / ".device" / "commit").write_text("0123abcd dirty\n")
    return copy


def _lease(tree: Path, out: Path, **settings: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OUT": str(out),
        "DEVICE": "cpu",
        "PRESET": "smoke",
        "BUDGET": "240",
        "MODELS": "lenet",
        "PIP_NO_INDEX": "1",
        "PYTHON": sys.executable,
        "FASHION_MNIST_DIR": str(DEBIAN),
        **settings,
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        ["bash", "tools/gpu-check"], cwd=tree, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_a_lease_rehearsed_on_the_cpu_returns_its_run_and_the_next_continues_it(tree, tmp_path):
    out = tmp_path / "out"
    done = _lease(tree, out)
    assert done.returncode == 0, done.stderr + (out / "gpu-check.log").read_text()
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "environment.txt",
        "gpu-check.log",
        "gpu-tests.xml",
        "pages.tar.gz",
        "results.sqlite",
    ]  # at most 8 files come back
    assert "tests=" in (out / "gpu-tests.xml").read_text()  # the GPU tests' verdict, skipped here
    store = Store(out / "results.sqlite", create=False)
    trained = store.rows("train")
    assert {r["model"] for r in trained} == {"lenet"}
    assert {r["provenance"]["git_sha"] for r in trained} == {"0123abcd"}  # from .device/commit
    assert all(r["provenance"]["git_dirty"] for r in trained)
    with tarfile.open(out / "pages.tar.gz") as pages:
        assert any(name.endswith("/index.md") for name in pages.getnames())
    # the next lease: the returned store merged into the run folder, the same command again
    merged = tree / "reports" / "merged" / "results.sqlite"
    merged.parent.mkdir()
    shutil.copy(out / "results.sqlite", merged)
    again = _lease(tree, tmp_path / "again", STORE=str(merged))
    assert again.returncode == 0, again.stderr
    log = (tmp_path / "again" / "gpu-check.log").read_text()
    assert "0 networks to measure" in log and "0 runs to train" in log
    dates = sorted(r["provenance"]["date"] for r in Store(merged, create=False).rows("train"))
    assert dates == sorted(r["provenance"]["date"] for r in trained)  # nothing trained again


def test_a_lease_that_asks_for_a_gpu_it_does_not_have_stops_in_one_line(tree, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = _lease(tree, tmp_path / "out", DEVICE="cuda")
    assert done.returncode == 2
    assert done.stderr.startswith("gpu-check: error: DEVICE=cuda but torch cannot use a GPU")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "out" / "results.sqlite").exists()
