"""The flags several ``senet`` commands share, each declared once."""
from __future__ import annotations

import argparse

from ..engine.runtime import AMP_DTYPES
from ..se import EXCITATION_OPERATORS, POSITIONS, SQUEEZE_OPERATORS
from .arguments import device, excitation, non_negative_int, path, positive_int, se_position, squeeze, stage_list


def amp_of(args: argparse.Namespace) -> str | None:
    """The engine's ``amp`` for ``--amp``: ``none`` is no mixed precision."""
    return None if args.amp == "none" else args.amp


def add_device_flags(p: argparse.ArgumentParser, *, amp: bool = True, compile: bool = False) -> None:
    """``--device`` (auto: the engine picks CUDA when there is a GPU), ``--amp`` and, with ``compile``,
    ``--channels-last`` and ``--compile``."""
    p.add_argument("--device", type=device, default="auto",
                   help="cpu | cuda | cuda:N | auto (default: CUDA if there is a GPU)")
    if amp:
        p.add_argument("--amp", choices=(*AMP_DTYPES, "none"), default="none", help="mixed precision")
    if compile:
        p.add_argument("--channels-last", action="store_true", help="channels-last memory format")
        p.add_argument("--compile", action="store_true", help="torch.compile the model")


def add_data_flags(p: argparse.ArgumentParser, *, data_dir: str | None = "where the dataset is (or is "
                   "downloaded to)", required: bool = False, workers: bool = True, download: bool = True) -> None:
    """``--data-dir`` (helped by ``data_dir``; left out when None), ``--workers`` and ``--download``."""
    if data_dir is not None:
        p.add_argument("--data-dir", type=path, required=required, help=data_dir)
    if workers:
        p.add_argument("--workers", type=non_negative_int, default=2, help="data-loading processes")
    if download:
        into = "--data-dir, default " if data_dir is not None else ""
        p.add_argument("--download", action="store_true", help="download the dataset if it is missing (into "
                                                               f"{into}$SENET_DATA or ~/.cache/senet_core/data)")


def add_out_flag(p: argparse.ArgumentParser, what: str, **options) -> None:
    """``--out``: where a command writes (``what``), the one name for it on every command; ``--output``,
    its older spelling on some, is kept as an alias. ``options`` are argparse's (``required``, ``default``)."""
    p.add_argument("--out", "--output", dest="out", type=path, help=what, **options)


def add_limit_flags(p: argparse.ArgumentParser, *, train: bool = True, older: str | None = None) -> None:
    """``--limit-val`` and, with ``train``, ``--limit-train``: the first N images of a split (smoke
    runs). ``older``: an older spelling of ``--limit-val`` kept as an alias."""
    if train:
        p.add_argument("--limit-train", type=positive_int, help="use the first N training images")
    names = ("--limit-val", older) if older else ("--limit-val",)
    p.add_argument(*names, dest="limit_val", type=positive_int, help="use the first N validation images")


def add_json_flag(p: argparse.ArgumentParser, what: str = "the result") -> None:
    """``--json``: stdout holds ``what`` as one JSON document, and nothing else (see
    :func:`.conventions.notices_to_stderr`)."""
    p.add_argument("--json", action="store_true", help=f"print {what} as one JSON document (other output "
                                                       "goes to stderr)")


def add_quiet_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def add_study_flags(p: argparse.ArgumentParser) -> None:
    """Where the reduced-scale runs keep their records and run folders, the device, and ``--quiet``."""
    p.add_argument("--results-dir", type=path, default="results", help="the records (one JSON file a run)")
    p.add_argument("--runs-dir", type=path, default="runs/experiments",
                   help="run folders with checkpoints (not committed)")
    add_device_flags(p, amp=False)
    add_quiet_flag(p)


def add_se_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SE options (Section 6 ablations; SE models only)")
    g.add_argument("--reduction", type=positive_int, help="reduction ratio r (Table 10)")
    g.add_argument("--squeeze", type=squeeze, help=" | ".join(SQUEEZE_OPERATORS) + " (NoSqueeze, Table 16)")
    g.add_argument("--excitation", type=excitation, help=" | ".join(EXCITATION_OPERATORS) + " (Table 12)")
    g.add_argument("--se-position", type=se_position, help=" | ".join(POSITIONS) + " (Tables 14-15)")
    g.add_argument("--se-stages", type=stage_list, help="stages with SE blocks, e.g. 2,3 (Table 13; stem = 1)")
    g.add_argument("--se-bias", choices=("on", "off"), help="FC biases in the excitation")


def se_options(args: argparse.Namespace) -> dict:
    """The model options the SE flags given ask for (Section 6)."""
    options = {"reduction": args.reduction, "squeeze": args.squeeze, "excitation": args.excitation,
               "se_position": args.se_position, "se_stages": args.se_stages,
               "se_bias": None if args.se_bias is None else args.se_bias == "on"}
    return {k: v for k, v in options.items() if v is not None}
