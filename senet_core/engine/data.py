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

:func:`build_loaders` returns a train and a val epoch loader for any of them (see
:mod:`senet_core.engine.loaders` for how batches are drawn, and :mod:`senet_core.engine.datasets`
for where the data is read from).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from ..models.weights import IMAGENET_MEAN, IMAGENET_STD
from ..names import lookup
from .datasets import (CIFAR_LAYOUT, Split, default_data_dir, image_folder_splits, places365_splits, read_cifar,
                       read_fashion_mnist)
from .loaders import (EpochLoader, ImageTensors, OnDeviceLoader, SeededTransform, WorkerLoader, imagenet_transforms,
                      small_dataset_transforms, stream_seed)
from .recipes import check_positive_int

__all__ = ["DatasetInfo", "DATASETS", "CROP_PADDING", "SYNTHETIC_SIZES", "Loaders", "dataset_info", "default_data_dir",
           "synthetic_split", "fetch_dataset", "check_arguments", "build_loaders"]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_chans: int
    input_size: int          # training crop / image side
    mean: tuple[float, ...]
    std: tuple[float, ...]


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

SYNTHETIC_SIZES = {"train": 512, "val": 128}


def dataset_info(name: str) -> DatasetInfo:
    """The classes, input size and normalisation of dataset ``name``; ``ValueError`` if unknown."""
    return lookup("dataset", name, DATASETS)


@dataclass
class Loaders:
    train: EpochLoader
    val: EpochLoader
    info: DatasetInfo
    train_size: int          # images in the (possibly limited) train split, all ranks together
    val_size: int


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


# --------------------------------------------------------------------------------------------------
# The one entry point

def check_arguments(name: str, *, batch_size, limit_train, limit_val, rank, world_size, workers, cutout,
                    crop_size, val_resize, image_size=None) -> None:
    check_positive_int("batch_size", batch_size)
    check_positive_int("limit_train", limit_train, optional=True)
    check_positive_int("limit_val", limit_val, optional=True)
    check_positive_int("world_size", world_size)
    check_positive_int("crop_size", crop_size, optional=True)
    check_positive_int("val_resize", val_resize, optional=True)
    check_positive_int("image_size", image_size, optional=True)
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
            loaders = (OnDeviceLoader(train, info.mean, info.std, batch_size=batch_size, device=device, train=True,
                                      padding=padding, cutout=cutout, **shard),
                       OnDeviceLoader(val, info.mean, info.std, batch_size=batch_size, device=device, train=False,
                                      **shard))
        else:
            train_tf, val_tf = small_dataset_transforms(info.input_size, info.mean, info.std, padding, cutout)
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
    train_tf, val_tf = imagenet_transforms(crop, val_resize or round(crop * 256 / 224), info.mean, info.std)
    if limit_train is not None:
        train_set = Subset(train_set, range(min(limit_train, len(train_set))))
    if limit_val is not None:
        val_set = Subset(val_set, range(min(limit_val, len(val_set))))
    return Loaders(WorkerLoader(SeededTransform(train_set, train_tf, seed), batch_size=batch_size, device=device,
                                train=True, workers=workers, **shard),
                   WorkerLoader(SeededTransform(val_set, val_tf, seed), batch_size=batch_size, device=device,
                                train=False, workers=workers, **shard),
                   info=info, train_size=len(train_set), val_size=len(val_set))
