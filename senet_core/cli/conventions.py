"""How the ``senet`` command reports: every error on one line of stderr, an exit status that says
what went wrong (:data:`EXIT_STATUSES`, shown by ``senet --help``), and with ``--json`` one JSON
document on stdout."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys

EXIT_STATUSES = ("exit status: 0 done; 1 a run failed (a non-finite loss, a file that could not be written, "
                 "a chapter that failed); 2 bad input (a wrong flag or value, a missing file); 130 or 143 "
                 "interrupted by SIGINT or SIGTERM (a training run keeps its last checkpoint for --resume).")


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``senet train: error: argument --epochs: ...``,
    with exit status 2: the usage block argparse would print first says nothing about what was wrong."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        for arg in args:
            if arg == "--":                         # the rest are values
                break
            flag, equals, value = arg.partition("=")
            # argparse reads `--flag=--` as the flag given no value at all (an empty list), not as an error.
            # A flag of a subcommand is left to the subcommand's parser, which names itself.
            if flag.startswith("-") and equals and value == "--" and any(
                    option.startswith(flag) for option in self._option_string_actions):
                self.error(f"argument {flag}: expected one argument")
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(message: str) -> str:
    """``message`` on one line. An error re-raised from a DataLoader worker carries the worker's whole
    traceback ("Caught ValueError in DataLoader worker process 0. Original Traceback ..."): only its
    last line, the original error, is kept."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if "Original Traceback" in str(message):
        return lines[-1]
    return " ".join(lines)


def fail(command: str, problem: BaseException | str, status: int, error: bool = True) -> int:
    """Print ``senet COMMAND: error: PROBLEM`` (without ``error:`` for a run that stopped rather than
    erred) on one line of stderr, and return ``status``."""
    message = one_line(str(problem)) or type(problem).__name__
    print(f"senet {command}: {'error: ' if error else ''}{message}", file=sys.stderr)
    return status


def notices_to_stderr(args: argparse.Namespace):
    """With ``--json``, a context in which what the work prints (per-epoch lines, notices) goes to stderr,
    so that stdout holds only the JSON document printed after it; without, a context that changes nothing."""
    return contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()


def print_json(value, indent: int | None = None) -> None:
    """``value`` as one JSON document on stdout; a value JSON has no type for (a path, a device) as its text."""
    print(json.dumps(value, indent=indent, default=str))
