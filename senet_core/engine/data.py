"""The datasets of the paper's experiments and their input pipelines (Section 5).

* ImageNet (Section 5.1, Table 2): training takes a random crop with scale and aspect-ratio jitter
  to 224x224 (299 for Inception-ResNet-v2) and a random horizontal flip; evaluation takes a single
  centre crop of 224 after resizing the shorter side to 256 (299 from 352). The paper leaves the crop
  ranges to [5]; we use the official repository's 8%-100% of the area and aspect ratios 3/4-4/3
  (PAPER.md, "Details the paper does NOT give"). The paper subtracts the mean RGB value only; we also
  divide by the standard deviation, as torchvision's models do, so that SE and baseline see the
  same, conventional input.
* Places365 (Section 5.2, Table 6): the same transforms and statistics as ImageNet. The paper's
  protocol is delegated to [72], [74] and not restated.
* CIFAR-10 / CIFAR-100 (Section 5.1, Tables 4-5): zero-pad 4 pixels on every side, a random 32x32
  crop, a random horizontal flip and per-channel mean/std normalisation; the Shake-Shake rows add
  Cutout [69] (``cutout`` = side of the square).
* Fashion-MNIST is not in the paper; it is a small real dataset for runs without ImageNet. Its train
  augmentation is our choice, by analogy with CIFAR: zero-pad 2, a random 28x28 crop and a
  horizontal flip (its classes are clothes, which stay clothes when mirrored). It is normalised with
  the training set's mean and standard deviation (0.2860 / 0.3530).
* ``synthetic``: random images with fixed labels for smoke runs (a colour pattern per class plus
  noise, so that a loss can go down).

:func:`build_loaders` returns a train and a val :class:`EpochLoader` for any of them. The small
datasets live whole on the device as uint8 and are augmented there, a batch at a time, in one
vectorised step (:class:`OnDeviceLoader`); the image-file datasets are decoded and augmented in
``DataLoader`` workers (:class:`WorkerLoader`).

Determinism: after ``set_epoch(e)`` the train batches (order and augmentation) are a pure function
of (seed, e, rank, world_size), whatever ran before, so a run resumed at an epoch boundary repeats
the uninterrupted run. The order is ``DistributedSampler``'s (a permutation seeded with
``seed + epoch``, equal shards, padded by repetition). The on-device loader draws a batch's
augmentation from a generator on the device seeded from (seed, epoch, rank); the worker loader
seeds each image's augmentation from (seed, epoch, image index), so it does not depend on the
number of workers either. Validation is neither shuffled nor augmented, and is sharded without
padding (indices ``rank::world_size``) so that counts summed over ranks are exact.

Every batch of the train split is kept, including a last partial one: with ``limit_train`` smaller
than ``batch_size`` an epoch is still one step.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..names import lookup


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    input_size: int          # training crop / image side
    mean: tuple[float, ...]
    std: tuple[float, ...]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DATASETS: dict[str, DatasetInfo] = {
    "imagenet": DatasetInfo("imagenet", 1000, 3, 224, IMAGENET_MEAN, IMAGENET_STD),
    "places365": DatasetInfo("places365", 365, 3, 224, IMAGENET_MEAN, IMAGENET_STD),
    # Pixel statistics of the training sets (the std is over all pixels, not the mean of per-image stds).
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,)),
    # What synthetic_split draws: half a uniform class pattern, half uniform noise.
    "synthetic": DatasetInfo("synthetic", 10, 3, 32, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
}

# Datasets small enough to live whole on the device, and the zero-padding of their random crop.
CROP_PADDING = {"cifar10": 4, "cifar100": 4, "fashion_mnist": 2, "synthetic": 4}

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
SYNTHETIC_SIZES = {"train": 512, "val": 128}


def default_data_dir() -> Path:
    """Where the small datasets are downloaded to (and looked for) when no ``data_dir`` is given:
    ``$SENET_DATA`` if set, else ``~/.cache/senet_core/data``."""
    return Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR).expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """The classes, input size and normalisation of dataset ``name``; ``ValueError`` if unknown."""
    return lookup("dataset", name, DATASETS)


class EpochLoader(Protocol):
    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


@dataclass
class Loaders:
    train: EpochLoader
    val: EpochLoader
    info: DatasetInfo
    train_size: int          # images in the (possibly limited) train split, all ranks together
    val_size: int


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
# Seeds and the order of an epoch

def stream_seed(*parts: int) -> int:
    """A seed that is a pure function of ``parts`` (e.g. seed, epoch, rank), mixed so that nearby
    tuples give unrelated random streams."""
    words = [int(p) % 2**64 for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


def distributed_order(size: int, *, seed: int, epoch: int, rank: int, world_size: int) -> list[int]:
    """The train indices of ``rank`` in ``epoch``: exactly ``DistributedSampler``'s (permutation
    seeded with ``seed + epoch``, padded by repetition to equal shards, then every
    ``world_size``-th index)."""
    sampler = DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def val_shard(size: int, rank: int, world_size: int) -> range:
    """The val indices of ``rank``: ``rank::world_size``, no padding, so shards partition the split."""
    return range(rank, size, world_size)


# --------------------------------------------------------------------------------------------------
# On-device augmentation of the small datasets

def pad_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding``, crop back to the original size at a random offset per image and
    mirror a random half of the images, all in one gather (uint8 in, uint8 out).

    The flip is folded into the column index of the gather: column ``j`` of a mirrored crop at
    offset ``dx`` is column ``dx + W - 1 - j`` of the padded image.
    """
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    rows = dy[:, None] + torch.arange(h, device=device)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + dx[:, None]
    return padded[torch.arange(n, device=device)[:, None, None, None],
                  torch.arange(c, device=device)[None, :, None, None],
                  rows[:, None, :, None],
                  cols[:, None, None, :]]


def cutout_mask(n: int, h: int, w: int, side: int, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """Cutout [69] (DeVries & Taylor): a ``side`` x ``side`` square per image, centred anywhere in
    the image and clipped at its borders; True where the image is erased. Shape (N, 1, H, W)."""
    cy = torch.randint(0, h, (n,), generator=generator, device=device)
    cx = torch.randint(0, w, (n,), generator=generator, device=device)
    top, left = cy - side // 2, cx - side // 2
    ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + side)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + side)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


class OnDeviceLoader:
    """An :class:`EpochLoader` over a whole split held as a uint8 tensor on the device.

    Train batches are augmented on the device: :func:`pad_crop_flip` on the uint8 images, then
    normalisation, then Cutout (after normalisation, as in [69], so erased pixels are the mean).
    The random draws of an epoch come from one generator on the device seeded from
    (seed, epoch, rank) and are consumed batch after batch in a fixed order.
    """

    def __init__(self, split: Split, info: DatasetInfo, *, batch_size: int, device: torch.device,
                 train: bool, seed: int = 0, rank: int = 0, world_size: int = 1, padding: int = 0,
                 cutout: int = 0):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.device, self.train = batch_size, device, train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.padding, self.cutout = padding, cutout
        std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add.
        self.scale, self.shift = 1.0 / (255.0 * std), mean / std
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def indices(self) -> list[int]:
        """The sample indices this rank visits in the current epoch, in order."""
        if self.train:
            return distributed_order(len(self.labels), seed=self.seed, epoch=self.epoch, rank=self.rank,
                                     world_size=self.world_size)
        return list(val_shard(len(self.labels), self.rank, self.world_size))

    def __len__(self) -> int:
        n = len(self.labels)
        per_rank = math.ceil(n / self.world_size) if self.train else len(val_shard(n, self.rank, self.world_size))
        return math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(self.indices(), dtype=torch.long, device=self.device)
        generator = None
        if self.train:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(stream_seed(self.seed, self.epoch, self.rank))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            images = self.images[idx]
            if self.train:
                images = pad_crop_flip(images, self.padding, generator)
            images = images.float() * self.scale - self.shift
            if self.train and self.cutout:
                n, _, h, w = images.shape
                images = images.masked_fill(cutout_mask(n, h, w, self.cutout, generator, self.device), 0.0)
            yield images.contiguous(), self.labels[idx]


# --------------------------------------------------------------------------------------------------
# DataLoader path: image files (ImageNet, Places365), and the small datasets with on_device=False

class Cutout:
    """Cutout [69] on one normalised (C, H, W) tensor, for the DataLoader path; the same square as
    :func:`cutout_mask`, drawn from the global torch generator that :class:`SeededTransform` seeds."""

    def __init__(self, side: int):
        self.side = side

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = image.shape
        cy, cx = (int(torch.randint(0, s, ())) for s in (h, w))
        top, left = cy - self.side // 2, cx - self.side // 2
        image = image.clone()
        image[:, max(0, top):top + self.side, max(0, left):left + self.side] = 0.0
        return image


class ImageTensors(Dataset):
    """A :class:`Split` as a map-style dataset of (uint8 (C, H, W) tensor, label)."""

    def __init__(self, split: Split):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        return self.split.images[index], self.split.labels[index]


class SeededTransform(Dataset):
    """Applies ``transform`` to the images of ``base``, each under a seed of (seed, epoch, index).

    torchvision's transforms draw from the global torch generator; seeding it per image makes an
    image's augmentation independent of which worker decodes it, of the number of workers, and of
    whatever else used the generator. The generator is forked so the caller's state is untouched.
    """

    def __init__(self, base: Dataset, transform: Callable, seed: int):
        self.base, self.transform, self.seed = base, transform, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.seed, self.epoch, index))
            return self.transform(image), label


class WorkerLoader:
    """An :class:`EpochLoader` over a torch ``DataLoader``: images decoded and augmented in
    ``workers`` processes, batches moved to ``device``.

    Train order comes from a ``DistributedSampler`` (also for one rank, so that there is one
    definition of an epoch's order); val is the unpadded shard ``rank::world_size`` in order.
    Workers are not persistent, so each epoch's workers see the epoch set by :meth:`set_epoch`.
    """

    def __init__(self, dataset: SeededTransform, *, batch_size: int, device: torch.device, train: bool,
                 seed: int = 0, rank: int = 0, world_size: int = 1, workers: int = 2):
        self.dataset, self.device, self.train = dataset, device, train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        if train:
            self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
            source = dataset
        else:
            self.sampler = None
            source = Subset(dataset, val_shard(len(dataset), rank, world_size))
        # The generator only fixes the workers' base seed; augmentation is seeded per image.
        self.generator = torch.Generator()
        self.loader = DataLoader(source, batch_size=batch_size, sampler=self.sampler, shuffle=False,
                                 num_workers=workers, pin_memory=device.type == "cuda",
                                 generator=self.generator, persistent_workers=False)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.dataset.epoch = self.epoch
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)

    def indices(self) -> list[int]:
        """The sample indices this rank visits in the current epoch, in order."""
        return list(self.sampler) if self.train else list(val_shard(len(self.dataset), self.rank, self.world_size))

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.generator.manual_seed(stream_seed(self.seed, self.epoch, self.rank))
        non_blocking = self.device.type == "cuda"
        for images, labels in self.loader:
            yield (images.to(self.device, non_blocking=non_blocking),
                   labels.to(self.device, dtype=torch.int64, non_blocking=non_blocking))


def imagenet_transforms(crop: int, val_resize: int, info: DatasetInfo) -> tuple[Callable, Callable]:
    """Section 5.1: (train, val) transforms of ImageNet and Places365 on PIL images."""
    from torchvision import transforms as T
    normalise = T.Normalize(info.mean, info.std)
    train = T.Compose([T.RandomResizedCrop(crop, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
                       T.RandomHorizontalFlip(), T.ToTensor(), normalise])
    val = T.Compose([T.Resize(val_resize), T.CenterCrop(crop), T.ToTensor(), normalise])
    return train, val


def small_dataset_transforms(info: DatasetInfo, padding: int, cutout: int) -> tuple[Callable, Callable]:
    """(train, val) transforms of the small datasets on uint8 tensors: the per-image equivalent of
    :class:`OnDeviceLoader`'s batch augmentation, for ``on_device=False``."""
    from torchvision import transforms as T
    to_input = [T.ConvertImageDtype(torch.float32), T.Normalize(info.mean, info.std)]
    train = [T.RandomCrop(info.input_size, padding=padding), T.RandomHorizontalFlip(), *to_input]
    if cutout:
        train.append(Cutout(cutout))
    return T.Compose(train), T.Compose(to_input)


# --------------------------------------------------------------------------------------------------
# Reading the datasets from disk

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
    root = Path(data_dir).expanduser()
    return [root, root / "FashionMNIST" / "raw"]


def _download_root(data_dir: str | None) -> Path:
    """The folder a download goes into: ``data_dir``, else :func:`default_data_dir`."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


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


def read_fashion_mnist(data_dir: str | None = None, download: bool = False) -> dict[str, Split]:
    """The Fashion-MNIST train (60000) and val (10000) splits as (N, 1, 28, 28) uint8.

    Looked for in ``data_dir`` (see :func:`fashion_mnist_dirs`); without it, in the Debian package's
    folder, then under :func:`default_data_dir`. With ``download`` and nothing found, torchvision
    fetches it into ``data_dir`` (default: :func:`default_data_dir`)."""
    folders = fashion_mnist_dirs(data_dir)
    found = next((f for f in folders if all(find_idx_file(f, stem) for pair in FASHION_MNIST_FILES.values()
                                            for stem in pair)), None)
    if found is None and download:
        from torchvision.datasets import FashionMNIST
        root = _download_root(data_dir)
        found = fashion_mnist_dirs(str(root))[1]
        _download("Fashion-MNIST", lambda r: FashionMNIST(r, train=True, download=True), root, found)
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


CIFAR_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


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
        from torchvision import datasets
        root, found = _download_root(data_dir), folders[0]
        _download(CIFAR_TITLES[name], lambda r: getattr(datasets, name.upper())(r, train=True, download=True),
                  root, found)
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


def fetch_dataset(name: str, data_dir: str | None = None) -> None:
    """Make sure small dataset ``name`` is where its reader looks (``data_dir``, default: the usual
    places), downloading it with torchvision if it is missing; ``synthetic`` needs nothing."""
    if name == "fashion_mnist":
        read_fashion_mnist(data_dir, download=True)
    elif name in CIFAR_LAYOUT:
        read_cifar(name, data_dir, download=True)
    elif name != "synthetic":
        raise ValueError(f"fetch_dataset: {name} is not a small dataset ({', '.join(CROP_PADDING)}); "
                         f"pass download=True and a data_dir to build_loaders instead")


def synthetic_split(size: int, image_size: int, seed: int, split_id: int, num_classes: int = 10) -> Split:
    """Random images with fixed labels, a pure function of ``seed``: half a coarse 4x4 colour
    pattern of the image's class (shared by train and val, so a model can learn it, and coarse so
    that it survives the random crop), half uniform noise."""
    patterns = torch.randint(0, 256, (num_classes, 3, 4, 4),
                             generator=torch.Generator().manual_seed(stream_seed(seed, 0)))
    patterns = F.interpolate(patterns.float(), size=(image_size, image_size), mode="nearest")
    generator = torch.Generator().manual_seed(stream_seed(seed, 1 + split_id))
    labels = torch.randint(0, num_classes, (size,), generator=generator)
    noise = torch.randint(0, 256, (size, 3, image_size, image_size), generator=generator).float()
    images = (0.5 * patterns[labels] + 0.5 * noise).round().to(torch.uint8)
    return Split(images, labels)


def image_folder_splits(data_dir: str | None) -> tuple[Dataset, Dataset]:
    """ImageNet as ``data_dir/{train,val}/<class>/<image>`` (torchvision ``ImageFolder``)."""
    root = Path(data_dir).expanduser() if data_dir is not None else None
    folders = [root / "train", root / "val"] if root is not None else []
    missing = [f for f in folders if not f.is_dir()] if folders else ["data_dir (not given)"]
    if missing:
        raise FileNotFoundError(
            f"imagenet not found: missing {', '.join(map(str, missing))}. Expected an ImageFolder layout, "
            f"data_dir/train/<wnid>/*.JPEG and data_dir/val/<wnid>/*.JPEG (the ILSVRC-2012 val images "
            f"sorted into class folders, e.g. with the valprep.sh script); ImageNet cannot be downloaded "
            f"automatically.")
    from torchvision.datasets import ImageFolder
    train, val = ImageFolder(folders[0]), ImageFolder(folders[1])
    if train.classes != val.classes:
        only = sorted(set(train.classes) ^ set(val.classes))[:5]
        raise ValueError(f"imagenet at {root}: train/ and val/ have different class folders "
                         f"(e.g. {', '.join(only)}); labels would not match")
    return train, val


def places365_splits(data_dir: str | None, download: bool) -> tuple[Dataset, Dataset]:
    """Places365-Standard at full resolution, torchvision's ``Places365`` layout under ``data_dir``."""
    root = Path(data_dir).expanduser() if data_dir is not None else None
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
    from torchvision.datasets import Places365
    return (Places365(root, split="train-standard", small=False, download=download),
            Places365(root, split="val", small=False, download=download))


# --------------------------------------------------------------------------------------------------
# The one entry point

def check_arguments(name: str, *, batch_size, limit_train, limit_val, rank, world_size, workers, cutout,
                    crop_size, val_resize, image_size=None) -> None:
    def positive(option, value, allow_none=False):
        if allow_none and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{option} must be a positive integer, got {value!r}")

    positive("batch_size", batch_size)
    positive("limit_train", limit_train, allow_none=True)
    positive("limit_val", limit_val, allow_none=True)
    positive("world_size", world_size)
    positive("crop_size", crop_size, allow_none=True)
    positive("val_resize", val_resize, allow_none=True)
    positive("image_size", image_size, allow_none=True)
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
    if not isinstance(cutout, int) or cutout < 0:
        raise ValueError(f"cutout must be a non-negative integer (side of the square), got {cutout!r}")
    if cutout and name not in CROP_PADDING:
        raise ValueError(f"cutout applies to the small datasets ({', '.join(CROP_PADDING)}), not {name}")
    native = DATASETS[name].input_size
    if crop_size is not None and name in ("cifar10", "cifar100", "fashion_mnist") and crop_size != native:
        raise ValueError(f"crop_size={crop_size}: {name} images are {native}x{native} and are trained at that size")
    if image_size is not None and name not in CROP_PADDING:
        raise ValueError(f"image_size applies to the small datasets ({', '.join(CROP_PADDING)}), not {name}; "
                         f"use crop_size")
    if image_size is not None and name != "synthetic" and (image_size > native or native % image_size):
        raise ValueError(f"image_size={image_size}: {name} images are {native}x{native}, and can be downsampled "
                         f"only by a whole factor (e.g. {native // 2})")
    if val_resize is not None and name not in ("imagenet", "places365"):
        raise ValueError(f"val_resize applies to imagenet and places365, not {name}")
    if val_resize is not None and val_resize < (crop_size or native):
        raise ValueError(f"val_resize={val_resize} is smaller than the centre crop {crop_size or native}")


def build_loaders(name: str, data_dir: str | None = None, *, batch_size: int, device: str | torch.device = "cpu",
                  seed: int = 0, limit_train: int | None = None, limit_val: int | None = None,
                  rank: int = 0, world_size: int = 1, workers: int = 2, download: bool = False,
                  on_device: bool | None = None, cutout: int = 0, crop_size: int | None = None,
                  val_resize: int | None = None, image_size: int | None = None) -> Loaders:
    """Train and val loaders of dataset ``name`` with the paper's preprocessing (see the module doc).

    Args:
        name: a key of :data:`DATASETS`.
        data_dir: where the data is (default: for ``fashion_mnist`` the Debian package's folder,
            then :func:`default_data_dir`; for CIFAR :func:`default_data_dir`).
        batch_size: images per batch on this rank.
        device: where batches are delivered (and where on-device datasets live).
        seed: with the epoch, fixes the order and augmentation of every train epoch.
        limit_train, limit_val: use only the first N images of the split (before sharding).
        rank, world_size: this process's shard of the data.
        workers: DataLoader worker processes (not used by the on-device path).
        download: fetch CIFAR, Fashion-MNIST or Places365 with torchvision when missing (the small
            datasets into ``data_dir``, default :func:`default_data_dir`; Places365 needs ``data_dir``).
        on_device: keep the whole split on ``device`` and augment there; default True for the small
            datasets (cifar10, cifar100, fashion_mnist, synthetic), impossible for the others.
        cutout: side of the Cutout square (CIFAR Shake-Shake rows, Tables 4-5); 0 for none.
        crop_size: training crop and evaluation centre crop (ImageNet default 224; 299 for
            Inception-ResNet-v2, 320 for Table 8); for ``synthetic``, the image side (default 32).
        val_resize: shorter side before the centre crop (default 256 for a 224 crop, and the same
            ratio 256/224 for other crops; the paper uses 352 for the 299 crop).
        image_size: for the small datasets, train and evaluate at this side: each split is
            downsampled once by averaging k x k patches (k = native side / image_size), and the
            random crop's zero-padding shrinks by the same factor (at least one pixel). A
            reduced-scale setting, not the paper's.

    ``info`` of the result describes the data delivered: its ``input_size`` is the crop used, and
    for an ImageFolder its ``num_classes`` is the number of class folders found.
    """
    info = dataset_info(name)
    check_arguments(name, batch_size=batch_size, limit_train=limit_train, limit_val=limit_val, rank=rank,
                    world_size=world_size, workers=workers, cutout=cutout, crop_size=crop_size,
                    val_resize=val_resize, image_size=image_size)
    device = torch.device(device)
    small = name in CROP_PADDING
    if on_device is None:
        on_device = small
    if on_device and not small:
        raise ValueError(f"on_device=True needs a dataset that fits on the device "
                         f"({', '.join(CROP_PADDING)}); {name} is read from image files")
    shard = dict(seed=seed, rank=rank, world_size=world_size)

    if small:
        if name == "synthetic":
            info = replace(info, input_size=image_size or crop_size or info.input_size)
            splits = {split: synthetic_split(SYNTHETIC_SIZES[split], info.input_size, seed, i)
                      for i, split in enumerate(("train", "val"))}
        elif name == "fashion_mnist":
            splits = read_fashion_mnist(data_dir, download)
        else:
            splits = read_cifar(name, data_dir, download)
        train, val = splits["train"].first(limit_train), splits["val"].first(limit_val)
        padding = CROP_PADDING[name]
        if image_size is not None and name != "synthetic" and image_size != info.input_size:
            factor = info.input_size // image_size
            train, val = train.downsampled(image_size), val.downsampled(image_size)
            padding = max(1, padding // factor)
            info = replace(info, input_size=image_size)
        if on_device:
            loaders = (OnDeviceLoader(train, info, batch_size=batch_size, device=device, train=True,
                                      padding=padding, cutout=cutout, **shard),
                       OnDeviceLoader(val, info, batch_size=batch_size, device=device, train=False, **shard))
        else:
            train_tf, val_tf = small_dataset_transforms(info, padding, cutout)
            loaders = (WorkerLoader(SeededTransform(ImageTensors(train), train_tf, seed), batch_size=batch_size,
                                    device=device, train=True, workers=workers, **shard),
                       WorkerLoader(SeededTransform(ImageTensors(val), val_tf, seed), batch_size=batch_size,
                                    device=device, train=False, workers=workers, **shard))
        return Loaders(*loaders, info=info, train_size=len(train), val_size=len(val))

    if name == "imagenet":
        train_set, val_set = image_folder_splits(data_dir)
        if len(train_set.classes) != info.num_classes:
            info = replace(info, num_classes=len(train_set.classes))
    else:
        train_set, val_set = places365_splits(data_dir, download)
    crop = crop_size or info.input_size
    info = replace(info, input_size=crop)
    train_tf, val_tf = imagenet_transforms(crop, val_resize or round(crop * 256 / 224), info)
    if limit_train is not None:
        train_set = Subset(train_set, range(min(limit_train, len(train_set))))
    if limit_val is not None:
        val_set = Subset(val_set, range(min(limit_val, len(val_set))))
    return Loaders(WorkerLoader(SeededTransform(train_set, train_tf, seed), batch_size=batch_size, device=device,
                                train=True, workers=workers, **shard),
                   WorkerLoader(SeededTransform(val_set, val_tf, seed), batch_size=batch_size, device=device,
                                train=False, workers=workers, **shard),
                   info=info, train_size=len(train_set), val_size=len(val_set))
