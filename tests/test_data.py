"""Fashion-MNIST loading: the three sources in order, verification, and the message when absent."""

import gzip
import os
import shutil

import pytest
import torch

from bench import data

# CI installs Debian's package, so there a missing package fails the tests instead of skipping them.
pytestmark = pytest.mark.skipif(
    data._find_files(data.DEBIAN_DIR) is None and not os.environ.get("CI"),
    reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def debian():
    return data.load(data.DEBIAN_DIR)  # Debian's files, whatever $FASHION_MNIST_DIR says


def test_debian_files_decode_to_fashion_mnist(debian):
    assert debian.source == data.DEBIAN_DIR
    assert (
        debian.train.images.shape == (60_000, 28, 28) and debian.train.images.dtype == torch.uint8
    )
    assert debian.test.images.shape == (10_000, 28, 28)
    assert debian.train.labels.dtype == torch.int64
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class.
    assert debian.train.labels.bincount().tolist() == [6000] * 10
    assert debian.test.labels.bincount().tolist() == [1000] * 10


@pytest.mark.parametrize("layout", ["flat-gzip", "flat-raw", "torchvision"])
def test_explicit_directory_wins_and_accepts_both_layouts(tmp_path, monkeypatch, debian, layout):
    target = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    for path in data.DEBIAN_DIR.glob("*.gz"):
        if layout == "flat-raw":
            (target / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
        else:
            shutil.copy(path, target / path.name)
    loaded = data.load(tmp_path)
    assert loaded.source == target
    assert torch.equal(loaded.test.images, debian.test.images)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.load().source == target


def test_missing_explicit_directory_names_all_three_ways(tmp_path):
    with pytest.raises(data.DataNotFoundError) as error:
        data.load(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message
    assert (
        "--data-dir" in message and "dataset-fashion-mnist" in message and "torchvision" in message
    )


def test_nothing_anywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(data.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load(download=False)


def test_altered_pixels_fail_the_digest(tmp_path):
    for path in data.DEBIAN_DIR.glob("*.gz"):
        raw = bytearray(gzip.decompress(path.read_bytes()))
        if path.name.startswith("t10k-images"):
            raw[-1] ^= 0xFF
        (tmp_path / path.stem).write_bytes(bytes(raw))
    with pytest.raises(data.DataNotFoundError, match="the test files are not Fashion-MNIST's"):
        data.load(tmp_path)


def test_wrong_shape_is_reported(tmp_path):
    for path in data.DEBIAN_DIR.glob("*.gz"):
        shutil.copy(path, tmp_path / path.name)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    header = raw[:4] + (9_999).to_bytes(4, "big")
    labels.write_bytes(gzip.compress(header + raw[8:-1]))
    with pytest.raises(data.DataNotFoundError, match=r"shapes \(10000, 28, 28\) and \(9999,\)"):
        data.load(tmp_path)


def _workers_start_method() -> str:
    split = data.Split(images=torch.zeros(4, 28, 28, dtype=torch.uint8), labels=torch.zeros(4))
    return data.torchvision_batches(
        split, 2, None, num_workers=2
    ).multiprocessing_context.get_start_method()


def test_the_books_loader_forks_its_workers_in_a_job_as_it_does_anywhere():
    from bench.isolation import Done, Row, run_isolated, stream_rows

    # a job's process, started by a fork server, would start its workers through one too
    messages = list(run_isolated(stream_rows, (_workers_start_method, {}), 120))
    assert [m.value for m in messages if isinstance(m, Row)] == ["fork"]
    assert isinstance(messages[-1], Done) and _workers_start_method() == "fork"
