"""The command line's argument types and the flags several commands share, each declared once."""
from __future__ import annotations

import argparse

from ..engine.runtime import AMP_DTYPES


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def stage_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of stage numbers") from None


def seed_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def amp_of(args: argparse.Namespace) -> str | None:
    """The engine's ``amp`` for ``--amp``: ``none`` is no mixed precision."""
    return None if args.amp == "none" else args.amp


def add_device_flags(p: argparse.ArgumentParser, *, amp: bool = True, compile: bool = False) -> None:
    """``--device`` (auto: the engine picks CUDA when there is a GPU), ``--amp`` and, with ``compile``,
    ``--channels-last`` and ``--compile``."""
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default: CUDA if there is a GPU)")
    if amp:
        p.add_argument("--amp", choices=(*AMP_DTYPES, "none"), default="none", help="mixed precision")
    if compile:
        p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")


def add_data_flags(p: argparse.ArgumentParser, *, data_dir: str | None = "where the dataset is (or is "
                   "downloaded to)", required: bool = False, workers: bool = True, download: bool = True) -> None:
    """``--data-dir`` (helped by ``data_dir``; left out when None), ``--workers`` and ``--download``."""
    if data_dir is not None:
        p.add_argument("--data-dir", required=required, help=data_dir)
    if workers:
        p.add_argument("--workers", type=int, default=2, help="data-loading processes")
    if download:
        into = "--data-dir, default " if data_dir is not None else ""
        p.add_argument("--download", action="store_true", help="download the dataset if it is missing (into "
                                                               f"{into}$SENET_DATA or ~/.cache/senet_core/data)")


def add_quiet_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def add_study_flags(p: argparse.ArgumentParser) -> None:
    """Where the reduced-scale runs keep their records and run folders, the device, and ``--quiet``."""
    p.add_argument("--results-dir", default="results", help="the records (one JSON file a run)")
    p.add_argument("--runs-dir", default="runs/experiments", help="run folders with checkpoints (not committed)")
    add_device_flags(p, amp=False)
    add_quiet_flag(p)


def add_se_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SE options (Section 6 ablations; SE models only)")
    g.add_argument("--reduction", type=positive_int, help="reduction ratio r (Table 10)")
    g.add_argument("--squeeze", help="avg | max | none (NoSqueeze, Table 16)")
    g.add_argument("--excitation", help="sigmoid | tanh | relu (Table 12)")
    g.add_argument("--se-position", help="standard | pre | post | identity | 3x3 (Tables 14-15)")
    g.add_argument("--se-stages", type=stage_list, help="stages with SE blocks, e.g. 2,3 (Table 13; stem = 1)")
    g.add_argument("--se-bias", choices=("on", "off"), help="FC biases in the excitation")


def se_options(args: argparse.Namespace) -> dict:
    """The model options the SE flags given ask for (Section 6)."""
    options = {"reduction": args.reduction, "squeeze": args.squeeze, "excitation": args.excitation,
               "se_position": args.se_position, "se_stages": args.se_stages,
               "se_bias": None if args.se_bias is None else args.se_bias == "on"}
    return {k: v for k, v in options.items() if v is not None}
