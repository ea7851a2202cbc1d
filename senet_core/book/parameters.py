"""The parameters a chapter notebook takes: how each is declared, and the check of their values.

Every chapter's ``parameters`` cell declares some of :data:`DECLARATIONS`, word for word (a test holds
them to it), so that papermill (``papermill --help-notebook``) shows each with its type and meaning.
The cell after it calls :func:`check_parameters`, which stops a run at once, in one line naming the
parameter and the values it accepts, rather than deep inside a training loop.
"""
from __future__ import annotations

import reprlib
from pathlib import Path

from ..engine.data import DATASETS
from ..engine.runtime import is_device_name
from ..study.spec import profile

# One line per parameter, as a chapter declares it.
DECLARATIONS = {
    "profile": 'profile: str = "cpu"  # cpu: the committed reduced-scale study, read back | smoke: tiny data, '
               '1 epoch, checks that the code runs | gpu: full scale',
    "device": 'device: str = "auto"  # auto: CUDA when there is a GPU, else cpu | cpu | cuda',
    "dataset": "dataset: str | None = None  # the paper's dataset for the full-protocol route, where a chapter "
               "has a choice",
    "data_dir": "data_dir: str | None = None  # folder holding the dataset; None: the usual places (Fashion-MNIST "
                "from Debian's package or the download folder)",
    "download": "download: bool = True  # fetch a missing dataset with torchvision (Fashion-MNIST, CIFAR, "
                "Places365) and say where it went",
    "epochs": "epochs: int | None = None  # None: the profile's; another value trains runs of your own "
              "(under _build/)",
    "seeds": "seeds: list | None = None  # None: the profile's; another list trains runs of your own "
             "(under _build/)",
    "runs_dir": 'runs_dir: str = "runs"  # checkpoints of the paper-recipe routes (gpu profile)',
    "measure_timing": "measure_timing: bool = False  # True: also time ResNet-50 vs SE-ResNet-50 on this machine "
                      "(minutes)",
}


class ParameterError(ValueError):
    """A chapter parameter with a value it cannot take. In a notebook it shows as one line."""

    def _render_traceback_(self) -> list[str]:       # IPython prints this instead of a traceback
        return [f"ParameterError: {self}"]


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


def _shown(value) -> str:
    """``value`` as a message shows it: its repr, shortened, on one line."""
    return " ".join(_SHORT.repr(value).splitlines())


def _fail(name: str, value, accepted: str) -> None:
    raise ParameterError(f"{name}={_shown(value)} is not accepted; {name} takes {accepted}")


def _check_profile(value) -> None:
    try:
        profile(value)
    except ValueError as err:                   # "unknown profile 'x'; closest: ...; profiles: ..."
        message = " ".join(str(err).splitlines())
        raise ParameterError(f"profile={_shown(value)} is not accepted: {message}") from None


def _check_device(value) -> None:
    if not is_device_name(value):
        _fail("device", value, "auto, cpu, cuda or cuda:N")


def _check_dataset(value) -> None:
    if value is not None and (not isinstance(value, str) or value not in DATASETS):
        _fail("dataset", value, "None or one of " + ", ".join(sorted(DATASETS)))


def _check_data_dir(value) -> None:
    if value is None:
        return
    if not isinstance(value, (str, Path)) or not str(value):
        _fail("data_dir", value, "None or a folder (a string)")
    try:
        found = Path(value).expanduser().is_dir()
    except RuntimeError:                        # "~someone" where there is no such user
        found = False
    if not found:
        raise ParameterError(f"data_dir={_shown(str(value))} is not a folder on this machine; give the folder "
                             f"that holds the dataset, or None")


def _check_bool(name: str):
    def check(value) -> None:
        if not isinstance(value, bool):
            _fail(name, value, "True or False")
    return check


def _check_epochs(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        _fail("epochs", value, "None or a whole number of at least 1")


def _check_seeds(value) -> None:
    ok = value is None or (isinstance(value, (list, tuple)) and value and
                           all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))
    if not ok:
        _fail("seeds", value, "None or a non-empty list of whole numbers of at least 0, e.g. [0, 1, 2]")


def _check_runs_dir(value) -> None:
    if not isinstance(value, (str, Path)) or not str(value).strip() or "\0" in str(value):
        _fail("runs_dir", value, "a folder name (a string)")


CHECKS = {"profile": _check_profile, "device": _check_device, "dataset": _check_dataset,
          "data_dir": _check_data_dir, "download": _check_bool("download"), "epochs": _check_epochs,
          "seeds": _check_seeds, "runs_dir": _check_runs_dir, "measure_timing": _check_bool("measure_timing")}


def check_parameters(values: dict) -> None:
    """Check the chapter parameters found in ``values`` (a notebook passes ``globals()``); raise
    :class:`ParameterError` on the first bad one."""
    for name, check in CHECKS.items():
        if name in values:
            check(values[name])
