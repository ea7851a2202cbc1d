"""The ``senet`` command line (also ``python -m senet_core``): the parser here, the commands in
:mod:`.commands`, the flags several commands share in :mod:`.flags`, what each flag's value may be in
:mod:`.arguments`, and how errors are reported in :mod:`.conventions`.

Every subcommand ends a wrong argument with a one-line error and exit status 2, never a traceback;
the exit statuses are listed by ``senet --help``.
"""
from __future__ import annotations

import argparse

from .. import __version__
from ..engine.recipes import SCHEDULES
from ..engine.runtime import TrainingStopped
from ..engine.train import NonFiniteLossError
from ..study.spec import profile_names
from . import commands
from .arguments import (fraction, look_up_names, model_or_none, name_list, non_negative_float, non_negative_int,
                        path, positive_float, positive_int, reason, seed_list, text)
from .conventions import EXIT_STATUSES, Parser, UsageError, fail
from .flags import (add_data_flags, add_device_flags, add_json_flag, add_limit_flags, add_out_flag, add_quiet_flag,
                    add_se_flags, add_study_flags)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="senet", description="Squeeze-and-Excitation Networks: models, complexity, training, "
                                               "the book.", epilog=EXIT_STATUSES)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    profiles = ", ".join(profile_names())

    p = sub.add_parser("complexity", help="the paper's complexity columns beside ours (Section 4)",
                       description="Print Section 4's numbers and the params/GFLOPs columns of Tables 2, 3, "
                                   "10, 13, 15 and 16, paper beside ours; or one model's complexity.")
    p.add_argument("--model", type=text, help="count one registered model instead of printing the report")
    p.add_argument("--input-size", type=positive_int,
                   help="with --model: input height = width (default: the model's)")
    p.add_argument("--markdown", type=path, metavar="PATH", help="also write the report as Markdown to PATH")
    add_json_flag(p, "the model's counts (with --model) or the report's rows")
    p.set_defaults(func=commands.complexity_command)

    p = sub.add_parser("train", help="train a model (one process, or under torchrun)",
                       description="Train a network with one of the paper's recipes. Run under `torchrun "
                                   "--nproc_per_node=N -m senet_core train ...` for DDP.")
    p.add_argument("--recipe", type=text, help="a recipe from `senet recipes` (default: the dataset's)")
    p.add_argument("--model", type=text, help="a registered model (default: the recipe's)")
    p.add_argument("--dataset", type=text,
                   help="imagenet | cifar10 | cifar100 | fashion_mnist | places365 | synthetic")
    add_out_flag(p, "run folder: metrics.jsonl, checkpoint.pt, config.json", required=True)
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--batch-size", type=positive_int, help="global batch (split over processes)")
    p.add_argument("--lr", type=positive_float, help="learning rate as is (default: the recipe's, scaled to the batch)")
    p.add_argument("--weight-decay", type=non_negative_float)
    p.add_argument("--momentum", type=non_negative_float)
    p.add_argument("--label-smoothing", type=fraction, help="in [0, 1)")
    p.add_argument("--schedule", choices=SCHEDULES, metavar="SCHEDULE", help=" | ".join(SCHEDULES))
    p.add_argument("--cutout", type=non_negative_int, help="Cutout side in pixels (CIFAR; 0: none)")
    add_se_flags(p)
    g = p.add_argument_group("running")
    add_data_flags(g)
    add_device_flags(g, compile=True)
    g.add_argument("--seed", type=non_negative_int, default=0)
    add_limit_flags(g)
    g.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_quiet_flag(g)
    add_json_flag(g, "the last epoch's metrics")
    p.set_defaults(func=commands.train_command)

    p = sub.add_parser("eval", help="single-crop top-1/top-5 error of a checkpoint or released weights",
                       description="Evaluate a training run's checkpoint (--checkpoint) or released weights "
                                   "(--model with --pretrained) on a dataset's validation split.")
    p.add_argument("--checkpoint", type=path, help="a run's checkpoint.pt (or its run folder)")
    p.add_argument("--model", type=text, help="a registered model, with --pretrained")
    p.add_argument("--pretrained", type=text, help="released weights: a path, a URL, or 'imagenet'")
    p.add_argument("--dataset", type=text, help="default: the checkpoint's, or imagenet")
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--crop-size", type=positive_int, help="centre crop (default: the model's input size)")
    p.add_argument("--resize", type=positive_int, help="shorter side before cropping (default: crop x 8/7)")
    add_limit_flags(p, train=False)
    add_data_flags(p)
    add_device_flags(p)
    add_json_flag(p)
    p.set_defaults(func=commands.eval_command)

    p = sub.add_parser("train-detection", help="train Faster R-CNN with one of our trunks on COCO (Table 7)",
                       description="Train Faster R-CNN (FPN) with a ResNet-family trunk on COCO-format data, "
                                   "Detectron's recipe by default (senet_core.engine.detection.TABLE7_RECIPE).")
    p.add_argument("--model", type=text, required=True,
                   help="trunk: resnet50, se_resnet50, resnet101, se_resnet101, ...")
    add_data_flags(p, data_dir="COCO root: annotations/instances_SPLIT.json + SPLIT/", required=True,
                   download=False)
    add_out_flag(p, "run folder: metrics.jsonl, detector.pt, config.json", required=True)
    p.add_argument("--train-split", type=text, default="train2017")
    p.add_argument("--val-split", type=text, default="val2017")
    p.add_argument("--epochs", type=positive_int, default=25)
    p.add_argument("--batch-size", type=positive_int, default=2)
    p.add_argument("--lr", type=positive_float, help="default: Detectron's 0.02 at batch 16, scaled linearly")
    p.add_argument("--pretrained-backbone", type=text, help="ImageNet weights for the trunk (path, URL or 'imagenet')")
    p.add_argument("--no-fpn", action="store_true", help="single-level detector on conv5 (not a paper setting)")
    p.add_argument("--min-size", type=positive_int, default=800)
    p.add_argument("--max-size", type=positive_int, default=1333)
    p.add_argument("--eval-every", type=non_negative_int, default=0,
                   help="evaluate every N epochs (0: at the end only)")
    add_limit_flags(p)
    p.add_argument("--limit", type=positive_int, help="both of the above at once")
    add_device_flags(p)
    p.add_argument("--seed", type=non_negative_int, default=0)
    add_json_flag(p, "the final record")
    p.set_defaults(func=commands.train_detection_command)

    p = sub.add_parser("eval-detection", help="COCO AP and AP@0.5 of a detector checkpoint (Table 7)",
                       description="Evaluate a detector checkpoint with the COCO API.")
    p.add_argument("--checkpoint", type=path, required=True, help="a detector.pt written by train-detection")
    add_data_flags(p, data_dir="COCO root: annotations/instances_SPLIT.json + SPLIT/", required=True,
                   download=False)
    p.add_argument("--val-split", "--split", dest="val_split", type=text, default="val2017",
                   help="the split scored")
    p.add_argument("--batch-size", type=positive_int, default=2)
    add_limit_flags(p, train=False, older="--limit")
    add_device_flags(p)
    add_out_flag(p, "also write the detections as COCO JSON into this folder")
    add_json_flag(p)
    p.set_defaults(func=commands.eval_detection_command)

    p = sub.add_parser("experiments", help="run the reduced-scale reproductions of the paper's experiments",
                       description="Train every row of the paper's experiments (Tables 2, 4-5, 10-16 as "
                                   "miniatures, senet_core/study/experiments.yaml) for every seed of a profile; "
                                   "resumable; writes one JSON record per run.")
    p.add_argument("--profile", type=text, default="cpu",
                   help=f"a profile of senet_core/study/experiments.yaml: {profiles}, or a pilot_* regime")
    p.add_argument("--only", type=text, help="experiments whose name matches (shell pattern or substring)")
    add_study_flags(p)
    p.add_argument("--seeds", type=seed_list, help="e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--epochs", type=positive_int, help="default: the profile's")
    p.add_argument("--engine", type=text,
                   help="how runs execute: an engine of senet_core/study/experiments.yaml (eager, channels_last, "
                        "compiled; default: the profile's); not part of a run's identity, named in every record")
    p.add_argument("--discard-stale", type=reason, metavar="REASON",
                   help="first remove the records whose run is no longer their row's run under the profile "
                        "(the protocol or regime changed), each listed in the ledger as discarded with REASON")
    p.add_argument("--study", action="store_true",
                   help="the profile's study rule for the seeds (experiments.yaml: study): each comparison "
                        "gets its seeds, then more (up to the rule's max) while it is inconclusive as its table "
                        "decides it, after Holm's correction")
    p.add_argument("--until-halfwidth", type=positive_float, metavar="H",
                   help="add seeds to each comparison until its 95 %% interval is narrower than +/- H points")
    p.add_argument("--max-seeds", type=positive_int, default=20, help="with --until-halfwidth (default 20)")
    p.add_argument("--min-seeds", type=positive_int, help="with --until-halfwidth: seeds every row starts "
                                                          "with (default: the profile's)")
    p.add_argument("--jobs", type=positive_int,
                   help="runs trained at a time, each in its own process with cores/jobs threads "
                        "(default: the profile's)")
    add_data_flags(p, data_dir="where the dataset is (or is downloaded to)", workers=False)
    p.add_argument("--list", action="store_true", help="list the experiments and stop")
    add_json_flag(p, "the names (with --list) or each experiment's table rows")
    p.set_defaults(func=commands.experiments_command)

    p = sub.add_parser("pilot", help="the training-regime pilot: SE vs no SE and the gates, per regime",
                       description="Train SE vs no SE on the ablation network (3 paired seeds) in each "
                                   "candidate regime (the pilot_* profiles), resumable, and write "
                                   "results/pilot/summary.json: paired gains, gate statistics, cost.")
    p.add_argument("--profiles", type=name_list, help="comma-separated pilot profiles (default: all four)")
    add_study_flags(p)
    add_data_flags(p, data_dir=None, workers=False)
    add_json_flag(p, "the pilot's summary")
    p.set_defaults(func=commands.pilot_command)

    p = sub.add_parser("report", help="the paper's claims beside our checks of them (Markdown)",
                       description="The reproduction report as Markdown: the summary, every claim beside "
                                   "our check of it, and the closing synthesis; --headline prints only the "
                                   "book's landing-page table.")
    p.add_argument("--profile", default="cpu", choices=profile_names(),
                   help="whose training records (cpu: the committed study)")
    p.add_argument("--results-dir", type=path, help="default: the profile's (the committed results/ for cpu)")
    p.add_argument("--headline", action="store_true", help="only the landing page's table")
    add_out_flag(p, "write the Markdown to this file instead of printing it")
    add_json_flag(p, "the tables the Markdown is built from (--out still writes the Markdown)")
    p.set_defaults(func=commands.report_command)

    p = sub.add_parser("reproduce", help="execute every chapter notebook with papermill",
                       description="Execute the book's notebooks with a profile's parameters, skipping "
                                   "up-to-date outputs; non-zero exit if any chapter fails.")
    p.add_argument("--profile", default="smoke", choices=profile_names())
    p.add_argument("--only", type=text, help="notebooks whose name matches (shell pattern or substring)")
    p.add_argument("--jobs", type=positive_int, default=1, help="notebooks run at once")
    add_out_flag(p, "folder for the executed notebooks", default="_build/executed")
    p.add_argument("--force", action="store_true", help="re-run up-to-date notebooks too")
    add_json_flag(p, "the chapters executed, up to date and failed")
    p.set_defaults(func=commands.reproduce_command)

    p = sub.add_parser("profile", help="paired latency / training-step timings, as ratios to a baseline (Section 4)",
                       description="Time models paired in one process (round-robin, warm-up, median with "
                                   "spread) and report ratios to a baseline: Section 4's CPU (batch 1) and "
                                   "GPU (batch 256, forward+backward) timings on your hardware.")
    p.add_argument("models", type=text, nargs="*", help="registered models (default: resnet50 se_resnet50)")
    p.add_argument("--baseline", type=model_or_none,
                   help="ratios relative to this model (default: the first; '' for none)")
    p.add_argument("--mode", choices=("latency", "train"), default="latency",
                   help="latency: forward in eval mode; train: forward+backward+SGD step")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--input-size", type=positive_int, help="height = width (default: each model's)")
    p.add_argument("--in-chans", type=positive_int, default=3)
    add_device_flags(p, compile=True)
    p.add_argument("--warmup", type=non_negative_int, default=3)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    add_json_flag(p, "the report")
    p.set_defaults(func=commands.profile_command)

    p = sub.add_parser("recipes", help="list the training recipes", description="List the training recipes.")
    add_json_flag(p, "the recipes with their settings")
    p.set_defaults(func=commands.recipes_command)

    p = sub.add_parser("models", help="list the registered models", description="List the registered models.")
    p.add_argument("pattern", type=text, nargs="?", help="shell-style filter, e.g. 'se_*'")
    p.add_argument("--pretrained", action="store_true", help="only the models with released weights")
    add_json_flag(p, "the models with their registry entries")
    p.set_defaults(func=commands.models_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        look_up_names(args)
        return args.func(args)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as err:
        return fail(args.command, err, 2)
    except NonFiniteLossError as err:
        return fail(args.command, err, 1, error=False)
    except TrainingStopped as err:
        return fail(args.command, err, 128 + err.signum, error=False)
    except OSError as err:                      # a file that could not be written (a full disk, say)
        return fail(args.command, err, 1)
    except KeyboardInterrupt:
        return fail(args.command, "interrupted", 130, error=False)
