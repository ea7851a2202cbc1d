"""Hostile input, driven by Hypothesis: every value-taking flag of every ``senet`` command, and every
chapter parameter, given malformed values, ends in one line naming what was wrong (exit status 2 on
the command line, a ParameterError in a chapter): never a traceback, and never work started.

The flags are found by walking :func:`senet_core.cli.build_parser`, so a new command or flag is
covered as soon as it exists; a flag whose value has no declared type fails here until it gets one.
"""
import argparse
import contextlib
import fnmatch
import io
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st

from senet_core import list_models
from senet_core.book.parameters import DECLARATIONS, ParameterError, check_parameters
from senet_core.cli import arguments, build_parser, commands, main
from senet_core.engine.data import DATASETS, dataset_info
from senet_core.engine.recipes import list_recipes, recipe
from senet_core.models import model_entry
from senet_core.se import EXCITATION_OPERATORS, POSITIONS, SQUEEZE_OPERATORS
from senet_core.study.spec import engine, list_engines, profile, profile_names

# Bounded so that the whole file runs in well under a minute on two slow cores.
PER_FLAG = settings(max_examples=10, deadline=None, database=None)
PER_PARAMETER = settings(max_examples=25, deadline=None, database=None)

LARGEST = 2**63 - 1
MODELS = set(list_models())
PROFILES = set(profile_names()) | set(profile_names(pilot=True))


# ---- malformed values, by what a flag's value may be ------------------------------------------------

def junk(allowed: str) -> st.SearchStrategy[str]:
    """Text with a character outside ``allowed`` (a regex class), or only whitespace: never valid."""
    return st.text(max_size=20).filter(lambda s: not s.strip() or re.search(f"[^{allowed}]", s))


def unknown(known) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=20).filter(lambda s: s not in known),
                     st.sampled_from(["", " ", "-", "-x", "--", "NONE", "é", "\x00"]).filter(lambda s: s not in known))


def bad_int(least: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(max_value=least - 1).map(str),
        st.integers(min_value=LARGEST + 1, max_value=10**60).map(str),      # huge
        st.floats().map(repr),                                             # 1.5, nan, inf, 1e+300
        junk(r"0-9+\-\s"),
        st.sampled_from(["", " ", "-", "-x", "--", "--epochs", "1_000", "0x10", "1e3", "١٢", "５", "1 2", "+-1",
                         "9" * 5000]))


def bad_number(valid) -> st.SearchStrategy[str]:
    """Numbers outside what ``valid`` accepts, and text that is no number."""
    return st.one_of(
        st.floats(allow_nan=False).filter(lambda x: not valid(x)).map(repr),
        junk(r"0-9+\-.eE\s"),
        st.sampled_from(["", " ", "-", "-x", "--", ".", "e5", "1e", "1.2.3", "nan", "inf", "-inf", "1e999",
                         "9" * 400, "1_0", "٣.٥", "0x1p3"]))


def bad_int_list(least: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(st.integers(max_value=least - 1), min_size=1, max_size=4).map(lambda ns: ",".join(map(str, ns))),
        junk(r"0-9,+\-\s"),
        st.sampled_from(["", ",", " , ", "a,b", "1;2", "1.5", "1,a", f"{LARGEST + 1}", "٣"]))


def bad_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.text(alphabet=" \t\n\r", max_size=4),                                             # blank
        st.text(max_size=10).map(lambda s: "-" + s),                                         # option-like
        st.tuples(st.text(max_size=5), st.characters(categories=["Cc"]), st.text(max_size=5)).map("".join))


def bad_device() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=12).filter(lambda s: not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", s)),
        st.sampled_from(["", "gpu", "CPU", "cpu ", "cuda:", "cuda:-1", "cuda:٣", "cuda:x", "mps", "-x"]))


MALFORMED = {
    arguments.positive_int: bad_int(1),
    arguments.non_negative_int: bad_int(0),
    arguments.positive_float: bad_number(lambda x: x > 0),
    arguments.non_negative_float: bad_number(lambda x: x >= 0),
    arguments.fraction: bad_number(lambda x: 0 <= x < 1),
    arguments.seed_list: st.one_of(bad_int_list(0), st.sampled_from(["0,0", "1,2,1"])),
    arguments.stage_list: bad_int_list(1),
    arguments.text: bad_text(),
    arguments.reason: bad_text(),         # a blank reason is refused by discard_stale itself
    arguments.path: st.one_of(bad_text(), st.just("~no_such_user_here/x")),
    arguments.device: bad_device(),
    arguments.model_or_none: bad_text().filter(bool),
    arguments.name_list: st.one_of(st.sampled_from(["", ",", " , "]), bad_text().filter(lambda s: s.strip(", "))),
    arguments.squeeze: unknown(set(SQUEEZE_OPERATORS)),
    arguments.excitation: unknown(set(EXCITATION_OPERATORS)),
    arguments.se_position: unknown(set(POSITIONS)),
}


# The names of each set a flag may name (arguments.NAMED), by the lookup that knows them.
KNOWN = {model_entry: MODELS, recipe: set(list_recipes()), dataset_info: set(DATASETS), profile: PROFILES,
         engine: set(list_engines())}


def unknown_names(action: argparse.Action) -> st.SearchStrategy[str]:
    """Names the set of ``action``'s flag does not hold (for a list, one of them at least)."""
    known = KNOWN[arguments.NAMED[action.dest]]
    if action.type is arguments.name_list:
        return st.one_of(st.text(max_size=20).filter(
            lambda s: not {part.strip() for part in s.split(",") if part.strip()} <= known),
            st.sampled_from(["cpu,pilot_huge", "pilot_base;pilot_long"]))
    return st.one_of(st.text(max_size=20).filter(lambda s: s not in known and s != ""),
                     st.sampled_from(["se_resnet5", "RESNET50", "resnet50 ", "imagnet", "é"]).filter(
                         lambda s: s not in known))


def malformed(action: argparse.Action) -> st.SearchStrategy[str]:
    if action.type is None and action.choices is not None:
        return unknown(set(action.choices))
    assert action.type in MALFORMED, (
        f"{'/'.join(action.option_strings) or action.dest}: declare what its value may be (a type= of "
        f"senet_core.cli.arguments, or choices=), and add its malformed values here")
    values = MALFORMED[action.type]
    if action.dest in arguments.NAMED:
        values = st.one_of(values, unknown_names(action))
    # After the options, "--" only ends them: not a value of a positional argument.
    return values if action.option_strings else values.filter(lambda s: s != "--")


# ---- every command, every flag that takes a value ---------------------------------------------------

def subcommands() -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._HelpAction)]


CASES = [(command, action) for command, parser in subcommands().items() for action in flags(parser)]


def case_id(case) -> str:
    command, action = case
    return f"{command} {action.option_strings[-1] if action.option_strings else action.dest}"


def harmless(command: str, where: Path) -> list[tuple[str, str | None]]:
    """Valid values for what ``command`` requires, and the cheapest choices for the rest."""
    return {
        "train": [("--out", f"{where}/run"), ("--device", "cpu")],
        "eval": [("--model", "resnet20_cifar"), ("--pretrained", "imagenet"), ("--device", "cpu")],
        "train-detection": [("--model", "resnet50"), ("--data-dir", str(where)), ("--out", f"{where}/det"),
                            ("--device", "cpu")],
        "eval-detection": [("--checkpoint", f"{where}/det.pt"), ("--data-dir", str(where)), ("--device", "cpu")],
        "experiments": [("--only", "table15_se_3x3"), ("--profile", "smoke"), ("--device", "cpu"),
                        ("--results-dir", f"{where}/results"), ("--runs-dir", f"{where}/runs")],
        "pilot": [("--device", "cpu"), ("--results-dir", f"{where}/results"), ("--runs-dir", f"{where}/runs")],
        "report": [("--results-dir", f"{where}/none"), ("--output", f"{where}/report.md")],
        "reproduce": [("--output", f"{where}/executed")],
        "profile": [("--device", "cpu")],
    }.get(command, [])


class Accepted(Exception):
    """A command got past its arguments and started work with a malformed value."""


# What the commands call to do their work: none may be reached with a malformed value. (discard_stale
# is not among them: with no records in the results folder it removes nothing, and it judges a reason.)
WORK = ("train", "evaluate_run", "train_detection", "evaluate_detection", "run_experiments", "run_study",
        "run_until_decided", "run_pilot", "fetch_dataset", "reproduce", "profile_models",
        "complexity", "complexity_report", "create_model", "reproduction_report")


@pytest.fixture(scope="module", autouse=True)
def no_work():
    with pytest.MonkeyPatch.context() as mp:
        for name in WORK:
            def refuse(*args, _name=name, **kwargs):
                raise Accepted(f"{_name} started with {args} {kwargs}")
            mp.setattr(commands, name, refuse)
        yield


@pytest.fixture(scope="module")
def where(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: its exit status (returned or raised by the parser), stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code
    return status, out.getvalue(), err.getvalue()


def assert_one_line_error(argv: list[str], status: int, err: str) -> None:
    assert status == 2, f"{argv}: exit status {status}, stderr {err!r}"
    assert err.endswith("\n") and len(err.splitlines()) == 1 and err.strip(), f"{argv}: stderr {err!r}"
    assert "Traceback" not in err and err.startswith("senet"), f"{argv}: stderr {err!r}"


def test_every_command_and_flag_is_found():
    names = {case_id(c) for c in CASES}
    assert {"complexity --input-size", "experiments --seeds", "train --epochs", "profile models",
            "pilot --profiles"} <= names
    assert set(subcommands()) >= {"complexity", "train", "eval", "experiments", "models", "profile"}


# The issue's own cases, tried first, every time.
FIXED = {"complexity --input-size": ["-5"], "experiments --seeds": ["a,b"]}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_malformed_value_ends_in_one_line_and_exit_status_2(case, where):
    command, action = case
    base = [(flag, value) for flag, value in harmless(command, where) if flag not in action.option_strings]
    head = [command] + [part for flag, value in base for part in ((flag,) if value is None else (flag, value))]

    @PER_FLAG
    @given(value=malformed(action), joined=st.booleans())
    def check(value, joined):
        if not action.option_strings:
            argv = head + [value]
        elif joined:                                       # --flag=value: the value is never taken for a flag
            argv = head + [f"{action.option_strings[-1]}={value}"]
        else:
            argv = head + [action.option_strings[-1], value]
        status, _, err = run(argv)
        assert_one_line_error(argv, status, err)

    for value in FIXED.get(case_id(case), []):
        check = example(value=value, joined=False)(check)
    check()


@settings(max_examples=25, deadline=None, database=None)
@given(pattern=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789*?", min_size=1, max_size=12)
       .filter(lambda p: not fnmatch.filter(sorted(MODELS), p)))
@example(pattern="foo*")
def test_a_model_pattern_that_matches_nothing_is_a_one_line_error(pattern):
    status, out, err = run(["models", pattern])
    assert (status, out) == (2, "") and err.count("\n") == 1 and f"no model matches {pattern!r}" in err


@settings(max_examples=25, deadline=None, database=None)
@given(value=st.integers(min_value=1, max_value=LARGEST), padded=st.booleans())
@example(value=1, padded=False)
def test_a_valid_count_is_read_as_it_always_was(value, padded):
    text = f" {value} " if padded else str(value)
    assert arguments.positive_int(text) == int(text) == value
    assert arguments.non_negative_int(text) == value


# ---- chapter parameters ------------------------------------------------------------------------------

def _not_a_folder(value) -> bool:
    try:
        return not Path(value).expanduser().is_dir()
    except RuntimeError:
        return True


others = st.one_of(st.integers(), st.floats(), st.booleans(), st.binary(max_size=5),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
MALFORMED_PARAMETERS = {
    "profile": st.one_of(st.text(max_size=20).filter(lambda s: s not in PROFILES), st.none(), others),
    "device": st.one_of(st.text(max_size=12).filter(lambda s: not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", s)),
                        st.just("cuda:٣"), st.none(), others),
    "dataset": st.one_of(st.text(max_size=20).filter(lambda s: s not in DATASETS), others),
    "data_dir": st.one_of(st.just(""), st.just("~no_such_user_here/x"), st.just("a\x00b"), others,
                          st.text(max_size=20).filter(lambda s: s and _not_a_folder(s))),
    "download": st.one_of(st.text(max_size=5), st.integers(), st.none(), st.floats()),
    "epochs": st.one_of(st.integers(max_value=0), st.booleans(), st.floats(), st.text(max_size=5),
                        st.lists(st.integers(min_value=1), max_size=2)),
    "seeds": st.one_of(st.just([]), st.text(max_size=5), st.integers(), st.floats(), st.booleans(),
                       st.lists(st.one_of(st.integers(max_value=-1), st.booleans(), st.floats(), st.text(max_size=2)),
                                min_size=1, max_size=3)),
    "runs_dir": st.one_of(st.just(""), st.text(alphabet=" \t", min_size=1, max_size=3), st.just("a\x00b"),
                          st.none(), st.integers(), st.floats(), st.lists(st.text(max_size=2), max_size=2),
                          st.binary(max_size=3)),
    "measure_timing": st.one_of(st.text(max_size=5), st.integers(), st.none(), st.floats()),
}
FIXED_PARAMETERS = {"profile": "nonsense", "device": "gpu", "dataset": "mnist", "data_dir": "/no/such/folder",
                    "download": "yes", "epochs": 0, "seeds": [0, "1"], "runs_dir": "", "measure_timing": 1}


def test_every_declared_parameter_is_tried():
    assert set(MALFORMED_PARAMETERS) == set(DECLARATIONS) == set(FIXED_PARAMETERS)


@pytest.mark.parametrize("name", sorted(DECLARATIONS))
def test_a_malformed_chapter_parameter_is_one_line_naming_it(name):
    @PER_PARAMETER
    @given(value=MALFORMED_PARAMETERS[name])
    @example(value=FIXED_PARAMETERS[name])
    def check(value):
        with pytest.raises(ParameterError) as err:
            check_parameters({name: value})
        message = str(err.value)
        assert message.startswith(f"{name}=") and len(message.splitlines()) == 1, message
        assert err.value._render_traceback_() == [f"ParameterError: {message}"]

    check()
