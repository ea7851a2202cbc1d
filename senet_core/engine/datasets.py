"""The datasets of Section 5 on disk: where each is looked for, how it is downloaded, how it is read.

* Fashion-MNIST: the four IDX files (gzipped or not), from the Debian package
  ``dataset-fashion-mnist``, a ``data_dir``, or torchvision's download.
* CIFAR-10 / CIFAR-100: the python pickles of https://www.cs.toronto.edu/~kriz/cifar.html, in the
  layout torchvision downloads.
* ImageNet: an ImageFolder, ``data_dir/{train,val}/<wnid>/*.JPEG``; it cannot be downloaded.
* Places365-Standard: torchvision's ``Places365`` layout, at full resolution.

The small datasets are read whole into a :class:`Split` of uint8 images; the image-file datasets are
torchvision datasets of PIL images. Without a ``data_dir`` the small datasets are looked for (and
downloaded) in :func:`default_data_dir`.
"""
from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as torchvision_datasets

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"   # Debian package dataset-fashion-mnist
DATA_DIR_VARIABLE = "SENET_DATA"                                  # overrides DEFAULT_DATA_DIR
DEFAULT_DATA_DIR = "~/.cache/senet_core/data"                    # where downloads go without a data_dir
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_LAYOUT = {   # folder, train files, test file, meta file, label key
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                "batches.meta", "labels"),
    "cifar100": ("cifar-100-python", ("train",), "test", "meta", "fine_labels"),
}
CIFAR_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def expand(folder: str | os.PathLike) -> Path:
    """``folder`` with a leading ``~`` or ``~user`` expanded; one line when that user does not exist."""
    try:
        return Path(folder).expanduser()
    except RuntimeError:
        raise ValueError(f"data folder {str(folder)!r}: no such user's home to expand") from None


def default_data_dir() -> Path:
    """Where the small datasets are downloaded to (and looked for) when no ``data_dir`` is given:
    ``$SENET_DATA`` if set, else ``~/.cache/senet_core/data``."""
    return expand(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


@dataclass
class Split:
    """A whole split of a small dataset: uint8 images (N, C, H, W) and int64 labels (N,)."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def first(self, limit: int | None) -> Split:
        return self if limit is None else Split(self.images[:limit], self.labels[:limit])

    def downsampled(self, size: int | None) -> Split:
        """The split at ``size`` x ``size``: each k x k patch averaged (k = side / size), rounded to uint8."""
        side = self.images.shape[-1]
        if size is None or size == side:
            return self
        k = side // size
        images = F.avg_pool2d(self.images.float(), k).round_().to(torch.uint8)
        return Split(images, self.labels)


# --------------------------------------------------------------------------------------------------
# Downloads

def _download_root(data_dir: str | None) -> Path:
    """The folder a download goes into: ``data_dir``, else :func:`default_data_dir`."""
    return expand(data_dir) if data_dir is not None else default_data_dir()


def _download(title: str, fetch: Callable[[Path], object], root: Path, where: Path) -> None:
    """Run ``fetch(root)`` (a torchvision download into ``root``) and say where the data went, in one
    line. A failed download is a one-line ``FileNotFoundError`` (the data is still missing)."""
    try:
        fetch(root)
    except Exception as err:     # torchvision raises RuntimeError, URLError, OSError, ... with several lines
        reason = " ".join(str(err).split()).rstrip(".") or type(err).__name__
        raise FileNotFoundError(f"{title} could not be downloaded into {root}: {reason}. Check the network, "
                                f"or put the files there by hand.") from err
    print(f"{title} downloaded to {where}")


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST

def read_idx(path: Path) -> np.ndarray:
    """An array in the IDX format of (Fashion-)MNIST, gzipped or not: a magic number giving the
    element type and rank, big-endian int32 dimensions, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    rank = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">i4", count=rank, offset=4))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_dirs(data_dir: str | None) -> list[Path]:
    """Where Fashion-MNIST may be: the idx files directly in ``data_dir`` or in torchvision's
    ``FashionMNIST/raw`` under it; without ``data_dir``, the Debian package's folder, then the
    same two places under :func:`default_data_dir`."""
    if data_dir is None:
        return [Path(FASHION_MNIST_SYSTEM_DIR), *fashion_mnist_dirs(str(default_data_dir()))]
    root = expand(data_dir)
    return [root, root / "FashionMNIST" / "raw"]


def read_fashion_mnist(data_dir: str | None = None, download: bool = False) -> dict[str, Split]:
    """The Fashion-MNIST train (60000) and val (10000) splits as (N, 1, 28, 28) uint8.

    Looked for in ``data_dir`` (see :func:`fashion_mnist_dirs`); without it, in the Debian package's
    folder, then under :func:`default_data_dir`. With ``download`` and nothing found, torchvision
    fetches it into ``data_dir`` (default: :func:`default_data_dir`)."""
    folders = fashion_mnist_dirs(data_dir)
    found = next((f for f in folders if all(find_idx_file(f, stem) for pair in FASHION_MNIST_FILES.values()
                                            for stem in pair)), None)
    if found is None and download:
        root = _download_root(data_dir)
        found = fashion_mnist_dirs(str(root))[1]
        _download("Fashion-MNIST", lambda r: torchvision_datasets.FashionMNIST(r, train=True, download=True),
                  root, found)
    if found is None:
        stems = ", ".join(s + "[.gz]" for pair in FASHION_MNIST_FILES.values() for s in pair)
        into = (f"into {data_dir}" if data_dir is not None
                else f"into {default_data_dir()} (${DATA_DIR_VARIABLE} sets another folder)")
        raise FileNotFoundError(
            f"fashion_mnist not found: looked for {stems} in {', '.join(map(str, folders))}. "
            f"Install the Debian package dataset-fashion-mnist (files in {FASHION_MNIST_SYSTEM_DIR}), "
            f"put the four files in data_dir (directly or under FashionMNIST/raw/), "
            f"or pass download=True to fetch them with torchvision {into}.")
    splits = {}
    for split, (image_stem, label_stem) in FASHION_MNIST_FILES.items():
        images = read_idx(find_idx_file(found, image_stem))
        labels = read_idx(find_idx_file(found, label_stem))
        if len(images) != len(labels):
            raise ValueError(f"{found}: {len(images)} {split} images but {len(labels)} labels")
        splits[split] = Split(torch.from_numpy(images.copy()).unsqueeze(1),
                              torch.from_numpy(labels.astype(np.int64)))
    return splits


# --------------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100

def cifar_dirs(name: str, data_dir: str | None) -> list[Path]:
    """Where CIFAR may be: torchvision's folder under ``data_dir``, or ``data_dir`` itself; without
    ``data_dir``, the same under :func:`default_data_dir`."""
    root = _download_root(data_dir)
    return [root / CIFAR_LAYOUT[name][0], root]


def read_cifar(name: str, data_dir: str | None, download: bool = False) -> dict[str, Split]:
    """CIFAR-10 or CIFAR-100 from the python pickles (the layout torchvision downloads), as
    (N, 3, 32, 32) uint8; CIFAR-100 uses the 100 fine labels. Looked for in ``data_dir`` (default:
    :func:`default_data_dir`); with ``download`` and nothing found, torchvision fetches it there."""
    folder_name, train_files, test_file, meta_file, label_key = CIFAR_LAYOUT[name]
    needed = (*train_files, test_file, meta_file)
    folders = cifar_dirs(name, data_dir)
    found = next((f for f in folders if all((f / n).is_file() for n in needed)), None)
    if found is None and download:
        root, found = _download_root(data_dir), folders[0]
        dataset = getattr(torchvision_datasets, name.upper())
        _download(CIFAR_TITLES[name], lambda r: dataset(r, train=True, download=True), root, found)
    if found is None:
        into = f"into {folders[1]}" + ("" if data_dir is not None else f" (${DATA_DIR_VARIABLE} sets another folder)")
        raise FileNotFoundError(
            f"{name} not found: looked for {', '.join(needed)} in {', '.join(map(str, folders))}. Pass "
            f"download=True to fetch it with torchvision {into}, or unpack the python version from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html so that data_dir/{folder_name}/ holds those files.")

    def load(files: Sequence[str]) -> Split:
        images, labels = [], []
        for file in files:
            with open(found / file, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            images.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[label_key])
        return Split(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64))

    return {"train": load(train_files), "val": load([test_file])}


# --------------------------------------------------------------------------------------------------
# ImageNet and Places365: image files

class UnreadableImageError(ValueError):
    """An image file of a dataset that cannot be decoded (truncated, or not an image)."""


def read_image(path: str) -> Image.Image:
    """torchvision's image loader (an RGB PIL image), failing in one line that names the file."""
    try:
        with open(path, "rb") as stream:
            return Image.open(stream).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(f"{path} is not a readable image ({err}); replace or remove it") from None


def image_folder_splits(data_dir: str | None) -> tuple[Dataset, Dataset]:
    """ImageNet as ``data_dir/{train,val}/<class>/<image>`` (torchvision ``ImageFolder``)."""
    root = expand(data_dir) if data_dir is not None else None
    folders = [root / "train", root / "val"] if root is not None else []
    missing = [f for f in folders if not f.is_dir()] if folders else ["data_dir (not given)"]
    if missing:
        raise FileNotFoundError(
            f"imagenet not found: missing {', '.join(map(str, missing))}. Expected an ImageFolder layout, "
            f"data_dir/train/<wnid>/*.JPEG and data_dir/val/<wnid>/*.JPEG (the ILSVRC-2012 val images "
            f"sorted into class folders, e.g. with the valprep.sh script); ImageNet cannot be downloaded "
            f"automatically.")
    train, val = (torchvision_datasets.ImageFolder(folder, loader=read_image) for folder in folders)
    if train.classes != val.classes:
        only = sorted(set(train.classes) ^ set(val.classes))[:5]
        raise ValueError(f"imagenet at {root}: train/ and val/ have different class folders "
                         f"(e.g. {', '.join(only)}); labels would not match")
    return train, val


def places365_splits(data_dir: str | None, download: bool) -> tuple[Dataset, Dataset]:
    """Places365-Standard at full resolution, torchvision's ``Places365`` layout under ``data_dir``."""
    root = expand(data_dir) if data_dir is not None else None
    if root is None:
        raise FileNotFoundError("places365 not found: no data_dir given. Pass data_dir (and download=True "
                                "to fetch it with torchvision).")
    needed = [root / "categories_places365.txt", root / "places365_train_standard.txt",
              root / "places365_val.txt", root / "data_large_standard", root / "val_large"]
    missing = [p for p in needed if not p.exists()]
    if missing and not download:
        raise FileNotFoundError(
            f"places365 not found: missing {', '.join(map(str, missing))}. Pass download=True to fetch "
            f"Places365-Standard (large images, over 100 GB) with torchvision into {root}, or unpack "
            f"filelist_places365-standard.tar, train_large_places365standard.tar and val_large.tar there.")
    return (torchvision_datasets.Places365(root, split="train-standard", small=False, download=download,
                                           loader=read_image),
            torchvision_datasets.Places365(root, split="val", small=False, download=download, loader=read_image))
