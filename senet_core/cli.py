"""The ``senet`` command line (also ``python -m senet_core``).

Every subcommand ends a wrong argument with a one-line error and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    """A bad argument: reported on one line, exit status 2."""


def _cmd_complexity(args: argparse.Namespace) -> int:
    from .complexity import complexity, complexity_report
    from .models import create_model, model_entry

    if args.model:
        entry = model_entry(args.model)
        size = args.input_size or entry.input_size[1]
        c = complexity(create_model(args.model), (entry.input_size[0], size, size))
        print(f"{args.model} at {size}x{size}: {c.params:,} parameters ({c.params_m:.2f} M), "
              f"{c.macs:,} multiply-accumulates ({c.gflops:.3f} GFLOPs); SE: {c.se_params:,} parameters, "
              f"{c.se_macs:,} MACs")
        return 0
    report = complexity_report()
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.render(markdown=True) + "\n")
    print(report.render())
    if args.markdown:
        print(f"\nwrote {args.markdown}")
    return 1 if report.unexplained_misses else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_entry

    for name in list_models(args.pattern):
        e = model_entry(name)
        kind = f"SE version of {e.baseline}" if e.is_se else "baseline"
        print(f"{name:32s} {kind:40s} {e.paper}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="senet", description="Squeeze-and-Excitation Networks: models, complexity, training, the book.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("complexity", help="the paper's complexity columns beside ours (Section 4)",
                       description="Print Section 4's numbers and the params/GFLOPs columns of Tables 2, 3, "
                                   "10, 13, 15 and 16, paper beside ours; or one model's complexity.")
    p.add_argument("--model", help="count one registered model instead of printing the report")
    p.add_argument("--input-size", type=int, help="with --model: input height = width (default: the model's)")
    p.add_argument("--markdown", metavar="PATH", help="also write the report as Markdown to PATH")
    p.set_defaults(func=_cmd_complexity)

    p = sub.add_parser("models", help="list the registered models", description="List the registered models.")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'se_*'")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"senet {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"senet {args.command}: interrupted", file=sys.stderr)
        return 130
