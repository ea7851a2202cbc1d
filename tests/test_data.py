"""Section 5 input pipelines: datasets on disk, the paper's augmentation, and the determinism contract.

Tiny files in each dataset's exact on-disk format are written to ``tmp_path``; the real
Fashion-MNIST comes from the Debian package dataset-fashion-mnist, installed here and in CI.
"""
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from senet_core.engine.data import DATASETS, build_loaders, dataset_info
from senet_core.engine.datasets import read_fashion_mnist

CIFAR100_TRAIN = 40       # one image per label 0..39, so a batch's labels say which images it holds
CIFAR_TEST = 9


# ------------------------------------------------------------------------------------------------
# Tiny datasets in their on-disk formats

def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def random_cifar_images(rng, n):
    return rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(10)
    for i in range(1, 6):
        write_pickle(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5",
                                                  "data": random_cifar_images(rng, 6),
                                                  "labels": rng.integers(0, 10, 6).tolist()})
    write_pickle(folder / "test_batch", {"data": random_cifar_images(rng, CIFAR_TEST),
                                         "labels": rng.integers(0, 10, CIFAR_TEST).tolist()})
    write_pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return root


@pytest.fixture(scope="module")
def cifar100_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar100")
    folder = root / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(100)
    train = random_cifar_images(rng, CIFAR100_TRAIN)
    test = random_cifar_images(rng, CIFAR_TEST)
    write_pickle(folder / "train", {"data": train, "fine_labels": list(range(CIFAR100_TRAIN)),
                                    "coarse_labels": [i // 5 for i in range(CIFAR100_TRAIN)]})
    write_pickle(folder / "test", {"data": test, "fine_labels": list(range(50, 50 + CIFAR_TEST)),
                                   "coarse_labels": [0] * CIFAR_TEST})
    write_pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                                   "coarse_label_names": [f"c{i}" for i in range(20)]})
    return root, train.reshape(-1, 3, 32, 32), test.reshape(-1, 3, 32, 32)


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(folder: Path, rng) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 20), ("t10k", 8)):
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


@pytest.fixture(scope="module", params=["flat", "torchvision"])
def fashion_dir(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"fashion_{request.param}")
    folder = root if request.param == "flat" else root / "FashionMNIST" / "raw"
    write_fashion_mnist(folder, np.random.default_rng(7))
    return root


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    """An ImageFolder of 3 classes, 4 train and 2 val JPEGs each, of mixed sizes."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(1)
    for split, per_class in (("train", 4), ("val", 2)):
        for c in ("n01", "n02", "n03"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                h, w = (40, 52) if i % 2 else (48, 36)
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                    root / split / c / f"{c}_{i}.JPEG", quality=90)
    return root


# ------------------------------------------------------------------------------------------------
# Helpers

def all_batches(loader, epoch=None):
    if epoch is not None:
        loader.set_epoch(epoch)
    batches = list(loader)
    assert len(batches) == len(loader)
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def to_uint8(x: torch.Tensor, info) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(-1, 1, 1)
    std = torch.tensor(info.std).view(-1, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


def normalised(images_u8: np.ndarray, info) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (torch.from_numpy(images_u8).float() / 255 - mean) / std


def crop_and_flip(image: torch.Tensor, original: np.ndarray, padding: int):
    """(dy, dx, flipped) such that ``image`` is that crop of the zero-padded original, or None."""
    padded = torch.nn.functional.pad(torch.from_numpy(original), (padding,) * 4)
    h, w = original.shape[1:]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            if torch.equal(crop, image):
                return dy, dx, False
            if torch.equal(crop.flip(-1), image):
                return dy, dx, True
    return None


def distributed_sampler_shards(n, seed, epoch, world_size):
    """DistributedSampler's documented behaviour, written out: permutation, padding, striding."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    total = -(-n // world_size) * world_size
    perm += perm[:total - n]
    return [perm[r:total:world_size] for r in range(world_size)]


# ------------------------------------------------------------------------------------------------
# Dataset catalogue and arguments

def test_dataset_info_catalogue_and_unknown_names():
    assert set(DATASETS) == {"imagenet", "cifar10", "cifar100", "fashion_mnist", "places365", "synthetic"}
    assert dataset_info("imagenet").num_classes == 1000 and dataset_info("imagenet").input_size == 224
    assert dataset_info("places365").num_classes == 365
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("fashion_mnist").in_chans == 1
    for info in DATASETS.values():
        assert len(info.mean) == len(info.std) == info.in_chans
    with pytest.raises(ValueError, match="cifar10"):
        dataset_info("cifar")


@pytest.mark.parametrize("name, kwargs, message", [
    ("cifar", {}, "unknown dataset"),
    ("synthetic", {"batch_size": 0}, "batch_size"),
    ("synthetic", {"limit_train": 0}, "limit_train"),
    ("synthetic", {"limit_val": -3}, "limit_val"),
    ("synthetic", {"rank": 2, "world_size": 2}, "rank"),
    ("synthetic", {"cutout": -1}, "cutout"),
    ("imagenet", {"on_device": True}, "on_device"),
    ("imagenet", {"cutout": 16}, "cutout"),
    ("cifar10", {"crop_size": 24}, "crop_size"),
    ("imagenet", {"crop_size": 299, "val_resize": 256}, "val_resize"),
    ("fashion_mnist", {"image_size": 10}, "whole factor"),
    ("fashion_mnist", {"image_size": 56}, "whole factor"),
    ("imagenet", {"image_size": 112}, "image_size applies to the small datasets"),
])
def test_wrong_arguments_say_which_and_why(name, kwargs, message):
    kwargs = {"batch_size": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_loaders(name, "/nonexistent", **kwargs)


# ------------------------------------------------------------------------------------------------
# Missing data

def test_missing_cifar_names_paths_and_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_loaders("cifar10", tmp_path, batch_size=4)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value) and "download=True" in str(err.value)


def test_missing_fashion_mnist_names_both_layouts_and_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_loaders("fashion_mnist", tmp_path, batch_size=4)
    message = str(err.value)
    assert str(tmp_path) in message and str(tmp_path / "FashionMNIST" / "raw") in message
    assert "dataset-fashion-mnist" in message and "download=True" in message


def test_missing_imagenet_names_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build_loaders("imagenet", tmp_path, batch_size=4)
    assert str(tmp_path / "train") in str(err.value) and "ImageFolder" in str(err.value)


def test_missing_places365_names_its_files_and_download(tmp_path):
    # A fake Places365 is not cheap: torchvision checks the md5 of its file lists.
    with pytest.raises(FileNotFoundError) as err:
        build_loaders("places365", tmp_path, batch_size=4)
    message = str(err.value)
    assert str(tmp_path / "categories_places365.txt") in message and str(tmp_path / "val_large") in message
    assert "download=True" in message


# ------------------------------------------------------------------------------------------------
# Small datasets: shapes, the on-device augmentation, determinism, sharding

@pytest.mark.parametrize("on_device", [True, False])
def test_cifar10_shapes_dtypes_and_labels(cifar10_dir, on_device):
    loaders = build_loaders("cifar10", cifar10_dir, batch_size=8, on_device=on_device, workers=0)
    assert (loaders.train_size, loaders.val_size) == (30, CIFAR_TEST) and loaders.info.num_classes == 10
    assert len(loaders.train) == 4 and len(loaders.val) == 2
    for loader in (loaders.train, loaders.val):
        x, y = all_batches(loader, 0)
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32) and y.dtype == torch.int64
        assert 0 <= y.min() and y.max() < 10


def test_cifar100_reads_fine_labels(cifar100_dir):
    root, _, _ = cifar100_dir
    loaders = build_loaders("cifar100", root, batch_size=16)
    _, y = all_batches(loaders.val)
    assert y.tolist() == list(range(50, 50 + CIFAR_TEST)) and loaders.info.num_classes == 100


@pytest.mark.parametrize("on_device", [True, False])
def test_val_is_unaugmented_and_identical_on_both_paths(cifar100_dir, on_device):
    root, _, test = cifar100_dir
    loaders = build_loaders("cifar100", root, batch_size=4, on_device=on_device, workers=0)
    x, _ = all_batches(loaders.val, 3)
    torch.testing.assert_close(x, normalised(test, loaders.info), rtol=0, atol=1e-5)


@pytest.mark.parametrize("on_device", [True, False])
def test_train_images_are_pad_crop_flips_of_the_originals(cifar100_dir, on_device):
    """Section 5.1 CIFAR augmentation: zero-pad 4, random 32x32 crop, random horizontal flip."""
    root, train, _ = cifar100_dir
    loaders = build_loaders("cifar100", root, batch_size=16, on_device=on_device, workers=0)
    transforms = []
    for epoch in range(3 if on_device else 1):
        x, y = all_batches(loaders.train, epoch)
        for image, label in zip(x, y):
            found = crop_and_flip(to_uint8(image, loaders.info), train[label], padding=4)
            assert found is not None, f"train image of label {label} is not a pad-crop-flip of its original"
            transforms.append(found)
    assert sum(t[:2] != (4, 4) or t[2] for t in transforms) > 0.9 * len(transforms)   # augmentation happened
    flips = sum(t[2] for t in transforms) / len(transforms)
    assert 0.2 < flips < 0.8
    assert len({t[:2] for t in transforms}) > 10          # many offsets, not one


@pytest.mark.parametrize("on_device", [True, False])
def test_cutout_erases_one_clipped_square_after_normalisation(cifar10_dir, on_device):
    """Cutout [69] for the Shake-Shake rows: erased pixels are 0 after normalisation (the mean)."""
    loaders = build_loaders("cifar10", cifar10_dir, batch_size=30, cutout=8, on_device=on_device, workers=0)
    x, _ = all_batches(loaders.train, 0)
    for image in x:
        erased = (image == 0).all(0)
        rows, cols = erased.any(1).nonzero().flatten(), erased.any(0).nonzero().flatten()
        assert 4 <= len(rows) <= 8 and 4 <= len(cols) <= 8
        # One rectangle: everything inside its bounding box is erased.
        assert erased[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        assert erased.sum() == len(rows) * len(cols)


@pytest.mark.parametrize("on_device", [True, False])
def test_train_epoch_is_a_pure_function_of_seed_and_epoch(cifar100_dir, on_device):
    root, _, _ = cifar100_dir
    build = lambda seed=0: build_loaders("cifar100", root, batch_size=16, seed=seed, on_device=on_device,
                                         workers=0)
    loaders = build()
    first = all_batches(loaders.train, 2)
    all_batches(loaders.train, 5)
    torch.rand(100)                                            # unrelated use of the global generator
    again = all_batches(loaders.train, 2)
    resumed = all_batches(build().train, 2)                    # a fresh process resuming at epoch 2
    for other in (again, resumed):
        assert torch.equal(first[0], other[0]) and torch.equal(first[1], other[1])
    other_epoch = all_batches(loaders.train, 3)
    assert not torch.equal(first[1], other_epoch[1])           # another order
    same_order = lambda batches: batches[0][batches[1].argsort()]
    changed = (same_order(first) != same_order(other_epoch)).flatten(1).any(1)
    assert changed.float().mean() > 0.8                        # and another augmentation of each image
    other_seed = all_batches(build(seed=1).train, 2)
    assert not torch.equal(first[1], other_seed[1])


@pytest.mark.parametrize("on_device", [True, False])
def test_two_ranks_partition_the_epoch_like_distributed_sampler(cifar100_dir, on_device):
    root, train, _ = cifar100_dir
    n = CIFAR100_TRAIN - 1                                     # odd: one index is repeated as padding
    shards = distributed_sampler_shards(n, seed=3, epoch=4, world_size=2)
    labels = []
    for rank in range(2):
        loaders = build_loaders("cifar100", root, batch_size=8, seed=3, limit_train=n, rank=rank,
                                world_size=2, on_device=on_device, workers=0)
        assert loaders.train_size == n and len(loaders.train) == 3
        _, y = all_batches(loaders.train, 4)
        assert y.tolist() == shards[rank]                      # label i is image i
        labels += y.tolist()
    assert len(labels) == 2 * 20 and set(labels) == set(range(n))


@pytest.mark.parametrize("on_device", [True, False])
def test_val_shards_sum_to_the_whole_split_without_padding(cifar100_dir, on_device):
    root, _, test = cifar100_dir
    parts = []
    for rank in range(2):
        loaders = build_loaders("cifar100", root, batch_size=2, rank=rank, world_size=2, on_device=on_device,
                                workers=0)
        parts.append(all_batches(loaders.val))
    assert [len(y) for _, y in parts] == [5, 4]
    merged = sorted(zip(torch.cat([y for _, y in parts]).tolist(), torch.cat([x for x, _ in parts])),
                    key=lambda pair: pair[0])
    assert [label for label, _ in merged] == list(range(50, 50 + CIFAR_TEST))
    torch.testing.assert_close(torch.stack([x for _, x in merged]), normalised(test, loaders.info),
                               rtol=0, atol=1e-5)


def test_limits_take_the_first_images_of_each_split(cifar100_dir):
    root, _, _ = cifar100_dir
    loaders = build_loaders("cifar100", root, batch_size=4, limit_train=10, limit_val=3)
    assert (loaders.train_size, loaders.val_size) == (10, 3)
    assert len(loaders.train) == 3 and len(loaders.val) == 1
    _, y = all_batches(loaders.train, 0)
    assert sorted(y.tolist()) == list(range(10))
    _, y = all_batches(loaders.val)
    assert y.tolist() == [50, 51, 52]
    big = build_loaders("cifar100", root, batch_size=4, limit_train=10_000)
    assert big.train_size == CIFAR100_TRAIN


def test_fashion_mnist_idx_files_in_both_layouts(fashion_dir):
    loaders = build_loaders("fashion_mnist", fashion_dir, batch_size=8)
    assert (loaders.train_size, loaders.val_size) == (20, 8)
    x, y = all_batches(loaders.train, 0)
    assert x.shape == (20, 1, 28, 28) and y.dtype == torch.int64 and y.max() < 10


@pytest.mark.parametrize("on_device", [True, False])
def test_image_size_averages_patches_on_both_splits(fashion_dir, on_device):
    full = build_loaders("fashion_mnist", fashion_dir, batch_size=8, on_device=on_device)
    half = build_loaders("fashion_mnist", fashion_dir, batch_size=8, on_device=on_device, image_size=14)
    assert half.info.input_size == 14 and (half.train_size, half.val_size) == (20, 8)
    x, _ = all_batches(full.val, 0)
    h, _ = all_batches(half.val, 0)
    assert h.shape == (8, 1, 14, 14)
    # Normalisation is affine, so the normalised 2x2 mean equals the downsampled image up to uint8 rounding.
    step = 1.0 / (255 * DATASETS["fashion_mnist"].std[0])
    assert (F.avg_pool2d(x, 2) - h).abs().max() <= step / 2 + 1e-5
    t, _ = all_batches(half.train, 0)
    assert t.shape == (20, 1, 14, 14)


def test_synthetic_is_deterministic_from_the_seed_and_roughly_centred():
    a = build_loaders("synthetic", batch_size=64)
    assert (a.train_size, a.val_size) == (512, 128) and a.info.num_classes == 10
    xa, ya = all_batches(a.val)
    xb, yb = all_batches(build_loaders("synthetic", batch_size=32).val)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    _, yc = all_batches(build_loaders("synthetic", batch_size=64, seed=1).val)
    assert not torch.equal(ya, yc)
    assert abs(xa.mean()) < 0.1 and 0.85 < xa.std() < 1.15
    big = build_loaders("synthetic", batch_size=8, crop_size=40, limit_train=16)
    assert big.info.input_size == 40 and next(iter(big.train))[0].shape == (8, 3, 40, 40)


# ------------------------------------------------------------------------------------------------
# ImageFolder (ImageNet layout): the DataLoader path with workers

def test_imagenet_folder_shapes_labels_and_centre_crop(imagenet_dir):
    from torchvision import transforms as T
    loaders = build_loaders("imagenet", imagenet_dir, batch_size=4, crop_size=24, val_resize=28, workers=0)
    assert (loaders.train_size, loaders.val_size) == (12, 6)
    assert loaders.info.num_classes == 3 and loaders.info.input_size == 24
    x, y = all_batches(loaders.train, 0)
    assert x.shape == (12, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sorted(y.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    x, y = all_batches(loaders.val)
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    reference = T.Compose([T.Resize(28), T.CenterCrop(24), T.ToTensor(),
                           T.Normalize(loaders.info.mean, loaders.info.std)])
    files = sorted((imagenet_dir / "val").glob("*/*.JPEG"))
    expected = torch.stack([reference(Image.open(f).convert("RGB")) for f in files])
    torch.testing.assert_close(x, expected)


def test_imagenet_train_is_deterministic_whatever_the_workers(imagenet_dir):
    build = lambda workers: build_loaders("imagenet", imagenet_dir, batch_size=4, crop_size=24, val_resize=28,
                                          seed=5, workers=workers)
    serial = build(0)
    first = all_batches(serial.train, 1)
    torch.rand(10)
    assert all(torch.equal(a, b) for a, b in zip(first, all_batches(serial.train, 1)))
    parallel = all_batches(build(2).train, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, parallel))
    # Another epoch: another augmentation of each image, not only another order.
    by_image = lambda images, loader: images[torch.tensor(loader.indices()).argsort()]
    first_by_image = by_image(first[0], serial.train)
    other = all_batches(serial.train, 2)
    assert all(not torch.equal(a, b) for a, b in zip(first_by_image, by_image(other[0], serial.train)))


def test_imagenet_ranks_and_limits(imagenet_dir):
    shards = distributed_sampler_shards(7, seed=0, epoch=0, world_size=2)
    seen = []
    for rank in range(2):
        loaders = build_loaders("imagenet", imagenet_dir, batch_size=2, crop_size=16, val_resize=16, workers=0,
                                rank=rank, world_size=2, limit_train=7, limit_val=5)
        assert (loaders.train_size, loaders.val_size) == (7, 5)
        assert loaders.train.indices() == shards[rank]
        _, y = all_batches(loaders.train, 0)
        assert len(y) == 4
        _, y = all_batches(loaders.val)
        seen += y.tolist()
    assert sorted(seen) == [0, 0, 1, 1, 2]


# ------------------------------------------------------------------------------------------------
# The real Fashion-MNIST (Debian package dataset-fashion-mnist)

def test_real_fashion_mnist_loads_whole_and_matches_its_statistics():
    splits = read_fashion_mnist()
    assert len(splits["train"]) == 60_000 and len(splits["val"]) == 10_000
    info = dataset_info("fashion_mnist")
    pixels = splits["train"].images.double() / 255
    assert abs(pixels.mean().item() - info.mean[0]) < 1e-3 and abs(pixels.std().item() - info.std[0]) < 1e-3

    loaders = build_loaders("fashion_mnist", batch_size=2000)
    assert (loaders.train_size, loaders.val_size) == (60_000, 10_000) and len(loaders.train) == 30
    x, y = all_batches(loaders.val)
    assert x.shape == (10_000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.05
    x, y = next(iter(loaders.train))
    assert x.shape == (2000, 1, 28, 28) and y.dtype == torch.int64 and 0 <= y.min() and y.max() <= 9


# ------------------------------------------------------------------------------------------------
# A fresh runtime (Colab, Binder): no Debian package, so the data is downloaded into the default folder

from senet_core.engine.datasets import FASHION_MNIST_SYSTEM_DIR as DEBIAN_FASHION_MNIST   # noqa: E402  (before any monkeypatch)


def _serve(folder: Path):
    """An HTTP server on a free local port serving ``folder``, in a thread; returns (server, base URL)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):     # e.g. a client that hung up: not the test's concern
            pass

    server = Server(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def fresh_runtime(tmp_path, monkeypatch):
    """No Debian folder, ``$SENET_DATA`` an empty folder, no proxy for the local mirror."""
    from senet_core.engine import datasets

    monkeypatch.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "no-debian-package"))
    monkeypatch.setenv("SENET_DATA", str(tmp_path / "data"))
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return tmp_path / "data"


def test_the_default_data_folder_is_senet_data_else_the_users_cache(monkeypatch):
    from senet_core.engine.data import default_data_dir

    monkeypatch.setenv("SENET_DATA", "/somewhere/else")
    assert default_data_dir() == Path("/somewhere/else")
    monkeypatch.delenv("SENET_DATA")
    assert default_data_dir() == Path.home() / ".cache" / "senet_core" / "data"


@pytest.mark.skipif(not Path(DEBIAN_FASHION_MNIST).is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_fashion_mnist_is_downloaded_into_the_default_folder_on_a_fresh_runtime(fresh_runtime, tmp_path,
                                                                                monkeypatch, capsys):
    import hashlib
    import shutil

    from torchvision.datasets import FashionMNIST

    from senet_core.engine.datasets import FASHION_MNIST_FILES

    with pytest.raises(FileNotFoundError) as err:
        read_fashion_mnist()
    message = str(err.value)
    assert str(tmp_path / "no-debian-package") in message and str(fresh_runtime) in message
    assert str(fresh_runtime / "FashionMNIST" / "raw") in message
    assert "download=True" in message and "SENET_DATA" in message and "\n" not in message

    # The real files, served by a local mirror in torchvision's layout (mirror URL + file name).
    # Debian recompressed them, so their MD5s are not the upstream ones torchvision checks: the
    # served files' own MD5s stand in for those (same names, same order).
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, _ in FashionMNIST.resources:
        shutil.copy(Path(DEBIAN_FASHION_MNIST) / name, mirror)
    server, url = _serve(mirror)
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    monkeypatch.setattr(FashionMNIST, "resources",
                        [(name, hashlib.md5((mirror / name).read_bytes()).hexdigest())
                         for name, _ in FashionMNIST.resources])
    try:
        splits = read_fashion_mnist(None, download=True)
    finally:
        server.shutdown()
        server.server_close()
    raw = fresh_runtime / "FashionMNIST" / "raw"
    assert f"Fashion-MNIST downloaded to {raw}" in capsys.readouterr().out
    assert all((raw / f"{stem}.gz").is_file() for pair in FASHION_MNIST_FILES.values() for stem in pair)
    assert len(splits["train"]) == 60_000 and len(splits["val"]) == 10_000
    debian = read_fashion_mnist(DEBIAN_FASHION_MNIST)
    for split in ("train", "val"):
        assert torch.equal(splits[split].labels[:100], debian[split].labels[:100])
        assert torch.equal(splits[split].images, debian[split].images)

    # Next time (the mirror is gone) the default folder is found without downloading again.
    again = build_loaders("fashion_mnist", batch_size=500, limit_train=1000, limit_val=500)
    assert (again.train_size, again.val_size) == (1000, 500)
    assert "downloaded" not in capsys.readouterr().out


def test_a_failed_download_is_one_line_naming_the_folder(fresh_runtime, monkeypatch):
    from torchvision.datasets import FashionMNIST

    empty = fresh_runtime.parent / "empty-mirror"                     # a mirror without the files: 404s
    empty.mkdir()
    server, url = _serve(empty)
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    try:
        with pytest.raises(FileNotFoundError) as err:
            read_fashion_mnist(download=True)
    finally:
        server.shutdown()
        server.server_close()
    message = str(err.value)
    assert message.startswith(f"Fashion-MNIST could not be downloaded into {fresh_runtime}")
    assert "\n" not in message


def test_cifar_without_data_dir_is_read_from_the_default_folder(cifar10_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("SENET_DATA", str(cifar10_dir))
    loaders = build_loaders("cifar10", batch_size=4)
    assert loaders.train_size == 30 and loaders.info.name == "cifar10"
    monkeypatch.setenv("SENET_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        build_loaders("cifar10", batch_size=4)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "download=True" in message
    assert "SENET_DATA" in message
