"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) as uint8 tensors, found without a network where
possible: an explicit directory, then Debian's ``dataset-fashion-mnist``, then torchvision's
download. The decoded arrays are checked against known digests, so every source gives the same
data (Debian's gzip files differ byte-wise from the upstream ones, their contents do not)."""

from __future__ import annotations

import gzip
import hashlib
import math
import multiprocessing
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ENV_VAR = "FASHION_MNIST_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ROOT = Path.home() / ".cache" / "cnnbench"

CLASSES = (
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

# split -> (image file, label file, number of examples, SHA-256 of the decoded images then labels)
FILES = {
    "train": (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        60_000,
        "16d82e2b505296aa2b78bd5ea0992634f30419a4c97def7c907d154a35ac6157",
    ),
    "test": (
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        10_000,
        "9f1ec356a747bfe4ebab3cfb722d3694c9ca737e2570f6f90cf31d7b6fd689d4",
    ),
}

HOW_TO_GET_IT = (
    "Fashion-MNIST not found. Either pass a directory holding its four idx files (--data-dir or "
    f"{ENV_VAR}), or install Debian's package (apt-get install dataset-fashion-mnist, files in "
    f"{DEBIAN_DIR}), or let torchvision download it (needs internet; cached in {DOWNLOAD_ROOT})."
)


REPLACE = (
    "restore an intact copy (apt-get install --reinstall dataset-fashion-mnist restores Debian's)"
)


class DataNotFoundError(RuntimeError):
    """Fashion-MNIST is in none of the places looked at, or its files are not Fashion-MNIST."""


@dataclass(frozen=True)
class Split:
    """One split: ``images`` uint8 (N, 28, 28), ``labels`` int64 (N,) in 0..9."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FashionMNIST:
    """The train (60,000) and test (10,000) splits, and the directory they were read from."""

    train: Split
    test: Split
    source: Path


def load(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> FashionMNIST:
    """Fashion-MNIST from ``data_dir`` or $FASHION_MNIST_DIR, else Debian's, else torchvision's."""
    explicit = data_dir or os.environ.get(ENV_VAR)
    if explicit:
        directory = _find_files(Path(explicit))
        if directory is None:
            raise DataNotFoundError(f"no Fashion-MNIST idx files in {explicit}. {HOW_TO_GET_IT}")
    else:
        directory = _find_files(DEBIAN_DIR) or (_download() if download else None)
        if directory is None:
            raise DataNotFoundError(HOW_TO_GET_IT)
    splits = {name: _read_split(directory, name) for name in FILES}
    return FashionMNIST(**splits, source=directory)


def _find_files(directory: Path) -> Path | None:
    """``directory`` or its torchvision layout (FashionMNIST/raw) if it holds the files; a
    layout holding some of them but not all is an error naming the missing ones."""
    names = [name for images, labels, _, _ in FILES.values() for name in (images, labels)]
    for candidate in (directory, directory / "FashionMNIST" / "raw"):
        missing = [name for name in names if _idx_path(candidate, name) is None]
        if not missing:
            return candidate
        if len(missing) < len(names):
            raise DataNotFoundError(
                f"{candidate} lacks {', '.join(f'{n}(.gz)' for n in missing)} of Fashion-MNIST's "
                f"four files; copy the missing ones there or point --data-dir elsewhere"
            )
    return None


def _idx_path(directory: Path, name: str) -> Path | None:
    for path in (directory / f"{name}.gz", directory / name):
        if path.is_file():
            return path
    return None


def _download() -> Path | None:
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

    try:
        for train in (True, False):
            TorchvisionFashionMNIST(DOWNLOAD_ROOT, train=train, download=True)
    except (OSError, RuntimeError):  # no network, or a failed checksum
        return None
    return _find_files(DOWNLOAD_ROOT)


def _read_split(directory: Path, split: str) -> Split:
    image_file, label_file, count, digest = FILES[split]
    images = _read_idx(_idx_path(directory, image_file))
    labels = _read_idx(_idx_path(directory, label_file))
    if images.shape != (count, 28, 28) or labels.shape != (count,):
        raise DataNotFoundError(
            f"{directory}: {split} arrays have shapes {tuple(images.shape)} and "
            f"{tuple(labels.shape)}, expected ({count}, 28, 28) and ({count},); {REPLACE}"
        )
    if int(labels.max()) >= len(CLASSES):
        raise DataNotFoundError(
            f"{_idx_path(directory, label_file)}: labels go up to {int(labels.max())}, beyond "
            f"{len(CLASSES) - 1}; {REPLACE}"
        )
    if array_digest(images, labels) != digest:
        raise DataNotFoundError(
            f"{directory}: the {split} files are not Fashion-MNIST's (digest differs); {REPLACE}"
        )
    return Split(images=images, labels=labels.long())


def array_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of the decoded uint8 images followed by the uint8 labels."""
    sha = hashlib.sha256(images.numpy().tobytes())
    sha.update(labels.numpy().tobytes())
    return sha.hexdigest()


def _read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzipped or not) of unsigned bytes as a uint8 tensor of its stated shape."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:  # truncated or not gzip at all
            raise DataNotFoundError(f"{path} is damaged ({error}); {REPLACE}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataNotFoundError(f"{path} is not an IDX file of unsigned bytes; {REPLACE}")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = raw[4 + 4 * ndim :]
    if len(raw) < 4 + 4 * ndim or len(data) != math.prod(shape):
        raise DataNotFoundError(
            f"{path} is truncated: its header promises {math.prod(shape):,} bytes of data, "
            f"it holds {len(data):,}; {REPLACE}"
        )
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(shape)


def prepare(images: torch.Tensor, resize: int | None) -> torch.Tensor:
    """uint8 (N, 28, 28) images to float (N, 1, H, W) in [0, 1], resized on their device.

    Bilinear with antialiasing, as torchvision's Resize; against the book's pipeline (PIL
    Resize, then ToTensor) every pixel differs by at most 1/255, PIL's rounding to uint8.
    """
    x = images.unsqueeze(1).float().div_(255)
    if resize is None or resize == x.shape[-1]:
        return x
    return F.interpolate(x, size=(resize, resize), mode="bilinear", antialias=True)


class DeviceBatches:
    """A split held whole on the training device as uint8; batches are index slices of a seeded
    per-epoch permutation, scaled and resized on the device: no per-sample Python work."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        device: torch.device,
        resize: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.images, self.labels = split.images.to(device), split.labels.to(device)
        self.batch_size, self.resize, self.shuffle, self.seed = batch_size, resize, shuffle, seed

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch`` (the same ones for the same seed), from batch ``start`` on."""
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=generator).to(self.images.device)
        else:
            order = torch.arange(n, device=self.images.device)
        for first in range(start * self.batch_size, n, self.batch_size):
            index = order[first : first + self.batch_size]
            yield prepare(self.images[index], self.resize), self.labels[index]


class _PILImages(torch.utils.data.Dataset):
    """A split as the book's pipeline sees it: PIL images through torchvision transforms."""

    def __init__(self, split: Split, transform: Callable):
        self.images, self.labels, self.transform = split.images.numpy(), split.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i], mode="L")), int(self.labels[i])


def torchvision_batches(
    split: Split,
    batch_size: int,
    resize: int | None,
    num_workers: int = min(4, os.cpu_count() or 1),
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The book's pipeline: torchvision Resize and ToTensor per PIL image, a shuffling
    DataLoader with worker processes (the book uses four; fewer where there are fewer cores);
    ``pin_memory`` for a GPU, so that copies to it can overlap the computation.

    The workers are forked, as a DataLoader's are by default on Linux: a process that a fork
    server started (every job's is) would start them through a fork server too, which costs
    seconds an epoch."""
    from torchvision import transforms

    steps = ([transforms.Resize(resize)] if resize else []) + [transforms.ToTensor()]
    forked = num_workers and "fork" in multiprocessing.get_all_start_methods()
    return torch.utils.data.DataLoader(
        _PILImages(split, transforms.Compose(steps)),
        batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=generator,
        pin_memory=pin_memory,
        multiprocessing_context="fork" if forked else None,
    )


def subset(split: Split, per_class: int | None) -> Split:
    """The first ``per_class`` examples of each class (all of them for None), in split order."""
    if per_class is None:
        return split
    keep = torch.cat([torch.nonzero(split.labels == c)[:per_class, 0] for c in range(len(CLASSES))])
    keep = keep.sort().values
    return Split(images=split.images[keep], labels=split.labels[keep])
