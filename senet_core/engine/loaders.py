"""Epoch loaders: the order of an epoch and the paper's augmentation, batch after batch (Section 5).

The small datasets live whole on the device as uint8 and are augmented there, a batch at a time, in
one vectorised step (:class:`OnDeviceLoader`); the image-file datasets are decoded and augmented in
``DataLoader`` workers (:class:`WorkerLoader`). Both are an :class:`EpochLoader`.

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

import math
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import transforms as T

from .datasets import Split


class EpochLoader(Protocol):
    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...


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
    normalisation with the dataset's ``mean`` and ``std``, then Cutout (after normalisation, as in
    [69], so erased pixels are the mean). The random draws of an epoch come from one generator on
    the device seeded from (seed, epoch, rank) and are consumed batch after batch in a fixed order.
    """

    def __init__(self, split: Split, mean: Sequence[float], std: Sequence[float], *, batch_size: int,
                 device: torch.device, train: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 padding: int = 0, cutout: int = 0):
        self.images = split.images.to(device)
        self.labels = split.labels.to(device)
        self.batch_size, self.device, self.train = batch_size, device, train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.padding, self.cutout = padding, cutout
        std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
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


def imagenet_transforms(crop: int, val_resize: int, mean: Sequence[float],
                        std: Sequence[float]) -> tuple[Callable, Callable]:
    """Section 5.1: (train, val) transforms of ImageNet and Places365 on PIL images."""
    normalise = T.Normalize(mean, std)
    train = T.Compose([T.RandomResizedCrop(crop, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
                       T.RandomHorizontalFlip(), T.ToTensor(), normalise])
    val = T.Compose([T.Resize(val_resize), T.CenterCrop(crop), T.ToTensor(), normalise])
    return train, val


def small_dataset_transforms(size: int, mean: Sequence[float], std: Sequence[float], padding: int,
                             cutout: int) -> tuple[Callable, Callable]:
    """(train, val) transforms of the small datasets on uint8 tensors: the per-image equivalent of
    :class:`OnDeviceLoader`'s batch augmentation, for ``on_device=False``."""
    to_input = [T.ConvertImageDtype(torch.float32), T.Normalize(mean, std)]
    train = [T.RandomCrop(size, padding=padding), T.RandomHorizontalFlip(), *to_input]
    if cutout:
        train.append(Cutout(cutout))
    return T.Compose(train), T.Compose(to_input)
