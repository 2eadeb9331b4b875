"""Damaged input: one line on stderr naming the file and what to do, exit code 2, no traceback,
no lock file left behind, and every row stored before the failure still there."""

import errno
import gzip
import os
import shutil
import sqlite3

import pytest

from bench import data, store
from bench.cli import main
from bench.store import Store

needs_data = pytest.mark.skipif(
    data._find_files(data.DEBIAN_DIR) is None and not os.environ.get("CI"),
    reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)


def fails_in_one_line(argv, capsys, *needles):
    """Run the command; it exits 2 with one line on stderr that holds every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, err
    return err


def no_lock_left(folder):
    assert list(folder.glob("*.lock")) == []


@pytest.fixture
def data_dir(tmp_path):
    """A copy of Debian's four gzipped files, to damage."""
    target = tmp_path / "fashion"
    target.mkdir()
    for path in data.DEBIAN_DIR.glob("*.gz"):
        shutil.copy(path, target / path.name)
    return target


def train(tmp_path, data_dir):
    return [
        "train",
        "--preset",
        "smoke",
        "--models",
        "lenet",
        "--data-dir",
        str(data_dir),
        "--store",
        str(tmp_path / "r.sqlite"),
    ]


@needs_data
def test_a_truncated_gz_file(tmp_path, data_dir, capsys):
    path = data_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fails_in_one_line(train(tmp_path, data_dir), capsys, path, "is damaged", "--reinstall")
    no_lock_left(tmp_path)


@needs_data
def test_a_truncated_idx_file(tmp_path, data_dir, capsys):
    gzipped = data_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(gzipped.read_bytes())
    gzipped.unlink()
    path = data_dir / "t10k-images-idx3-ubyte"
    path.write_bytes(raw[:-1000])
    fails_in_one_line(train(tmp_path, data_dir), capsys, path, "is truncated", "7,840,000 bytes")
    no_lock_left(tmp_path)


@needs_data
def test_one_of_the_four_files_missing(tmp_path, data_dir, capsys):
    (data_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    fails_in_one_line(train(tmp_path, data_dir), capsys, data_dir, "t10k-labels-idx1-ubyte")
    no_lock_left(tmp_path)


@needs_data
def test_labels_out_of_range(tmp_path, data_dir, capsys):
    path = data_dir / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = 12
    path.write_bytes(gzip.compress(bytes(raw)))
    fails_in_one_line(train(tmp_path, data_dir), capsys, path, "labels go up to 12")
    no_lock_left(tmp_path)


def test_a_wrong_fashion_mnist_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    argv = ["train", "--preset", "smoke", "--store", str(tmp_path / "r.sqlite")]
    fails_in_one_line(argv, capsys, tmp_path / "nowhere", "--data-dir")
    no_lock_left(tmp_path)


@pytest.mark.parametrize("content", [b"", os.urandom(4096)], ids=["empty", "random-bytes"])
def test_a_store_that_is_not_one(tmp_path, capsys, content):
    path = tmp_path / "r.sqlite"
    path.write_bytes(content)
    argv = ["profile", "--models", "lenet", "--store", str(path)]
    fails_in_one_line(argv, capsys, path, "is not a results store", "move it away")
    assert path.read_bytes() == content  # left as it was
    no_lock_left(tmp_path)


def test_a_store_in_a_read_only_folder(tmp_path, monkeypatch, capsys, full_row):
    folder = tmp_path / "read-only"
    folder.mkdir()
    Store(folder / "r.sqlite").put("profile", "lenet", {}, full_row("profile", params=1))
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway: make the database refuse, as it would
        real = sqlite3.connect

        def refuse(path, *args, **kwargs):
            connection = real(f"file:{path}?mode=ro", *args, uri=True, **kwargs)
            return connection

        monkeypatch.setattr(store.sqlite3, "connect", refuse)
    try:
        argv = ["profile", "--models", "bn_lenet", "--store", str(folder / "r.sqlite")]
        fails_in_one_line(argv, capsys, folder / "r.sqlite", "writable")
    finally:
        folder.chmod(0o755)
    monkeypatch.undo()
    assert [r["model"] for r in Store(folder / "r.sqlite").rows("profile")] == ["lenet"]
    no_lock_left(folder)


def test_a_full_disk_while_writing_a_row(tmp_path, monkeypatch, capsys):
    calls = []

    def provenance():  # the second row's write finds the disk full
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return {"date": "now"}

    monkeypatch.setattr(store, "provenance", provenance)
    path = tmp_path / "r.sqlite"
    argv = [
        "profile",
        "--models",
        "lenet,bn_lenet",
        "--workers",
        "1",
        "--batch-size",
        "2",
        "--store",
        str(path),
    ]
    fails_in_one_line(argv, capsys, path, "No space left on device", "free some disk space")
    assert len(Store(path).rows("profile")) == 1  # the row stored before the failure is kept
    no_lock_left(tmp_path)


def test_compare_with_a_missing_store(tmp_path, capsys, full_row):
    Store(tmp_path / "a.sqlite").put("profile", "lenet", {}, full_row("profile", params=1))
    argv = ["compare", str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")]
    fails_in_one_line(argv, capsys, tmp_path / "b.sqlite", "no such file")


def test_render_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    fails_in_one_line(["render", str(tmp_path)], capsys, tmp_path, "not a run folder")
